package wxpay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

// DefaultV3BaseURL is WeChat Pay's primary API host for API v3.
const DefaultV3BaseURL = "https://api.mch.weixin.qq.com"

// ErrV3Request is wrapped by the errors a V3Client returns for a request it
// refuses to send (a required field missing, an amount not positive, an
// incomplete configuration). Nothing reached WeChat Pay.
var ErrV3Request = errors.New("wxpay v3: invalid request")

// defaultV3HTTPClient bounds calls made without a configured client; every
// call also honours its context.
var defaultV3HTTPClient = &http.Client{Timeout: 30 * time.Second}

// v3UserAgent is sent on every request, as the v3 rules ask.
const v3UserAgent = "tollgate-wxpay/1 (Go)"

// V3Client calls the WeChat Pay API v3 (JSON) for one merchant. Set the
// exported fields before the first call and do not change them afterwards;
// the client is then safe for concurrent use.
//
// Every request is signed (Authorization: WECHATPAY2-SHA256-RSA2048) over
// the method, the canonical URL, a fresh timestamp and nonce and the exact
// body bytes. Every answer is read with a size limit and its Wechatpay-*
// signature verified with Keyring before anything in it is believed. A
// method returns one of:
//   - *APIError{Version: 3} for a verified 4xx/5xx answer (Code and Message
//     from its JSON body; Retryable tells SYSTEM_ERROR from PARAM_ERROR), or
//     a verified 202 (USERPAYING);
//   - *TransportError when no trustworthy answer arrived: a network error, a
//     body over MaxBodyBytes (ErrBodyTooLarge), an answer whose signature is
//     missing, stale, from an unknown key or wrong (ErrNotSigned, ErrTooOld,
//     ErrUnknownSerial, ErrBadSignature) — including error answers, whose
//     code is then not trusted — or a verified body that cannot be decoded
//     (ErrMalformed). The request may have taken effect: query before
//     assuming anything.
//
// Errors for refused requests wrap ErrV3Request.
//
// The canonical URL signed is the API path and query (/v3/…?…) exactly as
// sent, never a path prefix of BaseURL: WeChat Pay's host has none, and the
// emulator, when mounted under a prefix (http://host/sandbox/wxpay), strips
// it before it verifies, as a reverse proxy in front of the real API would
// be invisible to WeChat Pay.
type V3Client struct {
	// BaseURL is the API root, DefaultV3BaseURL when empty. It may carry a
	// path prefix (the emulator's mount point); requests go to BaseURL plus
	// the API path.
	BaseURL string
	// MchID and AppID identify the merchant and the app bound to it.
	MchID string
	AppID string
	// MerchantSerialNo is the serial of the merchant API certificate
	// (serial_no in Authorization); MerchantKey its private key
	// (apiclient_key.pem). The key is never logged or sent.
	MerchantSerialNo string
	MerchantKey      *rsa.PrivateKey
	// APIv3Key is the 32-byte key of notification resources. The client
	// uses it only in ParseNotification.
	APIv3Key string
	// Keyring holds the WeChat Pay keys that sign answers.
	Keyring *V3Keyring
	// Certificates, in platform certificate mode, keeps Keyring's
	// certificates those WeChat Pay lists (NewV3Certificates sets it): an
	// answer or notification signed by a serial Keyring does not know makes
	// it re-fetch them once before the message is refused. Nil in public
	// key mode.
	Certificates *V3Certificates
	// WechatpaySerial, when set, is sent as the Wechatpay-Serial request
	// header (a platform certificate serial or a public key id), so that
	// WeChat Pay signs its answer with that key, as SDKs do in public key
	// mode.
	WechatpaySerial string
	// HTTPClient sends requests; a client with a 30 s timeout when nil.
	HTTPClient *http.Client
	// Clock is the clock for request timestamps and the verification
	// window; tollgate.SystemClock when nil.
	Clock tollgate.Clock
}

// v3Call describes one API call.
type v3Call struct {
	op     string // name for errors, e.g. "native order"
	method string
	path   string // escaped API path, e.g. "/v3/pay/transactions/native"
	query  string // raw query without "?", or ""
	body   any    // JSON-encoded when not nil
}

func (c *V3Client) now() time.Time {
	return tollgate.ClockOr(c.Clock).Now()
}

