package payment_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// TestRefundUnusedCredits: a refund returns floor(fen × left / granted),
// reserves the credit at once, is sent once per out_refund_no however often
// it is asked for, and is completed by the refund notification (or, with
// notifications dropped, by the poller's refund query). Nothing is left to
// refund afterwards.
func TestRefundUnusedCredits(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		for _, dropped := range []bool{false, true} {
			acct := tollgate.AccountID("alice")
			if dropped {
				acct = "bob"
				if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 3, DropRate: 1}); err != nil {
					t.Fatal(err)
				}
			}
			w.mustAccount(acct)
			res := w.mustOrder(acct, "plus")
			spend(t, w, string(acct)+"h1", acct, res.OutTradeNo, 1000)
			_, err := w.svc.Refund(w.ctx, acct, res.OutTradeNo)
			wantCode(t, err, tollgate.ECONFLICT) // not paid yet
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			if dropped {
				w.poll(6 * time.Second)
			}
			w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
			spend(t, w, string(acct)+"h2", acct, "", 1_799_000) // 1.8M of 7.2M used in all
			_, err = w.svc.Refund(w.ctx, "mallory", res.OutTradeNo)
			wantCode(t, err, tollgate.ENOTFOUND)

			r, err := w.svc.Refund(w.ctx, acct, res.OutTradeNo)
			left := tollgate.Credits(7_200_000 - 1_800_000)
			if err != nil || r.Credits != left || r.RefundFen != ledger.RefundFen(5000, left, 7_200_000) || r.RefundFen != 3750 || r.Status != payment.RefundPending {
				t.Fatalf("Refund = %+v, %v", r, err)
			}
			if st := w.order(res.OutTradeNo).Status; st != payment.StatusRefund {
				t.Fatalf("order status %s after the refund was accepted", st)
			}
			again, err := w.svc.Refund(w.ctx, acct, res.OutTradeNo) // resumes the same refund
			if err != nil || again != r {
				t.Fatalf("second Refund = %+v, %v", again, err)
			}
			if b, _ := w.ledger.Balance(w.ctx, acct); b.Credits != 0 {
				t.Fatalf("refunding credit still spendable: %+v", b)
			}
			so, _ := w.sim.Order(res.OutTradeNo)
			if len(so.Refunds) != 1 || so.Refunds[0].Amount != 3750 || so.Refunds[0].OutRefundNo != r.OutRefundNo {
				t.Fatalf("emulator refunds %+v", so.Refunds)
			}
			if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
				t.Fatal(err)
			}
			if dropped {
				w.poll(time.Minute)
			}
			w.eventually("the refund to succeed", func() bool {
				rec, _ := w.store.Refund(w.ctx, r.OutRefundNo)
				return rec.Status == payment.RefundSucceeded
			})
			lr, _ := w.ledger.Refund(w.ctx, r.OutRefundNo)
			lot, _ := w.ledger.LotByOrder(w.ctx, res.OutTradeNo)
			if lr.Status != ledger.RefundSucceeded || lot.Refunded != left || lot.RefundedFen != 3750 || lot.Left != 0 {
				t.Fatalf("after the refund: refund %+v, lot %+v", lr, lot)
			}
			_, err = w.svc.Refund(w.ctx, acct, res.OutTradeNo)
			wantCode(t, err, tollgate.ECONFLICT) // nothing left
		}
	})
}

// TestRefundRefusedReleasesCredit: a refund WeChat Pay refuses outright is
// failed in the ledger, so the credit is spendable again.
func TestRefundRefusedReleasesCredit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[2], func(_ *payment.Config, d *payment.Deps) {
		d.Gateway = &refusingRefunds{Gateway: &payment.V3Gateway{Client: d.V3}}
	})
	w.mustAccount("alice")
	res := w.mustOrder("alice", "starter")
	if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
	_, err := w.svc.Refund(w.ctx, "alice", res.OutTradeNo)
	wantCode(t, err, tollgate.EUPSTREAM)
	if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Credits != 1_400_000 {
		t.Fatalf("balance %+v", b)
	}
	recs, _ := w.store.RefundsByOrder(w.ctx, res.OutTradeNo)
	if len(recs) != 1 || recs[0].Status != payment.RefundFailed {
		t.Fatalf("records %+v", recs)
	}
}

// refusingRefunds is a Gateway whose refunds WeChat Pay refuses for good.
type refusingRefunds struct{ payment.Gateway }

func (refusingRefunds) Refund(context.Context, payment.RefundCall) (payment.RefundState, error) {
	return payment.RefundState{}, &wxpay.APIError{Version: 3, HTTPStatus: 403, Code: "NOT_ENOUGH", Message: "insufficient balance"}
}

