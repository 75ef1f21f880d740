package kv_test

import (
	"context"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/kv"
)

// TestNonceBoundary: a nonce recorded for ttl at T is remembered until
// T+ttl−1ns — a repeat is not fresh and does not extend it — and forgotten
// at T+ttl exactly, whether or not a sweep ran. (Redis keeps the TTL on its
// own clock, to the millisecond; kvtest checks that it expires.)
func TestNonceBoundary(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	for _, sweep := range []time.Duration{time.Nanosecond, time.Hour} {
		clock := clocktest.New(start)
		m := kv.NewMemory(kv.MemoryOptions{Clock: clock, SweepEvery: sweep})
		mustSetNX := func(when string, want bool) {
			t.Helper()
			if fresh, err := m.SetNX(ctx, "n", kv.NonceTTL); err != nil || fresh != want {
				t.Fatalf("sweep every %v: SetNX %s = %v, %v; want %v", sweep, when, fresh, err, want)
			}
		}
		mustSeen := func(when string, want bool) {
			t.Helper()
			if seen, err := m.Seen(ctx, "n"); err != nil || seen != want {
				t.Fatalf("sweep every %v: Seen %s = %v, %v; want %v", sweep, when, seen, err, want)
			}
		}
		mustSetNX("first", true)
		clock.Set(start.Add(kv.NonceTTL - time.Nanosecond))
		mustSeen("1ns before the TTL", true)
		mustSetNX("1ns before the TTL", false)
		clock.Set(start.Add(kv.NonceTTL))
		mustSeen("at the TTL", false)
		mustSetNX("at the TTL", true)
		clock.Set(start.Add(2*kv.NonceTTL - time.Nanosecond))
		mustSeen("1ns before the second TTL", true)
		clock.Set(start.Add(2*kv.NonceTTL + time.Nanosecond))
		mustSeen("1ns after the second TTL", false)
	}
}
