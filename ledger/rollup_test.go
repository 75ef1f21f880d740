package ledger_test

import (
	"context"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
)

func bj(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, tollgate.Beijing)
	if err != nil {
		panic(err)
	}
	return t
}

// TestSplitUsage: whole rolled days from the rollup, the partial days at
// the ends and the unrolled days from the records; a per-call part before
// the pruned watermark is refused.
func TestSplitUsage(t *testing.T) {
	st := ledger.RollupState{RolledBefore: bj("2026-03-10 00:00"), PrunedBefore: bj("2026-03-05 00:00")}
	for _, tc := range []struct {
		from, to       string
		dayFrom, dayTo string
		raw            [2][2]string
		err            bool
	}{
		{"2026-03-06 00:00", "2026-03-08 00:00", "2026-03-06", "2026-03-08", [2][2]string{{"2026-03-06 00:00", "2026-03-06 00:00"}, {"2026-03-08 00:00", "2026-03-08 00:00"}}, false},
		{"2026-03-06 05:00", "2026-03-08 07:00", "2026-03-07", "2026-03-08", [2][2]string{{"2026-03-06 05:00", "2026-03-07 00:00"}, {"2026-03-08 00:00", "2026-03-08 07:00"}}, false},
		{"2026-03-06 00:00", "2026-03-12 07:00", "2026-03-06", "2026-03-10", [2][2]string{{"2026-03-06 00:00", "2026-03-06 00:00"}, {"2026-03-10 00:00", "2026-03-12 07:00"}}, false},
		{"2026-03-11 00:00", "2026-03-12 00:00", "", "", [2][2]string{{"2026-03-11 00:00", "2026-03-12 00:00"}, {"2026-03-12 00:00", "2026-03-12 00:00"}}, false},
		{"2026-03-06 05:00", "2026-03-06 07:00", "", "", [2][2]string{{"2026-03-06 05:00", "2026-03-06 07:00"}, {"2026-03-06 07:00", "2026-03-06 07:00"}}, false},
		{"2026-03-01 00:00", "2026-03-08 00:00", "2026-03-01", "2026-03-08", [2][2]string{{"2026-03-01 00:00", "2026-03-01 00:00"}, {"2026-03-08 00:00", "2026-03-08 00:00"}}, false},
		{"2026-03-01 05:00", "2026-03-08 00:00", "", "", [2][2]string{}, true},
		{"2026-03-04 05:00", "2026-03-04 07:00", "", "", [2][2]string{}, true},
		{"2026-03-01 00:00", "2026-03-04 07:00", "", "", [2][2]string{}, true},
	} {
		sp, err := ledger.SplitUsage(bj(tc.from), bj(tc.to), st)
		if tc.err {
			if tollgate.ErrorCode(err) != tollgate.EINVALID {
				t.Errorf("[%s, %s): %+v, %v, want EINVALID", tc.from, tc.to, sp, err)
			}
			continue
		}
		if err != nil || sp.DayFrom != tc.dayFrom || sp.DayTo != tc.dayTo {
			t.Errorf("[%s, %s): days %q..%q, %v; want %q..%q", tc.from, tc.to, sp.DayFrom, sp.DayTo, err, tc.dayFrom, tc.dayTo)
		}
		for i, r := range tc.raw {
			if !sp.Raw[i][0].Equal(bj(r[0])) || !sp.Raw[i][1].Equal(bj(r[1])) {
				t.Errorf("[%s, %s): raw %d = %v, want %v", tc.from, tc.to, i, sp.Raw[i], r)
			}
		}
	}
}

// fakeRollup records what the roller asks of the store.
type fakeRollup struct {
	closed []time.Time
	days   int // days RollUsage still moves
	prunes []time.Time
	left   int // records PruneUsage still deletes
}

func (f *fakeRollup) RollUsage(_ context.Context, closedBefore time.Time) (ledger.RollupState, bool, error) {
	f.closed = append(f.closed, closedBefore)
	if f.days == 0 {
		return ledger.RollupState{}, false, nil
	}
	f.days--
	return ledger.RollupState{}, true, nil
}

func (f *fakeRollup) PruneUsage(_ context.Context, before time.Time, limit int) (int, error) {
	f.prunes = append(f.prunes, before)
	n := min(limit, f.left)
	f.left -= n
	return n, nil
}

func (f *fakeRollup) UsageRollupState(context.Context) (ledger.RollupState, error) {
	return ledger.RollupState{}, nil
}

// TestUsageRoller: every closed day past the grace, then pruning in
// batches until one comes back short; no pruning without a retention; a
// retention under a day refused.
func TestUsageRoller(t *testing.T) {
	now := bj("2026-03-10 01:30")
	clock := clocktest.New(now)
	f := &fakeRollup{days: 3, left: 25}
	r := &ledger.UsageRoller{Store: f, Clock: clock, Retention: 48 * time.Hour, Batch: 10}
	days, pruned, err := r.RollOnce(context.Background())
	if err != nil || days != 3 || pruned != 25 {
		t.Fatalf("RollOnce = %d days, %d pruned, %v", days, pruned, err)
	}
	if len(f.closed) != 4 || !f.closed[0].Equal(now.Add(-ledger.DefaultRollupGrace)) {
		t.Errorf("RollUsage called with %v", f.closed)
	}
	if len(f.prunes) != 3 || !f.prunes[0].Equal(now.Add(-48*time.Hour)) {
		t.Errorf("PruneUsage called with %v", f.prunes)
	}
	f = &fakeRollup{days: 1, left: 5}
	r = &ledger.UsageRoller{Store: f, Clock: clock}
	if days, pruned, err := r.RollOnce(context.Background()); err != nil || days != 1 || pruned != 0 || len(f.prunes) != 0 {
		t.Errorf("without retention: %d days, %d pruned, %v, prunes %v", days, pruned, err, f.prunes)
	}
	r.Retention = time.Hour
	if _, _, err := r.RollOnce(context.Background()); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Errorf("retention 1h: %v", err)
	}
}
