//go:build tollgate_failpoints

// This file is compiled only with the tollgate_failpoints build tag (the
// reliability harness and the crash tests build such a binary): points are
// off unless the TOLLGATE_FAILPOINTS environment variable names them, and
// an unset variable costs one atomic load per point.
//
// TOLLGATE_FAILPOINTS is a comma-separated list of name=action, where action
// is one of:
//
//	kill        the process kills itself (SIGKILL; no deferred code runs)
//	panic       panic("failpoint NAME")
//	sleep(D)    sleep for the Go duration D, e.g. sleep(2s)
//	error       Inject returns ErrInjected
//
// An action may be prefixed by N* to fire only on the first N hits, e.g.
// after_credit_before_ack=1*kill.

package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInjected is returned by Inject for the "error" action.
var ErrInjected = errors.New("failpoint: injected error")

type point struct {
	action  string
	arg     time.Duration
	counted bool         // only the first N hits fire
	left    atomic.Int64 // hits left when counted
}

var (
	enabled atomic.Bool
	mu      sync.Mutex
	points  map[string]*point
)

func init() {
	if err := Set(os.Getenv("TOLLGATE_FAILPOINTS")); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate: ignoring TOLLGATE_FAILPOINTS:", err)
	}
}

// Set replaces the configured points with spec (the TOLLGATE_FAILPOINTS
// syntax); "" turns every point off. Tests call it directly.
func Set(spec string) error {
	parsed := map[string]*point{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, action, ok := strings.Cut(item, "=")
		if !ok || name == "" {
			return fmt.Errorf("failpoint %q: want name=action", item)
		}
		p := &point{}
		if n, rest, ok := strings.Cut(action, "*"); ok {
			count, err := strconv.Atoi(n)
			if err != nil || count <= 0 {
				return fmt.Errorf("failpoint %q: bad count %q", item, n)
			}
			p.counted = true
			p.left.Store(int64(count))
			action = rest
		}
		switch {
		case action == "kill", action == "panic", action == "error":
			p.action = action
		case strings.HasPrefix(action, "sleep(") && strings.HasSuffix(action, ")"):
			d, err := time.ParseDuration(action[len("sleep(") : len(action)-1])
			if err != nil {
				return fmt.Errorf("failpoint %q: %w", item, err)
			}
			p.action, p.arg = "sleep", d
		default:
			return fmt.Errorf("failpoint %q: unknown action %q", item, action)
		}
		parsed[name] = p
	}
	mu.Lock()
	points = parsed
	mu.Unlock()
	enabled.Store(len(parsed) > 0)
	return nil
}

// Inject runs the action configured for name, if any. It returns
// ErrInjected for the "error" action and nil otherwise (or does not return).
func Inject(name string) error {
	if !enabled.Load() {
		return nil
	}
	mu.Lock()
	p := points[name]
	mu.Unlock()
	if p == nil {
		return nil
	}
	if p.counted && p.left.Add(-1) < 0 {
		return nil
	}
	switch p.action {
	case "kill":
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill() // SIGKILL on Unix, TerminateProcess on Windows
		}
		select {} // the kill is not delivered late; never continue
	case "panic":
		panic("failpoint " + name)
	case "sleep":
		time.Sleep(p.arg)
	case "error":
		return fmt.Errorf("%s: %w", name, ErrInjected)
	}
	return nil
}
