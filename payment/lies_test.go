package payment_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/wxpay/wxpaysim"
)

// A lying WeChat Pay (docs/RELIABILITY.md, "A lying WeChat Pay"): order
// queries and correctly signed notifications that report another amount,
// another appid or mch_id, USERPAYING, REFUND, REVOKED, PAYERROR, CLOSED
// or an unknown state, at every point of an order's life, and refund
// answers that report another amount. Every such answer must leave money
// as WeChat Pay's truth has it and the order in review or in its true
// state; once the lies stop, tollgate must reach the truth.

// lieCase is one order of the table: a kind of lie told in one phase of
// the order's life, on its own account.
type lieCase struct {
	w       *world
	phase   string
	kind    string
	account tollgate.AccountID
	no      string
	errs    []string
}

func (c *lieCase) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// Phases of an order's life in which it is lied about.
const (
	phaseUnpaid   = "unpaid"   // placed, not paid: the poller asks about it
	phaseLost     = "lost"     // paid at WeChat Pay, notification lost: the poller asks
	phaseCredited = "credited" // paid and credited
	phaseClosed   = "closed"   // expired and closed
	phaseRefunded = "refunded" // paid, credited and refunded
)

// TestLyingWeChatPay runs every kind of lie in every phase of an order's
// life, on SQLite and PostgreSQL, API v2 (both sign types) and v3.
func TestLyingWeChatPay(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		var cases []*lieCase
		for _, phase := range []string{phaseUnpaid, phaseLost, phaseCredited, phaseClosed, phaseRefunded} {
			for _, kind := range wxpaysim.OrderLieKinds {
				cases = append(cases, &lieCase{w: w, phase: phase, kind: kind})
			}
		}
		cases = append(cases, &lieCase{w: w, phase: phaseCredited, kind: wxpaysim.LieRefundAmount})
		for i, c := range cases {
			c.account = tollgate.AccountID(fmt.Sprintf("liar%02d", i))
			w.mustAccount(c.account)
			res := w.mustOrder(c.account, "starter")
			c.no = res.OutTradeNo
			spend(t, w, "h-"+c.no, c.account, c.no, 100) // provisional use: what a wrong close turns into debt
			switch {
			case c.kind == wxpaysim.LieRefundAmount:
				c.refundLies()
			case c.phase == phaseUnpaid || c.phase == phaseLost:
				c.queryLies()
			default:
				c.notificationLies()
			}
			for _, e := range c.errs {
				t.Errorf("%s/%s (%s): %s", c.phase, c.kind, c.no, e)
			}
		}
		// Each contradiction is an alert, counted by what was wrong.
		for _, reason := range []string{payment.ReviewAmount, payment.ReviewNotOurs, payment.ReviewRefundState,
			payment.ReviewUnknownState, payment.ReviewClosePaid, payment.ReviewRefundAmount} {
			if w.metrics.Get(payment.EventReview, reason) == 0 {
				t.Errorf("no %s/%s counted: %v", payment.EventReview, reason, w.metrics.Snapshot())
			}
		}
	})
}

// truth is the emulator's ground truth about the case's order.
func (c *lieCase) truth() wxpaysim.Order {
	c.w.t.Helper()
	o, err := c.w.sim.Order(c.no)
	if err != nil {
		c.w.t.Fatal(err)
	}
	return o
}

// checkMoney compares the account's money and the order with WeChat
// Pay's truth, at any moment, lies or not: a lot only for a paid order,
// with its amount and transaction; never a paid order locally for an
// unpaid one, nor a failed or closed order locally for a paid one; no
// grant revoked (debt) for a paid order while the grant would still live.
func (c *lieCase) checkMoney(when string, grantAlive bool) {
	w := c.w
	so, lots, local := c.truth(), w.lots(c.account), w.order(c.no)
	bal, err := w.ledger.Balance(w.ctx, c.account)
	if err != nil {
		w.t.Fatal(err)
	}
	paid := !so.PaidAt.IsZero()
	switch {
	case !paid && len(lots) > 0:
		c.errorf("%s: credited %d lot(s) (%d fen, tx %s) for an order WeChat Pay was never paid for (%s)",
			when, len(lots), lots[0].Fen, lots[0].TransactionID, so.State)
	case !paid && local.Status.Paid():
		c.errorf("%s: the order reads %s; WeChat Pay says %s", when, local.Status, so.State)
	case paid && len(lots) > 1:
		c.errorf("%s: %d lots for one payment", when, len(lots))
	case paid && len(lots) == 1 && (lots[0].TransactionID != so.TransactionID || int64(lots[0].Fen) != so.Total):
		c.errorf("%s: lot (tx %s, %d fen) for a payment (tx %s, %d fen)", when, lots[0].TransactionID, lots[0].Fen, so.TransactionID, so.Total)
	case paid && (local.Status == payment.StatusClosed || local.Status == payment.StatusPayError):
		c.errorf("%s: the order reads %s but WeChat Pay was paid (%s)", when, local.Status, so.State)
	case paid && grantAlive && bal.Debt != 0:
		c.errorf("%s: a paid order's provisional use became debt %d", when, bal.Debt)
	}
}

