package payment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
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
	// Replayed is true when an earlier request with the same
	// idempotency key made this refund (RefundAsk.IdempotencyKey).
	Replayed bool `json:"-"`
	// Record is the refund record as stored (who asked, why, the amount
	// asked for), for the admin API; a replay answers with the first
	// request's.
	Record RefundRecord `json:"-"`
}

// refundNo is the deterministic refund number of an order's n-th refund.
func refundNo(outTradeNo string, n int) string { return fmt.Sprintf("%sR%d", outTradeNo, n) }

// keyedRefundNo is the refund number of an order's refund asked with an
// idempotency key: the same (order, key) is always the same number, so a
// retry or a double submit finds the refund made the first time instead
// of paying again. 16 hex digits of SHA-256 keep it within WeChat Pay's
// 64 characters for any 32-character out_trade_no, and "K" keeps it apart
// from refundNo's "R".
func keyedRefundNo(outTradeNo, key string) string {
	h := sha256.Sum256([]byte(outTradeNo + "\x00" + key))
	return outTradeNo + "K" + hex.EncodeToString(h[:8])
}

// Refund policies (Config.RefundPolicy).
const (
	// RefundPolicyAdmin: only the operator refunds (AdminRefund); a
	// user's Refund is refused with how to ask for one.
	RefundPolicyAdmin = "admin"
	// RefundPolicySelf: a user may also refund the unused part of a
	// payment through Refund within Config.RefundWindow of paying.
	RefundPolicySelf = "self"
)

// RefundAsk is a refund asked for.
type RefundAsk struct {
	OutTradeNo string
	// Account, when set, must own the order (a user's own refund).
	Account tollgate.AccountID
	// AmountFen is how much to refund; 0 refunds all the unused credit.
	// It must be a whole number of the order's credits (see
	// CreditsForFen).
	AmountFen tollgate.Fen
	// RequestedBy is RequestedByAccount or RequestedByAdmin; Reason why.
	RequestedBy string
	Reason      string
	// Actor names who asked (RefundRecord.Actor): at most MaxActor
	// bytes. It is not part of the idempotent ask: a retry by another
	// actor with the same key gets the first refund, with its actor.
	Actor string
	// IdempotencyKey, when set, makes the refund once per (order, key):
	// the same key with the same amount and reason answers with the
	// refund made the first time (Replayed), with others ECONFLICT.
	IdempotencyKey string
}

// Refund is a user's own refund of the unused part of a paid order's
// credits, allowed by Config.RefundPolicy self within RefundWindow of the
// payment (see AdminRefund for the rest). Errors: EFORBIDDEN (the policy
// or the window refuses it: the message says whom to ask), and those of
// AdminRefund.
func (s *Service) Refund(ctx context.Context, account tollgate.AccountID, outTradeNo string) (RefundResult, error) {
	const op = "payment.Refund"
	ask := "ask the operator for a refund"
	if c := s.refundContact(); c != "" {
		ask += " (" + c + ")"
	}
	if s.cfg.RefundPolicy != RefundPolicySelf {
		return RefundResult{}, &tollgate.Error{Code: tollgate.EFORBIDDEN, Op: op,
			Message: "refunds are made by the operator on this service, not through the API: " + ask}
	}
	o, err := s.GetOrder(ctx, account, outTradeNo)
	if err != nil {
		return RefundResult{}, err
	}
	if o.Status.Paid() {
		// Fail closed: a window that cannot be checked refuses the refund.
		// The time of payment is the lot's; a paid order without a lot,
		// or a lot without a time, has no known time of payment. The
		// window is open for RefundWindow: at it, it has closed.
		lot, err := s.ledger.LotByOrder(ctx, outTradeNo)
		if err != nil && tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
			return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
		if err != nil || lot.CreatedAt.IsZero() {
			return RefundResult{}, &tollgate.Error{Code: tollgate.EFORBIDDEN, Op: op,
				Message: "the time of this payment is not known, so the refund window cannot be checked: " + ask}
		}
		if s.now().Sub(lot.CreatedAt) >= s.cfg.RefundWindow {
			return RefundResult{}, &tollgate.Error{Code: tollgate.EFORBIDDEN, Op: op,
				Message: fmt.Sprintf("a payment can be refunded here within %v of paying, and that has passed: %s", s.cfg.RefundWindow, ask)}
		}
	}
	return s.refund(ctx, RefundAsk{OutTradeNo: outTradeNo, Account: account, RequestedBy: RequestedByAccount, Reason: "refund through the API",
		Actor: AccountActor(account)})
}

