// Package kvtest is the one conformance suite every kv implementation must
// pass: the in-process Memory and kv/redis run the same test bodies. It is
// test support, not production code.
package kvtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/kv"
)

// Store is the implementation under test.
type Store interface {
	kv.NonceStore
	kv.Limiter
	kv.Cache
}

// Env is one fresh, empty instance of an implementation.
type Env struct {
	// Store is the implementation under test.
	Store Store
	// Peer is a second, independent handle on the same state (for Redis:
	// another client connection), so tests can check that two instances
	// share one nonce set and one limiter budget. It may be Store itself.
	Peer Store
	// Sleep lets at least d pass on the store's clock: a fake clock's
	// Advance, or time.Sleep for a real server.
	Sleep func(d time.Duration)
	// Exact is true when the clock only moves in Sleep, so tests may
	// assert exact counts that real elapsed time would blur.
	Exact bool
	// Clock, when set, is the fake clock the limiter reads (Memory's own
	// clock; for Redis a clock injected in place of TIME): limiter tests
	// move it instead of calling Sleep, and are exact. The sliding-window
	// tests need it and skip without it.
	Clock *FakeClock
}

// advance lets d pass on the limiter's clock.
func (e Env) advance(d time.Duration) {
	if e.Clock != nil {
		e.Clock.Advance(d)
		return
	}
	e.Sleep(d)
}

// exactLimiter reports whether the limiter's clock moves only in advance.
func (e Env) exactLimiter() bool { return e.Exact || e.Clock != nil }

// Run runs the suite; newEnv is called once per subtest and must return an
// Env with no state visible to other subtests.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	tests := []struct {
		name string
		f    func(t *testing.T, e Env)
	}{
		{"NonceFirstSecond", testNonceFirstSecond},
		{"NonceExpires", testNonceExpires},
		{"NonceConcurrentOneFresh", testNonceConcurrent},
		{"NonceBadTTL", testNonceBadTTL},
		{"LimiterBurstThenRefuse", testLimiterBurst},
		{"LimiterRefills", testLimiterRefills},
		{"LimiterIdleCapsAtBurst", testLimiterIdleCap},
		{"LimiterPerKey", testLimiterPerKey},
		{"LimiterAllowN", testLimiterAllowN},
		{"LimiterInvalid", testLimiterInvalid},
		{"LimiterSharedBudget", testLimiterShared},
		{"LimiterSlidingWindow", testLimiterSlidingWindow},
		{"WindowBurstThenSlots", testWindowBurst},
		{"WindowSlidingWindow", testWindowSliding},
		{"WindowInvalid", testWindowInvalid},
		{"WindowSharedBudget", testWindowShared},
		{"CacheGetSet", testCache},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, newEnv(t)) })
	}
}

var ctx = context.Background()

func testNonceFirstSecond(t *testing.T, e Env) {
	mustSeen(t, e.Store, "n1", false)
	mustSetNX(t, e.Store, "n1", time.Hour, true)
	mustSetNX(t, e.Store, "n1", time.Hour, false)
	mustSetNX(t, e.Peer, "n1", time.Hour, false)
	mustSeen(t, e.Store, "n1", true)
	mustSeen(t, e.Peer, "n1", true)
	mustSeen(t, e.Store, "n2", false)
	mustSetNX(t, e.Peer, "n2", time.Hour, true)
}

func testNonceExpires(t *testing.T, e Env) {
	mustSetNX(t, e.Store, "n", 100*time.Millisecond, true)
	e.Sleep(250 * time.Millisecond)
	mustSeen(t, e.Store, "n", false)
	mustSetNX(t, e.Store, "n", time.Hour, true)
	mustSetNX(t, e.Store, "n", time.Hour, false)
}

func testNonceConcurrent(t *testing.T, e Env) {
	const workers = 32
	var wg sync.WaitGroup
	fresh := make(chan bool, workers)
	for i := range workers {
		s := e.Store
		if i%2 == 1 {
			s = e.Peer
		}
		wg.Go(func() {
			ok, err := s.SetNX(ctx, "race", time.Hour)
			if err != nil {
				t.Error(err)
			}
			fresh <- ok
		})
	}
	wg.Wait()
	close(fresh)
	n := 0
	for ok := range fresh {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of %d concurrent SetNX calls were fresh, want exactly 1", n, workers)
	}
}

func testNonceBadTTL(t *testing.T, e Env) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		_, err := e.Store.SetNX(ctx, "bad", ttl)
		mustCode(t, err, tollgate.EINVALID)
	}
}

// slow is a limit whose refill is negligible during a test on a real clock.
var slow = kv.Limit{Rate: 3, Per: time.Hour, Burst: 3}

