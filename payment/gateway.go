package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tollgate/wxpay"
)

// Gateway is the part of WeChat Pay the order lifecycle needs, over one API
// version. V2Gateway and V3Gateway implement it over wxpay's clients; tests
// may use a fake. Every method may be retried with identical arguments:
// WeChat Pay treats the same out_trade_no / out_refund_no as the same
// order / refund. Errors wrap ErrOrderNotExist, ErrOrderPaid,
// ErrOrderClosed or ErrRefundNotExist where those apply; anything else is
// wxpay's *APIError or *TransportError (see wxpay.IsRetryable).
type Gateway interface {
	// Version returns APIv2 or APIv3.
	Version() string
	// PlaceOrder places an order paid by r.Method and returns what WeChat
	// Pay gave for it (the one field of that method). A method the API
	// version cannot place is refused with a *ParamError.
	PlaceOrder(ctx context.Context, r PlaceRequest) (Placement, error)
	// JSAPIParams signs, with a fresh timestamp and nonce, the parameters a
	// page inside WeChat passes to getBrandWCPayRequest to pay a JSAPI
	// order's prepay_id (API v3 only; no network call).
	JSAPIParams(prepayID string) (wxpay.V3JSAPIParams, error)
	// QueryOrder returns what WeChat Pay says about an order.
	QueryOrder(ctx context.Context, outTradeNo string) (Trade, error)
	// CloseOrder closes an unpaid order; ErrOrderPaid if it was paid.
	CloseOrder(ctx context.Context, outTradeNo string) error
	// Refund asks for a refund (accepted, not yet done).
	Refund(ctx context.Context, r RefundCall) (RefundState, error)
	// QueryRefund returns the state of a refund.
	QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (RefundState, error)
}

// Sentinel errors a Gateway wraps.
var (
	ErrOrderNotExist  = errors.New("payment: order unknown to WeChat Pay")
	ErrOrderPaid      = errors.New("payment: order already paid")
	ErrOrderClosed    = errors.New("payment: order closed at WeChat Pay")
	ErrRefundNotExist = errors.New("payment: refund unknown to WeChat Pay")
)

// PlaceRequest is an order to place. Placing the same request again is
// safe (same OutTradeNo, identical fields).
type PlaceRequest struct {
	// Method is MethodNative, MethodH5 or MethodJSAPI; "" means native.
	Method string
	// OpenID is the payer's openid (MethodJSAPI, required there).
	OpenID      string
	OutTradeNo  string
	Description string
	Fen         int64
	NotifyURL   string
	ClientIP    string // the payer's; MethodH5 requires the real one
	DeviceID    string // device_info (v2) / scene_info.device_id (v3)
	ProductID   string // v2 NATIVE product_id
	ExpiresAt   time.Time
}

// Placement is what WeChat Pay gave for an order it accepted: the field
// of the order's method is set, the others are "".
type Placement struct {
	CodeURL  string // native: the QR code's content
	H5URL    string // h5: the page that opens WeChat to pay
	PrepayID string // jsapi: what getBrandWCPayRequest pays (JSAPIParams)
}

// of returns the field of method ("" if not set).
func (p Placement) of(method string) string {
	switch method {
	case MethodH5:
		return p.H5URL
	case MethodJSAPI:
		return p.PrepayID
	}
	return p.CodeURL
}

// only keeps the field of method.
func (p Placement) only(method string) Placement {
	switch method {
	case MethodH5:
		return Placement{H5URL: p.H5URL}
	case MethodJSAPI:
		return Placement{PrepayID: p.PrepayID}
	}
	return Placement{CodeURL: p.CodeURL}
}

// errNeedsV3 refuses, on API v2, a method only API v3 places here.
func errNeedsV3(method string) error {
	return paramError("method", "method "+method+" needs WeChat Pay API v3 (--wxpay-api-version v3)")
}

// Trade is an order's state at WeChat Pay, from a verified answer.
type Trade struct {
	State         Status
	TransactionID string
	Fen           int64 // total_fee
}

// RefundCall is a refund to ask for.
type RefundCall struct {
	OutTradeNo  string
	OutRefundNo string
	TotalFen    int64
	RefundFen   int64
	NotifyURL   string
}

// RefundState is a refund's state at WeChat Pay.
type RefundState struct {
	Status RefundStatus // pending (accepted, processing, abnormal), succeeded or failed
	Fen    int64        // refund_fee
	Raw    string       // WeChat Pay's own status word
}

// V2Gateway is a Gateway over API v2.
type V2Gateway struct {
	Client *wxpay.V2Client
}

var _ Gateway = (*V2Gateway)(nil)

// Version implements Gateway.
func (g *V2Gateway) Version() string { return APIv2 }

