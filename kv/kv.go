// Package kv defines the small shared-state services tollgate needs beside
// its database: a nonce store, a rate limiter and a TTL cache. It holds the
// interfaces and the in-process implementation (Memory); kv/redis holds the
// implementation shared by several instances. Nothing here is a source of
// truth for money: exactly-once crediting rests on the ledger's unique
// constraints, never on a nonce store.
//
// # Limits and windows
//
// A limit is judged by what it admits in any sliding window: any half-open
// interval [s, s+w) of the limiter's clock, for every s, not only
// intervals aligned to the clock's minutes. Events are counted as
// Allow calls, or as the n of AllowN and AllowWindow. A rate budget stated
// "per minute" (WeChat Pay's order queries, an API key's rpm or tpm) is such
// a bound, which a token bucket does not give by itself: a bucket that may
// hold a whole minute's worth admits that worth at once and refills another
// during the next minute, almost twice the budget in one sliding minute
// (Limit.MaxIn). Two shapes keep a budget:
//
//   - WindowLimit: a Limit (GCRA) with a small burst, the rest of the budget
//     paced evenly. For callers that should not burst, like the order poller.
//   - Window: a sliding-window quota that may spend its whole budget at
//     once. For budgets whose single requests may be large, like tokens per
//     minute.
package kv

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
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
// at once after an idle period. Rate, Per and Burst must be positive. Its
// bound in a sliding window is MaxIn; build a Limit that keeps a budget
// with WindowLimit.
//
// For example WindowLimit(5900, time.Minute, 100) admits at most 5,900
// events in any minute, 100 at once, and Limit{Rate: 6000, Per:
// time.Minute, Burst: 6000} admits up to 11,999 in one sliding minute.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// WindowLimit returns the Limit that admits at most budget events in any
// sliding window of length window: burst of them at once after an idle
// period, the rest paced evenly at budget − burst + 1 per window. Its
// MaxIn(window) is at most budget (see MaxIn: the Interval is rounded up,
// so ⌈window / Interval⌉ ≤ Rate = budget − burst + 1).
//
// The burst is paid for out of the steady rate, one for one: a small burst
// (1–2 % of the budget) keeps nearly all of it for steady use. burst must
// be between 1 and budget; otherwise the Limit returned is invalid
// (Validate, and every Limiter call, refuse it with EINVALID).
func WindowLimit(budget int, window time.Duration, burst int) Limit {
	if burst < 1 || burst > budget {
		return Limit{Per: window, Burst: burst}
	}
	return Limit{Rate: budget - burst + 1, Per: window, Burst: burst}
}

// MaxIn returns the most events l admits in any sliding window of length w
// (any half-open interval [s, s+w) of the limiter's clock):
//
//	Burst − 1 + ⌈w / Interval⌉
//
// Why: GCRA admits an event no earlier than its theoretical arrival time
// less (Burst − 1) × Interval, and every admitted event moves that time on
// by Interval, so the first and the last of any k admitted events are at
// least (k − Burst) × Interval apart. k events inside a window of length w
// are less than w apart: (k − Burst) × Interval < w. The bound is reached
// by a caller that idles until the bucket is full, takes Burst at once and
// then one event every Interval (kvtest checks both against every
// implementation). It is 0 for w ≤ 0 or an invalid l (which admits nothing).
func (l Limit) MaxIn(w time.Duration) int64 {
	if w <= 0 || l.Validate() != nil {
		return 0
	}
	iv := l.Interval()
	n := int64(w / iv)
	if w%iv != 0 {
		n++
	}
	if n > math.MaxInt64-int64(l.Burst-1) {
		return math.MaxInt64
	}
	return n + int64(l.Burst-1)
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

// Window is a sliding-window quota: at most Budget events in any sliding
// window of length Length, as many of them at once as asked for. Unlike a
// Limit it does not pace: an idle key may spend its whole Budget in one
// call, so one request may be as large as the budget (an API key's tokens
// per minute: a request may cover up to the whole minute).
//
// It is a sliding-window counter. Time is cut into slots of SlotWidth
// (Length / WindowSlots, rounded up to a whole microsecond); a call is
// admitted when the events of the current slot and of the WindowSlots
// slots before it, plus n, stay within Budget. Those slots reach back at
// least Length from any instant in the current slot, so every event of a
// window [s, s+Length) was counted when the last of them was admitted:
// the bound holds for every window, not only aligned ones. The price of
// counting by slot is that a slot's events free their budget only once the
// whole slot has left that span: a caller pacing exactly Budget per Length
// is held to about WindowSlots / (WindowSlots + 1) of it (60/61), and
// after a burst RetryAfter is up to Length + SlotWidth.
type Window struct {
	Budget int
	Length time.Duration
}

// WindowSlots is the number of slots a Window's Length is cut into.
const WindowSlots = 60

// Validate returns an *tollgate.Error with code EINVALID if w is unusable:
// Budget not positive or above 2^53, or Length below a millisecond or
// above MaxWindow/2 (so that kv/redis's Lua arithmetic stays exact).
func (w Window) Validate() error {
	if w.Budget <= 0 || int64(w.Budget) > 1<<53 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "kv.Window",
			Message: "window quota needs a positive budget (at most 2^53)"}
	}
	if w.Length < time.Millisecond || w.Length > MaxWindow/2 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "kv.Window",
			Message: "window quota needs a length between 1 ms and 52 days"}
	}
	return nil
}

