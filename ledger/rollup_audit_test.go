package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
	"tollgate/store/sqlite"
)

// TestAuditAfterUsageRetention: a week of settled usage, then the roller
// with a two-day retention (as serve --usage-retention 48h runs it) rolls
// the closed days and deletes their old per-call records; the audit of the
// whole ledger stays clean, since it counts the pruned days from the daily
// rollup. A pruned day whose daily total no longer matches the settled
// holds is reported as usage.settled.
func TestAuditAfterUsageRetention(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(bj("2026-03-01 09:00"))
	svc := ledger.New(st, ledger.Options{Clock: clock})
	t.Cleanup(func() { svc.Close(); st.Close() })
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 100, Credits: 100_000}); err != nil {
		t.Fatal(err)
	}
	var spent int64
	for day := range 7 {
		for i := range 5 {
			id := fmt.Sprintf("d%d-%d", day, i)
			if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 100, TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			cost := int64(10 + day + i)
			if _, err := svc.Settle(ctx, ledger.SettleRequest{HoldID: id, Cost: tollgate.Credits(cost),
				Usage: ledger.Usage{RequestID: id, Account: "alice", Model: "m", Status: "ok"}}); err != nil {
				t.Fatal(err)
			}
			spent += cost
			clock.Advance(time.Hour)
		}
		clock.Advance(19 * time.Hour)
	}
	audit := func() []ledger.Violation {
		t.Helper()
		vs, err := ledger.Audit(ctx, st, ledger.AuditOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	if vs := audit(); len(vs) != 0 {
		t.Fatalf("before the rollup: %v", vs)
	}
	roller := &ledger.UsageRoller{Store: st, Clock: clock, Retention: 48 * time.Hour}
	days, pruned, err := roller.RollOnce(ctx)
	if err != nil || days == 0 || pruned == 0 {
		t.Fatalf("RollOnce = %d days, %d pruned, %v; want some of each", days, pruned, err)
	}
	state, err := st.UsageRollupState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us, err := svc.ListUsage(ctx, "alice", 100)
	if err != nil || len(us) != 35-pruned || slices.ContainsFunc(us, func(u ledger.Usage) bool { return u.CreatedAt.Before(state.PrunedBefore) }) {
		t.Fatalf("after pruning %d before %s: %d records listed (%v), want %d", pruned, state.PrunedBefore, len(us), err, 35-pruned)
	}
	if vs := audit(); len(vs) != 0 {
		t.Fatalf("after the rollup and the retention: %v", vs)
	}
	// The first day's total grows by 3 behind the ledger's back.
	if err := st.ExecRaw(ctx, `UPDATE usage_daily SET credits = credits + 3 WHERE day = '2026-03-01'`); err != nil {
		t.Fatal(err)
	}
	vs := audit()
	want := fmt.Sprintf("usage.settled account alice: usage credits %d ≠ settled holds %d", spent+3, spent)
	if len(vs) != 1 || vs[0].String() != want {
		t.Fatalf("a pruned day's wrong total: %v, want [%s]", vs, want)
	}
}