// PlaceOrder implements Gateway with unifiedorder (trade_type NATIVE).
// Only MethodNative: H5 and JSAPI are placed over API v3.
func (g *V2Gateway) PlaceOrder(ctx context.Context, r PlaceRequest) (Placement, error) {
	if r.Method != "" && r.Method != MethodNative {
		return Placement{}, errNeedsV3(r.Method)
	}
	res, err := g.Client.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{
		OutTradeNo: r.OutTradeNo, Body: r.Description, TotalFee: r.Fen, SpbillCreateIP: r.ClientIP,
		NotifyURL: r.NotifyURL, TradeType: wxpay.V2TradeTypeNative, ProductID: r.ProductID,
		DeviceInfo: r.DeviceID, TimeExpire: r.ExpiresAt,
	})
	if err != nil {
		return Placement{}, mapGatewayError("unifiedorder", err)
	}
	return Placement{CodeURL: res.CodeURL}, nil
}

// JSAPIParams implements Gateway: API v2 places no JSAPI order here.
func (g *V2Gateway) JSAPIParams(string) (wxpay.V3JSAPIParams, error) {
	return wxpay.V3JSAPIParams{}, errNeedsV3(MethodJSAPI)
}

// QueryOrder implements Gateway with orderquery.
func (g *V2Gateway) QueryOrder(ctx context.Context, outTradeNo string) (Trade, error) {
	o, err := g.Client.QueryOrder(ctx, wxpay.V2OrderQuery{OutTradeNo: outTradeNo})
	if err != nil {
		return Trade{}, mapGatewayError("orderquery", err)
	}
	if o.OutTradeNo != outTradeNo {
		return Trade{}, fmt.Errorf("payment: orderquery answered for %q, not %q: %w: %w", o.OutTradeNo, outTradeNo, wxpay.ErrNotOurs, wxpay.ErrMalformed)
	}
	return Trade{State: Status(o.TradeState), TransactionID: o.TransactionID, Fen: o.TotalFee}, nil
}

// CloseOrder implements Gateway with closeorder.
func (g *V2Gateway) CloseOrder(ctx context.Context, outTradeNo string) error {
	return mapGatewayError("closeorder", g.Client.CloseOrder(ctx, outTradeNo))
}

// Refund implements Gateway with the refund API.
func (g *V2Gateway) Refund(ctx context.Context, r RefundCall) (RefundState, error) {
	res, err := g.Client.Refund(ctx, &wxpay.V2RefundRequest{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo,
		TotalFee: r.TotalFen, RefundFee: r.RefundFen, NotifyURL: r.NotifyURL})
	if err != nil {
		return RefundState{}, mapGatewayError("refund", err)
	}
	return RefundState{Status: RefundPending, Fen: res.RefundFee, Raw: wxpay.V2RefundStatusProcessing}, nil
}

// QueryRefund implements Gateway with refundquery.
func (g *V2Gateway) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (RefundState, error) {
	res, err := g.Client.QueryRefund(ctx, wxpay.V2RefundQuery{OutRefundNo: outRefundNo})
	if err != nil {
		return RefundState{}, mapGatewayError("refundquery", err)
	}
	if res.OutTradeNo != "" && res.OutTradeNo != outTradeNo {
		return RefundState{}, fmt.Errorf("payment: refundquery answered for order %q, not %q: %w", res.OutTradeNo, outTradeNo, wxpay.ErrMalformed)
	}
	for _, it := range res.Refunds {
		if it.OutRefundNo == outRefundNo {
			return RefundState{Status: v2RefundStatus(it.RefundStatus), Fen: it.RefundFee, Raw: it.RefundStatus}, nil
		}
	}
	return RefundState{}, fmt.Errorf("payment: refundquery %s: %w", outRefundNo, ErrRefundNotExist)
}

func v2RefundStatus(s string) RefundStatus {
	switch s {
	case wxpay.V2RefundStatusSuccess:
		return RefundSucceeded
	case wxpay.V2RefundStatusClose:
		return RefundFailed
	}
	return RefundPending // PROCESSING, CHANGE (abnormal: handled by a person, still not final)
}

// V3Gateway is a Gateway over API v3.
type V3Gateway struct {
	Client *wxpay.V3Client
}

var _ Gateway = (*V3Gateway)(nil)

// Version implements Gateway.
func (g *V3Gateway) Version() string { return APIv3 }

