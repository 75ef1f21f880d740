package ledger_test

import (
	"slices"
	"testing"
	"time"

	"tollgate/ledger"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// soundDump is a small ledger in which every invariant holds: one account
// with one lot (30 used, 10 refunded, 60 left), a settled hold, an active
// hold, a live grant, the usage record of the settled hold.
func soundDump() *ledger.Dump {
	return &ledger.Dump{
		Accounts: []ledger.Account{{ID: "a", Left: 60, Held: 10}},
		Lots: []ledger.Lot{{ID: 1, Account: "a", OutTradeNo: "o1", TransactionID: "t1", Fen: 100,
			Granted: 100, Used: 30, Left: 60, Refunded: 10, RefundedFen: 10}},
		Refunds: []ledger.Refund{{OutRefundNo: "r1", LotID: 1, Account: "a", Credits: 10, Fen: 10, Status: ledger.RefundSucceeded}},
		Holds: []ledger.Hold{
			{ID: "h1", Account: "a", Amount: 50, Cost: 30, Status: ledger.HoldSettled, ExpiresAt: t0.Add(time.Minute), ResolvedAt: t0},
			{ID: "h2", Account: "a", Amount: 10, Status: ledger.HoldActive, ExpiresAt: t0.Add(time.Minute)},
		},
		Grants:      []ledger.Grant{{ID: "g1", Account: "a", Cap: 100, Status: ledger.GrantLive, ExpiresAt: t0.Add(time.Minute)}},
		Usage:       []ledger.Usage{{RequestID: "h1", Account: "a", Credits: 30}},
		Constraints: slices.Clone(ledger.RequiredConstraints),
	}
}

// TestAuditDump breaks one invariant at a time and requires Audit to name
// it; the sound ledger has no violation at all.
func TestAuditDump(t *testing.T) {
	if vs := ledger.AuditDump(soundDump(), ledger.AuditOptions{Now: t0, Grace: time.Minute}); len(vs) != 0 {
		t.Fatalf("sound ledger: %v", vs)
	}
	for _, tc := range []struct {
		check  string
		now    time.Time
		mutate func(d *ledger.Dump)
	}{
		{"lot.conservation", t0, func(d *ledger.Dump) { d.Lots[0].Granted = 101 }},
		{"lot.nonnegative", t0, func(d *ledger.Dump) { d.Lots[0].Left, d.Lots[0].Used = -5, 95 }},
		{"lot.refunds", t0, func(d *ledger.Dump) { d.Refunds[0].Fen = 11 }},
		{"lot.refunds", t0, func(d *ledger.Dump) { d.Refunds[0].Status = ledger.RefundPending }},
		{"account.left", t0, func(d *ledger.Dump) { d.Accounts[0].Left = 61 }},
		{"account.held", t0, func(d *ledger.Dump) { d.Accounts[0].Held = 0 }},
		{"account.debt", t0, func(d *ledger.Dump) { d.Accounts[0].Debt = -1 }},
		{"hold.cost", t0, func(d *ledger.Dump) { d.Holds[0].Cost = 51 }},
		{"hold.cost", t0, func(d *ledger.Dump) { d.Holds[1].Cost = 1 }},
		{"hold.resolution", t0, func(d *ledger.Dump) { d.Holds[1].ResolvedAt = t0 }},
		{"hold.expired", t0.Add(3 * time.Minute), func(d *ledger.Dump) {}},
		{"grant.held", t0, func(d *ledger.Dump) { d.Grants[0].Held = 5 }},
		{"grant.cap", t0, func(d *ledger.Dump) { d.Grants[0].Used, d.Accounts[0].Debt = 101, 0 }},
		{"grant.live", t0, func(d *ledger.Dump) {
			d.Grants = append(d.Grants, ledger.Grant{ID: "g2", Account: "a", Cap: 1, Status: ledger.GrantLive})
		}},
		{"usage.settled", t0, func(d *ledger.Dump) { d.Usage[0].Credits = 29 }},
		{"usage.lots", t0, func(d *ledger.Dump) { d.Accounts[0].Debt = 5 }},
		{"schema.unique", t0, func(d *ledger.Dump) {
			d.Constraints = slices.DeleteFunc(d.Constraints, func(c string) bool { return c == "lots.transaction_id" })
		}},
	} {
		t.Run(tc.check, func(t *testing.T) {
			d := soundDump()
			tc.mutate(d)
			vs := ledger.AuditDump(d, ledger.AuditOptions{Now: tc.now, Grace: time.Minute})
			if !slices.ContainsFunc(vs, func(v ledger.Violation) bool { return v.Check == tc.check }) {
				t.Fatalf("Audit found %v, want a %s violation", vs, tc.check)
			}
		})
	}
}

// TestAuditAdjustmentDebtPaid: what an adjustment paid of the debt is
// bounded by its credits and by what its lot has used; a negative
// adjustment pays none.
func TestAuditAdjustmentDebtPaid(t *testing.T) {
	dump := func() *ledger.Dump {
		return &ledger.Dump{
			Accounts: []ledger.Account{{ID: "a", Left: 60}},
			Lots: []ledger.Lot{{ID: 1, Account: "a", OutTradeNo: "adj_1", TransactionID: "adj_1", Fen: 0,
				Granted: 100, Used: 40, Left: 60}},
			Holds:       []ledger.Hold{{ID: "h1", Account: "a", Amount: 40, Cost: 40, Status: ledger.HoldSettled, ExpiresAt: t0.Add(time.Minute), ResolvedAt: t0}},
			Usage:       []ledger.Usage{{RequestID: "h1", Account: "a", Credits: 40}},
			Adjustments: []ledger.Adjustment{{ID: "adj_1", Account: "a", Credits: 100, DebtPaid: 0, LotID: 1}},
			Constraints: slices.Clone(ledger.RequiredConstraints),
		}
	}
	if vs := ledger.AuditDump(dump(), ledger.AuditOptions{Now: t0, Grace: time.Minute}); len(vs) != 0 {
		t.Fatalf("sound ledger: %v", vs)
	}
	for name, mutate := range map[string]func(d *ledger.Dump){
		"negative":        func(d *ledger.Dump) { d.Adjustments[0].DebtPaid = -1 },
		"beyond credits":  func(d *ledger.Dump) { d.Lots[0].Used, d.Lots[0].Left, d.Adjustments[0].DebtPaid = 100, 0, 101 },
		"beyond lot used": func(d *ledger.Dump) { d.Adjustments[0].DebtPaid = 41 },
		"paid by negative": func(d *ledger.Dump) {
			d.Adjustments = append(d.Adjustments, ledger.Adjustment{ID: "adj_2", Account: "a", Credits: -1, DebtPaid: 1})
		},
	} {
		d := dump()
		mutate(d)
		vs := ledger.AuditDump(d, ledger.AuditOptions{Now: t0, Grace: time.Minute})
		if !slices.ContainsFunc(vs, func(v ledger.Violation) bool { return v.Check == "adjustment.lot" }) {
			t.Errorf("%s: Audit found %v, want an adjustment.lot violation", name, vs)
		}
	}
}
