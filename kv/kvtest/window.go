package kvtest

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/kv"
)

// Event is one admitted limiter call: when, and how many events it counted.
type Event struct {
	At time.Time
	N  int64
}

// Drive calls take the way a busy caller does, on clock: a few calls spread
// over the first window, nothing for idle (give it long enough to fill a
// bucket), then a call again and again, each refusal followed by waiting
// exactly its RetryAfter, until span has passed. take makes one call and
// returns its Result and the events it asked for. Drive returns the
// admitted calls in time order.
func Drive(tb testing.TB, clock *FakeClock, window, idle, span time.Duration, take func() (kv.Result, int64, error)) []Event {
	tb.Helper()
	var got []Event
	call := func() kv.Result {
		r, n, err := take()
		if err != nil {
			tb.Fatalf("limiter call at %v: %v", clock.Now(), err)
		}
		if r.Allowed {
			got = append(got, Event{At: clock.Now(), N: n})
		}
		return r
	}
	for range 3 {
		call()
		clock.Advance(window / 3)
	}
	clock.Advance(idle)
	end := clock.Now().Add(span)
	for calls := 0; clock.Now().Before(end); calls++ {
		if calls > 10_000_000 {
			tb.Fatal("Drive: the limiter never made the clock move")
		}
		if r := call(); !r.Allowed {
			if r.RetryAfter <= 0 {
				tb.Fatalf("refused at %v with RetryAfter %v; want a positive wait", clock.Now(), r.RetryAfter)
			}
			clock.Advance(r.RetryAfter)
		}
	}
	return got
}

// MaxInWindow returns the most events admitted in any sliding window of
// length w, any half-open interval [s, s+w); events must be in time order.
// The busiest window can be taken to end just after one of the events, so
// for each event it counts those less than w before it.
func MaxInWindow(events []Event, w time.Duration) int64 {
	var best, sum int64
	first := 0
	for _, e := range events {
		sum += e.N
		for !events[first].At.Add(w).After(e.At) {
			sum -= events[first].N
			first++
		}
		best = max(best, sum)
	}
	return best
}

// testLimiterSlidingWindow checks the bound kv.Limit.MaxIn states, the one
// every rate budget rests on: a caller that idles until the bucket is full
// and then saturates it, through both handles as two instances would,
// gets exactly MaxIn(window) in its busiest sliding window, never more.
// Limits built with kv.WindowLimit stay within their budget; a bucket
// holding a whole window's worth (the order poller's configuration before
// issue 17) admits almost twice its rate.
func testLimiterSlidingWindow(t *testing.T, e Env) {
	if e.Clock == nil {
		t.Skip("needs a limiter on a fake clock")
	}
	const w = time.Minute
	for _, tc := range []struct {
		name   string
		limit  kv.Limit
		budget int64
	}{
		{"PollerShape", kv.WindowLimit(600, w, 6), 600}, // 1 % burst, like payment's QueryLimit
		{"BurstIsBudget", kv.WindowLimit(60, w, 60), 60},
		{"UnevenInterval", kv.WindowLimit(7, w, 3), 7},
		{"OneAWindow", kv.WindowLimit(1, w, 1), 1},
		{"BucketOfAWholeWindow", kv.Limit{Rate: 600, Per: w, Burst: 600}, 1199},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			idle := time.Duration(tc.limit.Burst) * tc.limit.Interval()
			events := Drive(t, e.Clock, w, idle, 5*w/2, func() (kv.Result, int64, error) {
				i++
				s := e.Store
				if i%2 == 0 {
					s = e.Peer
				}
				r, err := s.Allow(ctx, "sliding-"+tc.name, tc.limit)
				return r, 1, err
			})
			if got := MaxInWindow(events, w); got != tc.budget {
				t.Fatalf("%+v: the busiest sliding %v admitted %d events, want exactly %d", tc.limit, w, got, tc.budget)
			}
			if m := tc.limit.MaxIn(w); m != tc.budget {
				t.Fatalf("%+v.MaxIn(%v) = %d, want %d", tc.limit, w, m, tc.budget)
			}
		})
	}
}

// testWindowSliding drives kv.Window quotas as the API's per-key limits
// are used: single requests, and token counts of any size up to the whole
// budget. No sliding window may admit more than the budget, and a caller
// that saturates single events gets the whole budget.
func testWindowSliding(t *testing.T, e Env) {
	if e.Clock == nil {
		t.Skip("needs a limiter on a fake clock")
	}
	rng := rand.New(rand.NewPCG(17, 3))
	for _, tc := range []struct {
		name  string
		w     kv.Window
		n     func() int64
		exact bool
	}{
		{"Requests", kv.Window{Budget: 600, Length: time.Minute}, func() int64 { return 1 }, true},
		{"Tokens", kv.Window{Budget: 10000, Length: time.Minute}, func() int64 { return 1 + rng.Int64N(2500) }, false},
		{"WholeBudgetAtOnce", kv.Window{Budget: 1000, Length: time.Minute}, func() int64 { return 1000 }, true},
		{"UnevenSlots", kv.Window{Budget: 7, Length: 7 * time.Second}, func() int64 { return 1 + rng.Int64N(3) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, n := 0, tc.n()
			events := Drive(t, e.Clock, tc.w.Length, tc.w.Length+tc.w.SlotWidth(), 5*tc.w.Length/2, func() (kv.Result, int64, error) {
				i++
				s := e.Store
				if i%2 == 0 {
					s = e.Peer
				}
				r, err := s.AllowWindow(ctx, "sliding-"+tc.name, tc.w, int(n))
				ask := n
				if r.Allowed {
					n = tc.n()
				}
				return r, ask, err
			})
			got := MaxInWindow(events, tc.w.Length)
			if got > int64(tc.w.Budget) || tc.exact && got != int64(tc.w.Budget) {
				t.Fatalf("%+v: the busiest sliding %v admitted %d events, want at most %d (exactly when saturated)", tc.w, tc.w.Length, got, tc.w.Budget)
			}
		})
	}
}

