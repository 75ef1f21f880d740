package wxpaysim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"tollgate"
)

// Trade states (trade_state), shared by v2 and v3.
const (
	StateNotPay     = "NOTPAY"
	StateUserPaying = "USERPAYING"
	StateSuccess    = "SUCCESS"
	StateClosed     = "CLOSED"
	StateRefund     = "REFUND"
	StatePayError   = "PAYERROR"
)

// Refund statuses. v2 and v3 share PROCESSING and SUCCESS.
const (
	RefundProcessing = "PROCESSING"
	RefundSuccess    = "SUCCESS"
)

// Errors returned by the simulation methods (Pay, Fail, CompleteRefund).
var (
	ErrNotFound   = errors.New("wxpaysim: no such order or refund")
	ErrWrongState = errors.New("wxpaysim: not allowed in the current state")
)

// Order is the emulator's ground truth about one order, as returned by
// Orders and GET /sim/orders. Amounts are in fen.
type Order struct {
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id,omitempty"`
	APIVersion    int    `json:"api_version"`
	Sandbox       bool   `json:"sandbox,omitempty"`
	SignType      string `json:"sign_type,omitempty"` // v2: the order's sign type
	TradeType     string `json:"trade_type"`
	AppID         string `json:"appid"`
	MchID         string `json:"mch_id"`
	Description   string `json:"description"`
	Attach        string `json:"attach,omitempty"`
	NotifyURL     string `json:"notify_url"`
	DeviceInfo    string `json:"device_info,omitempty"`
	OpenID        string `json:"openid,omitempty"`
	// PayerClientIP is the payer's IP the merchant sent (v2
	// spbill_create_ip, v3 scene_info.payer_client_ip).
	PayerClientIP string `json:"payer_client_ip,omitempty"`
	// H5Type is scene_info.h5_info.type of an H5 (MWEB) order.
	H5Type    string    `json:"h5_type,omitempty"`
	Total     int64     `json:"total_fee"`
	Currency  string    `json:"currency"`
	State     string    `json:"trade_state"`
	CodeURL   string    `json:"code_url,omitempty"`
	PrepayID  string    `json:"prepay_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	PaidAt    time.Time `json:"paid_at,omitzero"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Refunded  int64     `json:"refunded_fee"` // Σ accepted refunds
	Refunds   []Refund  `json:"refunds,omitempty"`
}

