package wxpay

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"tollgate"
)

// Trade states of an API v3 Transaction (trade_state).
const (
	V3TradeStateSuccess    = "SUCCESS"    // paid (may later become REFUND)
	V3TradeStateRefund     = "REFUND"     // paid, and a refund was requested
	V3TradeStateNotPay     = "NOTPAY"     // not paid yet
	V3TradeStateClosed     = "CLOSED"     // closed or expired (final)
	V3TradeStateRevoked    = "REVOKED"    // micropay only
	V3TradeStateUserPaying = "USERPAYING" // micropay only
	V3TradeStatePayError   = "PAYERROR"   // failed (final)
)

// V3CurrencyCNY is the only currency of WeChat Pay's domestic APIs.
const V3CurrencyCNY = "CNY"

// V3NativeOrderRequest is a Native order (Native下单): the answer's code_url
// is shown as a QR code. AppID and MchID come from the client. Amounts are
// integer fen.
type V3NativeOrderRequest struct {
	// Description is shown to the payer (≤ 127 characters). Required.
	Description string
	// OutTradeNo is the merchant's order number: 6–32 characters of
	// digits, letters and _-|*, unique per merchant. Required.
	OutTradeNo string
	// TimeExpire is the last moment the payer may pay; zero for WeChat's
	// default (7 days). Sent in RFC 3339 at +08:00.
	TimeExpire time.Time
	// Attach is echoed back in queries and notifications (≤ 128 bytes).
	Attach string
	// NotifyURL receives the payment notification. Required.
	NotifyURL string
	// Total is the amount in fen, > 0. Required.
	Total int64
	// PayerClientIP and DeviceID fill scene_info when PayerClientIP is set.
	PayerClientIP string
	DeviceID      string
}

// v3OrderBody is the JSON of a Native order request.
type v3OrderBody struct {
	AppID       string        `json:"appid"`
	MchID       string        `json:"mchid"`
	Description string        `json:"description"`
	OutTradeNo  string        `json:"out_trade_no"`
	TimeExpire  string        `json:"time_expire,omitempty"`
	Attach      string        `json:"attach,omitempty"`
	NotifyURL   string        `json:"notify_url"`
	Amount      V3OrderAmount `json:"amount"`
	SceneInfo   *V3OrderScene `json:"scene_info,omitempty"`
}

// V3OrderAmount is the amount object of an order request.
type V3OrderAmount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"`
}

// V3OrderScene is the scene_info object of an order request.
type V3OrderScene struct {
	PayerClientIP string `json:"payer_client_ip"`
	DeviceID      string `json:"device_id,omitempty"`
}

// validOutNo reports whether s is min–max characters of digits, letters
// and the given extra punctuation.
func validOutNo(s string, min, max int, extra string) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			continue
		}
		ok := false
		for j := 0; j < len(extra); j++ {
			ok = ok || c == extra[j]
		}
		if !ok {
			return false
		}
	}
	return true
}

// body validates r and returns its JSON body.
func (r *V3NativeOrderRequest) body(c *V3Client) (*v3OrderBody, error) {
	switch {
	case c.AppID == "":
		return nil, fmt.Errorf("wxpay v3 native order: AppID not set: %w", ErrV3Request)
	case r.Description == "":
		return nil, fmt.Errorf("wxpay v3 native order: description is required: %w", ErrV3Request)
	case !validOutNo(r.OutTradeNo, 6, 32, "_-|*"):
		return nil, fmt.Errorf("wxpay v3 native order: out_trade_no %q: %w", r.OutTradeNo, ErrV3Request)
	case r.NotifyURL == "":
		return nil, fmt.Errorf("wxpay v3 native order: notify_url is required: %w", ErrV3Request)
	case r.Total <= 0:
		return nil, fmt.Errorf("wxpay v3 native order: amount %d fen is not positive: %w", r.Total, ErrV3Request)
	}
	b := &v3OrderBody{
		AppID: c.AppID, MchID: c.MchID, Description: r.Description, OutTradeNo: r.OutTradeNo,
		Attach: r.Attach, NotifyURL: r.NotifyURL,
		Amount: V3OrderAmount{Total: r.Total, Currency: V3CurrencyCNY},
	}
	if !r.TimeExpire.IsZero() {
		b.TimeExpire = r.TimeExpire.In(tollgate.Beijing).Format(time.RFC3339)
	}
	if r.PayerClientIP != "" {
		b.SceneInfo = &V3OrderScene{PayerClientIP: r.PayerClientIP, DeviceID: r.DeviceID}
	} else if r.DeviceID != "" {
		return nil, fmt.Errorf("wxpay v3 native order: device_id needs payer_client_ip: %w", ErrV3Request)
	}
	return b, nil
}

