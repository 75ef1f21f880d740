package reliability

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/wxpay/wxpaysim"
)

// Truth is what the emulator says happened: WeChat Pay's side of the
// books, the ground truth the ledger is checked against.
type Truth struct {
	Orders        []wxpaysim.Order
	Notifications []wxpaysim.Delivery
	Stats         wxpaysim.Stats
	// Lies are the lies the emulator told (Faults.Lies): in what it sent,
	// never in Orders.
	Lies []wxpaysim.LieTold
}

// ReadTruth fetches the emulator's ground truth.
func ReadTruth(ctx context.Context, sim string) (*Truth, error) {
	var t Truth
	if err := getJSON(ctx, sim+"/sim/orders", &t.Orders); err != nil {
		return nil, err
	}
	if err := getJSON(ctx, sim+"/sim/notifications", &t.Notifications); err != nil {
		return nil, err
	}
	if err := getJSON(ctx, sim+"/sim/stats", &t.Stats); err != nil {
		return nil, err
	}
	if err := getJSON(ctx, sim+"/sim/lies", &t.Lies); err != nil {
		return nil, err
	}
	return &t, nil
}

// Paid reports whether the emulator took the order's money.
func Paid(o wxpaysim.Order) bool { return !o.PaidAt.IsZero() }

// Orders reads tollgate's order rows (the payment side of the store).
type Orders interface {
	Order(ctx context.Context, outTradeNo string) (payment.Order, error)
	Refund(ctx context.Context, outRefundNo string) (payment.RefundRecord, error)
}

// Report is the comparison of the ledger with the emulator.
type Report struct {
	Problems []string // each a broken invariant; must be empty
	// StuckRefunds are ledger refunds pending with no refund record and
	// unknown to WeChat Pay: the crash window between ledger.BeginRefund
	// and Store.CreateRefund in payment.Refund (a known bug, see
	// docs/RELIABILITY.md). Their credits stay in "refunding" for good.
	StuckRefunds []string

	PaidOrders, PaidFen     int64 // at the emulator
	Lots, LotFen            int64 // in the ledger
	Refunds, RefundFen      int64 // succeeded at the emulator
	ActiveHolds             int64
	CreditedWithoutDelivery int64 // paid orders no notification reached: the poller's
	Deliveries, Duplicates  int64 // POST attempts; duplicate copies delivered
	DuplicatesAcked         int64
	Dropped                 int64
	NotificationsUnacked    int64 // notifications (not dropped) never acknowledged
	// A lying WeChat Pay: lies told by where (wxpaysim.LieIn*), orders
	// lied about, and how many of those tollgate put in review.
	Lies                      map[string]int64
	OrdersLiedAbout, InReview int64
	LyingDeliveries           int64 // notification POSTs that told a lie (all must be refused)
	// SignatureRefused are the genuine notification POSTs (no lie, no
	// probe) an instance refused for their signature (bad_signature,
	// too_old). None may be, a certificate rotation included; the caller
	// decides (see Cluster.CertRefetchFailures).
	SignatureRefused []Refusal
}

