// Package kv defines the small shared-state services tollgate needs beside
// its database: a nonce store, a rate limiter and a TTL cache. It holds the
// interfaces and the in-process implementation (Memory); kv/redis holds the
// implementation shared by several instances. Nothing here is a source of
// truth for money: exactly-once crediting rests on the ledger's unique
// constraints, never on a nonce store.
package kv

import (
	"context"
	"errors"
	"time"

	"tollgate"
)

// NonceTTL is how long a WeChat Pay notification nonce_str is remembered
// (docs/DESIGN.md §3.4: refused for 24 h).
const NonceTTL = 24 * time.Hour

// NonceStore remembers keys (WeChat Pay notification nonce_str values) for a
// while so that a replay can be recognised.
//
// The payment code calls SetNX only AFTER the credit transaction commits (a
// nonce recorded before a crash would make WeChat Pay's retry of the same
// notification look like a replay), and answers a repeat for an order that is
// already credited with the success acknowledgement. Losing the store (a Redis
// flush) therefore never causes a double credit; see docs/DESIGN.md §3.4 and docs/RELIABILITY.md S8.
//
// Implementations are safe for concurrent use by many goroutines and, for
// shared implementations, by many processes.
type NonceStore interface {
	// SetNX records key for ttl if it is not already recorded. fresh is
	// true for exactly one of any number of concurrent callers with the
	// same key while the record lives; it is false for the others and for
	// every later call until ttl has passed. ttl must be positive
	// (EINVALID otherwise). A store that cannot be reached returns an
	// error with code EUNAVAILABLE and fresh false: the caller must not
	// treat the nonce as new or as seen, only retry or rely on the ledger.
	SetNX(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)

	// Seen reports whether key is currently recorded. It changes nothing.
	// Errors are as for SetNX.
	Seen(ctx context.Context, key string) (bool, error)
}

// Limit is a rate: Rate events per Per on average, with at most Burst events
// at once after an idle period. Rate, Per and Burst must be positive.
//
// For example Limit{Rate: 6000, Per: time.Minute, Burst: 6000} is the order
// query budget of one merchant, and Limit{Rate: 100000, Per: time.Minute,
// Burst: 100000} with AllowN(n = tokens) a tokens-per-minute budget.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// MaxWindow bounds Burst × Interval, the time a full bucket takes to refill
// (2^53 ns, about 104 days), so that every implementation's arithmetic,
// including Lua's doubles in kv/redis, stays exact.
const MaxWindow = time.Duration(1 << 53)

// Validate returns an *tollgate.Error with code EINVALID if l is unusable:
// Rate, Per or Burst not positive, or Burst × Interval above MaxWindow.
func (l Limit) Validate() error {
	if l.Rate <= 0 || l.Per <= 0 || l.Burst <= 0 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "kv.Limit",
			Message: "rate limit needs positive rate, period and burst"}
	}
	if l.Interval() > MaxWindow/time.Duration(l.Burst) {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "kv.Limit",
			Message: "rate limit burst takes longer than 104 days to refill"}
	}
	return nil
}

// Interval is the emission interval of l: Per/Rate rounded up to a whole
// nanosecond (rounding up keeps the limit on the safe side) and at least 1ns.
// Every implementation uses it, so they agree to the nanosecond.
func (l Limit) Interval() time.Duration {
	t := (l.Per + time.Duration(l.Rate) - 1) / time.Duration(l.Rate)
	if t < 1 {
		t = 1
	}
	return t
}

// Result is the outcome of one limiter call.
type Result struct {
	// Allowed reports whether the events were admitted (and counted).
	Allowed bool
	// RetryAfter is how long to wait before the same request can be
	// admitted; zero when Allowed.
	RetryAfter time.Duration
	// Remaining is how many more single events would be admitted right now.
	Remaining int
}

// ErrExceedsBurst is returned (wrapped, with code EINVALID) by AllowN when n
// is larger than the limit's burst: such a request can never be admitted.
var ErrExceedsBurst = errors.New("kv: request exceeds the limit's burst")

// Limiter is a GCRA (generic cell rate algorithm) rate limiter: equivalent to
// a token bucket of size Burst refilled at Rate per Per, stored as one
// timestamp per key. Refused calls consume nothing.
//
// Callers are the payment poller (6,000 order queries per minute per
// merchant, cluster-wide) and the HTTP layer (requests and tokens per minute
// per API key). Implementations are safe for concurrent use; shared
// implementations give all processes one budget per key.
//
// When the backing store is down, Allow and AllowN return an error with code
// EUNAVAILABLE and a zero Result; the limiter never decides fail-open or
// fail-closed itself. The caller chooses and documents it; the recommended
// choice is fail-closed for the order poller (it waits and retries;
// notifications stay the primary path) and fail-open for the API (a short
// Redis outage must not stop paid traffic, which the ledger's holds still
// bound).
type Limiter interface {
	// Allow is AllowN(ctx, key, limit, 1).
	Allow(ctx context.Context, key string, limit Limit) (Result, error)

	// AllowN admits all n events for key under limit, or none. The stored
	// state is one timestamp per key, so a key should always be used with
	// the same limit (a changed limit applies from the next call). n must
	// be at least 1 and limit valid (EINVALID otherwise); n > limit.Burst
	// returns ErrExceedsBurst. Not idempotent: every allowed call counts.
	AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error)
}

// Cache is a small shared map with per-entry expiry, for state several
// instances should agree on for a short while (a circuit breaker's state).
// It is not for money. Safe for concurrent use.
type Cache interface {
	// Get returns the value stored under key and true, or false if there
	// is none or it expired. The returned slice belongs to the caller.
	Get(ctx context.Context, key string) ([]byte, bool, error)

	// Set stores value under key for ttl (positive, EINVALID otherwise),
	// replacing any previous value. The store keeps its own copy.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// GCRA is one step of the generic cell rate algorithm, exported so that
// every implementation (and the Lua script in kv/redis, which mirrors it)
// computes the same result. now and tat (the stored theoretical arrival
// time, zero if none) are nanoseconds on one clock; n and burst are counts;
// interval is limit.Interval(). It returns the Result and, when it is
// Allowed, the new tat to store (nothing is stored on refusal).
func GCRA(now, tat int64, interval time.Duration, burst, n int) (newTAT int64, r Result) {
	t := int64(interval)
	if tat < now {
		tat = now
	}
	next := tat + int64(n)*t
	allowAt := next - int64(burst)*t
	if now < allowAt {
		remaining := (now - (tat - int64(burst)*t)) / t
		if remaining < 0 {
			remaining = 0
		}
		return tat, Result{RetryAfter: time.Duration(allowAt - now), Remaining: int(remaining)}
	}
	return next, Result{Allowed: true, Remaining: int((now - allowAt) / t)}
}

// CheckN validates limit and n for AllowN and returns the errors the
// Limiter interface documents; implementations call it first so that they
// all refuse the same inputs the same way.
func CheckN(op string, limit Limit, n int) error {
	if err := limit.Validate(); err != nil {
		return err
	}
	if n < 1 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "rate limit cost must be at least 1"}
	}
	if n > limit.Burst {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "request is larger than the rate limit's burst", Err: ErrExceedsBurst}
	}
	return nil
}

// CheckTTL returns an EINVALID *tollgate.Error unless ttl is positive.
func CheckTTL(op string, ttl time.Duration) error {
	if ttl <= 0 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "ttl must be positive"}
	}
	return nil
}
