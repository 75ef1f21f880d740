package wxpay

import (
	"context"
	"fmt"
	"net/netip"
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

// v3OrderBody is the JSON of a Native, H5 or JSAPI order request, in the
// order of WeChat Pay's documentation.
type v3OrderBody struct {
	AppID       string        `json:"appid"`
	MchID       string        `json:"mchid"`
	Description string        `json:"description"`
	OutTradeNo  string        `json:"out_trade_no"`
	TimeExpire  string        `json:"time_expire,omitempty"`
	Attach      string        `json:"attach,omitempty"`
	NotifyURL   string        `json:"notify_url"`
	Amount      V3OrderAmount `json:"amount"`
	Payer       *V3Payer      `json:"payer,omitempty"`
	SceneInfo   *V3OrderScene `json:"scene_info,omitempty"`
}

// V3OrderAmount is the amount object of an order request.
type V3OrderAmount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"`
}

// V3OrderScene is the scene_info object of an order request. H5Info is set
// for H5 orders only.
type V3OrderScene struct {
	PayerClientIP string    `json:"payer_client_ip"`
	DeviceID      string    `json:"device_id,omitempty"`
	H5Info        *V3H5Info `json:"h5_info,omitempty"`
}

// V3H5Info is the scene_info.h5_info object of an H5 order.
type V3H5Info struct {
	// Type is the scene: V3H5TypeWap, V3H5TypeIOS or V3H5TypeAndroid.
	Type string `json:"type"`
}

// Scene types of an H5 order (h5_info.type).
const (
	V3H5TypeWap     = "Wap"     // a mobile web site
	V3H5TypeIOS     = "iOS"     // an iOS app's web view
	V3H5TypeAndroid = "Android" // an Android app's web view
)

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

// v3OrderFields are the fields every order request shares.
type v3OrderFields struct {
	op                      string // "native order", "h5 order", "jsapi order"
	description, outTradeNo string
	notifyURL, attach       string
	total                   int64
	timeExpire              time.Time
	payerClientIP, deviceID string
}

// orderBody validates the shared fields and returns the JSON body they
// make, with scene_info when a client IP is given.
func (c *V3Client) orderBody(f v3OrderFields) (*v3OrderBody, error) {
	switch {
	case c.AppID == "":
		return nil, fmt.Errorf("wxpay v3 %s: AppID not set: %w", f.op, ErrV3Request)
	case f.description == "":
		return nil, fmt.Errorf("wxpay v3 %s: description is required: %w", f.op, ErrV3Request)
	case !validOutNo(f.outTradeNo, 6, 32, "_-|*"):
		return nil, fmt.Errorf("wxpay v3 %s: out_trade_no %q: %w", f.op, f.outTradeNo, ErrV3Request)
	case f.notifyURL == "":
		return nil, fmt.Errorf("wxpay v3 %s: notify_url is required: %w", f.op, ErrV3Request)
	case f.total <= 0:
		return nil, fmt.Errorf("wxpay v3 %s: amount %d fen is not positive: %w", f.op, f.total, ErrV3Request)
	}
	b := &v3OrderBody{
		AppID: c.AppID, MchID: c.MchID, Description: f.description, OutTradeNo: f.outTradeNo,
		Attach: f.attach, NotifyURL: f.notifyURL,
		Amount: V3OrderAmount{Total: f.total, Currency: V3CurrencyCNY},
	}
	if !f.timeExpire.IsZero() {
		b.TimeExpire = f.timeExpire.In(tollgate.Beijing).Format(time.RFC3339)
	}
	if f.payerClientIP != "" {
		b.SceneInfo = &V3OrderScene{PayerClientIP: f.payerClientIP, DeviceID: f.deviceID}
	} else if f.deviceID != "" {
		return nil, fmt.Errorf("wxpay v3 %s: device_id needs payer_client_ip: %w", f.op, ErrV3Request)
	}
	return b, nil
}

