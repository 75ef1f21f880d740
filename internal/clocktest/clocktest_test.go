package clocktest_test

import (
	"context"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
)

var t0 = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

func fired(tm tollgate.Timer) bool {
	select {
	case <-tm.C():
		return true
	default:
		return false
	}
}

// Timers fire when the clock reaches them, not before, and a stopped one
// never does.
func TestTimersFireOnAdvance(t *testing.T) {
	t.Parallel()
	c := clocktest.New(t0)
	a, b, s := c.NewTimer(time.Second), c.NewTimer(time.Minute), c.NewTimer(2*time.Second)
	if !fired(c.NewTimer(0)) {
		t.Fatal("a zero timer did not fire at once")
	}
	if !s.Stop() || s.Stop() {
		t.Fatal("Stop of a waiting timer")
	}
	c.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("fired early")
	}
	c.Advance(time.Second)
	if !fired(a) || fired(b) || fired(s) || c.Timers() != 1 {
		t.Fatal("after 1.999 s: want only the 1 s timer")
	}
	c.Set(t0) // never backwards
	if !c.Now().Equal(t0.Add(1999 * time.Millisecond)) {
		t.Fatalf("Now = %v", c.Now())
	}
	c.Set(t0.Add(time.Minute))
	if !fired(b) {
		t.Fatal("the minute timer did not fire")
	}
}

// Sleep returns when the clock passes d, or with ctx's error.
func TestSleep(t *testing.T) {
	t.Parallel()
	c := clocktest.New(t0)
	done := make(chan error, 1)
	go func() { done <- tollgate.Sleep(context.Background(), c, time.Hour) }()
	if !c.WaitTimers(1, time.Minute) {
		t.Fatal("Sleep never waited")
	}
	c.Advance(time.Hour)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- tollgate.Sleep(ctx, c, time.Hour) }()
	c.WaitTimers(1, time.Minute)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled Sleep = %v", err)
	}
}

// Run moves the clock past every wait of f.
func TestRun(t *testing.T) {
	t.Parallel()
	c := clocktest.New(t0)
	c.Run(func() {
		for range 3 {
			_ = tollgate.Sleep(context.Background(), c, 10*time.Second)
		}
	})
	if got := c.Now().Sub(t0); got != 30*time.Second {
		t.Fatalf("clock moved %v, want 30 s", got)
	}
}
