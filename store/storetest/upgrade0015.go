package storetest

import (
	"context"
	"testing"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
)

// FillDebtPaid adds to a FillUpgrade store the adjustments migration 0015
// is about: dave (8,000 credits of debt) gets a positive adjustment that
// pays 3,000 of it, and a negative one recorded as debt. It returns their
// ids, the paying one first.
func FillDebtPaid(tb testing.TB, s ledger.Store, clock *clocktest.Clock) []string {
	tb.Helper()
	ctx := context.Background()
	svc := ledger.New(s, ledger.Options{Clock: clock})
	defer svc.Close()
	pay, _, err := svc.Adjust(ctx, ledger.AdjustRequest{Account: "dave", IdempotencyKey: "goodwill-dave", Credits: 3_000,
		Reason: "goodwill before 0015", Actor: "admin"})
	if err != nil || pay.DebtPaid != 3_000 {
		tb.Fatalf("fill: paying adjustment = %+v, %v", pay, err)
	}
	take, _, err := svc.Adjust(ctx, ledger.AdjustRequest{Account: "dave", IdempotencyKey: "take-dave", Credits: -100, AsDebt: true,
		Reason: "correction before 0015", Actor: "admin"})
	if err != nil || take.Debt != 100 {
		tb.Fatalf("fill: negative adjustment = %+v, %v", take, err)
	}
	return []string{pay.ID, take.ID}
}

// WithoutDebtPaid is snap as a store reads it after migration 0015 when
// its rows were written before: every adjustment's DebtPaid is 0.
func WithoutDebtPaid(snap UpgradeSnapshot) UpgradeSnapshot {
	d := *snap.Dump
	d.Adjustments = append([]ledger.Adjustment(nil), d.Adjustments...)
	for i := range d.Adjustments {
		d.Adjustments[i].DebtPaid = 0
	}
	snap.Dump = &d
	return snap
}

// MustAdjustAfterDebtPaid checks, on an upgraded store, that a new positive
// adjustment keeps what it paid of dave's debt, on a replay and in the
// listing, and that the pre-0015 ones read 0.
func MustAdjustAfterDebtPaid(tb testing.TB, s ledger.Store, clock *clocktest.Clock, old []string) {
	tb.Helper()
	ctx := context.Background()
	svc := ledger.New(s, ledger.Options{Clock: clock})
	defer svc.Close()
	r := ledger.AdjustRequest{Account: "dave", IdempotencyKey: "goodwill-after", Credits: 1_000, Reason: "goodwill after 0015", Actor: "admin"}
	for _, again := range []bool{false, true} {
		a, replay, err := svc.Adjust(ctx, r)
		if err != nil || replay != again || a.DebtPaid != 1_000 {
			tb.Fatalf("adjustment after the upgrade (replay %v) = %+v, %v, %v; want 1000 debt paid", again, a, replay, err)
		}
	}
	list, err := svc.AccountAdjustments(ctx, "dave", 10)
	if err != nil || len(list) != 3 {
		tb.Fatalf("dave's adjustments = %+v, %v", list, err)
	}
	want := map[string]tollgate.Credits{old[0]: 0, old[1]: 0, ledger.AdjustmentID("dave", "goodwill-after"): 1_000}
	for _, a := range list {
		if p, ok := want[a.ID]; !ok || a.DebtPaid != p {
			tb.Errorf("adjustment %s lists debt paid %d, want %d", a.ID, a.DebtPaid, p)
		}
	}
}
