package payment

import (
	"context"
	"errors"
	"net/http"
	"time"

	"tollgate"
	"tollgate/internal/failpoint"
	"tollgate/kv"
	"tollgate/wxpay"
)

var zeroTime time.Time

// rejection is a notification refused: the reason counted and logged, and
// the HTTP status answered (4xx: refused, 5xx: our failure, WeChat Pay will
// retry).
type rejection struct {
	reason string
	status int
	err    error
}

func reject(reason string, err error) *rejection {
	st := http.StatusBadRequest
	if reason == ReasonInternal {
		st = http.StatusInternalServerError
	}
	return &rejection{reason: reason, status: st, err: err}
}

// verifyReason classifies a wxpay parse/verify error.
func verifyReason(err error) string {
	switch {
	case errors.Is(err, wxpay.ErrSignatureProbe):
		return ReasonProbe
	case errors.Is(err, wxpay.ErrTooOld):
		return ReasonTooOld
	case errors.Is(err, wxpay.ErrV2NotOurs):
		return ReasonWrongMerchant
	case errors.Is(err, wxpay.ErrBadSignature), errors.Is(err, wxpay.ErrNotSigned), errors.Is(err, wxpay.ErrUnknownSerial):
		return ReasonBadSignature
	case errors.Is(err, wxpay.ErrMalformed), errors.Is(err, wxpay.ErrBodyTooLarge):
		return ReasonMalformed
	}
	return ReasonInternal
}

func (s *Service) rejected(ctx context.Context, version string, r *rejection) {
	s.metrics.Count(EventNotificationRejected, r.reason)
	s.log.WarnContext(ctx, "payment: notification refused", "api", version, "reason", r.reason, "err", r.err)
}

// HandleV2Notification handles the body of a POST to the v2 notify URL (a
// payment notification, or a refund notification carrying req_info) and
// returns the HTTP status and reply to send. The HTTP layer answers HEAD
// itself with 200 and an empty body.
//
// Checks, in order, before anything changes: the XML decodes; the order
// named exists and was placed with API v2; the signature verifies with the
// order's sign type; appid and mch_id are ours; result_code is SUCCESS;
// total_fee equals the order's amount (fee_type CNY); a nonce_str seen in
// the last 24 h is refused unless the order is already credited. Then the
// payment is credited (see credit) and only then is the nonce recorded. A
// repeat for an order already credited is acknowledged and changes nothing.
// Any failed check answers 400 with return_code FAIL, changes nothing, and
// is logged and counted by reason; an internal failure answers 500 (WeChat
// Pay retries).
func (s *Service) HandleV2Notification(ctx context.Context, body []byte) (int, []byte) {
	if r := s.handleV2(ctx, body); r != nil {
		s.rejected(ctx, APIv2, r)
		msg := "refused: " + r.reason
		return r.status, wxpay.V2NotifyAck(false, msg)
	}
	return http.StatusOK, wxpay.V2NotifyAck(true, "")
}

func (s *Service) handleV2(ctx context.Context, body []byte) *rejection {
	if s.v2 == nil {
		return reject(ReasonWrongVersion, errors.New("API v2 is not configured"))
	}
	m, err := wxpay.DecodeV2XML(body)
	if err != nil {
		return reject(verifyReason(err), err)
	}
	if m["req_info"] != "" {
		return s.handleV2Refund(ctx, body)
	}
	o, err := s.store.Order(ctx, m["out_trade_no"])
	if err != nil {
		if tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
			return reject(ReasonInternal, err)
		}
		// Tell a forgery from a genuine notification of an order we do not know.
		if _, _, verr := s.v2.ParsePaymentNotification(ctx, body, ""); verr != nil {
			return reject(verifyReason(verr), verr)
		}
		return reject(ReasonUnknownOrder, err)
	}
	if o.APIVersion != APIv2 {
		return reject(ReasonWrongVersion, errors.New("order was placed with API "+o.APIVersion))
	}
	if mutantSkipSignature {
		body = resignV2(m, s.v2.APIKey, o.SignType)
	}
	n, _, err := s.v2.ParsePaymentNotification(ctx, body, o.SignType)
	if err != nil {
		return reject(verifyReason(err), err)
	}
	switch {
	case n.OutTradeNo != o.OutTradeNo:
		return reject(ReasonMalformed, errors.New("verified out_trade_no differs"))
	case n.ResultCode != "SUCCESS":
		return reject(ReasonNotSuccess, errors.New("result_code "+n.ResultCode))
	case (n.TotalFee != int64(o.Fen) || (n.FeeType != "" && n.FeeType != "CNY")) && !mutantSkipAmount:
		return reject(ReasonAmountMismatch, errors.New("total_fee or fee_type differs from the order"))
	case n.TransactionID == "":
		return reject(ReasonMalformed, errors.New("no transaction_id"))
	}
	return s.acceptPayment(ctx, o, n.TransactionID, "wxpay:v2:"+s.v2.MchID+":"+n.NonceStr)
}