func testLimiterBurst(t *testing.T, e Env) {
	for i := range slow.Burst {
		r := mustAllow(t, e.Store, "k", slow, 1)
		if !r.Allowed || r.Remaining != slow.Burst-1-i {
			t.Fatalf("call %d: got %+v, want allowed with %d remaining", i, r, slow.Burst-1-i)
		}
	}
	r := mustAllow(t, e.Store, "k", slow, 1)
	if r.Allowed || r.Remaining != 0 {
		t.Fatalf("call past the burst: got %+v, want refused with 0 remaining", r)
	}
	// The next event is due one interval after the burst was spent.
	if iv := slow.Interval(); r.RetryAfter <= iv-time.Minute || r.RetryAfter > iv {
		t.Fatalf("RetryAfter = %v, want about %v", r.RetryAfter, iv)
	}
}

func testLimiterRefills(t *testing.T, e Env) {
	l := kv.Limit{Rate: 20, Per: time.Second, Burst: 2} // one event per 50ms
	var last kv.Result
	for i := 0; i < 10; i++ {
		last = mustAllow(t, e.Store, "k", l, 1)
		if !last.Allowed {
			break
		}
	}
	if last.Allowed {
		t.Fatal("10 quick calls never refused under a burst of 2")
	}
	if last.RetryAfter <= 0 || last.RetryAfter > l.Interval() {
		t.Fatalf("RetryAfter = %v, want in (0, %v]", last.RetryAfter, l.Interval())
	}
	e.advance(last.RetryAfter)
	if r := mustAllow(t, e.Store, "k", l, 1); !r.Allowed {
		t.Fatalf("after waiting RetryAfter: got %+v, want allowed", r)
	}
	if e.exactLimiter() {
		if r := mustAllow(t, e.Store, "k", l, 1); r.Allowed || r.RetryAfter != l.Interval() {
			t.Fatalf("got %+v, want refused for exactly one interval", r)
		}
	}
}

func testLimiterIdleCap(t *testing.T, e Env) {
	if !e.exactLimiter() {
		t.Skip("needs a clock that can jump an hour")
	}
	l := kv.Limit{Rate: 60, Per: time.Minute, Burst: 5}
	mustAllow(t, e.Store, "k", l, 1)
	e.advance(time.Hour)
	if got := countAllowed(t, e.Store, "k", l, 20); got != l.Burst {
		t.Fatalf("after an idle hour %d of 20 calls allowed, want the burst %d", got, l.Burst)
	}
	e.advance(3 * time.Second)
	if got := countAllowed(t, e.Store, "k", l, 20); got != 3 {
		t.Fatalf("3 intervals later %d calls allowed, want 3", got)
	}
}

func testLimiterPerKey(t *testing.T, e Env) {
	if got := countAllowed(t, e.Store, "a", slow, 10); got != slow.Burst {
		t.Fatalf("key a: %d allowed, want %d", got, slow.Burst)
	}
	if got := countAllowed(t, e.Store, "b", slow, 10); got != slow.Burst {
		t.Fatalf("key b after a was spent: %d allowed, want %d", got, slow.Burst)
	}
	// A nonce or cache entry with the same name is another key space.
	mustSetNX(t, e.Store, "a", time.Hour, true)
}

func testLimiterAllowN(t *testing.T, e Env) {
	l := kv.Limit{Rate: 1000, Per: time.Hour, Burst: 1000} // 3.6s per token
	if r := mustAllow(t, e.Store, "tpm", l, 600); !r.Allowed || r.Remaining != 400 {
		t.Fatalf("600 of 1000: got %+v, want allowed with 400 remaining", r)
	}
	r := mustAllow(t, e.Store, "tpm", l, 500)
	if r.Allowed || r.Remaining != 400 {
		t.Fatalf("500 more: got %+v, want refused with 400 remaining", r)
	}
	if min, max := 99*l.Interval(), 100*l.Interval(); r.RetryAfter <= min || r.RetryAfter > max {
		t.Fatalf("RetryAfter = %v, want in (%v, %v]", r.RetryAfter, min, max)
	}
	if r := mustAllow(t, e.Store, "tpm", l, 400); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("the last 400: got %+v, want allowed with 0 remaining", r)
	}
	_, err := e.Store.AllowN(ctx, "tpm", l, 1001)
	mustCode(t, err, tollgate.EINVALID)
	if !errors.Is(err, kv.ErrExceedsBurst) {
		t.Fatalf("n > burst: err = %v, want ErrExceedsBurst", err)
	}
}

