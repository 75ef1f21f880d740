package kv_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"tollgate"
	"tollgate/kv"
	"tollgate/kv/kvtest"
)

func newMemoryEnv(t *testing.T) kvtest.Env {
	clock := kvtest.NewFakeClock()
	m := kv.NewMemory(kv.MemoryOptions{Clock: clock})
	return kvtest.Env{Store: m, Peer: m, Sleep: clock.Advance, Exact: true, Clock: clock}
}

func TestMemory(t *testing.T) {
	kvtest.Run(t, newMemoryEnv)
}

// TestMemorySweeps checks that memory stays bounded: expired nonces,
// cache entries and refilled limiter keys are removed by the next sweep.
func TestMemorySweeps(t *testing.T) {
	ctx := context.Background()
	clock := kvtest.NewFakeClock()
	m := kv.NewMemory(kv.MemoryOptions{Clock: clock, SweepEvery: time.Minute})
	l := kv.Limit{Rate: 60, Per: time.Minute, Burst: 10}
	for i := range 100 {
		k := strconv.Itoa(i)
		if _, err := m.SetNX(ctx, k, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Allow(ctx, k, l); err != nil {
			t.Fatal(err)
		}
		if err := m.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 300 {
		t.Fatalf("Len = %d, want 300", got)
	}
	clock.Advance(2 * time.Minute)
	if _, err := m.SetNX(ctx, "new", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := m.Len(); got != 1 {
		t.Fatalf("Len after sweep = %d, want 1", got)
	}
}

// TestGCRA pins the algorithm's arithmetic at its boundaries.
func TestGCRA(t *testing.T) {
	const iv = 10 * time.Second
	tests := []struct {
		name          string
		now, tat      int64
		burst, n      int
		wantAllowed   bool
		wantTAT       int64
		wantRetry     time.Duration
		wantRemaining int
	}{
		{"EmptyAllowsBurst", 100e9, 0, 3, 3, true, 130e9, 0, 0},
		{"EmptyOne", 100e9, 0, 3, 1, true, 110e9, 0, 2},
		{"ExactlyFull", 100e9, 120e9, 3, 1, true, 130e9, 0, 0},
		{"OneOver", 100e9, 130e9, 3, 1, false, 0, 10 * time.Second, 0},
		{"OneNanoTooEarly", 100e9, 120e9 + 1, 3, 1, false, 0, 1, 0},
		{"PastTATIsNow", 500e9, 100e9, 2, 2, true, 520e9, 0, 0},
		{"NRefusedKeepsRemaining", 100e9, 105e9, 3, 3, false, 0, 5 * time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tat, r := kv.GCRA(tt.now, tt.tat, iv, tt.burst, tt.n)
			if r.Allowed != tt.wantAllowed || r.RetryAfter != tt.wantRetry || r.Remaining != tt.wantRemaining {
				t.Fatalf("got %+v, want allowed=%v retry=%v remaining=%d", r, tt.wantAllowed, tt.wantRetry, tt.wantRemaining)
			}
			if r.Allowed && tat != tt.wantTAT {
				t.Fatalf("tat = %d, want %d", tat, tt.wantTAT)
			}
		})
	}
}

func TestLimitInterval(t *testing.T) {
	tests := []struct {
		l    kv.Limit
		want time.Duration
	}{
		{kv.Limit{Rate: 6000, Per: time.Minute, Burst: 1}, 10 * time.Millisecond},
		{kv.Limit{Rate: 7, Per: time.Minute, Burst: 1}, 8571428572}, // rounded up
		{kv.Limit{Rate: 1 << 62, Per: time.Second, Burst: 1}, 1},
	}
	for _, tt := range tests {
		if got := tt.l.Interval(); got != tt.want {
			t.Errorf("%+v.Interval() = %d, want %d", tt.l, got, tt.want)
		}
	}
}

func BenchmarkMemorySetNX(b *testing.B) {
	m := kv.NewMemory(kv.MemoryOptions{})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := m.SetNX(ctx, strconv.Itoa(i), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := kv.NewMemory(kv.MemoryOptions{})
	ctx := context.Background()
	l := kv.Limit{Rate: 1 << 30, Per: time.Second, Burst: 1 << 20}
	for b.Loop() {
		if _, err := m.Allow(ctx, "k", l); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		name string
		l    kv.Limit
		ok   bool
	}{
		{"OrderQueries", kv.Limit{Rate: 6000, Per: time.Minute, Burst: 6000}, true},
		{"TokensPerMinute", kv.Limit{Rate: 10_000_000, Per: time.Minute, Burst: 10_000_000}, true},
		{"WindowJustInside", kv.Limit{Rate: 1, Per: 24 * time.Hour, Burst: 104}, true},
		{"WindowTooLong", kv.Limit{Rate: 1, Per: 24 * time.Hour, Burst: 105}, false},
		{"ZeroRate", kv.Limit{Per: time.Second, Burst: 1}, false},
		{"NegativePer", kv.Limit{Rate: 1, Per: -time.Second, Burst: 1}, false},
		{"ZeroBurst", kv.Limit{Rate: 1, Per: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && tollgate.ErrorCode(err) != tollgate.EINVALID {
				t.Fatalf("code = %q, want invalid", tollgate.ErrorCode(err))
			}
		})
	}
}

func BenchmarkMemoryAllowParallel(b *testing.B) {
	m := kv.NewMemory(kv.MemoryOptions{})
	ctx := context.Background()
	l := kv.Limit{Rate: 1 << 30, Per: time.Second, Burst: 1 << 20}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Allow(ctx, "k", l); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestMemoryMatchesTokenBucket runs random sequences against Memory and a
// plain token-bucket model (capacity Burst intervals, refilled by elapsed
// time) and requires the same decisions, remainders and waits.
func TestMemoryMatchesTokenBucket(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	ctx := context.Background()
	for round := range 50 {
		clock := kvtest.NewFakeClock()
		m := kv.NewMemory(kv.MemoryOptions{Clock: clock})
		l := kv.Limit{Rate: 1 + rng.IntN(100), Per: time.Duration(1+rng.IntN(1000)) * time.Millisecond, Burst: 1 + rng.IntN(20)}
		iv := int64(l.Interval())
		level := int64(l.Burst) * iv // bucket content in ns of credit; starts full
		for step := range 200 {
			dt := rng.Int64N(3 * iv)
			clock.Advance(time.Duration(dt))
			level = min(level+dt, int64(l.Burst)*iv)
			n := 1 + rng.IntN(l.Burst)
			r, err := m.AllowN(ctx, "k", l, n)
			if err != nil {
				t.Fatal(err)
			}
			want := kv.Result{Allowed: level >= int64(n)*iv}
			if want.Allowed {
				level -= int64(n) * iv
			} else {
				want.RetryAfter = time.Duration(int64(n)*iv - level)
			}
			want.Remaining = int(level / iv)
			if r != want {
				t.Fatalf("round %d step %d (%+v, n=%d): got %+v, want %+v", round, step, l, n, r, want)
			}
		}
	}
}

// TestWindowLimit checks the arithmetic behind kv.WindowLimit for every
// budget and burst up to 300, over windows that divide evenly into the
// rate and windows that do not: MaxIn is the budget, and the steady rate
// gives up only what the burst takes.
func TestWindowLimit(t *testing.T) {
	for _, w := range []time.Duration{time.Minute, 7 * time.Second, 1001 * time.Millisecond} {
		for budget := 1; budget <= 300; budget++ {
			for burst := 1; burst <= budget; burst++ {
				l := kv.WindowLimit(budget, w, burst)
				if err := l.Validate(); err != nil {
					t.Fatalf("WindowLimit(%d, %v, %d) = %+v: %v", budget, w, burst, l, err)
				}
				if got := l.MaxIn(w); got != int64(budget) {
					t.Fatalf("WindowLimit(%d, %v, %d).MaxIn = %d, want %d", budget, w, burst, got, budget)
				}
				if l.Burst != burst || l.Rate != budget-burst+1 {
					t.Fatalf("WindowLimit(%d, %v, %d) = %+v", budget, w, burst, l)
				}
			}
		}
	}
	for _, burst := range []int{0, -1, 11} {
		if err := kv.WindowLimit(10, time.Minute, burst).Validate(); tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Errorf("WindowLimit(10, 1m, %d): Validate = %v, want invalid", burst, err)
		}
	}
}

func TestLimitMaxIn(t *testing.T) {
	tests := []struct {
		l    kv.Limit
		w    time.Duration
		want int64
	}{
		{kv.Limit{Rate: 6000, Per: time.Minute, Burst: 6000}, time.Minute, 11999}, // the poller before issue 17
		{kv.Limit{Rate: 6000, Per: time.Minute, Burst: 1}, time.Minute, 6000},
		{kv.Limit{Rate: 6000, Per: time.Minute, Burst: 1}, time.Minute + 1, 6001},
		{kv.Limit{Rate: 60, Per: time.Minute, Burst: 5}, time.Hour, 3604},
		{kv.Limit{Rate: 7, Per: time.Minute, Burst: 1}, time.Minute, 7}, // interval rounded up
		{kv.Limit{Rate: 1, Per: time.Minute, Burst: 1}, 0, 0},
		{kv.Limit{Rate: 0, Per: time.Minute, Burst: 1}, time.Minute, 0}, // invalid: admits nothing
		{kv.Limit{Rate: 1 << 62, Per: time.Second, Burst: 1}, 1 << 62, 1 << 62},
	}
	for _, tt := range tests {
		if got := tt.l.MaxIn(tt.w); got != tt.want {
			t.Errorf("%+v.MaxIn(%v) = %d, want %d", tt.l, tt.w, got, tt.want)
		}
	}
}

// TestWindowStep pins the sliding-window quota's arithmetic at its
// boundaries (slots of one second for a one-minute window).
func TestWindowStep(t *testing.T) {
	w := kv.Window{Budget: 10, Length: time.Minute}
	const s = int64(time.Second)
	now := 1000*s + 500_000_123 // slot 1000, half a second and 123 ns in
	tests := []struct {
		name          string
		slots         []kv.WindowSlot
		n             int
		wantAllowed   bool
		wantRetry     time.Duration
		wantRemaining int
		wantKeep      []kv.WindowSlot
	}{
		{"Empty", nil, 10, true, 0, 0, []kv.WindowSlot{{1000, 10}}},
		{"AddsToCurrent", []kv.WindowSlot{{1000, 2}, {990, 3}}, 1, true, 0, 4, []kv.WindowSlot{{990, 3}, {1000, 3}}},
		{"OldestStillCounts", []kv.WindowSlot{{940, 10}}, 1, false, 500_000_000 - 123, 0, nil},
		{"OlderForgotten", []kv.WindowSlot{{939, 10}, {950, 4}}, 6, true, 0, 0, []kv.WindowSlot{{950, 4}, {1000, 6}}},
		{"WaitsForEnough", []kv.WindowSlot{{945, 2}, {950, 3}, {999, 5}}, 4, false, 11*time.Second - 500_000_123, 0, nil},
		{"ClockSteppedBack", []kv.WindowSlot{{1005, 9}}, 2, false, 66*time.Second - 500_000_123, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, expires, r := kv.WindowStep(now, tt.slots, w, tt.n)
			if r.Allowed != tt.wantAllowed || r.RetryAfter != tt.wantRetry || r.Remaining != tt.wantRemaining {
				t.Fatalf("got %+v, want allowed=%v retry=%v remaining=%d", r, tt.wantAllowed, tt.wantRetry, tt.wantRemaining)
			}
			if !r.Allowed {
				return
			}
			if !slices.Equal(keep, tt.wantKeep) {
				t.Fatalf("keep = %v, want %v", keep, tt.wantKeep)
			}
			if want := (keep[len(keep)-1].Slot + kv.WindowSlots + 1) * s; expires != want {
				t.Fatalf("expires = %d, want %d", expires, want)
			}
		})
	}
}