// acceptPayment applies the nonce rule, credits and records the nonce.
//
// A repeat of a notification whose payment is credited already (the order
// row says paid, by this transaction: it is set only after the lot
// committed) is acknowledged from that read alone: no ledger transaction,
// no database write, no nonce lookup (the nonce rule exempts credited
// orders). WeChat Pay repeats every notification it did not see
// acknowledged in time, so under load repeats are common and must cost no
// writer time. Its nonce is still recorded, as every accepted
// notification's is: a nonce store that lost its keys (a Redis restart)
// learns it again, so it cannot be replayed on an unpaid order.
func (s *Service) acceptPayment(ctx context.Context, o Order, transactionID, nonceKey string) *rejection {
	if o.Status.Paid() && o.TransactionID == transactionID {
		s.metrics.Count(EventNotificationAcked, "already_credited")
		s.recordNonce(ctx, nonceKey)
		return nil
	}
	seen, err := s.nonces.Seen(ctx, nonceKey)
	if err != nil {
		// The nonce store is down: rely on the ledger's unique constraints.
		s.log.WarnContext(ctx, "payment: nonce store unavailable; relying on the ledger", "err", err)
		seen = false
	}
	if seen {
		if _, lerr := s.ledger.LotByOrder(ctx, o.OutTradeNo); lerr != nil {
			if tollgate.ErrorCode(lerr) == tollgate.ENOTFOUND {
				return reject(ReasonReplay, errors.New("nonce already seen for an uncredited order"))
			}
			return reject(ReasonInternal, lerr)
		}
	}
	already, err := s.credit(ctx, o, transactionID, "notification")
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ECONFLICT {
			return reject(ReasonConflict, err)
		}
		return reject(ReasonInternal, err)
	}
	if already {
		s.metrics.Count(EventNotificationAcked, "already_credited")
	} else {
		s.metrics.Count(EventNotificationAcked, "credited")
	}
	s.recordNonce(ctx, nonceKey)
	_ = failpoint.Inject(failpoint.AfterCreditBeforeAck)
	return nil
}

// recordNonce remembers a nonce for 24 h, after the credit committed. A
// failure is logged only: exactly-once never rests on it.
func (s *Service) recordNonce(ctx context.Context, key string) {
	if _, err := s.nonces.SetNX(ctx, key, kv.NonceTTL); err != nil {
		s.log.WarnContext(ctx, "payment: recording nonce", "err", err)
	}
}

func (s *Service) handleV2Refund(ctx context.Context, body []byte) *rejection {
	n, _, err := s.v2.ParseRefundNotification(ctx, body)
	if err != nil {
		return reject(verifyReason(err), err)
	}
	var st RefundStatus
	switch n.RefundStatus {
	case wxpay.V2RefundStatusSuccess:
		st = RefundSucceeded
	case wxpay.V2RefundStatusClose:
		st = RefundFailed
	default:
		st = RefundPending
	}
	return s.refundResult(ctx, n.OutTradeNo, n.OutRefundNo, n.RefundFee, st, "wxpay:v2r:"+s.v2.MchID+":"+n.NonceStr)
}

