package wxpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Event types of API v3 notifications.
const (
	V3EventTransactionSuccess = "TRANSACTION.SUCCESS"
	V3EventRefundSuccess      = "REFUND.SUCCESS"
	V3EventRefundAbnormal     = "REFUND.ABNORMAL"
	V3EventRefundClosed       = "REFUND.CLOSED"
)

// v3ResourceType is the resource_type of every encrypted notification.
const v3ResourceType = "encrypt-resource"

// V3Notification is a verified and decrypted API v3 notification. Only a
// notification whose signature verified is ever returned; Plaintext is the
// decrypted resource, to be decoded with Transaction or Refund.
type V3Notification struct {
	ID           string     `json:"id"`
	CreateTime   string     `json:"create_time"`
	EventType    string     `json:"event_type"`
	ResourceType string     `json:"resource_type"`
	Summary      string     `json:"summary"`
	Resource     V3Resource `json:"resource"`
	// Serial is the Wechatpay-Serial whose key signed the notification.
	Serial string `json:"-"`
	// Plaintext is the decrypted resource (UTF-8 JSON).
	Plaintext []byte `json:"-"`
}

// ParseV3Notification verifies and decrypts an API v3 notification: h are
// the request headers, body the exact bytes received (read with a limit of
// MaxBodyBytes; a longer body is refused with ErrBodyTooLarge).
//
// The signature headers are checked first, before the body is even parsed:
// a probe (ErrSignatureProbe), a missing signature (ErrNotSigned), a
// timestamp outside the window (ErrTooOld), an unknown serial
// (ErrUnknownSerial) or a wrong signature (ErrBadSignature) is refused.
// Then the envelope is decoded (ErrMalformed for bad JSON, a missing id or
// event_type, a resource_type other than encrypt-resource) and the resource
// decrypted with apiV3Key (ErrV3KeyLength, ErrMalformed, or ErrBadSignature
// when authentication fails). Any error means: answer 4xx/5xx and change
// nothing; WeChat Pay will deliver again.
func ParseV3Notification(h http.Header, body []byte, keyring *V3Keyring, apiV3Key string, now time.Time) (*V3Notification, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("wxpay v3 notification: %d bytes: %w", len(body), ErrBodyTooLarge)
	}
	if err := keyring.verify(h, body, now); err != nil {
		return nil, fmt.Errorf("wxpay v3 notification: %w", err)
	}
	return decodeV3Notification(h, body, apiV3Key)
}

// decodeV3Notification decodes and decrypts a notification whose
// signature verified.
func decodeV3Notification(h http.Header, body []byte, apiV3Key string) (*V3Notification, error) {
	var n V3Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("wxpay v3 notification: envelope: %v: %w", err, ErrMalformed)
	}
	switch {
	case n.ID == "" || n.EventType == "":
		return nil, fmt.Errorf("wxpay v3 notification: envelope without id or event_type: %w", ErrMalformed)
	case n.ResourceType != v3ResourceType:
		return nil, fmt.Errorf("wxpay v3 notification %s: resource_type %.40q: %w", n.ID, n.ResourceType, ErrMalformed)
	}
	plain, err := DecryptV3Resource(apiV3Key, n.Resource)
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 notification %s: %w", n.ID, err)
	}
	n.Serial = h.Get(HeaderV3Serial)
	n.Plaintext = plain
	return &n, nil
}

// ParseNotification is ParseNotificationContext without a context: the
// re-fetch of an unknown serial's certificates is waited for as long as it
// takes (it is bounded on its own). Prefer ParseNotificationContext with the
// request's context.
func (c *V3Client) ParseNotification(h http.Header, body []byte) (*V3Notification, error) {
	return c.ParseNotificationContext(context.Background(), h, body)
}

// ParseNotificationContext is ParseV3Notification with the client's
// keyring, APIv3 key and clock. A notification signed by a certificate
// serial the keyring does not know makes Certificates (when set) re-fetch
// the platform certificates once, as for answers; a serial still unknown
// then is refused with ErrUnknownSerial. The wait for that download ends
// with ctx (the notification's request): the download itself goes on for
// the next message, and this one is refused with ErrUnknownSerial, so
// WeChat Pay delivers it again.
func (c *V3Client) ParseNotificationContext(ctx context.Context, h http.Header, body []byte) (*V3Notification, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("wxpay v3 notification: %d bytes: %w", len(body), ErrBodyTooLarge)
	}
	if err := c.verifySigned(ctx, h, body); err != nil {
		return nil, fmt.Errorf("wxpay v3 notification: %w", err)
	}
	return decodeV3Notification(h, body, c.APIv3Key)
}

// ParseNotificationRequest reads the body of r (a POST to the notify URL)
// with the MaxBodyBytes limit and parses it like ParseNotificationContext
// with the request's context. A
// method other than POST is refused with ErrMalformed (answer a HEAD
// handshake before calling it).
func (c *V3Client) ParseNotificationRequest(r *http.Request) (*V3Notification, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("wxpay v3 notification: method %s: %w", r.Method, ErrMalformed)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 notification: read body: %v: %w", err, ErrMalformed)
	}
	return c.ParseNotificationContext(r.Context(), r.Header, body)
}

