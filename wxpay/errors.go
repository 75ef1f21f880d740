package wxpay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// Sentinel errors for verification and decoding. Callers test them with
// errors.Is; they are wrapped with context.
var (
	// ErrNotSigned: the message carries no signature.
	ErrNotSigned = errors.New("wxpay: message is not signed")
	// ErrBadSignature: the signature does not match the message.
	ErrBadSignature = errors.New("wxpay: signature does not match")
	// ErrSignatureProbe: a v3 notification whose signature starts with
	// WECHATPAY/SIGNTEST/, sent by WeChat Pay to check that the receiver
	// verifies signatures. It must be refused.
	ErrSignatureProbe = errors.New("wxpay: signature probe (WECHATPAY/SIGNTEST/) refused")
	// ErrTooOld: a v3 timestamp outside the 5-minute window.
	ErrTooOld = errors.New("wxpay: timestamp outside the allowed window")
	// ErrUnknownSerial: a v3 Wechatpay-Serial for which no key is configured.
	ErrUnknownSerial = errors.New("wxpay: unknown certificate serial or public key id")
	// ErrBodyTooLarge: a body over the size limit.
	ErrBodyTooLarge = errors.New("wxpay: body too large")
	// ErrMalformed: a body or header that cannot be decoded (bad XML, a
	// DOCTYPE, duplicate elements, bad JSON, bad base64, bad ciphertext).
	ErrMalformed = errors.New("wxpay: malformed message")
	// ErrNotOurs: a correctly signed answer or notification about another
	// merchant (appid, mch_id/mchid) or another order than the one asked
	// about. WeChat Pay said it, so it is not a forgery; it must still not
	// be acted on.
	ErrNotOurs = errors.New("wxpay: signed message about another merchant or order")
)

// MaxBodyBytes bounds every body this package reads from the network, except
// bill downloads. WeChat Pay bodies are small (the largest field, detail, is
// about 6 KB).
const MaxBodyBytes = 64 << 10

// APIError is a failure answered by WeChat Pay (or the emulator).
//
// For API v2, Communication is true when return_code is FAIL (the request
// itself was refused: signature, format, method); then only Message
// (return_msg) is set. Otherwise result_code was FAIL and Code is err_code
// and Message err_code_des.
//
// For API v3, HTTPStatus is the response status, Code the body's "code" and
// Message its "message"; Detail holds the optional "detail" object as JSON.
type APIError struct {
	Version       int // 2 or 3
	HTTPStatus    int
	Communication bool
	Code          string
	Message       string
	Detail        string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Version == 2 && e.Communication {
		return fmt.Sprintf("wxpay v2: return_code=FAIL: %s", e.Message)
	}
	if e.Version == 3 {
		return fmt.Sprintf("wxpay v3: HTTP %d %s: %s", e.HTTPStatus, e.Code, e.Message)
	}
	return fmt.Sprintf("wxpay v2: err_code=%s: %s", e.Code, e.Message)
}

// retryableCodes are the codes WeChat Pay documents as "retry with the same
// parameters" or "retry later", for both API versions.
var retryableCodes = map[string]bool{
	"SYSTEMERROR": true, "SYSTEM_ERROR": true,
	"BANKERROR": true, "BANK_ERROR": true,
	"BIZERR_NEED_RETRY":    true,
	"FREQUENCY_LIMITED":    true,
	"RATELIMIT_EXCEEDED":   true,
	"INVALID_REQ_TOO_MUCH": true,
	"USERPAYING":           true,
	"SERVICE_UNAVAILABLE":  true,
}

// Retryable reports whether the same request may be sent again unchanged
// (same out_trade_no / out_refund_no) and may then succeed.
func (e *APIError) Retryable() bool {
	if retryableCodes[e.Code] {
		return true
	}
	if e.Version == 3 && (e.HTTPStatus >= 500 || e.HTTPStatus == 429 || e.HTTPStatus == 202) {
		return true
	}
	return false
}

// IsRetryable reports whether err is worth retrying with identical
// parameters: a retryable APIError, or a transport failure whose outcome is
// unknown (the caller should query before assuming anything).
func IsRetryable(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	var te *TransportError
	return errors.As(err, &te)
}

// transient reports whether err may pass by asking again and says nothing
// about the merchant's settings: an answer WeChat Pay marks retryable
// (5xx, 429, SYSTEM_ERROR, FREQUENCY_LIMITED …), an unverified 5xx or 429
// answer (a fault signed by a certificate not downloaded yet, or a
// proxy's), or a network failure (no answer, or one cut short). Unlike
// IsRetryable it does not take every TransportError: a bad signature or an
// APIv3 key that does not decrypt stays wrong however often it is asked.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	var uv *v3UnverifiedError
	if errors.As(err, &uv) {
		return uv.status >= 500 || uv.status == http.StatusTooManyRequests
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// ErrorCode returns the WeChat Pay code of err ("" if err is not an APIError).
func ErrorCode(err error) string {
	var api *APIError
	if errors.As(err, &api) {
		return api.Code
	}
	return ""
}

// TransportError is a failure to get a usable answer: connection refused,
// timeout, a body that could not be read or an unsigned or badly signed
// response. The request may or may not have taken effect.
type TransportError struct {
	Op  string
	Err error
}

// Error implements error.
func (e *TransportError) Error() string { return "wxpay: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }
