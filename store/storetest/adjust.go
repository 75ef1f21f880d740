package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

func adjust(e *Env, account tollgate.AccountID, key string, credits tollgate.Credits, asDebt bool) (ledger.Adjustment, bool, error) {
	return e.Svc.Adjust(e.Ctx, ledger.AdjustRequest{Account: account, IdempotencyKey: key, Credits: credits, AsDebt: asDebt,
		Reason: "support ticket 42", Actor: "admin"})
}

// testAdjustments: a positive adjustment is a lot of 0 fen; a negative one
// draws only available credit unless the rest may be debt, which the next
// credit pays; every adjustment is idempotent by its key; nothing refused
// changes anything; the audit (run when the test ends) stays clean.
func testAdjustments(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 1000, 1000)
	add, again, err := adjust(e, "alice", "k1", 500, false)
	if err != nil || again || add.LotID == 0 || add.Credits != 500 || add.Debt != 0 {
		t.Fatalf("add = %+v, %v, %v", add, again, err)
	}
	WantBalance(t, e, "alice", 1500, 0, 0)
	if rep, again, err := adjust(e, "alice", "k1", 500, false); err != nil || !again || rep.ID != add.ID || rep.LotID != add.LotID {
		t.Fatalf("replay = %+v, %v, %v", rep, again, err)
	}
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, _, err := adjust(e, "alice", "k1", 600, false); return err })
	Rejected(t, e, tollgate.EINVALID, func() error { _, _, err := adjust(e, "alice", "k0", 0, false); return err })
	Rejected(t, e, tollgate.EINVALID, func() error { _, _, err := adjust(e, "alice", "k0", 5, true); return err })
	Rejected(t, e, tollgate.ENOTFOUND, func() error { _, _, err := adjust(e, "nobody", "k0", 5, false); return err })
	// Held credit is not available to take away.
	if _, err := reserve(e, "h1", "alice", 400); err != nil {
		t.Fatal(err)
	}
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, _, err := adjust(e, "alice", "k2", -1101, false); return err })
	WantBalance(t, e, "alice", 1100, 400, 0)
	take, _, err := adjust(e, "alice", "k2", -1100, false)
	if err != nil || take.Debt != 0 || take.LotID != 0 {
		t.Fatalf("take = %+v, %v", take, err)
	}
	WantBalance(t, e, "alice", 0, 400, 0)
	if _, err := settle(e, "h1", 400); err != nil {
		t.Fatal(err)
	}
	// Beyond the balance as debt; the next credit pays it first.
	owe, _, err := adjust(e, "alice", "k3", -300, true)
	if err != nil || owe.Debt != 300 {
		t.Fatalf("owe = %+v, %v", owe, err)
	}
	WantBalance(t, e, "alice", -300, 0, 300)
	// A positive adjustment pays the debt first, and says how much it paid.
	pay, _, err := adjust(e, "alice", "k4", 200, false)
	if err != nil || pay.DebtPaid != 200 {
		t.Fatalf("paying adjustment = %+v, %v", pay, err)
	}
	WantBalance(t, e, "alice", -100, 0, 100)
	// The store keeps what it paid: a replay says the same, and so does
	// the listing. One that pays part of the debt, one that pays none.
	if rep, again, err := adjust(e, "alice", "k4", 200, false); err != nil || !again || rep.DebtPaid != 200 {
		t.Fatalf("replay of the paying adjustment = %+v, %v, %v", rep, again, err)
	}
	part, _, err := adjust(e, "alice", "k5", 150, false)
	if err != nil || part.DebtPaid != 100 {
		t.Fatalf("adjustment paying the rest of the debt = %+v, %v", part, err)
	}
	WantBalance(t, e, "alice", 50, 0, 0)
	if rep, _, err := adjust(e, "alice", "k5", 150, false); err != nil || rep.DebtPaid != 100 {
		t.Fatalf("replay of the part-paying adjustment = %+v, %v", rep, err)
	}
	if take, _, err := adjust(e, "alice", "k6", -50, false); err != nil || take.DebtPaid != 0 {
		t.Fatalf("negative adjustment = %+v, %v", take, err)
	}
	WantBalance(t, e, "alice", 0, 0, 0)
	MustCredit(t, e, "alice", "o2", 100, 1000)
	WantBalance(t, e, "alice", 1000, 0, 0)
	var got []ledger.Adjustment
	got, err = e.Svc.AccountAdjustments(e.Ctx, "alice", 10)
	if err != nil || len(got) != 6 {
		t.Fatalf("adjustments = %+v, %v", got, err)
	}
	paid := map[string]tollgate.Credits{}
	for _, a := range got {
		paid[a.IdempotencyKey] = a.DebtPaid
	}
	if want := map[string]tollgate.Credits{"k1": 0, "k2": 0, "k3": 0, "k4": 200, "k5": 100, "k6": 0}; fmt.Sprint(paid) != fmt.Sprint(want) {
		t.Fatalf("debt paid in the listing = %v, want %v", paid, want)
	}
	tot, err := e.Svc.AdjustmentTotals(e.Ctx, Start.Add(-1), Start.Add(1e12))
	if err != nil || tot != (ledger.AdjustmentTotal{Count: 6, Added: 850, Removed: 1450}) {
		t.Fatalf("totals = %+v, %v", tot, err)
	}
}

