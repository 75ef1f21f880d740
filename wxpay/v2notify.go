package wxpay

import (
	"context"
	"fmt"
)

// V2PaymentNotification is a verified v2 payment result notification
// (支付结果通知). WeChat Pay sends it only for paid orders, but ResultCode
// must still be checked. The receiver must also check that AppID and MchID
// are its own, that the order exists and that TotalFee equals the order's
// amount before crediting anything.
type V2PaymentNotification struct {
	AppID         string
	MchID         string
	OutTradeNo    string
	TransactionID string
	TotalFee      int64 // fen
	CashFee       int64 // fen
	FeeType       string
	ResultCode    string // SUCCESS or FAIL
	ErrCode       string
	ErrCodeDes    string
	TimeEnd       string // yyyyMMddHHmmss, Beijing time
	NonceStr      string
	TradeType     string
	OpenID        string
	Attach        string
	BankType      string
}

// ParseV2PaymentNotification decodes a payment notification body with
// DecodeV2XML, verifies its signature with key and signType (the sign type
// the order was placed with; "" picks it by the signature's length, since
// these notifications usually omit sign_type) and returns its typed fields
// together with the verified map. Both come from the same parsed map, so
// what was verified is what is acted on.
//
// Errors wrap ErrMalformed or ErrBodyTooLarge (undecodable), ErrNotSigned
// or ErrBadSignature (forged or for another key; answer FAIL), or
// ErrMalformed for a verified body that lacks a required field or has an
// amount that is not a non-negative integer.
func ParseV2PaymentNotification(body []byte, key, signType string) (*V2PaymentNotification, map[string]string, error) {
	m, err := DecodeV2XML(body)
	if err != nil {
		return nil, nil, fmt.Errorf("payment notification: %w", err)
	}
	if err := VerifyV2(m, signType, key); err != nil {
		return nil, nil, fmt.Errorf("payment notification: %w", err)
	}
	if m["return_code"] != "SUCCESS" {
		return nil, nil, fmt.Errorf("payment notification: return_code %q: %w", m["return_code"], ErrMalformed)
	}
	required := []string{"appid", "mch_id", "out_trade_no", "total_fee", "result_code"}
	if m["result_code"] == "SUCCESS" {
		required = append(required, "transaction_id")
	}
	for _, f := range required {
		if m[f] == "" {
			return nil, nil, fmt.Errorf("payment notification: no %s: %w", f, ErrMalformed)
		}
	}
	n := &V2PaymentNotification{
		AppID: m["appid"], MchID: m["mch_id"], OutTradeNo: m["out_trade_no"],
		TransactionID: m["transaction_id"], FeeType: m["fee_type"],
		ResultCode: m["result_code"], ErrCode: m["err_code"], ErrCodeDes: m["err_code_des"],
		TimeEnd: m["time_end"], NonceStr: m["nonce_str"], TradeType: m["trade_type"],
		OpenID: m["openid"], Attach: m["attach"], BankType: m["bank_type"],
	}
	if err := fenFields(m, map[string]*int64{"total_fee": &n.TotalFee, "cash_fee": &n.CashFee}); err != nil {
		return nil, nil, fmt.Errorf("payment notification: %w", err)
	}
	return n, m, nil
}

// V2RefundNotification is a v2 refund result notification (退款结果通知)
// with its req_info decrypted. Its envelope is not signed; req_info, which
// only the holder of the API key can produce, is what authenticates it.
// AES-ECB has no integrity check, so the receiver must match OutRefundNo to
// a refund it asked for, and compare RefundFee with it, before acting.
type V2RefundNotification struct {
	AppID    string // envelope
	MchID    string // envelope
	NonceStr string // envelope

	TransactionID       string
	OutTradeNo          string
	RefundID            string
	OutRefundNo         string
	TotalFee            int64  // fen
	SettlementTotalFee  int64  // fen
	RefundFee           int64  // fen
	SettlementRefundFee int64  // fen
	CashRefundFee       int64  // fen
	RefundStatus        string // SUCCESS, CHANGE or REFUNDCLOSE
	SuccessTime         string // yyyy-MM-dd HH:mm:ss
	RefundRecvAccout    string // sic
	RefundAccount       string
	RefundRequestSource string
}

