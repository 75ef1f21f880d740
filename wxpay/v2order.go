package wxpay

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"tollgate"
)

// Trade types of API v2 unifiedorder.
const (
	V2TradeTypeNative = "NATIVE" // QR code (code_url); needs ProductID
	V2TradeTypeJSAPI  = "JSAPI"  // inside WeChat; needs OpenID
)

// Trade states reported by API v2 orderquery (trade_state).
const (
	V2TradeStateSuccess    = "SUCCESS"    // paid (final; may later become REFUND)
	V2TradeStateRefund     = "REFUND"     // a refund was requested
	V2TradeStateNotPay     = "NOTPAY"     // not paid yet
	V2TradeStateClosed     = "CLOSED"     // closed or expired (final)
	V2TradeStateRevoked    = "REVOKED"    // micropay only
	V2TradeStateUserPaying = "USERPAYING" // micropay only
	V2TradeStatePayError   = "PAYERROR"   // micropay only (final)
)

// V2UnifiedOrderRequest is a unifiedorder (统一下单) request. Amounts are
// integer fen. Optional fields are omitted when zero.
type V2UnifiedOrderRequest struct {
	OutTradeNo     string // 6-32 characters, unique per merchant (required)
	Body           string // product description (required)
	TotalFee       int64  // fen, > 0 (required)
	SpbillCreateIP string // client IP; for NATIVE the calling server's (required)
	NotifyURL      string // absolute URL of the payment notification (required)
	TradeType      string // V2TradeTypeNative or V2TradeTypeJSAPI (required)
	ProductID      string // required for NATIVE
	OpenID         string // required for JSAPI
	Attach         string // echoed in query and notification
	Detail         string // JSON string
	DeviceInfo     string
	FeeType        string    // CNY when empty
	TimeStart      time.Time // sent in Beijing time when set
	TimeExpire     time.Time // sent in Beijing time when set
	GoodsTag       string
	LimitPay       string // "no_credit"
	SceneInfo      string // JSON string
}

// V2UnifiedOrderResponse is the answer of a successful unifiedorder.
type V2UnifiedOrderResponse struct {
	TradeType string
	PrepayID  string // valid 2 hours
	CodeURL   string // NATIVE: render as a QR code; valid 2 hours
	MWebURL   string // MWEB only
	// Raw is the whole verified answer.
	Raw map[string]string
}

// params checks r and returns its API parameters.
func (r *V2UnifiedOrderRequest) params() (map[string]string, error) {
	missing := func(f string) error { return fmt.Errorf("%w: unifiedorder needs %s", ErrV2Request, f) }
	switch {
	case r.OutTradeNo == "":
		return nil, missing("out_trade_no")
	case r.Body == "":
		return nil, missing("body")
	case r.TotalFee <= 0:
		return nil, fmt.Errorf("%w: total_fee %d is not positive", ErrV2Request, r.TotalFee)
	case r.SpbillCreateIP == "":
		return nil, missing("spbill_create_ip")
	case r.NotifyURL == "":
		return nil, missing("notify_url")
	case r.TradeType == V2TradeTypeNative && r.ProductID == "":
		return nil, missing("product_id for NATIVE")
	case r.TradeType == V2TradeTypeJSAPI && r.OpenID == "":
		return nil, missing("openid for JSAPI")
	case r.TradeType != V2TradeTypeNative && r.TradeType != V2TradeTypeJSAPI:
		return nil, fmt.Errorf("%w: trade_type %q is not NATIVE or JSAPI", ErrV2Request, r.TradeType)
	}
	p := map[string]string{
		"out_trade_no":     r.OutTradeNo,
		"body":             r.Body,
		"total_fee":        strconv.FormatInt(r.TotalFee, 10),
		"spbill_create_ip": r.SpbillCreateIP,
		"notify_url":       r.NotifyURL,
		"trade_type":       r.TradeType,
		"product_id":       r.ProductID,
		"openid":           r.OpenID,
		"attach":           r.Attach,
		"detail":           r.Detail,
		"device_info":      r.DeviceInfo,
		"fee_type":         r.FeeType,
		"goods_tag":        r.GoodsTag,
		"limit_pay":        r.LimitPay,
		"scene_info":       r.SceneInfo,
	}
	if !r.TimeStart.IsZero() {
		p["time_start"] = r.TimeStart.In(tollgate.Beijing).Format("20060102150405")
	}
	if !r.TimeExpire.IsZero() {
		p["time_expire"] = r.TimeExpire.In(tollgate.Beijing).Format("20060102150405")
	}
	return p, nil
}