// refundContact is where a user asks the operator for a refund, "" when
// not configured.
func (s *Service) refundContact() string {
	if s.cfg.RefundContactFunc != nil {
		return s.cfg.RefundContactFunc()
	}
	return s.cfg.RefundContact
}

// AdminRefund refunds a paid order for the operator, whatever the policy:
// all of its unused credit, or AmountFen of it, recording who asked and
// why. Errors: EINVALID (the amount is not a whole number of credits, or
// exceeds what was paid), and those of the refund itself (see refund).
//
// The result's Record is the refund record as it is now: on a replay
// (Replayed) the first request's reason, amount and actor.
func (s *Service) AdminRefund(ctx context.Context, ask RefundAsk) (RefundResult, error) {
	ask.RequestedBy = RequestedByAdmin
	res, err := s.refund(ctx, ask)
	if err != nil {
		return res, err
	}
	if res.Record, err = s.store.Refund(ctx, res.OutRefundNo); err != nil {
		return RefundResult{}, wrap("payment.AdminRefund", tollgate.EINTERNAL, err)
	}
	return res, nil
}

// refund refunds the unused part of a paid order's credits (or
// AmountFen of it): floor(fen × credits / granted) fen. The ledger first
// reserves the credit (ledger.BeginRefund), then the refund API is called
// with a deterministic out_refund_no (a retry of this method, or the
// poller, reuses it); the refund is then followed to a final state by the
// refund notification or the poller's refund query. A definite refusal
// releases the credit (ledger.FailRefund).
//
// Errors: ENOTFOUND (no such order, for account when set); ECONFLICT (the
// order is not paid, or nothing, or less than asked, is left to refund);
// EINVALID (a bad amount); EUPSTREAM (WeChat Pay refused); EUNAVAILABLE
// (WeChat Pay did not answer: the refund stays pending and is retried with
// the same number).
func (s *Service) refund(ctx context.Context, ask RefundAsk) (RefundResult, error) {
	const op = "payment.Refund"
	outTradeNo := ask.OutTradeNo
	var o Order
	var err error
	if ask.Account != "" {
		o, err = s.GetOrder(ctx, ask.Account, outTradeNo)
	} else {
		o, err = s.store.Order(ctx, outTradeNo)
	}
	if err != nil {
		return RefundResult{}, err
	}
	if !o.Status.Paid() && !mutantRefundUnpaid {
		return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "order is not paid"}
	}
	if ask.AmountFen < 0 {
		return RefundResult{}, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "amount_fen must be positive"}
	}
	if len(ask.Actor) > MaxActor {
		return RefundResult{}, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: fmt.Sprintf("actor must be at most %d bytes", MaxActor)}
	}
	no := ""
	if ask.IdempotencyKey != "" {
		no = keyedRefundNo(outTradeNo, ask.IdempotencyKey)
		old, err := s.store.Refund(ctx, no)
		if err == nil {
			return s.replayRefund(ctx, o, old, ask)
		}
		if tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
			return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
	}
	recs, err := s.store.RefundsByOrder(ctx, outTradeNo)
	if err != nil {
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	for _, r := range recs {
		if r.Status == RefundPending {
			if no != "" { // another key's refund: it is not this one's answer
				return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: fmt.Sprintf(
					"refund %s of this order is still in progress: ask again when it has finished", r.OutRefundNo)}
			}
			return s.resumeRefund(ctx, o, r) // resume the refund in progress
		}
	}
	if no == "" {
		no = refundNo(outTradeNo, len(recs)+1)
	}
	if ask.AmountFen > 0 {
		lot, err := s.ledger.LotByOrder(ctx, outTradeNo)
		if err != nil {
			return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
		c, err := CreditsForFen(lot, ask.AmountFen)
		if err != nil {
			return RefundResult{}, err
		}
		if c > lot.Left {
			return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: fmt.Sprintf(
				"amount_fen %d is more than the unused part of the order: %d of its %d credits are left, worth %d fen",
				ask.AmountFen, lot.Left, lot.Granted, ledger.RefundFen(lot.Fen, lot.Left, lot.Granted))}
		}
	}
	// Recovery point first (Stripe-style): the refund record exists before
	// the ledger reserves anything, so a crash at any later point leaves a
	// pending record that the poller finishes (resumeRefund begins the
	// ledger refund if it had not been).
	now := s.now().UTC().Truncate(time.Microsecond) // as the stores keep it
	rec, err := s.store.CreateRefund(ctx, RefundRecord{OutRefundNo: no,
		OutTradeNo: outTradeNo, Account: o.Account, Status: RefundPending, CreatedAt: now, UpdatedAt: now,
		NextPollAt: now.Add(s.cfg.PollBase), RequestedBy: ask.RequestedBy, Reason: ask.Reason, AskedFen: ask.AmountFen, Actor: ask.Actor})
	if err != nil {
		return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if ask.IdempotencyKey != "" && (rec.AskedFen != ask.AmountFen || rec.Reason != ask.Reason || rec.RequestedBy != ask.RequestedBy) {
		return s.replayRefund(ctx, o, rec, ask) // a concurrent request with the same key and another ask: ECONFLICT
	}
	s.metrics.Count(EventRefundAsked, rec.RequestedBy)
	s.log.InfoContext(ctx, "payment: refund asked", "out_refund_no", rec.OutRefundNo, "requested_by", rec.RequestedBy,
		"actor", rec.Actor, "reason", rec.Reason, "amount_fen", int64(rec.AskedFen))
	return s.resumeRefund(ctx, o, rec)
}