// Transaction decodes the plaintext of a TRANSACTION.* notification. It
// refuses (ErrMalformed) another event family or original_type, bad JSON,
// and a transaction without out_trade_no or trade_state. The caller must
// still check mchid, appid, out_trade_no and amount against its own order.
func (n *V3Notification) Transaction() (*V3Transaction, error) {
	if !strings.HasPrefix(n.EventType, "TRANSACTION.") || n.Resource.OriginalType != "transaction" {
		return nil, fmt.Errorf("wxpay v3 notification %s: %s/%s is not a transaction: %w", n.ID, n.EventType, n.Resource.OriginalType, ErrMalformed)
	}
	var t V3Transaction
	if err := decodeV3Plaintext(n.Plaintext, &t); err != nil {
		return nil, fmt.Errorf("wxpay v3 notification %s: %w", n.ID, err)
	}
	if t.OutTradeNo == "" || t.TradeState == "" {
		return nil, fmt.Errorf("wxpay v3 notification %s: transaction without out_trade_no or trade_state: %w", n.ID, ErrMalformed)
	}
	return &t, nil
}

// v3RefundNotice is the plaintext of a refund notification, which names
// the state refund_status rather than status.
type v3RefundNotice struct {
	MchID               string         `json:"mchid"`
	OutTradeNo          string         `json:"out_trade_no"`
	TransactionID       string         `json:"transaction_id"`
	OutRefundNo         string         `json:"out_refund_no"`
	RefundID            string         `json:"refund_id"`
	RefundStatus        string         `json:"refund_status"`
	SuccessTime         string         `json:"success_time"`
	UserReceivedAccount string         `json:"user_received_account"`
	Amount              V3RefundAmount `json:"amount"`
}

// Refund decodes the plaintext of a REFUND.* notification into a V3Refund
// (its refund_status becomes Status). It refuses (ErrMalformed) another
// event family or original_type, bad JSON, a missing out_refund_no and an
// unknown state.
func (n *V3Notification) Refund() (*V3Refund, error) {
	if !strings.HasPrefix(n.EventType, "REFUND.") || n.Resource.OriginalType != "refund" {
		return nil, fmt.Errorf("wxpay v3 notification %s: %s/%s is not a refund: %w", n.ID, n.EventType, n.Resource.OriginalType, ErrMalformed)
	}
	var p v3RefundNotice
	if err := decodeV3Plaintext(n.Plaintext, &p); err != nil {
		return nil, fmt.Errorf("wxpay v3 notification %s: %w", n.ID, err)
	}
	r := &V3Refund{
		RefundID: p.RefundID, OutRefundNo: p.OutRefundNo, TransactionID: p.TransactionID,
		OutTradeNo: p.OutTradeNo, UserReceivedAccount: p.UserReceivedAccount,
		SuccessTime: p.SuccessTime, Status: p.RefundStatus, Amount: p.Amount,
	}
	if err := checkV3Refund(r, p.OutRefundNo); err != nil || r.OutRefundNo == "" {
		return nil, fmt.Errorf("wxpay v3 notification %s: refund %q in state %.20q: %w", n.ID, p.OutRefundNo, p.RefundStatus, ErrMalformed)
	}
	return r, nil
}

// decodeV3Plaintext decodes one JSON object, and nothing after it.
func decodeV3Plaintext(plain []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(plain))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("resource: %v: %w", err, ErrMalformed)
	}
	if d.More() {
		return fmt.Errorf("resource: data after the object: %w", ErrMalformed)
	}
	return nil
}

// V3NotifyAckSuccess returns the body of a success answer to a v3
// notification, sent with HTTP 200: {"code":"SUCCESS","message":"成功"}.
// (HTTP 200 or 204 alone is enough; the body is accepted too.)
func V3NotifyAckSuccess() []byte {
	return []byte(`{"code":"SUCCESS","message":"成功"}`)
}

// V3NotifyAckFail returns the body of a failure answer to a v3
// notification, sent with a 4xx or 5xx status: {"code":"FAIL","message":…}.
// message is shown to WeChat Pay; keep internal details out of it.
func V3NotifyAckFail(message string) []byte {
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"FAIL", message})
	return b
}

// WriteV3NotifyAck answers a v3 notification: 200 with the success body
// when err is nil; otherwise a FAIL body with 400 for a notification that
// failed verification or decoding (forged, tampered, stale, probe) and 500
// for anything else (our side failed; WeChat Pay will retry). The message
// names the class of failure only, never err's text.
func WriteV3NotifyAck(w http.ResponseWriter, err error) {
	status, body := http.StatusOK, V3NotifyAckSuccess()
	if err != nil {
		status, body = v3AckFailure(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// v3AckFailure picks the status and body of a failure answer.
func v3AckFailure(err error) (int, []byte) {
	for _, c := range []struct {
		err error
		msg string
	}{
		{ErrSignatureProbe, "签名探测"},
		{ErrNotSigned, "缺少签名"},
		{ErrTooOld, "时间戳超出范围"},
		{ErrUnknownSerial, "未知的证书序列号"},
		{ErrBadSignature, "验签失败"},
		{ErrBodyTooLarge, "请求过大"},
		{ErrMalformed, "格式错误"},
	} {
		if errors.Is(err, c.err) {
			return http.StatusBadRequest, V3NotifyAckFail(c.msg)
		}
	}
	return http.StatusInternalServerError, V3NotifyAckFail("失败")
}
