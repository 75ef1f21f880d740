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
		contact := "help@old.example"
		w := newWorld(t, backends[0], modes[2], func(c *payment.Config, _ *payment.Deps) {
			c.RefundPolicy, c.RefundWindow = payment.RefundPolicySelf, time.Hour
			// Asked on every refusal: a catalog reload's contact shows at once.
			c.RefundContact, c.RefundContactFunc = "unused@example.com", func() string { return contact }
		})
		w.mustAccount("bob")
		res := w.mustOrder("bob", "plus")
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		w.clock.Advance(time.Hour + time.Second)
		contact = "help@new.example"
		_, err := w.svc.Refund(w.ctx, "bob", res.OutTradeNo)
		wantCode(t, err, tollgate.EFORBIDDEN)
		if msg := tollgate.ErrorMessage(err); !strings.Contains(msg, "within 1h0m0s") || !strings.Contains(msg, "(help@new.example)") {
			t.Fatalf("window refusal: %v", err)
		}
	})
}

// TestSelfRefundWindow: under --refund-policy self the window is checked
// from the time of payment and fails closed: inside it the user's refund
// is made; at exactly the window, after it, or when the time of payment is
// not known, it is refused saying why and whom to ask, and nothing changes.
func TestSelfRefundWindow(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, modes[2], func(c *payment.Config, _ *payment.Deps) {
				c.RefundPolicy, c.RefundWindow, c.RefundContact = payment.RefundPolicySelf, time.Hour, "help@example.com"
			})
			w.mustAccount("carol")
			paid := func() string {
				t.Helper()
				res := w.mustOrder("carol", "starter")
				if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
					t.Fatal(err)
				}
				w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
				return res.OutTradeNo
			}
			refused := func(no, says string) {
				t.Helper()
				before, err := w.ledger.Balance(w.ctx, "carol")
				if err != nil {
					t.Fatal(err)
				}
				_, err = w.svc.Refund(w.ctx, "carol", no)
				wantCode(t, err, tollgate.EFORBIDDEN)
				if msg := tollgate.ErrorMessage(err); !strings.Contains(msg, says) || !strings.Contains(msg, "(help@example.com)") {
					t.Fatalf("refusal of %s: %v, want it to say %q and whom to ask", no, err, says)
				}
				after, err := w.ledger.Balance(w.ctx, "carol")
				recs, rerr := w.store.RefundsByOrder(w.ctx, no)
				if err != nil || rerr != nil || after != before || len(recs) != 0 {
					t.Fatalf("a refused refund changed something: balance %+v → %+v (%v), refunds %+v (%v)", before, after, err, recs, rerr)
				}
			}
			early, atEdge := paid(), paid()
			w.clock.Advance(time.Hour - time.Second) // the last second inside
			r, err := w.svc.Refund(w.ctx, "carol", early)
			if err != nil || r.RefundFen != 1000 {
				t.Fatalf("refund within the window = %+v, %v", r, err)
			}
			w.clock.Advance(time.Second) // exactly the window: closed
			refused(atEdge, "within 1h0m0s of paying, and that has passed")
			w.clock.Advance(time.Minute)
			refused(atEdge, "within 1h0m0s of paying, and that has passed")

			// A paid order without a lot has no known time of payment.
			now := w.clock.Now()
			o := payment.Order{OutTradeNo: "nolot00000000001", Account: "carol", Fen: 1000, Credits: 1_400_000,
				APIVersion: payment.APIv3, Status: payment.StatusSuccess, Method: payment.MethodNative,
				TransactionID: "4200000000000000000001", ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
			if _, _, err := w.store.CreateOrder(w.ctx, o, nil); err != nil {
				t.Fatalf("store a paid order without a lot: %v", err)
			}
			refused(o.OutTradeNo, "the time of this payment is not known")
			w.mustAudit()
		})
	}
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
