package payment

import (
	"context"
	"fmt"
	"time"

	"tollgate"
	"tollgate/internal/failpoint"
	"tollgate/ledger"
	"tollgate/wxpay"
)

// RefundResult is what asking for a refund returns.
type RefundResult struct {
	OutRefundNo string           `json:"out_refund_no"`
	RefundFen   tollgate.Fen     `json:"refund_fen"`
	Credits     tollgate.Credits `json:"credits"`
	Status      RefundStatus     `json:"status"`
}

// refundNo is the deterministic refund number of an order's n-th refund.
func refundNo(outTradeNo string, n int) string { return fmt.Sprintf("%sR%d", outTradeNo, n) }

// Refund refunds the unused part of a paid order's credits:
// floor(fen × left / granted) fen. The ledger first reserves the credit
// (ledger.BeginRefund), then the refund API is called with a deterministic
// out_refund_no (a retry of this method, or the poller, reuses it); the
// refund is then followed to a final state by the refund notification or
// the poller's refund query. A definite refusal releases the credit
// (ledger.FailRefund).
//
// Errors: ENOTFOUND (no such order for account); ECONFLICT (the order is
// not paid, or nothing is left to refund); EUPSTREAM (WeChat Pay refused);
// EUNAVAILABLE (WeChat Pay did not answer: the refund stays pending and is
// retried with the same number).
func (s *Service) Refund(ctx context.Context, account tollgate.AccountID, outTradeNo string) (RefundResult, error) {
	const op = "payment.Refund"
	o, err := s.GetOrder(ctx, account, outTradeNo)
	if err != nil {
		return RefundResult{}, err
	}
	if !o.Status.Paid() && !mutantRefundUnpaid {
		return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "order is not paid"}
	}
	recs, err := s.store.RefundsByOrder(ctx, outTradeNo)
	if err != nil {
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	for _, r := range recs {
		if r.Status == RefundPending { // resume the refund in progress
			return s.resumeRefund(ctx, o, r)
		}
	}
	// Recovery point first (Stripe-style): the refund record exists before
	// the ledger reserves anything, so a crash at any later point leaves a
	// pending record that the poller finishes (resumeRefund begins the
	// ledger refund if it had not been).
	now := s.now().UTC()
	rec, err := s.store.CreateRefund(ctx, RefundRecord{OutRefundNo: refundNo(outTradeNo, len(recs)+1),
		OutTradeNo: outTradeNo, Account: account, Status: RefundPending, CreatedAt: now, UpdatedAt: now,
		NextPollAt: now.Add(s.cfg.PollBase)})
	if err != nil {
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	return s.resumeRefund(ctx, o, rec)
}

// resumeRefund takes a pending refund record as far as it can go: it
// reserves the lot's unused credit in the ledger (ledger.BeginRefund,
// idempotent by out_refund_no) if that was not done, records the amounts,
// then calls the refund API. A record whose order has nothing refundable
// is closed without touching the ledger.
func (s *Service) resumeRefund(ctx context.Context, o Order, rec RefundRecord) (RefundResult, error) {
	const op = "payment.Refund"
	lr, err := s.ledger.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: rec.OutRefundNo, Account: rec.Account, OutTradeNo: rec.OutTradeNo})
	if err != nil && tollgate.ErrorCode(err) == tollgate.ECONFLICT {
		// A conflict can also be a lost race with another instance beginning
		// this very refund: the ledger's row, if any, decides.
		if cur, lerr := s.ledger.Refund(ctx, rec.OutRefundNo); lerr == nil {
			lr, err = cur, nil
		}
	}
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ECONFLICT {
			if aerr := s.abandonRefund(ctx, rec); aerr != nil {
				return RefundResult{}, aerr
			}
			return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Err: err,
				Message: "nothing to refund: every credit of this order is used, held or refunded"}
		}
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if err := failpoint.Inject(failpoint.AfterBeginRefund); err != nil {
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if rec.Fen != lr.Fen || rec.Credits != lr.Credits {
		if rec, err = s.store.UpdateRefund(ctx, rec.OutRefundNo, func(r *RefundRecord) error {
			r.Fen, r.Credits, r.UpdatedAt = lr.Fen, lr.Credits, s.now().UTC()
			return nil
		}); err != nil {
			return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
	}
	if lr.Status != ledger.RefundPending { // a retry after the ledger resolved it
		return s.syncRefund(ctx, rec, lr)
	}
	if lr.Fen <= 0 {
		// Too little left to be worth a fen: give the credit back.
		if err := s.settleRefund(ctx, rec, RefundFailed, "zero_fen"); err != nil {
			return RefundResult{}, err
		}
		return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op,
			Message: "nothing to refund: the unused credit is worth less than one fen"}
	}
	return s.sendRefund(ctx, o, rec)
}

// abandonRefund closes a refund record whose ledger refund never began
// (nothing was refundable): the ledger holds nothing for it, so it is not
// asked to fail anything.
func (s *Service) abandonRefund(ctx context.Context, rec RefundRecord) error {
	_, err := s.store.UpdateRefund(ctx, rec.OutRefundNo, func(r *RefundRecord) error {
		r.Status, r.UpdatedAt, r.LeaseOwner, r.LeaseUntil = RefundFailed, s.now().UTC(), "", zeroTime
		return nil
	})
	if err != nil {
		return wrap("payment.abandonRefund", tollgate.EINTERNAL, err)
	}
	return nil
}

