package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAttemptWatchdog: an attempt that keeps making progress outlives its
// timeout; silence for the timeout after progress cancels it with
// errAttemptTimeout; done cancels it plainly, and the watchdog does not
// override that.
func TestAttemptWatchdog(t *testing.T) {
	const timeout = 40 * time.Millisecond
	a := newAttempt(context.Background(), timeout)
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); {
		a.touch()
		time.Sleep(timeout / 8)
		if err := a.ctx.Err(); err != nil {
			t.Fatalf("cancelled (%v, cause %v) while progress was made", err, context.Cause(a.ctx))
		}
	}
	select {
	case <-a.ctx.Done():
		if cause := context.Cause(a.ctx); !errors.Is(cause, errAttemptTimeout) {
			t.Fatalf("cancelled with %v, want errAttemptTimeout", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled after a silence longer than the timeout")
	}
	a.done()

	b := newAttempt(context.Background(), timeout)
	b.done()
	time.Sleep(2 * timeout)
	if cause := context.Cause(b.ctx); !errors.Is(cause, context.Canceled) {
		t.Fatalf("done attempt's cause %v, want context.Canceled", cause)
	}
}

// TestAttemptTinyTimeout: a timeout shorter than the attempt's set-up
// still cancels it, without a race on the watchdog (run with -race).
func TestAttemptTinyTimeout(t *testing.T) {
	for range 100 {
		a := newAttempt(context.Background(), time.Nanosecond)
		<-a.ctx.Done()
		if cause := context.Cause(a.ctx); !errors.Is(cause, errAttemptTimeout) {
			t.Fatalf("cause %v, want errAttemptTimeout", cause)
		}
		a.done()
	}
}