func testLimiterInvalid(t *testing.T, e Env) {
	for _, c := range []struct {
		l kv.Limit
		n int
	}{
		{kv.Limit{Rate: 0, Per: time.Second, Burst: 1}, 1},
		{kv.Limit{Rate: 1, Per: 0, Burst: 1}, 1},
		{kv.Limit{Rate: 1, Per: time.Second, Burst: 0}, 1},
		{kv.Limit{Rate: 1, Per: time.Second, Burst: 1}, 0},
		{kv.Limit{Rate: 1, Per: time.Second, Burst: 1}, -1},
		{kv.Limit{Rate: 1, Per: 24 * time.Hour, Burst: 105}, 1}, // refill > kv.MaxWindow
	} {
		_, err := e.Store.AllowN(ctx, "k", c.l, c.n)
		mustCode(t, err, tollgate.EINVALID)
	}
}

// testLimiterShared checks that two handles, used concurrently, share one
// budget: in total exactly the burst is admitted.
func testLimiterShared(t *testing.T, e Env) {
	l := kv.Limit{Rate: 10, Per: time.Hour, Burst: 10}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed = map[int]int{}
	)
	for i := range 40 {
		s := e.Store
		if i%2 == 1 {
			s = e.Peer
		}
		wg.Go(func() {
			r, err := s.Allow(ctx, "merchant", l)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Allowed {
				mu.Lock()
				allowed[i%2]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if total := allowed[0] + allowed[1]; total != l.Burst {
		t.Fatalf("two clients admitted %d (%d + %d), want one shared budget of %d", total, allowed[0], allowed[1], l.Burst)
	}
}

func testCache(t *testing.T, e Env) {
	if _, ok, err := e.Store.Get(ctx, "breaker"); err != nil || ok {
		t.Fatalf("Get of a missing key = %v, %v; want false, nil", ok, err)
	}
	v := []byte("open")
	if err := e.Store.Set(ctx, "breaker", v, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X' // the store keeps its own copy
	if got, ok, err := e.Peer.Get(ctx, "breaker"); err != nil || !ok || string(got) != "open" {
		t.Fatalf("Get = %q, %v, %v; want open, true, nil", got, ok, err)
	}
	if err := e.Store.Set(ctx, "breaker", []byte("half-open"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.Store.Get(ctx, "breaker"); string(got) != "half-open" {
		t.Fatalf("after overwrite Get = %q, want half-open", got)
	}
	e.Sleep(250 * time.Millisecond)
	if _, ok, err := e.Store.Get(ctx, "breaker"); err != nil || ok {
		t.Fatalf("Get after expiry = %v, %v; want false, nil", ok, err)
	}
	mustCode(t, e.Store.Set(ctx, "breaker", v, 0), tollgate.EINVALID)

	// Delete forgets a key for every client at once; a missing key is fine.
	if err := e.Store.Set(ctx, "session", []byte("s"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.Peer.Delete(ctx, "session"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.Store.Get(ctx, "session"); err != nil || ok {
		t.Fatalf("Get after Delete = %v, %v; want false, nil", ok, err)
	}
	if err := e.Store.Delete(ctx, "never-set"); err != nil {
		t.Fatalf("Delete of a missing key = %v, want nil", err)
	}
}

func countAllowed(t *testing.T, s kv.Limiter, key string, l kv.Limit, calls int) int {
	t.Helper()
	n := 0
	for range calls {
		if mustAllow(t, s, key, l, 1).Allowed {
			n++
		}
	}
	return n
}

func mustAllow(t *testing.T, s kv.Limiter, key string, l kv.Limit, n int) kv.Result {
	t.Helper()
	r, err := s.AllowN(ctx, key, l, n)
	if err != nil {
		t.Fatalf("AllowN(%q, %d): %v", key, n, err)
	}
	return r
}

func mustSetNX(t *testing.T, s kv.NonceStore, key string, ttl time.Duration, want bool) {
	t.Helper()
	got, err := s.SetNX(ctx, key, ttl)
	if err != nil {
		t.Fatalf("SetNX(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("SetNX(%q) fresh = %v, want %v", key, got, want)
	}
}

func mustSeen(t *testing.T, s kv.NonceStore, key string, want bool) {
	t.Helper()
	got, err := s.Seen(ctx, key)
	if err != nil {
		t.Fatalf("Seen(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Seen(%q) = %v, want %v", key, got, want)
	}
}

func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// FakeClock is the manual clock of internal/clocktest, for Env.Sleep with
// in-process stores.
type FakeClock = clocktest.Clock

// NewFakeClock returns a clock stopped at a fixed instant.
func NewFakeClock() *FakeClock {
	return clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}
