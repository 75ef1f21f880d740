package payment

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tollgate"
	"tollgate/internal/failpoint"
	"tollgate/ledger"
)

// credit records a verified payment of order o and marks the order SUCCESS.
//
// Two steps, on purpose in this order: first ledger.CreditPayment, which
// creates the lot, pays any debt and confirms the provisional grant in ONE
// transaction guarded by the unique out_trade_no and transaction_id; then
// the order row becomes SUCCESS. The lot is the source of truth. A crash
// between the two leaves a credited lot and a pending order: the poller
// (which queries the order, sees SUCCESS and calls credit again) and
// WeChat Pay's retried notification both finish it, and CreditPayment
// answers the repeat with the same lot (already = true), so nothing is
// credited twice. The order row is bookkeeping, never the guard.
//
// It returns already = true when the lot existed before this call.
func (s *Service) credit(ctx context.Context, o Order, transactionID string, source string) (bool, error) {
	const op = "payment.credit"
	p := ledger.Payment{Account: o.Account, OutTradeNo: o.OutTradeNo, TransactionID: transactionID,
		Fen: o.Fen, Credits: o.Credits}
	if o.GrantCap > 0 {
		p.GrantID = o.OutTradeNo
	}
	paid := o
	paid.Status, paid.TransactionID = StatusSuccess, transactionID
	data, err := eventData(paid)
	if err != nil {
		return false, err
	}
	p.Order = data
	if mutantSplitCredit {
		return splitCredit(ctx, s, o, p)
	}
	lot, already, err := s.ledger.CreditPayment(ctx, p)
	if err != nil {
		return false, wrap(op, tollgate.EINTERNAL, err)
	}
	_ = failpoint.Inject(failpoint.AfterCreditBeforeOrder)
	fee := o.FeeFen
	if !o.Status.Paid() {
		fee = s.fee(ctx, lot, !already)
	}
	prev := o.Status
	_, err = s.updateOrder(ctx, o.OutTradeNo, true, urgent, func(x *Order) error { // relaxed: see above
		prev = x.Status
		if x.Status.Paid() {
			return nil
		}
		x.Status, x.TransactionID, x.FeeFen = StatusSuccess, transactionID, fee
		x.LeaseOwner, x.LeaseUntil, x.UpdatedAt = "", zeroTime, s.now().UTC()
		if prev == StatusClosed || prev == StatusPayError {
			x.Review = fmt.Sprintf("paid at WeChat Pay after the order was %s locally; credited", prev)
		}
		return nil
	})
	if err != nil {
		return already, wrap(op, tollgate.EINTERNAL, err)
	}
	if prev == StatusClosed || prev == StatusPayError {
		s.metrics.Count(EventLateSuccess, string(prev))
		s.log.WarnContext(ctx, "payment: late success after local close credited; review",
			"out_trade_no", o.OutTradeNo, "local_status", prev, "source", source)
	}
	if !already {
		s.log.InfoContext(ctx, "payment: credited", "out_trade_no", o.OutTradeNo, "account", o.Account,
			"fen", o.Fen, "credits", o.Credits, "source", source)
		method := o.Method
		if method == "" {
			method = MethodNative
		}
		s.money(MoneyPaid, method, o.Fen)
		s.money(MoneyFee, method, fee)
	}
	return already, nil
}

// fee computes the merchant fee of a payment from the calendar month's
// volume before it (Beijing time). The volume is read from the ledger at
// most once per volumeRefresh and counted on from the payments this
// instance credits meanwhile (fresh: it added the lot), so a credit costs
// no scan of the month's lots; another instance's payments of the last
// seconds may be missing from the tier, as concurrent payments' were
// already. A failure to read the volume is logged and records no fee
// rather than blocking the payment.
func (s *Service) fee(ctx context.Context, lot ledger.Lot, fresh bool) tollgate.Fen {
	t := lot.CreatedAt.In(tollgate.Beijing)
	month := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, tollgate.Beijing)
	if before, ok := s.volume.add(month, lot.Fen, fresh, s.now()); ok {
		return s.pricer.Fee(lot.Fen, before)
	}
	vol, err := s.ledger.PaidVolume(ctx, t.Year(), t.Month(), tollgate.Beijing)
	if err != nil {
		s.log.WarnContext(ctx, "payment: month volume for the fee", "err", err)
		return 0
	}
	s.volume.set(month, vol, s.now())
	before := max(0, vol-lot.Fen)
	return s.pricer.Fee(lot.Fen, before)
}

// volumeRefresh is how long a month's paid volume read from the ledger is
// counted on before it is read again.
const volumeRefresh = 10 * time.Second

// monthVolume is the paid volume of one calendar month as last read from
// the ledger, plus the payments credited here since.
type monthVolume struct {
	mu    sync.Mutex
	month time.Time    // the month's first instant; zero: nothing read
	fen   tollgate.Fen // paid in the month, this instance's new lots included
	read  time.Time    // when fen was read from the ledger
}

// add returns the volume before a lot of fen paid in month, counting the
// lot in when fresh, if the volume read is recent enough; ok is false when
// it must be read again.
func (v *monthVolume) add(month time.Time, fen tollgate.Fen, fresh bool, now time.Time) (before tollgate.Fen, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.month.IsZero() || !v.month.Equal(month) || now.Sub(v.read) >= volumeRefresh || now.Before(v.read) {
		return 0, false
	}
	before = v.fen
	if fresh {
		v.fen += fen
	}
	return before, true
}

// set records a volume read from the ledger (which holds the lot being
// charged for).
func (v *monthVolume) set(month time.Time, fen tollgate.Fen, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.month, v.fen, v.read = month, fen, now
}