// replayRefund answers a keyed refund ask whose refund exists: the same
// ask gets that refund (resumed if still pending), another ECONFLICT.
func (s *Service) replayRefund(ctx context.Context, o Order, rec RefundRecord, ask RefundAsk) (RefundResult, error) {
	if rec.OutTradeNo != ask.OutTradeNo || rec.AskedFen != ask.AmountFen || rec.Reason != ask.Reason || rec.RequestedBy != ask.RequestedBy {
		return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: "payment.Refund",
			Message: "this Idempotency-Key was already used for a different refund of this order (another amount or reason): use a new key for a new refund"}
	}
	res := RefundResult{OutRefundNo: rec.OutRefundNo, RefundFen: rec.Fen, Credits: rec.Credits, Status: rec.Status}
	if rec.Status == RefundPending {
		var err error
		if res, err = s.resumeRefund(ctx, o, rec); err != nil {
			return RefundResult{}, err
		}
	}
	res.Replayed = true
	return res, nil
}

// CreditsForFen is the number of a lot's credits whose refund is exactly
// fen: floor(lot.Fen × c / lot.Granted) = fen. Errors: EINVALID when fen
// is not positive, above what was paid, or falls between two whole
// credits (the message names the nearest amounts that do not).
func CreditsForFen(lot ledger.Lot, fen tollgate.Fen) (tollgate.Credits, error) {
	if fen <= 0 {
		return 0, tollgate.Errorf(tollgate.EINVALID, "amount_fen must be positive")
	}
	if lot.Fen <= 0 || fen > lot.Fen {
		return 0, tollgate.Errorf(tollgate.EINVALID, "amount_fen %d is more than the %d fen paid", fen, lot.Fen)
	}
	// c = ceil(fen × granted / lot.Fen), the fewest credits worth fen.
	n := new(big.Int).Mul(big.NewInt(int64(fen)), big.NewInt(int64(lot.Granted)))
	d := big.NewInt(int64(lot.Fen))
	n.Add(n, new(big.Int).Sub(d, big.NewInt(1)))
	c := tollgate.Credits(n.Div(n, d).Int64())
	if c > lot.Granted {
		c = lot.Granted
	}
	if got := ledger.RefundFen(lot.Fen, c, lot.Granted); got != fen {
		return 0, tollgate.Errorf(tollgate.EINVALID, "amount_fen %d is not a whole number of this order's credits (%d fen bought %d); the nearest amounts are %d and %d fen",
			fen, lot.Fen, lot.Granted, ledger.RefundFen(lot.Fen, c-1, lot.Granted), got)
	}
	return c, nil
}

