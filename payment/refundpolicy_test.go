package payment_test

import (
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
)

// TestRefundPolicy: under the default policy (admin) a user's refund is
// refused with where to ask, and the operator refunds all or part of the
// unused credit, recorded with who asked and why; under self a user
// refunds within the window and not after it.
func TestRefundPolicy(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, modes[2], func(c *payment.Config, _ *payment.Deps) {
				c.RefundPolicy, c.RefundContact = "", "support@example.com"
			})
			w.mustAccount("alice")
			res := w.mustOrder("alice", "plus") // 5000 fen, 7.2M credits
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
			_, err := w.svc.Refund(w.ctx, "alice", res.OutTradeNo)
			wantCode(t, err, tollgate.EFORBIDDEN)
			if !strings.Contains(tollgate.ErrorMessage(err), "support@example.com") {
				t.Fatalf("refusal does not say whom to ask: %v", err)
			}
			_, err = w.svc.AdminRefund(w.ctx, payment.RefundAsk{OutTradeNo: res.OutTradeNo, AmountFen: 5001, Reason: "too much"})
			wantCode(t, err, tollgate.EINVALID)
			_, err = w.svc.AdminRefund(w.ctx, payment.RefundAsk{OutTradeNo: "nosuchorder1", Reason: "x"})
			wantCode(t, err, tollgate.ENOTFOUND)
			r, err := w.svc.AdminRefund(w.ctx, payment.RefundAsk{OutTradeNo: res.OutTradeNo, AmountFen: 1000, Reason: "duplicate top-up"})
			if err != nil || r.RefundFen != 1000 || r.Credits != 1_440_000 {
				t.Fatalf("partial refund = %+v, %v", r, err)
			}
			recs, err := w.store.RefundsByOrder(w.ctx, res.OutTradeNo)
			if err != nil || len(recs) != 1 || recs[0].RequestedBy != payment.RequestedByAdmin || recs[0].Reason != "duplicate top-up" || recs[0].AskedFen != 1000 {
				t.Fatalf("refund records %+v, %v", recs, err)
			}
			w.mustAudit()
		})
	}
	t.Run("self window", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, backends[0], modes[2], func(c *payment.Config, _ *payment.Deps) {
			c.RefundPolicy, c.RefundWindow = payment.RefundPolicySelf, time.Hour
		})
		w.mustAccount("bob")
		res := w.mustOrder("bob", "plus")
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		w.clock.Advance(time.Hour + time.Second)
		_, err := w.svc.Refund(w.ctx, "bob", res.OutTradeNo)
		wantCode(t, err, tollgate.EFORBIDDEN)
		if !strings.Contains(tollgate.ErrorMessage(err), "within 1h0m0s") {
			t.Fatalf("window refusal: %v", err)
		}
	})
}

func TestCreditsForFen(t *testing.T) {
	lot := ledger.Lot{Fen: 3, Granted: 2}
	if c, err := payment.CreditsForFen(lot, 1); err != nil || c != 1 {
		t.Fatalf("1 fen = %d, %v", c, err)
	}
	if _, err := payment.CreditsForFen(lot, 2); tollgate.ErrorCode(err) != tollgate.EINVALID || !strings.Contains(err.Error(), "nearest amounts are 1 and 3") {
		t.Fatalf("2 fen: %v", err)
	}
	for _, fen := range []tollgate.Fen{0, -1, 4} {
		if _, err := payment.CreditsForFen(lot, fen); tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Fatalf("%d fen: %v", fen, err)
		}
	}
	big := ledger.Lot{Fen: 5000, Granted: 7_200_000}
	if c, err := payment.CreditsForFen(big, 5000); err != nil || c != 7_200_000 {
		t.Fatalf("all = %d, %v", c, err)
	}
}
