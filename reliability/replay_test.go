package reliability_test

import (
	"context"
	"testing"
	"time"

	"tollgate/reliability"
	"tollgate/store/postgres"
)

// s5 replays acknowledged notifications as after 1 h and 25 h of virtual
// time (see reliability.ReplayAged): every replay acknowledged, the money
// tables unchanged, and past the nonce TTL at least one nonce expired.
func s5(t *testing.T, ctx context.Context, st *postgres.Store, w *reliability.Workload, redisURL, prefix string) {
	t.Helper()
	before, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, age := range []time.Duration{time.Hour, 25 * time.Hour} {
		r, err := w.ReplayAged(ctx, redisURL, prefix, age, 50)
		if err != nil {
			t.Errorf("S5: %v", err)
			continue
		}
		for _, p := range r.Problems {
			t.Error(p)
		}
		if r.Sent == 0 || r.Acked+r.Unknown+r.Stale != r.Sent {
			t.Errorf("S5 after %v: %d replays, %d acked, %d unknown, %d refused as signed over 5 minutes ago", age, r.Sent, r.Acked, r.Unknown, r.Stale)
		}
		if age > 24*time.Hour && r.NoncesExpired == 0 {
			t.Errorf("vacuous run: S5 after %v expired no nonce", age)
		}
		t.Logf("S5: replays after %v: %d sent, %d acked, %d unknown, %d refused as signed over 5 minutes ago (v3), %d nonce keys expired",
			age, r.Sent, r.Acked, r.Unknown, r.Stale, r.NoncesExpired)
	}
	after, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := reliability.DiffMoney(before, after); len(diff) > 0 {
		t.Errorf("S5: replays after 1 h / 25 h changed the money tables: %v", diff)
	}
}