// testAdjustmentDrawOrder: usage and negative adjustments spend credit an
// operator gave (0-fen lots) before any paid lot, and paid lots oldest
// first, so a goodwill credit never shrinks what a payment can still
// refund.
func testAdjustmentDrawOrder(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 1000, 1000)
	MustCredit(t, e, "alice", "o2", 500, 500)
	if _, _, err := adjust(e, "alice", "goodwill", 500, false); err != nil {
		t.Fatal(err)
	}
	spend := func(id string, cost tollgate.Credits) {
		t.Helper()
		if _, err := reserve(e, id, "alice", cost); err != nil {
			t.Fatal(err)
		}
		if _, err := settle(e, id, cost); err != nil {
			t.Fatal(err)
		}
	}
	refundable := func(order string, want tollgate.Credits) {
		t.Helper()
		l, err := e.Svc.LotByOrder(e.Ctx, order)
		if err != nil || l.Left != want || l.Used != l.Granted-want {
			t.Fatalf("lot of %s = %+v, %v; want %d credits left (refundable %d fen)", order, l, err, want,
				ledger.RefundFen(l.Fen, want, l.Granted))
		}
	}
	spend("h1", 400) // all from the goodwill credit
	refundable("o1", 1000)
	refundable("o2", 500)
	refundable(ledger.AdjustmentID("alice", "goodwill"), 100)
	spend("h2", 200) // the goodwill's last 100, then the oldest payment
	refundable(ledger.AdjustmentID("alice", "goodwill"), 0)
	refundable("o1", 900)
	refundable("o2", 500)
	if _, _, err := adjust(e, "alice", "take", -50, false); err != nil {
		t.Fatal(err)
	}
	refundable("o1", 850)
	refundable("o2", 500)
	// A later goodwill credit is again spent before the payments.
	if _, _, err := adjust(e, "alice", "goodwill2", 100, false); err != nil {
		t.Fatal(err)
	}
	spend("h3", 100)
	refundable("o1", 850)
	refundable("o2", 500)
	WantBalance(t, e, "alice", 1350, 0, 0)
	r, err := e.Svc.BeginRefund(e.Ctx, ledger.RefundRequest{OutRefundNo: "o1R1", Account: "alice", OutTradeNo: "o1"})
	if err != nil || r.Fen != 850 || r.Credits != 850 {
		t.Fatalf("refund of o1 = %+v, %v; want all 850 unused credits, 850 fen", r, err)
	}
}