// Refusal is one notification POST refused: when it was sent, and what.
type Refusal struct {
	Time time.Time
	What string
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Compare checks the ledger dump against the emulator's truth:
//
//   - I1: every order the emulator was paid for has exactly one lot, with
//     its out_trade_no and transaction_id; no lot without a payment, none
//     carrying a forged transaction id;
//   - I2: lot fen = order fen = total_fee; lot credits = credits quoted on
//     the order;
//   - I7: ledger refunds and emulator refunds match one to one by
//     out_refund_no and fen; Σ refunded ≤ paid per order; none pending;
//   - I10 (end state): an order paid at the emulator reads SUCCESS or
//     REFUND locally, an unpaid one never does; an order closed or failed
//     locally is closed or failed at the emulator (tollgate closes it
//     there before it believes an answer saying so);
//   - lies (Faults.Lies): every lying notification was refused; the
//     checks above, made against the truth, are the verdict on the money
//     and the end states of the orders lied about.
func Compare(ctx context.Context, d *ledger.Dump, t *Truth, orders Orders, forged func(string) bool) (*Report, error) {
	r := &Report{Lies: map[string]int64{}}
	liedAbout := map[string]bool{}
	for _, l := range t.Lies {
		r.Lies[l.Where]++
		liedAbout[l.OutTradeNo] = true
	}
	r.OrdersLiedAbout = int64(len(liedAbout))
	lotsByNo := map[string][]ledger.Lot{}
	for _, l := range d.Lots {
		r.Lots++
		r.LotFen += int64(l.Fen)
		lotsByNo[l.OutTradeNo] = append(lotsByNo[l.OutTradeNo], l)
		if forged(l.TransactionID) {
			r.problem("I1: lot %d carries forged transaction id %s", l.ID, l.TransactionID)
		}
	}
	simByNo := map[string]wxpaysim.Order{}
	for _, o := range t.Orders {
		simByNo[o.OutTradeNo] = o
		if err := r.order(ctx, o, lotsByNo[o.OutTradeNo], orders, liedAbout[o.OutTradeNo]); err != nil {
			return nil, err
		}
	}
	for no, ls := range lotsByNo {
		if o, ok := simByNo[no]; !ok || !Paid(o) {
			r.problem("I1: %d lot(s) for order %s, which WeChat Pay was not paid for", len(ls), no)
		}
	}
	if r.PaidFen != r.LotFen {
		r.problem("I1/I2: Σ lot fen %d ≠ Σ paid at WeChat Pay %d", r.LotFen, r.PaidFen)
	}
	r.refunds(ctx, d, t, orders)
	for _, h := range d.Holds {
		if h.Status == ledger.HoldActive {
			r.ActiveHolds++
		}
	}
	r.deliveries(t, simByNo, lotsByNo)
	return r, nil
}

func (r *Report) order(ctx context.Context, o wxpaysim.Order, lots []ledger.Lot, orders Orders, liedAbout bool) error {
	local, err := orders.Order(ctx, o.OutTradeNo)
	if err != nil {
		r.problem("order %s exists at WeChat Pay but not in tollgate: %v", o.OutTradeNo, err)
		return nil
	}
	if liedAbout && local.Review != "" {
		r.InReview++
	}
	closedLocally := local.Status == payment.StatusClosed || local.Status == payment.StatusPayError
	if closedLocally && o.State != wxpaysim.StateClosed && o.State != wxpaysim.StatePayError && !Paid(o) {
		r.problem("I10: order %s reads %s locally, but WeChat Pay never closed it (%s)", o.OutTradeNo, local.Status, o.State)
	}
	if !Paid(o) {
		if local.Status == payment.StatusSuccess || local.Status == payment.StatusRefund {
			r.problem("I10: order %s reads %s locally, WeChat Pay says %s", o.OutTradeNo, local.Status, o.State)
		}
		return nil
	}
	r.PaidOrders++
	r.PaidFen += o.Total
	if len(lots) != 1 {
		r.problem("I1: order %s paid at WeChat Pay (%s) has %d lots", o.OutTradeNo, o.TransactionID, len(lots))
		return nil
	}
	l := lots[0]
	if l.TransactionID != o.TransactionID || int64(l.Fen) != o.Total || int64(local.Fen) != o.Total || l.Granted != local.Credits {
		r.problem("I2: order %s: lot (tx %s, %d fen, %d credits), order (%d fen, %d credits), WeChat Pay (tx %s, %d fen)",
			o.OutTradeNo, l.TransactionID, l.Fen, l.Granted, local.Fen, local.Credits, o.TransactionID, o.Total)
	}
	if local.Status != payment.StatusSuccess && local.Status != payment.StatusRefund {
		r.problem("I10: order %s credited but reads %s locally", o.OutTradeNo, local.Status)
	}
	return nil
}

func (r *Report) refunds(ctx context.Context, d *ledger.Dump, t *Truth, orders Orders) {
	simRefunds := map[string]wxpaysim.Refund{}
	for _, o := range t.Orders {
		var sum int64
		for _, rf := range o.Refunds {
			simRefunds[rf.OutRefundNo] = rf
			sum += rf.Amount
			if rf.Status == wxpaysim.RefundSuccess {
				r.Refunds++
				r.RefundFen += rf.Amount
			}
		}
		if sum > o.Total {
			r.problem("I7: order %s refunded %d fen of %d", o.OutTradeNo, sum, o.Total)
		}
	}
	seen := map[string]bool{}
	for _, lr := range d.Refunds {
		seen[lr.OutRefundNo] = true
		sr, ok := simRefunds[lr.OutRefundNo]
		switch {
		case lr.Status == ledger.RefundPending:
			rec, err := orders.Refund(ctx, lr.OutRefundNo)
			local := fmt.Sprintf("refund record %s, %d poll attempts", rec.Status, rec.PollAttempts)
			if err != nil {
				local = "no refund record: " + err.Error()
			}
			remote := "unknown to WeChat Pay"
			if ok {
				remote = "WeChat Pay: " + sr.Status
			}
			if err != nil && !ok {
				r.StuckRefunds = append(r.StuckRefunds, fmt.Sprintf("%s (%d credits, %d fen)", lr.OutRefundNo, lr.Credits, lr.Fen))
				continue
			}
			r.problem("I7: ledger refund %s (%d credits, %d fen, created %s) still pending after the quiescent wait; %s; %s",
				lr.OutRefundNo, lr.Credits, lr.Fen, lr.CreatedAt.Format(time.RFC3339Nano), local, remote)
		case lr.Status == ledger.RefundSucceeded && (!ok || sr.Status != wxpaysim.RefundSuccess || sr.Amount != int64(lr.Fen)):
			r.problem("I7: refund %s succeeded in the ledger (%d fen), WeChat Pay has %+v", lr.OutRefundNo, lr.Fen, sr)
		case lr.Status == ledger.RefundFailed && ok && sr.Status == wxpaysim.RefundSuccess:
			r.problem("I7: refund %s failed in the ledger but WeChat Pay paid %d fen", lr.OutRefundNo, sr.Amount)
		}
	}
	for no, sr := range simRefunds {
		if !seen[no] {
			r.problem("I7: WeChat Pay has refund %s (%d fen, %s) the ledger does not", no, sr.Amount, sr.Status)
		}
	}
}

// deliveries counts what the emulator's notifications did: duplicates,
// drops, and payment notifications never acknowledged.
func (r *Report) deliveries(t *Truth, sim map[string]wxpaysim.Order, lots map[string][]ledger.Lot) {
	acked := map[string]bool{}   // notification id → some attempt acknowledged
	dropped := map[string]bool{} // notification id → dropped by the fault
	reached := map[string]bool{} // out_trade_no → a payment notification was acknowledged
	for _, d := range t.Notifications {
		if d.Lie != "" && d.Method == "POST" {
			r.LyingDeliveries++
			if d.Outcome == wxpaysim.OutcomeAcked || d.Outcome == wxpaysim.OutcomeDuplicateAcked {
				r.problem("a lying %s notification (%s) for order %s was acknowledged (attempt %d)", d.Kind, d.Lie, d.OutTradeNo, d.Attempt)
			}
		}
		if d.Lie == "" && !d.Probe && d.Method == "POST" && signatureRefusal(d.Reply) {
			r.SignatureRefused = append(r.SignatureRefused, Refusal{Time: d.Time, What: fmt.Sprintf(
				"a genuine %s notification for order %s (attempt %d, sent %s) was refused for its signature: %d %s",
				d.Kind, d.OutTradeNo, d.Attempt, d.Time.Format("15:04:05.000"), d.Status, d.Reply)})
		}
		if d.Kind != "payment" {
			continue
		}
		if d.Method == "POST" {
			r.Deliveries++
		}
		if d.Duplicate {
			r.Duplicates++
		}
		switch d.Outcome {
		case wxpaysim.OutcomeAcked, wxpaysim.OutcomeDuplicateAcked:
			acked[d.NotificationID] = true
			reached[d.OutTradeNo] = true
			if d.Duplicate {
				r.DuplicatesAcked++
			}
		case wxpaysim.OutcomeDropped:
			dropped[d.NotificationID] = true
		}
	}
	ids := map[string]bool{}
	for _, d := range t.Notifications {
		if d.Kind == "payment" {
			ids[d.NotificationID] = true
		}
	}
	for id := range ids {
		switch {
		case dropped[id]:
			r.Dropped++
		case !acked[id]:
			r.NotificationsUnacked++
		}
	}
	for no, o := range sim {
		if Paid(o) && len(lots[no]) == 1 && !reached[no] {
			r.CreditedWithoutDelivery++
		}
	}
}

// signatureRefusal reports whether a notification answer is serve's
// refusal of its signature ("refused: bad_signature" or "refused:
// too_old", in a v2 return_msg or a v3 message).
func signatureRefusal(reply string) bool {
	return strings.Contains(reply, "refused: "+payment.ReasonBadSignature) || strings.Contains(reply, "refused: "+payment.ReasonTooOld)
}

// Settled reports whether the system is quiescent: every paid order has a
// lot, every refund is final on both sides, and every payment notification
// was acknowledged or dropped.
//
// A ledger refund pending for more than a minute with no refund record
// is stuck (see Report.StuckRefunds), not in progress: it does not hold
// the wait up.
func Settled(ctx context.Context, d *ledger.Dump, t *Truth, orders Orders) bool {
	lots := map[string]bool{}
	for _, l := range d.Lots {
		lots[l.OutTradeNo] = true
	}
	for _, o := range t.Orders {
		if Paid(o) && !lots[o.OutTradeNo] {
			return false
		}
		for _, rf := range o.Refunds {
			if rf.Status == wxpaysim.RefundProcessing {
				return false
			}
		}
	}
	for _, rf := range d.Refunds {
		if rf.Status != ledger.RefundPending {
			continue
		}
		if _, err := orders.Refund(ctx, rf.OutRefundNo); err == nil || time.Since(rf.CreatedAt) < time.Minute {
			return false
		}
	}
	// A crash between the credit and the order row (failpoint
	// after_credit_before_order) is healed by the retried notification or,
	// when the notification was dropped, by the poller once the dead
	// instance's lease on the order expires: wait for it.
	for _, l := range d.Lots {
		if o, err := orders.Order(ctx, l.OutTradeNo); err != nil || !o.Status.Paid() {
			return false
		}
	}
	r := &Report{}
	r.deliveries(t, nil, nil)
	return r.NotificationsUnacked == 0
}

// Audit runs ledger.Audit with the hold-age check on.
func Audit(d *ledger.Dump) []ledger.Violation {
	return ledger.AuditDump(d, ledger.AuditOptions{Now: time.Now(), Grace: time.Minute})
}