// NativeOrder places a Native order (POST /v3/pay/transactions/native) and
// returns its code_url, valid 2 hours. Calling it again with the same
// parameters is safe and returns a fresh code_url; the same OutTradeNo with
// other parameters is refused (400 INVALID_REQUEST).
func (c *V3Client) NativeOrder(ctx context.Context, r *V3NativeOrderRequest) (codeURL string, err error) {
	b, err := r.body(c)
	if err != nil {
		return "", err
	}
	var out struct {
		CodeURL string `json:"code_url"`
	}
	call := v3Call{op: "native order", method: "POST", path: "/v3/pay/transactions/native", body: b}
	if _, err := c.do(ctx, call, &out); err != nil {
		return "", err
	}
	if out.CodeURL == "" {
		return "", &TransportError{Op: "v3 native order", Err: fmt.Errorf("answer without code_url: %w", ErrMalformed)}
	}
	return out.CodeURL, nil
}

// V3Transaction is the Transaction object: the answer to an order query and
// the plaintext of a TRANSACTION.SUCCESS notification. Amounts are fen.
type V3Transaction struct {
	AppID          string          `json:"appid"`
	MchID          string          `json:"mchid"`
	OutTradeNo     string          `json:"out_trade_no"`
	TransactionID  string          `json:"transaction_id,omitempty"`
	TradeType      string          `json:"trade_type,omitempty"`
	TradeState     string          `json:"trade_state"`
	TradeStateDesc string          `json:"trade_state_desc,omitempty"`
	BankType       string          `json:"bank_type,omitempty"`
	Attach         string          `json:"attach,omitempty"`
	SuccessTime    string          `json:"success_time,omitempty"` // RFC 3339, set once paid
	Payer          *V3Payer        `json:"payer,omitempty"`
	Amount         V3TxAmount      `json:"amount"`
	SceneInfo      *V3TxScene      `json:"scene_info,omitempty"`
	Promotions     []V3TxPromotion `json:"promotion_detail,omitempty"`
}

// V3Payer identifies the payer.
type V3Payer struct {
	OpenID string `json:"openid"`
}

// V3TxAmount is the amount object of a Transaction. Total is what the order
// asked; PayerTotal what the payer paid after discounts.
type V3TxAmount struct {
	Total         int64  `json:"total"`
	PayerTotal    int64  `json:"payer_total"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

// V3TxScene is the scene_info object of a Transaction.
type V3TxScene struct {
	DeviceID string `json:"device_id"`
}

// V3TxPromotion is one entry of promotion_detail.
type V3TxPromotion struct {
	CouponID string `json:"coupon_id"`
	Name     string `json:"name"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Amount   int64  `json:"amount"`
	StockID  string `json:"stock_id"`
	Currency string `json:"currency"`
}

// Paid reports whether the transaction was paid: SUCCESS, or REFUND (paid,
// then a refund was requested).
func (t *V3Transaction) Paid() bool {
	return t.TradeState == V3TradeStateSuccess || t.TradeState == V3TradeStateRefund
}

// PaidAt parses SuccessTime.
func (t *V3Transaction) PaidAt() (time.Time, error) {
	at, err := time.Parse(time.RFC3339, t.SuccessTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("wxpay v3: success_time %q: %w", t.SuccessTime, ErrMalformed)
	}
	return at, nil
}