// PlaceOrder implements Gateway with /v3/pay/transactions/native, /h5 or
// /jsapi.
func (g *V3Gateway) PlaceOrder(ctx context.Context, r PlaceRequest) (Placement, error) {
	switch r.Method {
	case "", MethodNative:
		url, err := g.Client.NativeOrder(ctx, &wxpay.V3NativeOrderRequest{
			Description: r.Description, OutTradeNo: r.OutTradeNo, TimeExpire: r.ExpiresAt,
			NotifyURL: r.NotifyURL, Total: r.Fen, PayerClientIP: r.ClientIP, DeviceID: r.DeviceID,
		})
		if err != nil {
			return Placement{}, mapGatewayError("native order", err)
		}
		return Placement{CodeURL: url}, nil
	case MethodH5:
		url, err := g.Client.H5Order(ctx, &wxpay.V3H5OrderRequest{
			Description: r.Description, OutTradeNo: r.OutTradeNo, TimeExpire: r.ExpiresAt,
			NotifyURL: r.NotifyURL, Total: r.Fen, PayerClientIP: r.ClientIP, DeviceID: r.DeviceID,
		})
		if err != nil {
			return Placement{}, mapGatewayError("h5 order", err)
		}
		return Placement{H5URL: url}, nil
	case MethodJSAPI:
		id, err := g.Client.JSAPIOrder(ctx, &wxpay.V3JSAPIOrderRequest{
			Description: r.Description, OutTradeNo: r.OutTradeNo, TimeExpire: r.ExpiresAt,
			NotifyURL: r.NotifyURL, Total: r.Fen, OpenID: r.OpenID, PayerClientIP: r.ClientIP, DeviceID: r.DeviceID,
		})
		if err != nil {
			return Placement{}, mapGatewayError("jsapi order", err)
		}
		return Placement{PrepayID: id}, nil
	}
	return Placement{}, paramError("method", fmt.Sprintf("unknown method %q", r.Method))
}

// JSAPIParams implements Gateway with wxpay's signature of the pay sheet.
func (g *V3Gateway) JSAPIParams(prepayID string) (wxpay.V3JSAPIParams, error) {
	p, err := g.Client.JSAPIParams(prepayID)
	if err != nil {
		return wxpay.V3JSAPIParams{}, fmt.Errorf("payment: jsapi parameters: %w", err)
	}
	return p, nil
}

// QueryOrder implements Gateway.
func (g *V3Gateway) QueryOrder(ctx context.Context, outTradeNo string) (Trade, error) {
	t, err := g.Client.QueryOrder(ctx, outTradeNo)
	if err != nil {
		return Trade{}, mapGatewayError("order query", err)
	}
	if t.Amount.Currency != "" && t.Amount.Currency != wxpay.V3CurrencyCNY {
		return Trade{}, fmt.Errorf("payment: order query: currency %q: %w", t.Amount.Currency, wxpay.ErrMalformed)
	}
	return Trade{State: Status(t.TradeState), TransactionID: t.TransactionID, Fen: t.Amount.Total}, nil
}

// CloseOrder implements Gateway.
func (g *V3Gateway) CloseOrder(ctx context.Context, outTradeNo string) error {
	return mapGatewayError("close order", g.Client.CloseOrder(ctx, outTradeNo))
}

// Refund implements Gateway.
func (g *V3Gateway) Refund(ctx context.Context, r RefundCall) (RefundState, error) {
	res, err := g.Client.Refund(ctx, &wxpay.V3RefundRequest{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo,
		NotifyURL: r.NotifyURL, Refund: r.RefundFen, Total: r.TotalFen})
	if err != nil {
		return RefundState{}, mapGatewayError("refund", err)
	}
	return RefundState{Status: v3RefundStatus(res.Status), Fen: res.Amount.Refund, Raw: res.Status}, nil
}

// QueryRefund implements Gateway.
func (g *V3Gateway) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (RefundState, error) {
	res, err := g.Client.QueryRefund(ctx, outRefundNo)
	if err != nil {
		return RefundState{}, mapGatewayError("refund query", err)
	}
	if res.OutTradeNo != "" && res.OutTradeNo != outTradeNo {
		return RefundState{}, fmt.Errorf("payment: refund query answered for order %q, not %q: %w", res.OutTradeNo, outTradeNo, wxpay.ErrMalformed)
	}
	return RefundState{Status: v3RefundStatus(res.Status), Fen: res.Amount.Refund, Raw: res.Status}, nil
}

func v3RefundStatus(s string) RefundStatus {
	switch s {
	case wxpay.V3RefundStatusSuccess:
		return RefundSucceeded
	case wxpay.V3RefundStatusClosed:
		return RefundFailed
	}
	return RefundPending
}

// mapGatewayError wraps the WeChat Pay codes the lifecycle acts on with
// this package's sentinels, keeping the original error in the chain.
func mapGatewayError(op string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch wxpay.ErrorCode(err) {
	case "ORDERNOTEXIST", "ORDER_NOT_EXIST":
		sentinel = ErrOrderNotExist
	case "ORDERPAID", "ORDER_PAID":
		sentinel = ErrOrderPaid
	case "ORDERCLOSED", "ORDER_CLOSED":
		sentinel = ErrOrderClosed
	case "REFUNDNOTEXIST", "RESOURCE_NOT_EXISTS":
		sentinel = ErrRefundNotExist
	}
	if sentinel != nil {
		return fmt.Errorf("payment: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("payment: %s: %w", op, err)
}