// Refund is the emulator's ground truth about one refund.
type Refund struct {
	OutRefundNo   string    `json:"out_refund_no"`
	RefundID      string    `json:"refund_id"`
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	APIVersion    int       `json:"api_version"`
	Amount        int64     `json:"refund_fee"`
	Total         int64     `json:"total_fee"`
	Status        string    `json:"status"`
	NotifyURL     string    `json:"notify_url,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	SuccessAt     time.Time `json:"success_at,omitzero"`
}

type order struct {
	Order
	fingerprint string // identical re-entry check
	refundNos   []string
}

type refund struct {
	Refund
	sandbox     bool
	fingerprint string
}

// bizErr is a business failure, with its spelling in both API versions.
type bizErr struct {
	v2Code string
	v3Code string
	status int // v3 HTTP status
	msg    string
	field  string // v3 detail.field (JSON pointer or parameter name)
}

func (e *bizErr) Error() string { return e.v2Code + ": " + e.msg }

var (
	errOrderNotExist  = &bizErr{"ORDERNOTEXIST", "ORDER_NOT_EXIST", 404, "订单不存在", ""}
	errDuplicateOrder = &bizErr{"INVALID_REQUEST", "INVALID_REQUEST", 400, "201 商户订单号重复", ""}
	errOrderPaid      = &bizErr{"ORDERPAID", "ORDERPAID", 400, "该订单已支付", ""}
	errOrderClosed    = &bizErr{"ORDERCLOSED", "ORDER_CLOSED", 400, "订单已关闭", ""}
	errRefundNotExist = &bizErr{"REFUNDNOTEXIST", "RESOURCE_NOT_EXISTS", 404, "退款单不存在", ""}
	errRefundUnpaid   = &bizErr{"ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", 404, "订单号不存在或订单未支付", ""}
	errNotEnough      = &bizErr{"NOTENOUGH", "INVALID_REQUEST", 400, "申请退款金额超过订单可退金额", ""}
	errRefundMismatch = &bizErr{"INVALID_REQUEST", "INVALID_REQUEST", 400, "同一退款单号的请求参数与原请求不一致", ""}
	errSystem         = &bizErr{"SYSTEMERROR", "SYSTEM_ERROR", 500, "系统错误", ""}
)

func paramError(field, msg string) *bizErr {
	return &bizErr{"PARAM_ERROR", "PARAM_ERROR", 400, msg, field}
}

func lackParams(field string) *bizErr {
	return &bizErr{"LACK_PARAMS", "PARAM_ERROR", 400, "缺少参数" + field, field}
}

// orderReq is a validated order request, either version.
type orderReq struct {
	version     int
	sandbox     bool
	signType    string
	tradeType   string
	description string
	attach      string
	notifyURL   string
	deviceInfo  string
	openID      string
	clientIP    string
	h5Type      string
	total       int64
	currency    string
	timeExpire  time.Time // zero: OrderTTL
	fingerprint string
}

// createOrder places an order, or answers a re-entry of the same
// out_trade_no: identical parameters get the same order (and code_url),
// different ones "201 商户订单号重复".
func (s *Server) createOrder(no string, req orderReq) (Order, *bizErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked(s.clockSkew)
	if o, ok := s.orders[no]; ok {
		s.expireLocked(o, now)
		if o.Sandbox != req.sandbox || o.fingerprint != req.fingerprint {
			return Order{}, errDuplicateOrder
		}
		switch o.State {
		case StateSuccess, StateRefund:
			return Order{}, errOrderPaid
		case StateClosed:
			return Order{}, errOrderClosed
		}
		return s.viewLocked(o), nil
	}
	ttl := s.OrderTTL
	if ttl <= 0 {
		ttl = DefaultOrderTTL
	}
	exp := now.Add(ttl)
	if !req.timeExpire.IsZero() {
		exp = req.timeExpire
		if lo := now.Add(time.Minute); exp.Before(lo) {
			exp = lo
		}
		if hi := now.Add(90 * 24 * time.Hour); exp.After(hi) {
			exp = hi
		}
	}
	o := &order{fingerprint: req.fingerprint}
	o.Order = Order{
		OutTradeNo: no, APIVersion: req.version, Sandbox: req.sandbox, SignType: req.signType,
		TradeType: req.tradeType, AppID: s.AppID, MchID: s.MchID, Description: req.description,
		Attach: req.attach, NotifyURL: req.notifyURL, DeviceInfo: req.deviceInfo, OpenID: req.openID,
		PayerClientIP: req.clientIP, H5Type: req.h5Type, Total: req.total, Currency: req.currency, State: StateNotPay,
		CreatedAt: now, ExpiresAt: exp,
		PrepayID: "wx" + now.In(tollgate.Beijing).Format("20060102150405") + randDigits(20),
	}
	if req.tradeType == "NATIVE" {
		o.CodeURL = "weixin://wxpay/bizpayurl?pr=" + randAlnum(9)
	}
	s.orders[no] = o
	s.byPrepay[o.PrepayID] = o
	s.orderSeq = append(s.orderSeq, no)
	return s.viewLocked(o), nil
}

// expireLocked turns an unpaid order past its payable window into CLOSED.
func (s *Server) expireLocked(o *order, now time.Time) {
	if (o.State == StateNotPay || o.State == StateUserPaying) && !now.Before(o.ExpiresAt) {
		o.State = StateClosed
		o.ClosedAt = o.ExpiresAt
	}
}

// lookupLocked finds an order by out_trade_no or, when no is empty, by
// transaction_id, in the given environment (sandbox or not).
func (s *Server) lookupLocked(no, txID string, sandbox bool) *order {
	var o *order
	if no != "" {
		o = s.orders[no]
	} else if txID != "" {
		o = s.byTxID[txID]
	}
	if o == nil || o.Sandbox != sandbox {
		return nil
	}
	s.expireLocked(o, s.nowLocked(s.clockSkew))
	return o
}

// queryOrder returns the order as the query APIs see it.
func (s *Server) queryOrder(no, txID string, sandbox bool) (Order, *bizErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.lookupLocked(no, txID, sandbox)
	if o == nil {
		return Order{}, errOrderNotExist
	}
	return s.viewLocked(o), nil
}

// closeOrder closes an unpaid order. Closing a closed order is ORDERCLOSED
// for v2 and a no-op success for v3 (which answers 204 either way).
func (s *Server) closeOrder(no string, version int, sandbox bool) *bizErr {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.lookupLocked(no, "", sandbox)
	if o == nil {
		return errOrderNotExist
	}
	switch o.State {
	case StateSuccess, StateRefund:
		return errOrderPaid
	case StateClosed:
		if version == 2 {
			return errOrderClosed
		}
		return nil
	}
	o.State = StateClosed
	o.ClosedAt = s.nowLocked(s.clockSkew)
	return nil
}

// Pay acts as the user scanning the code and paying: the order becomes
// SUCCESS, gets a transaction_id, and its notification is queued. Errors:
// ErrNotFound, ErrWrongState (not NOTPAY/USERPAYING, or expired).
func (s *Server) Pay(outTradeNo string) (Order, error) {
	return s.pay(outTradeNo, false)
}

// PayLate pays like Pay but also a CLOSED order (closed or expired, never
// refunded): it models a payment the user completed just before the close
// took effect, which WeChat Pay then reports as SUCCESS (docs/DESIGN.md §7.2 F3;
// docs/WECHATPAY.md §4). The merchant must credit it or refund it.
func (s *Server) PayLate(outTradeNo string) (Order, error) {
	return s.pay(outTradeNo, true)
}

func (s *Server) pay(outTradeNo string, late bool) (Order, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[outTradeNo]
	if o == nil {
		return Order{}, fmt.Errorf("pay %q: %w", outTradeNo, ErrNotFound)
	}
	now := s.nowLocked(s.clockSkew)
	s.expireLocked(o, now)
	payable := o.State == StateNotPay || o.State == StateUserPaying || (late && o.State == StateClosed)
	if !payable {
		return s.viewLocked(o), fmt.Errorf("pay %q in state %s: %w", outTradeNo, o.State, ErrWrongState)
	}
	o.State = StateSuccess
	o.PaidAt = now
	o.ClosedAt = time.Time{}
	o.TransactionID = s.newTransactionIDLocked(now)
	s.byTxID[o.TransactionID] = o
	if o.OpenID == "" {
		o.OpenID = newOpenID()
	}
	s.queuePaymentLocked(o)
	return s.viewLocked(o), nil
}

// Fail makes the user's payment fail: NOTPAY or USERPAYING becomes
// PAYERROR; nothing is notified (WeChat Pay notifies successes only).
func (s *Server) Fail(outTradeNo string) (Order, error) {
	return s.transition(outTradeNo, StatePayError)
}

// UserPaying puts a NOTPAY order in USERPAYING (the user is entering the
// password); Pay or Fail ends it.
func (s *Server) UserPaying(outTradeNo string) (Order, error) {
	return s.transition(outTradeNo, StateUserPaying)
}

func (s *Server) transition(no, to string) (Order, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[no]
	if o == nil {
		return Order{}, fmt.Errorf("%s %q: %w", to, no, ErrNotFound)
	}
	s.expireLocked(o, s.nowLocked(s.clockSkew))
	if o.State != StateNotPay && !(o.State == StateUserPaying && to == StatePayError) {
		return s.viewLocked(o), fmt.Errorf("%s %q in state %s: %w", to, no, o.State, ErrWrongState)
	}
	o.State = to
	return s.viewLocked(o), nil
}

// Orders returns every order in creation order, with its refunds.
func (s *Server) Orders() []Order {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked(s.clockSkew)
	out := make([]Order, 0, len(s.orderSeq))
	for _, no := range s.orderSeq {
		o := s.orders[no]
		s.expireLocked(o, now)
		out = append(out, s.viewLocked(o))
	}
	return out
}

// Order returns one order (ErrNotFound if unknown).
func (s *Server) Order(outTradeNo string) (Order, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[outTradeNo]
	if o == nil {
		return Order{}, fmt.Errorf("order %q: %w", outTradeNo, ErrNotFound)
	}
	s.expireLocked(o, s.nowLocked(s.clockSkew))
	return s.viewLocked(o), nil
}

func (s *Server) viewLocked(o *order) Order {
	v := o.Order
	v.Refunds = nil
	for _, no := range o.refundNos {
		v.Refunds = append(v.Refunds, s.refunds[no].Refund)
	}
	return v
}

func (s *Server) newTransactionIDLocked(now time.Time) string {
	for {
		id := "4200" + now.In(tollgate.Beijing).Format("20060102") + randDigits(16)
		if !s.txIDUsedLocked(id) {
			return id
		}
	}
}

func (s *Server) txIDUsedLocked(id string) bool {
	_, used := s.byTxID[id]
	return used
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randAlnum returns n random characters [0-9A-Za-z] from crypto/rand. Ids
// and nonces are random, not seeded: they must differ across restarts.
func randAlnum(n int) string { return randFrom(alnum, n) }

func randDigits(n int) string { return randFrom(alnum[:10], n) }

func randFrom(chars string, n int) string {
	b := make([]byte, n)
	limit := big.NewInt(int64(len(chars)))
	for i := range b {
		v, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic(fmt.Sprintf("wxpaysim: crypto/rand: %v", err))
		}
		b[i] = chars[v.Int64()]
	}
	return string(b)
}