// QueryOrder queries an order by the merchant's order number
// (GET /v3/pay/transactions/out-trade-no/{no}?mchid=). An unknown order is
// an *APIError with Code ORDER_NOT_EXIST (404). The answer's mchid, appid
// (when AppID is set) and out_trade_no must be the client's and the one
// asked for, or the answer is a *TransportError wrapping ErrNotOurs and
// ErrMalformed.
func (c *V3Client) QueryOrder(ctx context.Context, outTradeNo string) (*V3Transaction, error) {
	if !validOutNo(outTradeNo, 1, 32, "_-|*") {
		return nil, fmt.Errorf("wxpay v3 query order: out_trade_no %q: %w", outTradeNo, ErrV3Request)
	}
	call := v3Call{
		op: "query order", method: "GET",
		path:  "/v3/pay/transactions/out-trade-no/" + url.PathEscape(outTradeNo),
		query: "mchid=" + url.QueryEscape(c.MchID),
	}
	var t V3Transaction
	if _, err := c.do(ctx, call, &t); err != nil {
		return nil, err
	}
	if t.OutTradeNo != outTradeNo || t.MchID != c.MchID || (c.AppID != "" && t.AppID != c.AppID) {
		return nil, &TransportError{Op: "v3 query order", Err: fmt.Errorf("answer for order %q of %q (appid %q): %w: %w", t.OutTradeNo, t.MchID, t.AppID, ErrNotOurs, ErrMalformed)}
	}
	if t.TradeState == "" {
		return nil, &TransportError{Op: "v3 query order", Err: fmt.Errorf("answer for order %q without trade_state: %w", t.OutTradeNo, ErrMalformed)}
	}
	return &t, nil
}

// QueryOrderByTransactionID queries a paid order by WeChat Pay's
// transaction_id (GET /v3/pay/transactions/id/{transaction_id}?mchid=).
// Unpaid orders have no transaction_id: query them with QueryOrder.
func (c *V3Client) QueryOrderByTransactionID(ctx context.Context, transactionID string) (*V3Transaction, error) {
	if !validOutNo(transactionID, 1, 32, "") {
		return nil, fmt.Errorf("wxpay v3 query order: transaction_id %q: %w", transactionID, ErrV3Request)
	}
	call := v3Call{
		op: "query order", method: "GET",
		path:  "/v3/pay/transactions/id/" + transactionID,
		query: "mchid=" + url.QueryEscape(c.MchID),
	}
	var t V3Transaction
	if _, err := c.do(ctx, call, &t); err != nil {
		return nil, err
	}
	if t.TransactionID != transactionID || t.MchID != c.MchID || (c.AppID != "" && t.AppID != c.AppID) {
		return nil, &TransportError{Op: "v3 query order", Err: fmt.Errorf("answer for transaction %q of %q (appid %q): %w: %w", t.TransactionID, t.MchID, t.AppID, ErrNotOurs, ErrMalformed)}
	}
	if t.TradeState == "" {
		return nil, &TransportError{Op: "v3 query order", Err: fmt.Errorf("answer for transaction %q without trade_state: %w", t.TransactionID, ErrMalformed)}
	}
	return &t, nil
}

// CloseOrder closes an unpaid order
// (POST /v3/pay/transactions/out-trade-no/{no}/close, 204 No Content).
// Closing an order already closed succeeds again; a paid order gives an
// *APIError (ORDER_PAID or similar).
func (c *V3Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	if !validOutNo(outTradeNo, 1, 32, "_-|*") {
		return fmt.Errorf("wxpay v3 close order: out_trade_no %q: %w", outTradeNo, ErrV3Request)
	}
	call := v3Call{
		op: "close order", method: "POST",
		path: "/v3/pay/transactions/out-trade-no/" + url.PathEscape(outTradeNo) + "/close",
		body: struct {
			MchID string `json:"mchid"`
		}{c.MchID},
	}
	_, err := c.do(ctx, call, nil)
	return err
}
