package storetest

import (
	"testing"

	"tollgate/ledger"
)

// testAuditCatchesCorruption writes impossible rows behind the ledger's back
// (through the store's raw-SQL hook) and shows that Audit reports each one.
// The SQL is portable: table and column names are shared by every store.
func testAuditCatchesCorruption(t *testing.T, e *Env) {
	raw, ok := e.Store.(ledger.RawExecer)
	if !ok {
		t.Skip("store has no raw-SQL hook (ledger.RawExecer)")
	}
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	if _, err := reserve(e, "h1", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "h1", 40); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(e, "h2", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := adjust(e, "alice", "adj-c", 50, false); err != nil {
		t.Fatal(err)
	}
	adj := ledger.AdjustmentID("alice", "adj-c")
	MustAuditClean(t, e)
	for _, tc := range []struct {
		name, corrupt, undo, check string
	}{
		{"AccountBalance", `UPDATE accounts SET left_credits = left_credits + 7 WHERE id = 'alice'`,
			`UPDATE accounts SET left_credits = left_credits - 7 WHERE id = 'alice'`, "account.left"},
		{"AccountHeld", `UPDATE accounts SET held = held + 1 WHERE id = 'alice'`,
			`UPDATE accounts SET held = held - 1 WHERE id = 'alice'`, "account.held"},
		{"UsageCredits", `UPDATE usage_records SET credits = credits + 5 WHERE request_id = 'h1'`,
			`UPDATE usage_records SET credits = credits - 5 WHERE request_id = 'h1'`, "usage.settled"},
		{"SettledCost", `UPDATE holds SET cost = cost + 1 WHERE id = 'h1'`,
			`UPDATE holds SET cost = cost - 1 WHERE id = 'h1'`, "usage.settled"},
		{"LotUsedAndLeft", `UPDATE lots SET used = used + 3, left_credits = left_credits - 3 WHERE out_trade_no = 'o1'`,
			`UPDATE lots SET used = used - 3, left_credits = left_credits + 3 WHERE out_trade_no = 'o1'`, "account.left"},
		// Spending beyond the available balance recorded as debt (the
		// held_available bug): no revoked grant accounts for it.
		{"DebtWithoutOrigin", `UPDATE accounts SET debt = debt + 9 WHERE id = 'alice'`,
			`UPDATE accounts SET debt = debt - 9 WHERE id = 'alice'`, "account.debt_origin"},
		// A payment's lot passed off as free credit, and an adjustment's
		// lot granting more than the adjustment gave.
		{"PaidLotAtZeroFen", `UPDATE lots SET fen = 0, refunded_fen = 0 WHERE out_trade_no = 'o1'`,
			`UPDATE lots SET fen = 100 WHERE out_trade_no = 'o1'`, "adjustment.lot"},
		{"AdjustmentLotGrown", `UPDATE lots SET granted = granted + 5, left_credits = left_credits + 5 WHERE out_trade_no = '` + adj + `'`,
			`UPDATE lots SET granted = granted - 5, left_credits = left_credits - 5 WHERE out_trade_no = '` + adj + `'`, "adjustment.lot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := raw.ExecRaw(e.Ctx, tc.corrupt); err != nil {
				t.Fatalf("corrupt: %v", err)
			}
			// wantAuditAsDump: the streaming Audit finds what AuditDump
			// finds in the whole Dump, including tc.check.
			wantAuditAsDump(t, e, ledger.AuditOptions{}, tc.check)
			if err := raw.ExecRaw(e.Ctx, tc.undo); err != nil {
				t.Fatalf("undo: %v", err)
			}
			MustAuditClean(t, e)
		})
	}
}