// Validate reports a configuration the client cannot work with, so that a
// service can refuse to start rather than fail on the first payment: a
// missing MchID, AppID, MerchantSerialNo, MerchantKey or Keyring, an empty
// Keyring (allowed with Certificates, which fills it), an APIv3Key that is not 32 bytes (ErrV3KeyLength) or a BaseURL
// that is not an absolute http(s) URL. Errors wrap ErrV3Request.
func (c *V3Client) Validate() error {
	if err := c.check("config"); err != nil {
		return err
	}
	if c.AppID == "" {
		return fmt.Errorf("wxpay v3 config: AppID not set: %w", ErrV3Request)
	}
	if len(c.Keyring.Serials()) == 0 && c.Certificates == nil {
		return fmt.Errorf("wxpay v3 config: Keyring holds no WeChat Pay key: %w", ErrV3Request)
	}
	if len(c.APIv3Key) != v3KeyLen {
		return fmt.Errorf("wxpay v3 config: %w: %w", ErrV3KeyLength, ErrV3Request)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("wxpay v3 config: BaseURL %q is not an absolute http(s) URL: %w", c.BaseURL, ErrV3Request)
		}
	}
	return nil
}

// check reports a configuration the client cannot sign or verify with.
func (c *V3Client) check(op string) error {
	switch {
	case c.MchID == "":
		return fmt.Errorf("wxpay v3 %s: MchID not set: %w", op, ErrV3Request)
	case c.MerchantKey == nil || c.MerchantSerialNo == "":
		return fmt.Errorf("wxpay v3 %s: MerchantKey or MerchantSerialNo not set: %w", op, ErrV3Request)
	case c.Keyring == nil:
		return fmt.Errorf("wxpay v3 %s: Keyring not set, answers cannot be verified: %w", op, ErrV3Request)
	}
	return nil
}

// newRequest builds the signed HTTP request of call. The canonical URL is
// taken from the request URI Go will send, minus BaseURL's path prefix, so
// that it is exactly what goes on the wire.
func (c *V3Client) newRequest(ctx context.Context, call v3Call) (*http.Request, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultV3BaseURL
	}
	base = strings.TrimRight(base, "/")
	target := base + call.path
	if call.query != "" {
		target += "?" + call.query
	}
	var body []byte
	if call.body != nil {
		var err error
		if body, err = json.Marshal(call.body); err != nil {
			return nil, fmt.Errorf("wxpay v3 %s: encode: %w", call.op, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, call.method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 %s: %w", call.op, err)
	}
	baseURL, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 %s: BaseURL: %w", call.op, err)
	}
	canonical, ok := strings.CutPrefix(req.URL.RequestURI(), baseURL.EscapedPath())
	if !ok || !strings.HasPrefix(canonical, "/v3/") {
		return nil, fmt.Errorf("wxpay v3 %s: canonical URL of %q: %w", call.op, req.URL.RequestURI(), ErrV3Request)
	}
	nonce, err := newV3Nonce()
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 %s: %w", call.op, err)
	}
	ts := strconv.FormatInt(c.now().Unix(), 10)
	sig, err := SignV3(c.MerchantKey, V3RequestMessage(call.method, canonical, ts, nonce, body))
	if err != nil {
		return nil, fmt.Errorf("wxpay v3 %s: %w", call.op, err)
	}
	auth := V3Authorization{MchID: c.MchID, NonceStr: nonce, Timestamp: ts, SerialNo: c.MerchantSerialNo, Signature: sig}
	req.Header.Set("Authorization", auth.String())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", v3UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	if c.WechatpaySerial != "" {
		req.Header.Set(HeaderV3Serial, c.WechatpaySerial)
	}
	return req, nil
}

// do sends call, verifies the answer and decodes a 200 body into out (when
// out is not nil). It returns the HTTP status of a verified 2xx answer.
func (c *V3Client) do(ctx context.Context, call v3Call, out any) (int, error) {
	resp, body, op, err := c.roundTrip(ctx, call, MaxBodyBytes)
	if err != nil {
		return 0, err
	}
	if err := c.verifyAnswer(ctx, op, resp, body); err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 || resp.StatusCode == http.StatusAccepted {
		return 0, fmt.Errorf("wxpay v3 %s: %w", op, v3APIError(resp.StatusCode, body))
	}
	if resp.StatusCode < 200 {
		return 0, &TransportError{Op: "v3 " + op, Err: fmt.Errorf("HTTP %d: %w", resp.StatusCode, ErrMalformed)}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return 0, &TransportError{Op: "v3 " + op, Err: fmt.Errorf("decode answer: %v: %w", err, ErrMalformed)}
		}
	}
	return resp.StatusCode, nil
}

