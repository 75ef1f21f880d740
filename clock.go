package tollgate

import (
	"context"
	"time"
)

// Clock is the one source of time wherever time decides money: order and
// grant expiry, hold expiry, the poller's schedule and backoff, nonce and
// timestamp windows, notification retries. Production code uses
// SystemClock; tests use a fake they advance by hand (internal/clocktest),
// so nothing waits for the wall clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed on this clock (at once when d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C is the channel the time is sent on when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// SystemClock is the wall clock: time.Now and time.NewTimer.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// ClockOr returns c, or SystemClock when c is nil: the default of every
// optional Clock field.
func ClockOr(c Clock) Clock {
	if c == nil {
		return SystemClock
	}
	return c
}

// Sleep waits d on c, or until ctx ends; it returns ctx's error then.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// ClockFunc adapts a function returning the time to a Clock whose timers
// are the wall clock's. It is for callers that only read the time (a
// fixed instant in a test, a clock shifted by a skew).
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// NewTimer is SystemClock's.
func (f ClockFunc) NewTimer(d time.Duration) Timer { return SystemClock.NewTimer(d) }