// syncRefund brings a refund record in line with the ledger's final state.
func (s *Service) syncRefund(ctx context.Context, rec RefundRecord, lr ledger.Refund) (RefundResult, error) {
	st := RefundSucceeded
	if lr.Status == ledger.RefundFailed {
		st = RefundFailed
	}
	if err := s.settleRefund(ctx, rec, st, "sync"); err != nil {
		return RefundResult{}, err
	}
	return RefundResult{OutRefundNo: rec.OutRefundNo, RefundFen: rec.Fen, Credits: rec.Credits, Status: st}, nil
}

// sendRefund calls the refund API for a pending refund, retrying a
// retryable or unknown failure with the same out_refund_no.
func (s *Service) sendRefund(ctx context.Context, o Order, rec RefundRecord) (RefundResult, error) {
	const op = "payment.Refund"
	res := RefundResult{OutRefundNo: rec.OutRefundNo, RefundFen: rec.Fen, Credits: rec.Credits, Status: RefundPending}
	call := RefundCall{OutTradeNo: o.OutTradeNo, OutRefundNo: rec.OutRefundNo, TotalFen: int64(o.Fen),
		RefundFen: int64(rec.Fen), NotifyURL: s.cfg.RefundNotifyURL}
	var err error
	var st RefundState
	for attempt := 0; attempt < s.cfg.PlaceAttempts; attempt++ {
		if attempt > 0 && !s.sleep(ctx, time.Duration(attempt)*s.cfg.PlaceBackoff) {
			break
		}
		st, err = s.gw.Refund(ctx, call)
		if err == nil || !wxpay.IsRetryable(err) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil && st.Fen != int64(rec.Fen):
		// Accepted, but not as asked: the refund stays pending, whatever
		// the answer's status, until a query or its notification reports
		// the amount asked for.
		if rerr := s.reviewRefund(ctx, rec, st, "refund call"); rerr != nil {
			return res, wrap(op, tollgate.EINTERNAL, rerr)
		}
		st.Status = RefundPending
		fallthrough
	case err == nil:
		s.metrics.Count(EventRefund, "accepted")
		if _, uerr := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
			if x.Status == StatusSuccess {
				x.Status, x.UpdatedAt = StatusRefund, s.now().UTC()
			}
			return nil
		}); uerr != nil {
			return res, wrap(op, tollgate.EINTERNAL, uerr)
		}
		if st.Status != RefundPending {
			if err := s.settleRefund(ctx, rec, st.Status, "refund_api"); err != nil {
				return res, err
			}
			res.Status = st.Status
		}
		return res, nil
	case wxpay.IsRetryable(err) || ctx.Err() != nil:
		s.log.WarnContext(ctx, "payment: refund outcome unknown; the poller retries with the same number",
			"out_refund_no", rec.OutRefundNo, "err", err)
		return res, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Err: err,
			Message: "WeChat Pay did not answer; the refund will be retried"}
	}
	s.log.WarnContext(ctx, "payment: WeChat Pay refused the refund", "out_refund_no", rec.OutRefundNo, "err", err)
	if serr := s.settleRefund(ctx, rec, RefundFailed, "refund_api"); serr != nil {
		return res, serr
	}
	return RefundResult{}, &tollgate.Error{Code: tollgate.EUPSTREAM, Op: op, Err: err, Message: "WeChat Pay refused the refund"}
}

// reviewRefund puts a refund's order in review: WeChat Pay's answer (from
// where) reports another amount than the refund asked for, so the answer
// settles nothing.
func (s *Service) reviewRefund(ctx context.Context, rec RefundRecord, st RefundState, where string) error {
	return s.reviewOrder(ctx, rec.OutTradeNo, ReviewRefundAmount,
		fmt.Sprintf("WeChat Pay's %s answer reports %d fen (%s) for refund %s of %d fen", where, st.Fen, st.Raw, rec.OutRefundNo, rec.Fen))
}

// settleRefund records a refund's final state in the ledger, then in the
// refund record (the ledger first: a crash between leaves a record the
// poller resolves again, idempotently). A pending state changes nothing
// but the poll schedule.
func (s *Service) settleRefund(ctx context.Context, rec RefundRecord, st RefundStatus, source string) error {
	const op = "payment.settleRefund"
	var err error
	switch st {
	case RefundSucceeded:
		_, err = s.ledger.CompleteRefund(ctx, rec.OutRefundNo)
	case RefundFailed:
		_, err = s.ledger.FailRefund(ctx, rec.OutRefundNo)
	default:
		return nil
	}
	if err != nil {
		return wrap(op, tollgate.EINTERNAL, err)
	}
	_, err = s.store.UpdateRefund(ctx, rec.OutRefundNo, func(r *RefundRecord) error {
		r.Status, r.UpdatedAt, r.LeaseOwner, r.LeaseUntil = st, s.now().UTC(), "", zeroTime
		return nil
	})
	if err != nil {
		return wrap(op, tollgate.EINTERNAL, err)
	}
	if rec.Status != st {
		s.metrics.Count(EventRefund, string(st))
		s.log.InfoContext(ctx, "payment: refund final", "out_refund_no", rec.OutRefundNo, "status", st, "source", source)
	}
	return nil
}