// HandleV3Notification handles a POST to the v3 notify URL: h are the
// request headers, body the exact bytes. It returns the status and reply.
// The signature headers are verified first (a WECHATPAY/SIGNTEST/ probe, a
// stale timestamp, an unknown serial or a bad signature is refused with
// 400), then the resource is decrypted, then the same checks as for v2:
// appid, mchid, order, API version, trade_state SUCCESS, amount, nonce.
func (s *Service) HandleV3Notification(ctx context.Context, h http.Header, body []byte) (int, []byte) {
	if r := s.handleV3(ctx, h, body); r != nil {
		s.rejected(ctx, APIv3, r)
		return r.status, wxpay.V3NotifyAckFail("refused: " + r.reason)
	}
	return http.StatusOK, wxpay.V3NotifyAckSuccess()
}

func (s *Service) handleV3(ctx context.Context, h http.Header, body []byte) *rejection {
	if s.v3 == nil {
		return reject(ReasonWrongVersion, errors.New("API v3 is not configured"))
	}
	n, err := s.v3.ParseNotificationContext(ctx, h, body)
	if err != nil {
		return reject(verifyReason(err), err)
	}
	nonceKey := "wxpay:v3:" + s.v3.MchID + ":" + h.Get(wxpay.HeaderV3Nonce)
	switch n.EventType {
	case wxpay.V3EventTransactionSuccess:
	case wxpay.V3EventRefundSuccess, wxpay.V3EventRefundClosed, wxpay.V3EventRefundAbnormal:
		r, err := n.Refund()
		if err != nil {
			return reject(verifyReason(err), err)
		}
		st := v3RefundStatus(r.Status)
		return s.refundResult(ctx, r.OutTradeNo, r.OutRefundNo, r.Amount.Refund, st, nonceKey)
	default:
		s.log.InfoContext(ctx, "payment: v3 notification of an unhandled event acknowledged", "event", n.EventType)
		return nil
	}
	t, err := n.Transaction()
	if err != nil {
		return reject(verifyReason(err), err)
	}
	if t.MchID != s.v3.MchID || t.AppID != s.v3.AppID {
		return reject(ReasonWrongMerchant, errors.New("appid or mchid is not ours"))
	}
	o, err := s.store.Order(ctx, t.OutTradeNo)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
			return reject(ReasonUnknownOrder, err)
		}
		return reject(ReasonInternal, err)
	}
	switch {
	case o.APIVersion != APIv3:
		return reject(ReasonWrongVersion, errors.New("order was placed with API "+o.APIVersion))
	case t.TradeState != wxpay.V3TradeStateSuccess:
		return reject(ReasonNotSuccess, errors.New("trade_state "+t.TradeState))
	case (t.Amount.Total != int64(o.Fen) || (t.Amount.Currency != "" && t.Amount.Currency != wxpay.V3CurrencyCNY)) &&
		!mutantSkipAmount:
		return reject(ReasonAmountMismatch, errors.New("amount or currency differs from the order"))
	case t.TransactionID == "":
		return reject(ReasonMalformed, errors.New("no transaction_id"))
	}
	return s.acceptPayment(ctx, o, t.TransactionID, nonceKey)
}

// refundResult applies a verified refund notification to a refund we asked
// for: the refund number must be ours, for that order, with that amount.
func (s *Service) refundResult(ctx context.Context, outTradeNo, outRefundNo string, fen int64, st RefundStatus, nonceKey string) *rejection {
	rec, err := s.store.Refund(ctx, outRefundNo)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
			return reject(ReasonUnknownRefund, err)
		}
		return reject(ReasonInternal, err)
	}
	if rec.OutTradeNo != outTradeNo {
		return reject(ReasonUnknownRefund, errors.New("refund belongs to another order"))
	}
	if fen != int64(rec.Fen) {
		return reject(ReasonAmountMismatch, errors.New("refund_fee differs from the refund asked for"))
	}
	seen, err := s.nonces.Seen(ctx, nonceKey)
	if err == nil && seen && rec.Status == RefundPending {
		return reject(ReasonReplay, errors.New("nonce already seen for a pending refund"))
	}
	if err := s.settleRefund(ctx, rec, st, "notification"); err != nil {
		if tollgate.ErrorCode(err) == tollgate.ECONFLICT {
			return reject(ReasonConflict, err)
		}
		return reject(ReasonInternal, err)
	}
	s.metrics.Count(EventNotificationAcked, "refund")
	s.recordNonce(ctx, nonceKey)
	return nil
}