// checkReview checks that a pending order was put in review, or not.
func (c *lieCase) checkReview(when string, want bool) {
	o := c.w.order(c.no)
	if got := o.Review != ""; got != want {
		c.errorf("%s: review %q (status %s); want review %v", when, o.Review, o.Status, want)
	}
}

// checkTruth checks that, the lies over, the order and the money are WeChat
// Pay's truth: paid ↔ one lot and SUCCESS or REFUND; not paid ↔ no lot and
// no paid state; an order WeChat Pay closed is closed (or failed) locally.
func (c *lieCase) checkTruth(when string) {
	c.checkMoney(when, false)
	so, local := c.truth(), c.w.order(c.no)
	paid := !so.PaidAt.IsZero()
	bal, err := c.w.ledger.Balance(c.w.ctx, c.account)
	if err != nil {
		c.w.t.Fatal(err)
	}
	switch {
	case paid && bal.Debt != 0:
		c.errorf("%s: WeChat Pay was paid, the account owes %d", when, bal.Debt)
	case !paid && bal.Debt != 100 && !local.Status.Pending():
		c.errorf("%s: the order failed or closed; its provisional use (100) is not the debt (%d)", when, bal.Debt)
	case paid && (len(c.w.lots(c.account)) != 1 || !local.Status.Paid()):
		c.errorf("%s: WeChat Pay was paid (%s), tollgate has %d lot(s) and reads %s", when, so.State, len(c.w.lots(c.account)), local.Status)
	case so.State == wxpaysim.StateClosed && local.Status != payment.StatusClosed && local.Status != payment.StatusPayError:
		c.errorf("%s: WeChat Pay closed the order, tollgate reads %s", when, local.Status)
	}
}

// lieDetectable lists, per phase, the lies a poller can tell from the
// truth by what WeChat Pay's answers say: they must put the order in
// review. USERPAYING is indistinguishable from a slow payer; a failed or
// closed state of an unpaid order is made true by closing it.
var lieDetectable = map[string][]string{
	phaseUnpaid: {wxpaysim.LieAmount, wxpaysim.LieAppID, wxpaysim.LieMchID, wxpaysim.LieRefund, wxpaysim.LieUnknown},
	phaseLost: {wxpaysim.LieAmount, wxpaysim.LieAppID, wxpaysim.LieMchID, wxpaysim.LieRefund, wxpaysim.LieUnknown,
		wxpaysim.LieClosed, wxpaysim.LiePayError, wxpaysim.LieRevoked},
}

// queryLies: the poller asks about a pending order (unpaid, or paid with
// its notification lost) and every answer lies; then the order expires
// while the lie goes on; then WeChat Pay tells the truth again.
func (c *lieCase) queryLies() {
	w := c.w
	if c.phase == phaseLost {
		c.mustFaults(wxpaysim.Faults{Seed: 1, DropRate: 1})
		if _, err := w.sim.Pay(c.no); err != nil {
			w.t.Fatal(err)
		}
		c.mustFaults(wxpaysim.Faults{})
	}
	if err := w.sim.LieAbout(c.no, c.kind); err != nil {
		w.t.Fatal(err)
	}
	w.poll(6 * time.Second) // the first query, within the grant's life
	c.checkMoney("first lying answer", true)
	if st := c.w.order(c.no).Status; st.Pending() {
		c.checkReview("first lying answer", slices.Contains(lieDetectable[c.phase], c.kind))
	}
	w.poll(time.Minute)
	c.checkMoney("second lying answer", true)
	w.poll(31 * time.Minute) // past the order's expiry: closed at WeChat Pay unless paid
	c.checkMoney("lying past expiry", false)
	if c.phase == phaseLost && c.w.order(c.no).Status.Pending() {
		c.checkReview("lying past expiry (the close says paid)", true)
	}
	if err := w.sim.LieAbout(c.no, ""); err != nil {
		w.t.Fatal(err)
	}
	w.poll(10 * time.Minute)
	w.poll(10 * time.Minute)
	c.checkTruth("after the lies")
}

