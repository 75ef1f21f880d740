package gateway

import (
	"sync"
	"time"

	"tollgate"
)

// BreakerState is a per-deployment circuit breaker. The in-memory Breaker
// implements it for one instance; a Redis-backed one can share it across
// instances. Keys are deployment ids ("provider/model"). Methods are safe
// for concurrent use.
type BreakerState interface {
	// Allow reports whether a call to key may be made now. When the
	// breaker is open and its cooldown has passed it lets exactly one
	// probe through (half-open) and refuses others until that probe reports.
	Allow(key string) bool
	// Success records a successful call; it closes a half-open breaker.
	Success(key string)
	// Failure records a failed call. A retryAfter > 0 (from a 429 or 503
	// Retry-After) opens the breaker for at least that long at once.
	Failure(key string, retryAfter time.Duration)
}

// Breaker is the in-memory BreakerState: it opens after Threshold
// consecutive failures, stays open for Cooldown, then half-opens for one
// probe. Its zero value is not usable; use NewBreaker.
type Breaker struct {
	Threshold int
	Cooldown  time.Duration
	clock     tollgate.Clock

	mu    sync.Mutex
	state map[string]*breakerEntry
}

type breakerEntry struct {
	failures  int
	openUntil time.Time // zero when closed
	probing   bool
	probeAt   time.Time
}

// NewBreaker returns a Breaker opening after threshold consecutive failures
// for cooldown on clock (SystemClock when nil).
func NewBreaker(threshold int, cooldown time.Duration, clock tollgate.Clock) *Breaker {
	if threshold < 1 {
		threshold = 1
	}
	return &Breaker{Threshold: threshold, Cooldown: cooldown, clock: tollgate.ClockOr(clock), state: map[string]*breakerEntry{}}
}

var _ BreakerState = (*Breaker)(nil)

// State returns "closed", "open" or "half-open" for key, for tests and
// status pages.
func (b *Breaker) State(key string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.state[key]
	switch {
	case e == nil || e.openUntil.IsZero():
		return "closed"
	case e.probing || !b.clock.Now().Before(e.openUntil):
		return "half-open"
	default:
		return "open"
	}
}

// Allow implements BreakerState.
func (b *Breaker) Allow(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.state[key]
	if e == nil || e.openUntil.IsZero() {
		return true
	}
	now := b.clock.Now()
	if now.Before(e.openUntil) {
		return false
	}
	// Half-open: one probe at a time. A probe that never reports (its
	// request vanished) is given up after one cooldown.
	if e.probing && now.Before(e.probeAt.Add(b.Cooldown)) {
		return false
	}
	e.probing, e.probeAt = true, now
	return true
}

// Success implements BreakerState.
func (b *Breaker) Success(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.state, key)
}

// Failure implements BreakerState.
func (b *Breaker) Failure(key string, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.state[key]
	if e == nil {
		e = &breakerEntry{}
		b.state[key] = e
	}
	e.failures++
	now := b.clock.Now()
	wasProbe := e.probing
	e.probing = false
	var until time.Time
	if e.failures >= b.Threshold || wasProbe {
		until = now.Add(b.Cooldown)
	}
	if retryAfter > 0 && now.Add(retryAfter).After(until) {
		until = now.Add(retryAfter)
	}
	if until.After(e.openUntil) {
		e.openUntil = until
	}
}