// failingGateway refuses every order for good.
type failingGateway struct{ payment.Gateway }

func (failingGateway) PlaceOrder(context.Context, payment.PlaceRequest) (payment.Placement, error) {
	return payment.Placement{}, &wxpay.APIError{Version: 2, Code: "PARAM_ERROR", Message: "refused"}
}

// TestRevenue: gross, merchant fees (0.6% under the volume tier), refunds
// and net over the payments of a period.
func TestRevenue(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	start := w.clock.Now()
	w.mustAccount("alice")
	w.mustAccount("bob")
	a, b := w.mustOrder("alice", "plus"), w.mustOrder("bob", "pro")
	for _, no := range []string{a.OutTradeNo, b.OutTradeNo} {
		if _, err := w.sim.Pay(no); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(no, payment.StatusSuccess)
	}
	r, err := w.svc.Refund(w.ctx, "alice", a.OutTradeNo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
		t.Fatal(err)
	}
	w.eventually("the refund", func() bool {
		rec, _ := w.store.Refund(w.ctx, r.OutRefundNo)
		return rec.Status == payment.RefundSucceeded
	})
	rev, err := w.svc.Revenue(w.ctx, start, w.clock.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Revenue{From: rev.From, To: rev.To, Payments: 2, GrossFen: 25000, FeeFen: 30 + 120, RefundedFen: 5000, NetFen: 25000 - 150 - 5000}
	if rev != want {
		t.Fatalf("Revenue = %+v, want %+v", rev, want)
	}
	if none, _ := w.svc.Revenue(w.ctx, start.Add(-time.Hour), start); none.Payments != 0 {
		t.Fatalf("empty period: %+v", none)
	}
}

// TestRefundCrashAfterLedgerBegin: the process stops after the ledger
// reserved a refund's credit and before the refund record held its amounts
// or WeChat Pay was called (the window of failpoint after_begin_refund,
// reached here by a store whose next refund update fails: the state left
// behind is the same). The record was written first, so the poller finds
// it, sends the refund with the same number and it completes: the credit
// never stays "refunding" for good.
func TestRefundCrashAfterLedgerBegin(t *testing.T) {
	t.Parallel()
	stop := &stopBeforeRefundUpdate{}
	w := newWorld(t, backends[0], modes[0], func(_ *payment.Config, d *payment.Deps) {
		stop.Store = d.Store
		d.Store = stop
	})
	w.mustAccount("alice")
	res := w.mustOrder("alice", "starter")
	if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
	stop.armed.Store(true)
	_, err := w.svc.Refund(w.ctx, "alice", res.OutTradeNo)
	wantCode(t, err, tollgate.EINTERNAL)
	recs, _ := w.store.RefundsByOrder(w.ctx, res.OutTradeNo)
	if len(recs) != 1 || recs[0].Status != payment.RefundPending || recs[0].Credits != 0 {
		t.Fatalf("after the crash: records %+v", recs)
	}
	if so, _ := w.sim.Order(res.OutTradeNo); len(so.Refunds) != 0 {
		t.Fatalf("WeChat Pay saw a refund before the crash: %+v", so.Refunds)
	}
	no := recs[0].OutRefundNo
	w.poll(time.Minute) // the poller begins nothing new: it resumes the same refund
	so, _ := w.sim.Order(res.OutTradeNo)
	if len(so.Refunds) != 1 || so.Refunds[0].OutRefundNo != no || so.Refunds[0].Amount != 1000 {
		t.Fatalf("emulator refunds after the poller: %+v", so.Refunds)
	}
	if _, err := w.sim.CompleteRefund(no); err != nil {
		t.Fatal(err)
	}
	w.eventually("the refund to succeed", func() bool {
		rec, _ := w.store.Refund(w.ctx, no)
		return rec.Status == payment.RefundSucceeded && rec.Credits == 1_400_000 && rec.Fen == 1000
	})
	if lr, _ := w.ledger.Refund(w.ctx, no); lr.Status != ledger.RefundSucceeded {
		t.Fatalf("ledger refund %+v", lr)
	}
	w.mustAudit()
}

// stopBeforeRefundUpdate is a payment store whose first refund update after
// it is armed fails without writing: the service stops there as a process
// killed just before it would.
type stopBeforeRefundUpdate struct {
	payment.Store
	armed atomic.Bool
}

func (s *stopBeforeRefundUpdate) UpdateRefund(ctx context.Context, no string, fn func(*payment.RefundRecord) error) (payment.RefundRecord, error) {
	if s.armed.CompareAndSwap(true, false) {
		return payment.RefundRecord{}, errors.New("stopped before the refund record was updated")
	}
	return s.Store.UpdateRefund(ctx, no, fn)
}
