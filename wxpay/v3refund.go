package wxpay

import (
	"context"
	"fmt"
	"net/url"
)

// Refund states of API v3 (status; refund_status in notifications).
const (
	V3RefundStatusProcessing = "PROCESSING" // accepted, not finished
	V3RefundStatusSuccess    = "SUCCESS"    // refunded (final)
	V3RefundStatusClosed     = "CLOSED"     // failed (final)
	V3RefundStatusAbnormal   = "ABNORMAL"   // the payer's card is unusable; not final, handle manually
)

// V3RefundRequest is a refund request (退款申请). Either TransactionID or
// OutTradeNo names the order; amounts are integer fen.
type V3RefundRequest struct {
	TransactionID string
	OutTradeNo    string
	// OutRefundNo is the merchant's refund number (≤ 64 characters of
	// digits, letters and _-|*@): the same value is the same refund, so a
	// retry must reuse it. Required.
	OutRefundNo string
	// Reason is shown to the payer (≤ 80 characters).
	Reason string
	// NotifyURL overrides the platform's refund notification URL.
	NotifyURL string
	// Refund is the amount to refund, 0 < Refund ≤ Total.
	Refund int64
	// Total is the original order's total.
	Total int64
}

// v3RefundBody is the JSON of a refund request.
type v3RefundBody struct {
	TransactionID string         `json:"transaction_id,omitempty"`
	OutTradeNo    string         `json:"out_trade_no,omitempty"`
	OutRefundNo   string         `json:"out_refund_no"`
	Reason        string         `json:"reason,omitempty"`
	NotifyURL     string         `json:"notify_url,omitempty"`
	Amount        v3RefundAmount `json:"amount"`
}

type v3RefundAmount struct {
	Refund   int64  `json:"refund"`
	Total    int64  `json:"total"`
	Currency string `json:"currency"`
}

// V3Refund is the Refund object: the answer to a refund request or query.
// A refund notification's plaintext decodes to it too (V3Notification.Refund).
// Amounts are fen.
type V3Refund struct {
	RefundID            string         `json:"refund_id"`
	OutRefundNo         string         `json:"out_refund_no"`
	TransactionID       string         `json:"transaction_id"`
	OutTradeNo          string         `json:"out_trade_no"`
	Channel             string         `json:"channel,omitempty"`
	UserReceivedAccount string         `json:"user_received_account,omitempty"`
	SuccessTime         string         `json:"success_time,omitempty"` // RFC 3339, set once SUCCESS
	CreateTime          string         `json:"create_time,omitempty"`
	Status              string         `json:"status"`
	FundsAccount        string         `json:"funds_account,omitempty"`
	Amount              V3RefundAmount `json:"amount"`
}

// V3RefundAmount is the amount object of a Refund: Refund of Total was
// refunded; PayerRefund is what reaches the payer.
type V3RefundAmount struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund,omitempty"`
	SettlementTotal  int64  `json:"settlement_total,omitempty"`
	DiscountRefund   int64  `json:"discount_refund,omitempty"`
	Currency         string `json:"currency,omitempty"`
}

// Final reports whether the refund reached a final state (SUCCESS or
// CLOSED). PROCESSING and ABNORMAL may still change.
func (r *V3Refund) Final() bool {
	return r.Status == V3RefundStatusSuccess || r.Status == V3RefundStatusClosed
}

// body validates r and returns its JSON body.
func (r *V3RefundRequest) body() (*v3RefundBody, error) {
	switch {
	case r.TransactionID == "" && r.OutTradeNo == "":
		return nil, fmt.Errorf("wxpay v3 refund: transaction_id or out_trade_no is required: %w", ErrV3Request)
	case !validOutNo(r.OutRefundNo, 1, 64, "_-|*@"):
		return nil, fmt.Errorf("wxpay v3 refund: out_refund_no %q: %w", r.OutRefundNo, ErrV3Request)
	case r.Refund <= 0 || r.Total <= 0 || r.Refund > r.Total:
		return nil, fmt.Errorf("wxpay v3 refund: refund %d of total %d fen: %w", r.Refund, r.Total, ErrV3Request)
	}
	return &v3RefundBody{
		TransactionID: r.TransactionID, OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo,
		Reason: r.Reason, NotifyURL: r.NotifyURL,
		Amount: v3RefundAmount{Refund: r.Refund, Total: r.Total, Currency: V3CurrencyCNY},
	}, nil
}

// Refund requests a refund (POST /v3/refund/domestic/refunds). The answer
// is the accepted refund, normally PROCESSING; the final state comes by
// notification or QueryRefund. Retrying with the same OutRefundNo is safe
// and must be done after a *TransportError or a retryable *APIError.
func (c *V3Client) Refund(ctx context.Context, r *V3RefundRequest) (*V3Refund, error) {
	b, err := r.body()
	if err != nil {
		return nil, err
	}
	var out V3Refund
	call := v3Call{op: "refund", method: "POST", path: "/v3/refund/domestic/refunds", body: b}
	if _, err := c.do(ctx, call, &out); err != nil {
		return nil, err
	}
	if err := checkV3Refund(&out, r.OutRefundNo); err != nil {
		return nil, &TransportError{Op: "v3 refund", Err: err}
	}
	return &out, nil
}

// QueryRefund queries a refund by the merchant's refund number
// (GET /v3/refund/domestic/refunds/{out_refund_no}). An unknown refund is
// an *APIError with Code RESOURCE_NOT_EXISTS (404).
func (c *V3Client) QueryRefund(ctx context.Context, outRefundNo string) (*V3Refund, error) {
	if !validOutNo(outRefundNo, 1, 64, "_-|*@") {
		return nil, fmt.Errorf("wxpay v3 query refund: out_refund_no %q: %w", outRefundNo, ErrV3Request)
	}
	var out V3Refund
	call := v3Call{op: "query refund", method: "GET", path: "/v3/refund/domestic/refunds/" + url.PathEscape(outRefundNo)}
	if _, err := c.do(ctx, call, &out); err != nil {
		return nil, err
	}
	if err := checkV3Refund(&out, outRefundNo); err != nil {
		return nil, &TransportError{Op: "v3 query refund", Err: err}
	}
	return &out, nil
}

// checkV3Refund refuses an answer about another refund or in an unknown
// state.
func checkV3Refund(r *V3Refund, outRefundNo string) error {
	if r.OutRefundNo != outRefundNo {
		return fmt.Errorf("answer for refund %q: %w", r.OutRefundNo, ErrMalformed)
	}
	switch r.Status {
	case V3RefundStatusProcessing, V3RefundStatusSuccess, V3RefundStatusClosed, V3RefundStatusAbnormal:
		return nil
	}
	return fmt.Errorf("refund %q in unknown state %.20q: %w", outRefundNo, r.Status, ErrMalformed)
}
