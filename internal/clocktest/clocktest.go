// Package clocktest is a fake tollgate.Clock for tests: time stands still
// until the test moves it with Advance or Set, and timers fire then, in
// deadline order, on the goroutine that moved the clock. Nothing waits for
// the wall clock.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"tollgate"
)

// Clock is a manual tollgate.Clock. It is safe for concurrent use. The
// zero value reads the zero time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever a timer is added
}

var _ tollgate.Clock = (*Clock)(nil)

// New returns a clock reading start.
func New(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing when the clock reaches Now()+d (at once
// when d <= 0).
func (c *Clock) NewTimer(d time.Duration) tollgate.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
	return t
}

// Advance moves the clock forward by d and fires the timers now due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.setLocked(c.now.Add(d))
}

// Set moves the clock to t (never backwards: an earlier t is ignored) and
// fires the timers now due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	if t.Before(c.now) {
		c.mu.Unlock()
		return
	}
	c.setLocked(t)
}

// setLocked sets the time, fires due timers in deadline order and unlocks.
func (c *Clock) setLocked(t time.Time) {
	c.now = t
	var due, keep []*timer
	for _, x := range c.timers {
		if !x.at.After(t) {
			due = append(due, x)
		} else {
			keep = append(keep, x)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, x := range due {
		x.ch <- t // buffered, and each timer fires once
	}
}

// Timers returns how many timers are waiting.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers blocks until at least n timers are waiting, so a test can
// advance the clock knowing the code under test is parked on its timer. It
// reports false if that has not happened within limit (a hung test, not a
// measure of speed).
func (c *Clock) WaitTimers(n int, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		have, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// Run calls f on another goroutine and, until it returns, moves the clock
// to the next deadline whenever a timer waits: code that sleeps on the
// clock (a retry's backoff) runs as if each wait passed at once, with
// nothing else happening in between.
func (c *Clock) Run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	for {
		c.mu.Lock()
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		if at, ok := c.NextDeadline(); ok {
			c.Set(at)
			continue
		}
		select {
		case <-done:
			return
		case <-changed:
		}
	}
}

// NextDeadline returns the earliest deadline of a waiting timer, and false
// when none waits.
func (c *Clock) NextDeadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	min := c.timers[0].at
	for _, x := range c.timers[1:] {
		if x.at.Before(min) {
			min = x.at
		}
	}
	return min, true
}

type timer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
