package wxpaysim

import (
	"fmt"
	"time"

	"tollgate"
)

// maxRefundsPerOrder is WeChat Pay's limit of partial refunds per order.
const maxRefundsPerOrder = 50

// refundReq is a validated refund request, either version.
type refundReq struct {
	version     int
	sandbox     bool
	outTradeNo  string
	txID        string
	outRefundNo string
	amount      int64
	total       int64
	notifyURL   string
	reason      string
}

func (r refundReq) fingerprint() string {
	return fmt.Sprintf("%s|%s|%d|%d", r.outTradeNo, r.txID, r.amount, r.total)
}

// createRefund accepts a refund: it is PROCESSING until RefundDelay has
// passed (or CompleteRefund is called), then SUCCESS and notified. The same
// out_refund_no returns the same refund and never refunds twice.
func (s *Server) createRefund(req refundReq) (Refund, *bizErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[req.outRefundNo]; ok {
		o := s.orders[r.OutTradeNo]
		same := r.sandbox == req.sandbox && r.Amount == req.amount && r.Total == req.total &&
			(req.outTradeNo == "" || req.outTradeNo == o.OutTradeNo) &&
			(req.txID == "" || req.txID == o.TransactionID)
		if !same {
			return Refund{}, errRefundMismatch
		}
		return r.Refund, nil
	}
	o := s.lookupLocked(req.outTradeNo, req.txID, req.sandbox)
	if o == nil || (o.State != StateSuccess && o.State != StateRefund) {
		return Refund{}, errRefundUnpaid
	}
	if req.total != o.Total {
		field := "total_fee"
		if req.version == 3 {
			field = "/amount/total"
		}
		return Refund{}, paramError(field, "订单金额与原订单金额不一致")
	}
	if len(o.refundNos) >= maxRefundsPerOrder {
		return Refund{}, &bizErr{"INVALID_REQUEST", "INVALID_REQUEST", 400, "订单退款次数已超过50次", ""}
	}
	if o.Refunded+req.amount > o.Total {
		return Refund{}, errNotEnough
	}
	now := s.nowLocked(s.clockSkew)
	notify := req.notifyURL
	if notify == "" {
		notify = s.RefundNotifyURL
	}
	if notify == "" {
		notify = o.NotifyURL
	}
	r := &refund{sandbox: req.sandbox, fingerprint: req.fingerprint()}
	r.Refund = Refund{
		OutRefundNo: req.outRefundNo, RefundID: s.newRefundIDLocked(now), OutTradeNo: o.OutTradeNo,
		TransactionID: o.TransactionID, APIVersion: req.version, Amount: req.amount, Total: o.Total,
		Status: RefundProcessing, NotifyURL: notify, Reason: req.reason, CreatedAt: now,
	}
	s.refunds[r.OutRefundNo] = r
	o.refundNos = append(o.refundNos, r.OutRefundNo)
	o.Refunded += r.Amount
	o.State = StateRefund
	s.scheduleRefundLocked(r.OutRefundNo)
	return r.Refund, nil
}

func (s *Server) newRefundIDLocked(now time.Time) string {
	for {
		id := "5030" + now.In(tollgate.Beijing).Format("20060102") + randDigits(17)
		used := false
		for _, r := range s.refunds {
			used = used || r.RefundID == id
		}
		if !used {
			return id
		}
	}
}

// scheduleRefundLocked completes the refund after RefundDelay (scaled).
func (s *Server) scheduleRefundLocked(no string) {
	d := s.RefundDelay
	if d < 0 || s.closed {
		return
	}
	if d == 0 {
		d = DefaultRefundDelay
	}
	t := tollgate.ClockOr(s.Clock).NewTimer(s.scaled(d)) // started now: see startLocked
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C():
		}
		if _, err := s.CompleteRefund(no); err != nil {
			// Already completed by hand: nothing to do.
			return
		}
	}()
}

// queryRefund finds a refund by out_refund_no (or, for v2, by refund_id,
// transaction_id or out_trade_no: then every refund of the order).
func (s *Server) queryRefund(no string, sandbox bool) (Refund, *bizErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[no]
	if !ok || r.sandbox != sandbox {
		return Refund{}, errRefundNotExist
	}
	return r.Refund, nil
}

// CompleteRefund finishes a PROCESSING refund now: SUCCESS, and its refund
// notification is queued. Errors: ErrNotFound, ErrWrongState.
func (s *Server) CompleteRefund(outRefundNo string) (Refund, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[outRefundNo]
	if !ok {
		return Refund{}, fmt.Errorf("refund %q: %w", outRefundNo, ErrNotFound)
	}
	if r.Status != RefundProcessing {
		return r.Refund, fmt.Errorf("refund %q in status %s: %w", outRefundNo, r.Status, ErrWrongState)
	}
	r.Status = RefundSuccess
	r.SuccessAt = s.nowLocked(s.clockSkew)
	s.queueRefundLocked(r)
	return r.Refund, nil
}