// testWindowBurst checks a Window's arithmetic at its boundaries: the whole
// budget at once, a refusal until exactly the moment its slot stops
// counting, and keys apart from AllowN's.
func testWindowBurst(t *testing.T, e Env) {
	w := kv.Window{Budget: 5, Length: time.Hour} // slots of 1 minute: real time barely moves
	if got := w.SlotWidth(); got != time.Minute {
		t.Fatalf("SlotWidth = %v, want 1m", got)
	}
	if r := mustAllowWindow(t, e.Store, "k", w, 3); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("3 of 5: got %+v, want allowed with 2 remaining", r)
	}
	if r := mustAllowWindow(t, e.Peer, "k", w, 2); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("the last 2: got %+v, want allowed with 0 remaining", r)
	}
	r := mustAllowWindow(t, e.Store, "k", w, 1)
	if r.Allowed || r.Remaining != 0 {
		t.Fatalf("past the budget: got %+v, want refused with 0 remaining", r)
	}
	// The slot stops counting once WindowSlots more have begun: more than
	// an hour, at most an hour and a minute.
	if r.RetryAfter <= w.Length || r.RetryAfter > w.Length+w.SlotWidth() {
		t.Fatalf("RetryAfter = %v, want in (1h, 1h1m]", r.RetryAfter)
	}
	// Another key, and the same name under AllowN, are other budgets.
	if r := mustAllowWindow(t, e.Store, "other", w, 5); !r.Allowed {
		t.Fatalf("another key: got %+v, want allowed", r)
	}
	if r := mustAllow(t, e.Store, "k", slow, 1); !r.Allowed {
		t.Fatalf("AllowN on a window's key name: got %+v, want allowed", r)
	}
	if !e.exactLimiter() {
		return
	}
	e.advance(r.RetryAfter - time.Microsecond)
	if r := mustAllowWindow(t, e.Store, "k", w, 1); r.Allowed || r.RetryAfter != time.Microsecond {
		t.Fatalf("a microsecond early: got %+v, want refused for 1µs", r)
	}
	e.advance(time.Microsecond)
	if r := mustAllowWindow(t, e.Store, "k", w, 5); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("when the slot stopped counting: got %+v, want the whole budget again", r)
	}
}

func testWindowInvalid(t *testing.T, e Env) {
	for _, c := range []struct {
		w kv.Window
		n int
	}{
		{kv.Window{Budget: 0, Length: time.Minute}, 1},
		{kv.Window{Budget: 1, Length: 0}, 1},
		{kv.Window{Budget: 1, Length: time.Millisecond - 1}, 1},
		{kv.Window{Budget: 1, Length: kv.MaxWindow/2 + 1}, 1},
		{kv.Window{Budget: 1, Length: time.Minute}, 0},
		{kv.Window{Budget: 1, Length: time.Minute}, -1},
	} {
		_, err := e.Store.AllowWindow(ctx, "k", c.w, c.n)
		mustCode(t, err, tollgate.EINVALID)
	}
	_, err := e.Store.AllowWindow(ctx, "k", kv.Window{Budget: 10, Length: time.Minute}, 11)
	mustCode(t, err, tollgate.EINVALID)
	if !errors.Is(err, kv.ErrExceedsBurst) {
		t.Fatalf("n > budget: err = %v, want ErrExceedsBurst", err)
	}
}

// testWindowShared checks that two handles, used concurrently, share one
// window: in total exactly the budget is admitted.
func testWindowShared(t *testing.T, e Env) {
	w := kv.Window{Budget: 10, Length: time.Hour}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for i := range 40 {
		s := e.Store
		if i%2 == 1 {
			s = e.Peer
		}
		wg.Go(func() {
			r, err := s.AllowWindow(ctx, "merchant", w, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != w.Budget {
		t.Fatalf("two clients admitted %d, want one shared budget of %d", allowed, w.Budget)
	}
}

func mustAllowWindow(t *testing.T, s kv.Limiter, key string, w kv.Window, n int) kv.Result {
	t.Helper()
	r, err := s.AllowWindow(ctx, key, w, n)
	if err != nil {
		t.Fatalf("AllowWindow(%q, %d): %v", key, n, err)
	}
	return r
}
