package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the tollgate command into dir and returns the binary's
// path. The harness runs the real binary so that a SIGKILL kills what
// production runs, wiring and all.
func Build(ctx context.Context, dir string, tags ...string) (string, error) {
	bin := filepath.Join(dir, "tollgate")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "tollgate/cmd/tollgate")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port free right now. An
// instance keeps its address across restarts, so the port is chosen here
// rather than with :0.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Process is one child process of the harness: started, SIGKILLed and
// started again with the same arguments. Its output goes to Log.
type Process struct {
	Name string
	Bin  string
	Args []string
	Env  []string // added to the harness's environment, e.g. TOLLGATE_FAILPOINTS=...
	Log  io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs the process and returns once it has started (not once it
// serves: see WaitHTTP). Lines it prints are passed to onLine as well as Log.
func (p *Process) Start(onLine func(string)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.Name)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(append(os.Environ(), "TOLLGATE_CONFIG=", "TOLLGATE_FAILPOINTS="), p.Env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if p.Log != nil {
				fmt.Fprintf(p.Log, "[%s] %s\n", p.Name, line)
			}
			if onLine != nil {
				onLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil // it died on its own (a failpoint killed it)
		}
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Exited returns a channel closed when the running process exits, or nil
// when none runs.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.done
}

// Kill sends SIGKILL and waits for the process to be gone: no deferred
// function, no graceful shutdown, exactly a crash.
func (p *Process) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: kill: %w", p.Name, err)
	}
	<-done
	return nil
}

// Stop asks the process to shut down (SIGTERM) and waits up to grace
// before killing it.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// WaitHTTP polls url until it answers 200, for at most limit.
func WaitHTTP(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", url, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Sandbox starts `tollgate sandbox` and returns its process and base URL
// (read from its start-up banner).
func Sandbox(ctx context.Context, bin string, log io.Writer, args ...string) (*Process, string, error) {
	p := &Process{Name: "sandbox", Bin: bin, Args: append([]string{"sandbox", "--addr", "127.0.0.1:0"}, args...), Log: log}
	u, err := startForURL(ctx, p, "WeChat Pay emulator listening on ")
	if err != nil {
		return nil, "", err
	}
	return p, u, nil
}

// startForURL starts p and waits (30 s at most) for the line beginning
// with banner, returning the rest of it: the URL p listens on. If none
// comes, p is killed.
func startForURL(ctx context.Context, p *Process, banner string) (string, error) {
	urls := make(chan string, 1)
	if err := p.Start(func(line string) {
		if u, ok := strings.CutPrefix(line, banner); ok {
			select {
			case urls <- strings.TrimSpace(u):
			default:
			}
		}
	}); err != nil {
		return "", err
	}
	select {
	case u := <-urls:
		return u, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = p.Kill()
	return "", errors.New(p.Name + " printed no URL")
}