// roundTrip signs and sends call and reads at most limit bytes of the
// answer, which it does not verify. op names the call and the answer's
// Request-ID for errors. The returned response's body is closed.
func (c *V3Client) roundTrip(ctx context.Context, call v3Call, limit int64) (resp *http.Response, body []byte, op string, err error) {
	if err := c.check(call.op); err != nil {
		return nil, nil, "", err
	}
	req, err := c.newRequest(ctx, call)
	if err != nil {
		return nil, nil, "", err
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultV3HTTPClient
	}
	resp, err = hc.Do(req)
	if err != nil {
		return nil, nil, "", &TransportError{Op: "v3 " + call.op, Err: err}
	}
	defer resp.Body.Close()
	op = call.op
	if rid := resp.Header.Get(HeaderV3RequestID); rid != "" {
		op += " (Request-ID " + rid + ")"
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, "", &TransportError{Op: "v3 " + op, Err: fmt.Errorf("read answer: %w", err)}
	}
	if int64(len(body)) > limit {
		return nil, nil, "", &TransportError{Op: "v3 " + op, Err: fmt.Errorf("answer over %d bytes: %w", limit, ErrBodyTooLarge)}
	}
	return resp, body, op, nil
}

// verifySigned verifies a signed answer or notification with Keyring at
// the client's time. When the signer is a certificate serial Keyring does
// not know (or no longer holds as valid) and Certificates is set, the
// certificates are re-fetched (shared by concurrent callers, at most once
// a minute after a download that succeeded) and the message verified once
// more; if the serial is still unknown because the download failed, the
// error says so.
func (c *V3Client) verifySigned(ctx context.Context, h http.Header, body []byte) error {
	err := c.Keyring.verify(h, body, c.now())
	if err != nil && c.Certificates != nil && errors.Is(err, ErrUnknownSerial) &&
		!strings.HasPrefix(h.Get(HeaderV3Serial), V3PublicKeyIDPrefix) {
		ferr := c.Certificates.refetchUnknown(ctx)
		err = c.Keyring.verify(h, body, c.now())
		if err != nil && ferr != nil && errors.Is(err, ErrUnknownSerial) {
			err = fmt.Errorf("%w (%v)", err, ferr)
		}
	}
	return err
}

// verifyAnswer checks the Wechatpay-* signature of an answer; a failure is
// a *TransportError that quotes, but never trusts, an error body's code.
// An answer signed by an unknown certificate serial makes Certificates (when
// set) re-fetch the platform certificates once before it is refused.
func (c *V3Client) verifyAnswer(ctx context.Context, op string, resp *http.Response, body []byte) error {
	if err := c.verifySigned(ctx, resp.Header, body); err != nil {
		return &TransportError{Op: "v3 " + op, Err: unverifiedAnswer(resp.StatusCode, body, err)}
	}
	return nil
}

// v3ErrorBody is the JSON body of a v3 error answer.
type v3ErrorBody struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail"`
}

// v3APIError maps a verified non-2xx (or 202) answer to an *APIError. A body
// that is not the documented JSON keeps the status, with an empty Code.
func v3APIError(status int, body []byte) *APIError {
	e := &APIError{Version: 3, HTTPStatus: status}
	var b v3ErrorBody
	if json.Unmarshal(body, &b) == nil {
		e.Code, e.Message = b.Code, b.Message
		if len(b.Detail) > 0 && string(b.Detail) != "null" {
			e.Detail = string(b.Detail)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// v3UnverifiedError is the cause, inside a *TransportError, of an answer
// whose signature did not verify (err): its HTTP status, a fact about the
// connection, and the code its body claims, quoted for the error text and
// for telling a transient failure (a 500 signed by a certificate not yet
// downloaded) from the rest, but never returned as an APIError, so that a
// forged ORDER_NOT_EXIST cannot pass for WeChat Pay's word.
type v3UnverifiedError struct {
	status int
	code   string // claimed, at most 40 characters quoted
	err    error
}

func unverifiedAnswer(status int, body []byte, err error) *v3UnverifiedError {
	e := &v3UnverifiedError{status: status, err: err}
	var b v3ErrorBody
	if json.Unmarshal(body, &b) == nil {
		e.code = b.Code
	}
	return e
}

// Error implements error.
func (e *v3UnverifiedError) Error() string {
	claim := ""
	if e.code != "" {
		claim = fmt.Sprintf(" claiming %.40q", e.code)
	}
	return fmt.Sprintf("unverified HTTP %d answer%s: %v", e.status, claim, e.err)
}

// Unwrap returns the verification error.
func (e *v3UnverifiedError) Unwrap() error { return e.err }

// v3NonceAlphabet is the alphabet of request nonces, as the SDKs use.
const v3NonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newV3Nonce returns 32 random characters of [0-9A-Za-z].
func newV3Nonce() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	for i := range b {
		// 256 = 4*62 + 8: the bias of the modulo is too small to matter for
		// a nonce, whose only duty is not to repeat.
		b[i] = v3NonceAlphabet[int(b[i])%len(v3NonceAlphabet)]
	}
	return string(b[:]), nil
}