// UnifiedOrder places an order (POST /pay/unifiedorder). Sending the same
// OutTradeNo again with identical parameters is safe and returns a fresh
// code_url; with other parameters WeChat Pay answers INVALID_REQUEST
// ("201 商户订单号重复"). An order already paid answers ORDERPAID.
func (c *V2Client) UnifiedOrder(ctx context.Context, r *V2UnifiedOrderRequest) (*V2UnifiedOrderResponse, error) {
	p, err := r.params()
	if err != nil {
		return nil, err
	}
	m, err := c.do(ctx, v2Call{op: "unifiedorder", path: "/pay/unifiedorder"}, p)
	if err != nil {
		return nil, err
	}
	resp := &V2UnifiedOrderResponse{
		TradeType: m["trade_type"], PrepayID: m["prepay_id"],
		CodeURL: m["code_url"], MWebURL: m["mweb_url"], Raw: m,
	}
	if r.TradeType == V2TradeTypeNative && resp.CodeURL == "" {
		return nil, &TransportError{Op: "unifiedorder", Err: fmt.Errorf("NATIVE answer without code_url: %w", ErrMalformed)}
	}
	return resp, nil
}

// V2OrderQuery names the order to query: TransactionID (WeChat's number,
// preferred when both are set) or OutTradeNo (ours).
type V2OrderQuery struct {
	TransactionID string
	OutTradeNo    string
}

// V2Order is the state of an order as orderquery reports it. Fields tied to
// the payment (TransactionID, OpenID, TimeEnd, CashFee, BankType) are empty
// until TradeState is SUCCESS.
type V2Order struct {
	TradeState     string // see V2TradeState*
	TradeStateDesc string
	OutTradeNo     string
	TransactionID  string
	TradeType      string
	OpenID         string
	BankType       string
	FeeType        string
	Attach         string
	TimeEnd        string // yyyyMMddHHmmss, Beijing time
	TotalFee       int64  // fen
	CashFee        int64  // fen
	// Raw is the whole verified answer.
	Raw map[string]string
}

// QueryOrder asks for an order's state (POST /pay/orderquery). An order
// unknown to WeChat Pay answers ORDERNOTEXIST.
func (c *V2Client) QueryOrder(ctx context.Context, q V2OrderQuery) (*V2Order, error) {
	if q.TransactionID == "" && q.OutTradeNo == "" {
		return nil, fmt.Errorf("%w: orderquery needs transaction_id or out_trade_no", ErrV2Request)
	}
	p := map[string]string{"transaction_id": q.TransactionID}
	if q.TransactionID == "" {
		p = map[string]string{"out_trade_no": q.OutTradeNo}
	}
	m, err := c.do(ctx, v2Call{op: "orderquery", path: "/pay/orderquery"}, p)
	if err != nil {
		return nil, err
	}
	o := &V2Order{
		TradeState: m["trade_state"], TradeStateDesc: m["trade_state_desc"],
		OutTradeNo: m["out_trade_no"], TransactionID: m["transaction_id"],
		TradeType: m["trade_type"], OpenID: m["openid"], BankType: m["bank_type"],
		FeeType: m["fee_type"], Attach: m["attach"], TimeEnd: m["time_end"], Raw: m,
	}
	if err := fenFields(m, map[string]*int64{"total_fee": &o.TotalFee, "cash_fee": &o.CashFee}); err != nil {
		return nil, &TransportError{Op: "orderquery", Err: err}
	}
	if o.TradeState == "" {
		return nil, &TransportError{Op: "orderquery", Err: fmt.Errorf("answer without trade_state: %w", ErrMalformed)}
	}
	return o, nil
}

// CloseOrder closes an unpaid order (POST /pay/closeorder). WeChat Pay
// answers ORDERPAID for a paid order (treat it as paid) and ORDERCLOSED for
// one already closed.
func (c *V2Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	if outTradeNo == "" {
		return fmt.Errorf("%w: closeorder needs out_trade_no", ErrV2Request)
	}
	_, err := c.do(ctx, v2Call{op: "closeorder", path: "/pay/closeorder"}, map[string]string{"out_trade_no": outTradeNo})
	return err
}