// SlotWidth is the width of one of w's slots: Length / WindowSlots rounded
// up to a whole microsecond (Redis' TIME has microseconds), so that
// WindowSlots slots cover at least Length.
func (w Window) SlotWidth() time.Duration {
	g := (w.Length + WindowSlots - 1) / WindowSlots
	return (g + time.Microsecond - 1) / time.Microsecond * time.Microsecond
}

// WindowSlot is one counter of a Window's state: Slot is its number (Unix
// microseconds divided by the slot width in microseconds) and Count the
// events admitted in it.
type WindowSlot struct {
	Slot  int64
	Count int64
}

// WindowStep is one AllowWindow call, exported so that every
// implementation (and the Lua script in kv/redis, which mirrors it)
// computes the same result. now is Unix nanoseconds on the limiter's
// clock (slot numbers use its microseconds, as Redis' TIME has them);
// slots is the key's state, in any order; w must be valid and n in
// [1, w.Budget] (CheckWindow). When the Result is Allowed it also returns
// the state to store (the slots still counted, n added to the current
// one, in slot order) and when that state may be forgotten (Unix ns: when
// its newest slot stops counting); nothing is stored on refusal.
func WindowStep(now int64, slots []WindowSlot, w Window, n int) (keep []WindowSlot, expires int64, r Result) {
	g := int64(w.SlotWidth() / time.Microsecond)
	cur := now / 1000 / g
	keep = make([]WindowSlot, 0, len(slots)+1)
	var used int64
	for _, s := range slots {
		if s.Slot >= cur-WindowSlots { // slots after cur (a clock stepped back) still count
			used += s.Count
			keep = append(keep, s)
		}
	}
	slices.SortFunc(keep, bySlot)
	budget, need := int64(w.Budget), used+int64(n)-int64(w.Budget)
	if need > 0 {
		// Refused: wait until the oldest slots, leaving one by one, free
		// enough. They do since n ≤ Budget.
		var freed int64
		for _, s := range keep {
			if freed += s.Count; freed >= need {
				at := (s.Slot + WindowSlots + 1) * g * 1000
				return nil, 0, Result{RetryAfter: time.Duration(at - now), Remaining: int(max(budget-used, 0))}
			}
		}
	}
	if i := slices.IndexFunc(keep, func(s WindowSlot) bool { return s.Slot == cur }); i >= 0 {
		keep[i].Count += int64(n)
	} else {
		keep = append(keep, WindowSlot{Slot: cur, Count: int64(n)})
		slices.SortFunc(keep, bySlot)
	}
	expires = (keep[len(keep)-1].Slot + WindowSlots + 1) * g * 1000
	return keep, expires, Result{Allowed: true, Remaining: int(budget - used - int64(n))}
}

func bySlot(a, b WindowSlot) int { return cmp.Compare(a.Slot, b.Slot) }

// CheckWindow validates w and n for AllowWindow and returns the errors the
// Limiter interface documents, as CheckN does for AllowN.
func CheckWindow(op string, w Window, n int) error {
	if err := w.Validate(); err != nil {
		return err
	}
	if n < 1 {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "rate limit cost must be at least 1"}
	}
	if n > w.Budget {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "request is larger than the window's whole budget", Err: ErrExceedsBurst}
	}
	return nil
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
// is larger than the limit's burst, and by AllowWindow when n is larger
// than the window's budget: such a request can never be admitted.
var ErrExceedsBurst = errors.New("kv: request exceeds the limit's burst")

// Limiter keeps rate budgets per key in two shapes (see the package
// documentation, "Limits and windows"): AllowN is a GCRA (generic cell
// rate algorithm), a token bucket of size Burst refilled at Rate per Per
// stored as one timestamp per key; AllowWindow is the sliding-window quota
// of Window, at most WindowSlots + 1 counters per key. Refused calls
// consume nothing.
//
// Callers are the payment poller (order queries per merchant, cluster-wide:
// a WindowLimit) and the HTTP layer (requests and tokens per minute per API
// key: Windows). Implementations are safe for concurrent use; shared
// implementations give all processes one budget per key.
//
// When the backing store is down, every method returns an error with code
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

	// AllowWindow admits all n events for key under w, or none, so that no
	// sliding window of w.Length admits more than w.Budget. Its keys are
	// apart from AllowN's. A key should always be used with the same
	// Length (the counts are kept per slot of it). n must be at least 1
	// and w valid (EINVALID otherwise); n > w.Budget returns
	// ErrExceedsBurst. Not idempotent: every allowed call counts.
	AllowWindow(ctx context.Context, key string, w Window, n int) (Result, error)
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

	// Delete forgets key at once (a console session at logout); deleting
	// a missing key is not an error.
	Delete(ctx context.Context, key string) error
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
