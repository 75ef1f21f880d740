//go:build tollgate_failpoints

package failpoint_test

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"tollgate/internal/failpoint"
)

func TestSetAndInject(t *testing.T) {
	t.Cleanup(func() { _ = failpoint.Set("") })
	if err := failpoint.Set("a=error,b=2*error,c=sleep(1ms)"); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Inject("a"); !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("a: %v", err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := failpoint.Inject("b") != nil; got != want {
			t.Fatalf("b hit %d: fired=%v want %v", i, got, want)
		}
	}
	if err := failpoint.Inject("c"); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Inject("unknown"); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic action did not panic")
			}
		}()
		_ = failpoint.Set("p=panic")
		_ = failpoint.Inject("p")
	}()
}

func TestSetRefusesBadSpecs(t *testing.T) {
	t.Cleanup(func() { _ = failpoint.Set("") })
	for _, spec := range []string{"noaction", "=kill", "a=explode", "a=0*kill", "a=x*kill", "a=sleep(forever)"} {
		if err := failpoint.Set(spec); err == nil {
			t.Errorf("Set(%q) accepted", spec)
		}
	}
}

// TestKill: the kill action ends the process at once, by SIGKILL on Unix:
// nothing after the point runs.
func TestKill(t *testing.T) {
	if os.Getenv("FAILPOINT_KILL_CHILD") == "1" {
		if err := failpoint.Set("k=kill"); err != nil {
			t.Fatal(err)
		}
		_ = failpoint.Inject("k")
		os.Stdout.WriteString("continued after the kill\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FAILPOINT_KILL_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || strings.Contains(string(out), "continued") {
		t.Fatalf("the process went on after the kill point: %v\n%s", err, out)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && runtime.GOOS != "windows" && (!ws.Signaled() || ws.Signal() != syscall.SIGKILL) {
		t.Fatalf("the process ended with %v, want SIGKILL", err)
	}
}