// testAdjustmentReason: a reason is at most ledger.MaxReason characters,
// counted as characters (a Chinese one is three bytes each), in the ledger
// and in both stores' CHECK alike.
func testAdjustmentReason(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	long := strings.Repeat("退", ledger.MaxReason)
	a, _, err := e.Svc.Adjust(e.Ctx, ledger.AdjustRequest{Account: "alice", IdempotencyKey: "zh", Credits: 10, Reason: long, Actor: "admin"})
	if err != nil || a.Reason != long {
		t.Fatalf("500-character reason: %+v, %v", a, err)
	}
	got, err := e.Svc.AccountAdjustments(e.Ctx, "alice", 1)
	if err != nil || len(got) != 1 || got[0].Reason != long {
		t.Fatalf("stored reason: %d adjustments, %v", len(got), err)
	}
	Rejected(t, e, tollgate.EINVALID, func() error {
		_, _, err := e.Svc.Adjust(e.Ctx, ledger.AdjustRequest{Account: "alice", IdempotencyKey: "zh2", Credits: 10, Reason: long + "款", Actor: "admin"})
		if err != nil && !strings.Contains(tollgate.ErrorMessage(err), "at most 500 characters") {
			t.Errorf("501-character reason refused with %v", err)
		}
		return err
	})
	WantBalance(t, e, "alice", 10, 0, 0)
}

// testUsageReport: usage sums per Beijing day and per model, filtered by
// account and model, within [from, to).
func testUsageReport(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	MustCredit(t, e, "alice", "o1", 100, 100_000)
	MustCredit(t, e, "bob", "o2", 100, 100_000)
	use := func(id string, acct tollgate.AccountID, model string, cost tollgate.Credits) {
		t.Helper()
		if _, err := reserve(e, id, acct, cost); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: id, Cost: cost,
			Usage: ledger.Usage{Model: model, InputTokens: 10, OutputTokens: 5, Status: "ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Start is 15:00 UTC, 23:00 in Beijing: two hours later is the next
	// Beijing day.
	use("u1", "alice", "m-a", 10)
	use("u2", "alice", "m-b", 20)
	e.Clock.Advance(2 * time.Hour)
	use("u3", "alice", "m-a", 30)
	use("u4", "bob", "m-a", 40)
	from, to := Start.Add(-time.Hour), Start.Add(3*time.Hour)
	report := func(q ledger.UsageQuery) string {
		t.Helper()
		q.From, q.To = from, to
		gs, err := e.Svc.UsageReport(e.Ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(gs)
	}
	if got := report(ledger.UsageQuery{GroupBy: ledger.UsageByDay, Account: "alice"}); got != "[{2026-03-31 2 30 20 0 10} {2026-04-01 1 30 10 0 5}]" {
		t.Errorf("alice by day: %s", got)
	}
	if got := report(ledger.UsageQuery{GroupBy: ledger.UsageByModel}); got != "[{m-a 3 80 30 0 15} {m-b 1 20 10 0 5}]" {
		t.Errorf("all by model: %s", got)
	}
	if got := report(ledger.UsageQuery{GroupBy: ledger.UsageByModel, Model: "m-b", Account: "bob"}); got != "[]" {
		t.Errorf("bob's m-b: %s", got)
	}
	if _, err := e.Svc.UsageReport(e.Ctx, ledger.UsageQuery{GroupBy: "week", From: from, To: to}); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Errorf("group_by week: %v", err)
	}
}

// testDebtOutstanding: the overview's debt total sums what accounts owe
// and counts them, and follows repayment.
func testDebtOutstanding(t *testing.T, e *Env) {
	r, ok := e.Store.(ledger.DebtReporter)
	if !ok {
		t.Fatalf("%T does not report debt outstanding", e.Store)
	}
	want := func(credits tollgate.Credits, accounts int64) {
		t.Helper()
		got, err := r.DebtOutstanding(e.Ctx)
		if err != nil || got != (ledger.DebtTotal{Credits: credits, Accounts: accounts}) {
			t.Fatalf("DebtOutstanding = %+v, %v; want %d credits over %d accounts", got, err, credits, accounts)
		}
	}
	want(0, 0)
	for _, a := range []tollgate.AccountID{"alice", "bob", "carol"} {
		MustAccount(t, e, a)
	}
	MustCredit(t, e, "alice", "o1", 1000, 1000)
	MustCredit(t, e, "carol", "o2", 1000, 1000)
	if _, _, err := adjust(e, "alice", "k1", -1300, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := adjust(e, "bob", "k2", -50, true); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", -300, 0, 300)
	want(350, 2)
	if _, _, err := adjust(e, "alice", "k3", 300, false); err != nil { // pays alice's debt off
		t.Fatal(err)
	}
	want(50, 1)
}
