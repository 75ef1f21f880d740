package storetest

import (
	"fmt"
	"sync"
	"testing"

	"tollgate"
	"tollgate/ledger"
)

func beginRefund(e *Env, no string, acct tollgate.AccountID, order string) (ledger.Refund, error) {
	return e.Svc.BeginRefund(e.Ctx, ledger.RefundRequest{OutRefundNo: no, Account: acct, OutTradeNo: order})
}

func testRefund(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	lot := MustCredit(t, e, "alice", "o1", 4999, 3000)
	MustCredit(t, e, "alice", "o2", 100, 100)
	if _, err := reserve(e, "h1", "alice", 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "h1", 1000); err != nil {
		t.Fatal(err)
	}
	// 2000 of 3000 left: floor(4999 * 2000 / 3000) = 3332 fen.
	r, err := beginRefund(e, "r1", "alice", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Credits != 2000 || r.Fen != 3332 || r.Status != ledger.RefundPending || r.LotID != lot.ID {
		t.Fatalf("refund = %+v; want 2000 credits, 3332 fen, pending", r)
	}
	WantBalance(t, e, "alice", 100, 0, 0)
	// Refunding credit can be neither spent nor refunded twice.
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := reserve(e, "h2", "alice", 101); return err })
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := beginRefund(e, "r2", "alice", "o1"); return err })
	if again, err := beginRefund(e, "r1", "alice", "o1"); err != nil || again != r {
		t.Fatalf("repeated BeginRefund = %+v, %v; want the same refund", again, err)
	}
	for range 2 {
		done, err := e.Svc.CompleteRefund(e.Ctx, "r1")
		if err != nil || done.Status != ledger.RefundSucceeded {
			t.Fatalf("complete = %+v, %v", done, err)
		}
	}
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := e.Svc.FailRefund(e.Ctx, "r1"); return err })
	got, _ := e.Svc.LotByOrder(e.Ctx, "o1")
	if got.Refunded != 2000 || got.RefundedFen != 3332 || got.Left != 0 || got.Used != 1000 || got.Refunding != 0 {
		t.Fatalf("lot after refund = %+v", got)
	}
	WantBalance(t, e, "alice", 100, 0, 0)

	// A failed refund gives the credit back.
	if _, err := beginRefund(e, "r3", "alice", "o2"); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 0, 0, 0)
	for range 2 {
		if f, err := e.Svc.FailRefund(e.Ctx, "r3"); err != nil || f.Status != ledger.RefundFailed {
			t.Fatalf("fail = %+v, %v", f, err)
		}
	}
	WantBalance(t, e, "alice", 100, 0, 0)
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := e.Svc.CompleteRefund(e.Ctx, "r3"); return err })
	// Held credit is not refundable; the unheld rest is.
	if _, err := reserve(e, "h3", "alice", 60); err != nil {
		t.Fatal(err)
	}
	r4, err := beginRefund(e, "r4", "alice", "o2")
	if err != nil || r4.Credits != 40 || r4.Fen != 40 {
		t.Fatalf("refund beside a hold = %+v, %v; want 40 credits, 40 fen", r4, err)
	}
}

func testRefundErrors(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	MustCredit(t, e, "alice", "o1", 100, 100)
	MustCredit(t, e, "bob", "ob", 100, 100)
	if _, err := beginRefund(e, "r1", "alice", "o1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code string
		fn   func() error
	}{
		{"OtherAccountsOrder", tollgate.ENOTFOUND, func() error { _, err := beginRefund(e, "r2", "alice", "ob"); return err }},
		{"UnknownOrder", tollgate.ENOTFOUND, func() error { _, err := beginRefund(e, "r2", "alice", "zz"); return err }},
		{"NumberReusedForOtherOrder", tollgate.ECONFLICT, func() error { _, err := beginRefund(e, "r1", "bob", "ob"); return err }},
		{"NothingLeft", tollgate.ECONFLICT, func() error { _, err := beginRefund(e, "r2", "alice", "o1"); return err }},
		{"NoNumber", tollgate.EINVALID, func() error { _, err := beginRefund(e, "", "alice", "o1"); return err }},
		{"CompleteUnknown", tollgate.ENOTFOUND, func() error { _, err := e.Svc.CompleteRefund(e.Ctx, "zz"); return err }},
		{"FailUnknown", tollgate.ENOTFOUND, func() error { _, err := e.Svc.FailRefund(e.Ctx, "zz"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) { Rejected(t, e, tc.code, tc.fn) })
	}
}

// testRefundRace refunds lots while other goroutines spend from the same
// account: no credit is both used and refunded, and the books balance.
func testRefundRace(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	const lots, perLot = 20, 1000
	for i := range lots {
		MustCredit(t, e, "alice", fmt.Sprintf("o%02d", i), 500, perLot)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var spent, refundedCredits tollgate.Credits
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				id := fmt.Sprintf("h%d-%d", w, i)
				if _, err := reserve(e, id, "alice", 150); err != nil {
					if tollgate.ErrorCode(err) != tollgate.EINSUFFICIENT {
						t.Errorf("reserve: %v", err)
					}
					continue
				}
				if _, err := settle(e, id, 100); err != nil {
					t.Errorf("settle: %v", err)
					continue
				}
				mu.Lock()
				spent += 100
				mu.Unlock()
			}
		})
	}
	for i := range lots {
		wg.Go(func() {
			r, err := beginRefund(e, fmt.Sprintf("r%02d", i), "alice", fmt.Sprintf("o%02d", i))
			if tollgate.ErrorCode(err) == tollgate.ECONFLICT {
				return // nothing unheld was left
			}
			if err != nil {
				t.Errorf("begin refund: %v", err)
				return
			}
			if _, err := e.Svc.CompleteRefund(e.Ctx, r.OutRefundNo); err != nil {
				t.Errorf("complete refund: %v", err)
			}
			mu.Lock()
			refundedCredits += r.Credits
			mu.Unlock()
		})
	}
	wg.Wait()
	b := MustBalance(t, e, "alice")
	if b.Credits != lots*perLot-spent-refundedCredits || b.Held != 0 || b.Debt != 0 {
		t.Fatalf("balance %+v; want %d = granted %d - spent %d - refunded %d", b, lots*perLot-spent-refundedCredits, lots*perLot, spent, refundedCredits)
	}
	all, _ := e.Svc.Lots(e.Ctx, "alice")
	var used tollgate.Credits
	for _, l := range all {
		used += l.Used
		if l.Refunded > 0 && l.RefundedFen != ledger.RefundFen(l.Fen, l.Refunded, l.Granted) {
			t.Errorf("lot %s refunded %d fen for %d credits", l.OutTradeNo, l.RefundedFen, l.Refunded)
		}
	}
	if used != spent {
		t.Fatalf("lots used %d, settled %d: a used credit was refunded or lost", used, spent)
	}
}