// resumeRefund takes a pending refund record as far as it can go: it
// reserves the lot's unused credit in the ledger (ledger.BeginRefund,
// idempotent by out_refund_no) if that was not done, records the amounts,
// then calls the refund API. A record whose order has nothing refundable
// is closed without touching the ledger.
func (s *Service) resumeRefund(ctx context.Context, o Order, rec RefundRecord) (RefundResult, error) {
	const op = "payment.Refund"
	req := ledger.RefundRequest{OutRefundNo: rec.OutRefundNo, Account: rec.Account, OutTradeNo: rec.OutTradeNo}
	if rec.AskedFen > 0 {
		// The lot's fen and credits never change: the same amount asked
		// is always the same credits, on a retry or in the poller.
		lot, err := s.ledger.LotByOrder(ctx, rec.OutTradeNo)
		if err != nil {
			return RefundResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
		if req.Credits, err = CreditsForFen(lot, rec.AskedFen); err != nil {
			return RefundResult{}, err
		}
	}
	lr, err := s.ledger.BeginRefund(ctx, req)
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
			msg := "nothing to refund: every credit of this order is used, held or refunded"
			if rec.AskedFen > 0 {
				msg = fmt.Sprintf("less than the %d fen asked is left to refund: the rest of this order's credit is used, held or refunded", rec.AskedFen)
			}
			return RefundResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Err: err, Message: msg}
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
//
// The ledger's transaction writes the refund.succeeded or refund.failed
// event, whose data is the record as the admin API shows it once this
// settles it: the final status, the ledger's amounts, and updated_at the
// time the record is then written with (at the stores' microseconds).
func (s *Service) settleRefund(ctx context.Context, rec RefundRecord, st RefundStatus, source string) error {
	const op = "payment.settleRefund"
	if st != RefundSucceeded && st != RefundFailed {
		return nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	view := rec.View()
	view.CreatedAt = view.CreatedAt.UTC().Truncate(time.Microsecond)
	view.UpdatedAt = now
	lr, err := s.ledger.EndRefund(ctx, ledger.RefundEnd{OutRefundNo: rec.OutRefundNo, Succeeded: st == RefundSucceeded, View: &view})
	if err != nil {
		return wrap(op, tollgate.EINTERNAL, err)
	}
	_, err = s.store.UpdateRefund(ctx, rec.OutRefundNo, func(r *RefundRecord) error {
		r.Status, r.UpdatedAt, r.LeaseOwner, r.LeaseUntil = st, now, "", zeroTime
		r.Fen, r.Credits = lr.Fen, lr.Credits
		return nil
	})
	if err != nil {
		return wrap(op, tollgate.EINTERNAL, err)
	}
	if rec.Status != st {
		s.metrics.Count(EventRefund, string(st))
		if st == RefundSucceeded {
			by := rec.RequestedBy
			if by == "" {
				by = RequestedByAccount
			}
			s.money(MoneyRefunded, by, rec.Fen)
		}
		s.log.InfoContext(ctx, "payment: refund final", "out_refund_no", rec.OutRefundNo, "status", st, "source", source)
	}
	return nil
}