// ParseV2RefundNotification decodes a refund notification body, decrypts
// its req_info with apiKey (see DecryptV2RefundReqInfo) and returns the
// typed result and the decrypted map. A req_info that is missing is
// ErrNotSigned; one that does not decrypt under apiKey is both
// ErrBadSignature (treat it as forged) and ErrMalformed.
func ParseV2RefundNotification(body []byte, apiKey string) (*V2RefundNotification, map[string]string, error) {
	env, err := DecodeV2XML(body)
	if err != nil {
		return nil, nil, fmt.Errorf("refund notification: %w", err)
	}
	if env["return_code"] != "SUCCESS" {
		return nil, nil, fmt.Errorf("refund notification: return_code %q: %w", env["return_code"], ErrMalformed)
	}
	if env["req_info"] == "" {
		return nil, nil, fmt.Errorf("refund notification: no req_info: %w", ErrNotSigned)
	}
	m, err := DecryptV2RefundReqInfo(env["req_info"], apiKey)
	if err != nil {
		return nil, nil, fmt.Errorf("refund notification: %w: %w", ErrBadSignature, err)
	}
	for _, f := range []string{"out_refund_no", "refund_status", "refund_fee"} {
		if m[f] == "" {
			return nil, nil, fmt.Errorf("refund notification: req_info without %s: %w", f, ErrMalformed)
		}
	}
	n := &V2RefundNotification{
		AppID: env["appid"], MchID: env["mch_id"], NonceStr: env["nonce_str"],
		TransactionID: m["transaction_id"], OutTradeNo: m["out_trade_no"],
		RefundID: m["refund_id"], OutRefundNo: m["out_refund_no"],
		RefundStatus: m["refund_status"], SuccessTime: m["success_time"],
		RefundRecvAccout: m["refund_recv_accout"], RefundAccount: m["refund_account"],
		RefundRequestSource: m["refund_request_source"],
	}
	err = fenFields(m, map[string]*int64{
		"total_fee": &n.TotalFee, "settlement_total_fee": &n.SettlementTotalFee,
		"refund_fee": &n.RefundFee, "settlement_refund_fee": &n.SettlementRefundFee,
		"cash_refund_fee": &n.CashRefundFee,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("refund notification: %w", err)
	}
	return n, m, nil
}

// ParsePaymentNotification is ParseV2PaymentNotification for this client's
// merchant: it verifies with the client's key (the sandbox key in sandbox
// mode) and signType ("" picks by length), then refuses a notification for
// another appid or mch_id with ErrV2NotOurs. The caller still checks the
// order and its amount.
func (c *V2Client) ParsePaymentNotification(ctx context.Context, body []byte, signType string) (*V2PaymentNotification, map[string]string, error) {
	key, err := c.key(ctx)
	if err != nil {
		return nil, nil, err
	}
	n, m, err := ParseV2PaymentNotification(body, key, signType)
	if err != nil {
		return nil, nil, err
	}
	if n.AppID != c.AppID || n.MchID != c.MchID {
		return nil, nil, fmt.Errorf("payment notification for appid %q mch_id %q: %w", n.AppID, n.MchID, ErrV2NotOurs)
	}
	return n, m, nil
}

// ParseRefundNotification is ParseV2RefundNotification for this client's
// merchant: it decrypts with the client's key (the sandbox key in sandbox
// mode) and refuses an envelope for another appid or mch_id with
// ErrV2NotOurs. The caller still matches the refund to one it asked for.
func (c *V2Client) ParseRefundNotification(ctx context.Context, body []byte) (*V2RefundNotification, map[string]string, error) {
	key, err := c.key(ctx)
	if err != nil {
		return nil, nil, err
	}
	n, m, err := ParseV2RefundNotification(body, key)
	if err != nil {
		return nil, nil, err
	}
	if n.AppID != c.AppID || n.MchID != c.MchID {
		return nil, nil, fmt.Errorf("refund notification for appid %q mch_id %q: %w", n.AppID, n.MchID, ErrV2NotOurs)
	}
	return n, m, nil
}