// notificationLies: an order that is settled (credited, closed or
// refunded) gets lying notifications and lying query answers: each
// notification is refused and nothing changes.
func (c *lieCase) notificationLies() {
	w := c.w
	switch c.phase {
	case phaseCredited, phaseRefunded:
		c.payAndWait()
		if c.phase == phaseRefunded {
			r, err := w.svc.Refund(w.ctx, c.account, c.no)
			if err != nil {
				w.t.Fatal(err)
			}
			if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
				w.t.Fatal(err)
			}
			c.waitRefund(r.OutRefundNo, payment.RefundSucceeded)
		}
	case phaseClosed:
		w.poll(31 * time.Minute)
		if st := w.order(c.no).Status; st != payment.StatusClosed {
			w.t.Fatalf("%s: not closed after expiry: %s", c.no, st)
		}
	}
	before := w.digest(c.account)
	if err := w.sim.LieAbout(c.no, c.kind); err != nil {
		w.t.Fatal(err)
	}
	w.poll(time.Minute)
	for range 2 {
		d, err := w.sim.NotifyLie(c.no, c.kind)
		if err != nil {
			w.t.Fatal(err)
		}
		if d.Status != http.StatusBadRequest {
			c.errorf("a lying notification (%s) was answered %d %s; want 400", d.Lie, d.Status, d.Reply)
		}
	}
	if err := w.sim.LieAbout(c.no, ""); err != nil {
		w.t.Fatal(err)
	}
	if w.digest(c.account) != before {
		c.errorf("lies changed the ledger or the order: now %+v", w.order(c.no))
	}
	c.checkTruth("after the lies")
}

// refundLies: every answer about a refund reports another amount — the
// refund call, refund queries, the refund notification and a repeated
// refund call after WeChat Pay finished it. The refund stays pending (its
// credits reserved) and the order goes to review; once the lies stop, the
// refund succeeds with the amount asked.
func (c *lieCase) refundLies() {
	w := c.w
	c.payAndWait()
	if err := w.sim.LieAbout(c.no, c.kind); err != nil {
		w.t.Fatal(err)
	}
	r, err := w.svc.Refund(w.ctx, c.account, c.no)
	if err != nil {
		w.t.Fatal(err)
	}
	c.checkRefundPending("the refund call's answer lies", r.OutRefundNo)
	c.checkReview("the refund call's answer lies", true)
	w.poll(time.Minute)
	c.checkRefundPending("the refund query lies", r.OutRefundNo)
	if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
		w.t.Fatal(err)
	}
	w.eventually("the lying refund notification", func() bool {
		for _, d := range w.sim.Notifications() {
			if d.OutRefundNo == r.OutRefundNo && d.Outcome == wxpaysim.OutcomeFailed {
				return true
			}
		}
		return false
	})
	c.checkRefundPending("the refund notification lies", r.OutRefundNo)
	if _, err := w.svc.Refund(w.ctx, c.account, c.no); err != nil { // the same refund again: WeChat Pay says SUCCESS, another amount
		w.t.Fatal(err)
	}
	c.checkRefundPending("the repeated refund call's answer lies", r.OutRefundNo)
	if err := w.sim.LieAbout(c.no, ""); err != nil {
		w.t.Fatal(err)
	}
	w.poll(10 * time.Minute)
	c.waitRefund(r.OutRefundNo, payment.RefundSucceeded)
	lr, err := w.ledger.Refund(w.ctx, r.OutRefundNo)
	so := c.truth()
	if err != nil || lr.Status != ledger.RefundSucceeded || len(so.Refunds) != 1 || int64(lr.Fen) != so.Refunds[0].Amount {
		c.errorf("after the lies: ledger refund %+v (%v), WeChat Pay %+v", lr, err, so.Refunds)
	}
	before := w.digest(c.account)
	if d, err := w.sim.NotifyLie(c.no, c.kind); err != nil || d.Status != http.StatusBadRequest {
		c.errorf("a lying refund notification after the refund: %+v, %v", d, err)
	}
	if w.digest(c.account) != before {
		c.errorf("a lying refund notification changed something")
	}
	c.checkTruth("after the lies")
}

// checkRefundPending checks that a refund WeChat Pay lies about is neither
// completed nor failed in the ledger.
func (c *lieCase) checkRefundPending(when, no string) {
	lr, err := c.w.ledger.Refund(c.w.ctx, no)
	if err != nil {
		c.w.t.Fatal(err)
	}
	if lr.Status != ledger.RefundPending {
		c.errorf("%s: the ledger refund is %s; want it pending while WeChat Pay's answers disagree with it", when, lr.Status)
	}
}

func (c *lieCase) payAndWait() {
	w := c.w
	if _, err := w.sim.Pay(c.no); err != nil {
		w.t.Fatal(err)
	}
	w.waitStatus(c.no, payment.StatusSuccess)
	w.eventually("the payment notification's acknowledgement", func() bool { return acked(w.sim, c.no) > 0 })
}

func (c *lieCase) waitRefund(no string, st payment.RefundStatus) {
	c.w.eventually("refund "+no+" "+string(st), func() bool {
		rec, err := c.w.store.Refund(c.w.ctx, no)
		return err == nil && rec.Status == st
	})
}

func (c *lieCase) mustFaults(f wxpaysim.Faults) {
	if err := c.w.sim.SetFaults(f); err != nil {
		c.w.t.Fatal(err)
	}
}