// body validates r and returns its JSON body.
func (r *V3NativeOrderRequest) body(c *V3Client) (*v3OrderBody, error) {
	return c.orderBody(v3OrderFields{
		op: "native order", description: r.Description, outTradeNo: r.OutTradeNo,
		notifyURL: r.NotifyURL, attach: r.Attach, total: r.Total, timeExpire: r.TimeExpire,
		payerClientIP: r.PayerClientIP, deviceID: r.DeviceID,
	})
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

// V3H5OrderRequest is an H5 order (H5下单): the payer, in a mobile browser
// outside WeChat, is sent to the answer's h5_url, which opens WeChat to
// pay. AppID and MchID come from the client. Amounts are integer fen.
type V3H5OrderRequest struct {
	// OutTradeNo, Description, NotifyURL, Total and TimeExpire are as in
	// V3NativeOrderRequest.
	OutTradeNo  string
	Description string
	NotifyURL   string
	Total       int64
	// PayerClientIP is the payer's IPv4 or IPv6 address, as WeChat Pay
	// will see the browser's: required, WeChat Pay refuses to pay from
	// another network. DeviceID is optional.
	PayerClientIP string
	DeviceID      string
	TimeExpire    time.Time
	// H5Type is h5_info.type: V3H5TypeWap when empty, or V3H5TypeIOS,
	// V3H5TypeAndroid.
	H5Type string
	// Attach is echoed back in queries and notifications (≤ 128 bytes).
	Attach string
}

// body validates r and returns its JSON body.
func (r *V3H5OrderRequest) body(c *V3Client) (*v3OrderBody, error) {
	const op = "h5 order"
	if r.PayerClientIP == "" {
		return nil, fmt.Errorf("wxpay v3 %s: scene_info.payer_client_ip is required: %w", op, ErrV3Request)
	}
	if _, err := netip.ParseAddr(r.PayerClientIP); err != nil {
		return nil, fmt.Errorf("wxpay v3 %s: payer_client_ip %.64q is not an IP address: %w", op, r.PayerClientIP, ErrV3Request)
	}
	typ := r.H5Type
	switch typ {
	case "":
		typ = V3H5TypeWap
	case V3H5TypeWap, V3H5TypeIOS, V3H5TypeAndroid:
	default:
		return nil, fmt.Errorf("wxpay v3 %s: h5_info.type %.20q is not Wap, iOS or Android: %w", op, r.H5Type, ErrV3Request)
	}
	b, err := c.orderBody(v3OrderFields{
		op: op, description: r.Description, outTradeNo: r.OutTradeNo,
		notifyURL: r.NotifyURL, attach: r.Attach, total: r.Total, timeExpire: r.TimeExpire,
		payerClientIP: r.PayerClientIP, deviceID: r.DeviceID,
	})
	if err != nil {
		return nil, err
	}
	b.SceneInfo.H5Info = &V3H5Info{Type: typ}
	return b, nil
}

// H5Order places an H5 order (POST /v3/pay/transactions/h5) and returns
// its h5_url, valid 5 minutes: send the payer's browser there (append
// "&redirect_url=" and an escaped URL to bring it back after paying). An
// answer whose h5_url is not an absolute http(s) URL is a *TransportError
// wrapping ErrMalformed. Calling it again with the same parameters is safe.
func (c *V3Client) H5Order(ctx context.Context, r *V3H5OrderRequest) (h5URL string, err error) {
	b, err := r.body(c)
	if err != nil {
		return "", err
	}
	var out struct {
		H5URL string `json:"h5_url"`
	}
	call := v3Call{op: "h5 order", method: "POST", path: "/v3/pay/transactions/h5", body: b}
	if _, err := c.do(ctx, call, &out); err != nil {
		return "", err
	}
	if u, err := url.Parse(out.H5URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", &TransportError{Op: "v3 h5 order", Err: fmt.Errorf("answer with h5_url %.80q: %w", out.H5URL, ErrMalformed)}
	}
	return out.H5URL, nil
}

// V3JSAPIOrderRequest is a JSAPI order (JSAPI下单): the payer pays inside
// WeChat, on a page of the Official Account AppID that calls
// WeixinJSBridge with JSAPIParams. Amounts are integer fen.
type V3JSAPIOrderRequest struct {
	// OutTradeNo, Description, NotifyURL, Total and TimeExpire are as in
	// V3NativeOrderRequest.
	OutTradeNo  string
	Description string
	NotifyURL   string
	Total       int64
	// OpenID is the payer's openid under AppID (from OAuthClient.OpenID):
	// required, ≤ 128 characters.
	OpenID string
	// PayerClientIP and DeviceID fill scene_info when PayerClientIP is set.
	PayerClientIP string
	DeviceID      string
	TimeExpire    time.Time
	// Attach is echoed back in queries and notifications (≤ 128 bytes).
	Attach string
}

// body validates r and returns its JSON body.
func (r *V3JSAPIOrderRequest) body(c *V3Client) (*v3OrderBody, error) {
	const op = "jsapi order"
	if r.OpenID == "" || len(r.OpenID) > 128 {
		return nil, fmt.Errorf("wxpay v3 %s: payer.openid is required (1–128 characters): %w", op, ErrV3Request)
	}
	b, err := c.orderBody(v3OrderFields{
		op: op, description: r.Description, outTradeNo: r.OutTradeNo,
		notifyURL: r.NotifyURL, attach: r.Attach, total: r.Total, timeExpire: r.TimeExpire,
		payerClientIP: r.PayerClientIP, deviceID: r.DeviceID,
	})
	if err != nil {
		return nil, err
	}
	b.Payer = &V3Payer{OpenID: r.OpenID}
	return b, nil
}

// JSAPIOrder places a JSAPI order (POST /v3/pay/transactions/jsapi) and
// returns its prepay_id, valid 2 hours; JSAPIParams turns it into the
// parameters of the payment sheet. Calling it again with the same
// parameters is safe.
func (c *V3Client) JSAPIOrder(ctx context.Context, r *V3JSAPIOrderRequest) (prepayID string, err error) {
	b, err := r.body(c)
	if err != nil {
		return "", err
	}
	var out struct {
		PrepayID string `json:"prepay_id"`
	}
	call := v3Call{op: "jsapi order", method: "POST", path: "/v3/pay/transactions/jsapi", body: b}
	if _, err := c.do(ctx, call, &out); err != nil {
		return "", err
	}
	if !validPrepayID(out.PrepayID) {
		return "", &TransportError{Op: "v3 jsapi order", Err: fmt.Errorf("answer with prepay_id %.80q: %w", out.PrepayID, ErrMalformed)}
	}
	return out.PrepayID, nil
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
