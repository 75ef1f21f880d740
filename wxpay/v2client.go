package wxpay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultV2BaseURL is WeChat Pay's primary API host.
const DefaultV2BaseURL = "https://api.mch.weixin.qq.com"

// v2SandboxPrefix is inserted after the host in sandbox mode.
const v2SandboxPrefix = "/sandboxnew"

// ErrV2Request is wrapped by the errors a V2Client returns for a request it
// refuses to send (a required field missing, an amount not positive). Nothing
// reached WeChat Pay.
var ErrV2Request = errors.New("wxpay v2: invalid request")

// ErrV2NotOurs is wrapped by the errors for an answer or a notification,
// correctly signed, whose appid or mch_id is not the client's.
// It wraps ErrNotOurs.
var ErrV2NotOurs = fmt.Errorf("wxpay v2: message for another appid or mch_id: %w", ErrNotOurs)

// defaultV2HTTPClient bounds calls made without a configured client; every
// call also honours its context.
var defaultV2HTTPClient = &http.Client{Timeout: 30 * time.Second}

// V2Client calls the WeChat Pay API v2 (XML) for one merchant. Set the
// exported fields before the first call and do not change them afterwards;
// the client is then safe for concurrent use.
//
// Every method takes a context, signs its request with a fresh nonce_str
// and the configured sign_type, reads the answer with a size limit and
// returns one of:
//   - *APIError{Version: 2, Communication: true} when return_code is FAIL
//     (the answer is unsigned; only Message is set);
//   - *APIError{Version: 2, Code: err_code} when result_code is FAIL
//     (APIError.Retryable tells SYSTEMERROR from ORDERPAID);
//   - *TransportError when no trustworthy answer arrived: a network error,
//     a status other than 200, a malformed body, or a SUCCESS answer whose
//     signature is missing (ErrNotSigned) or wrong (ErrBadSignature), or
//     whose appid or mch_id is not ours (ErrV2NotOurs). The request may
//     have taken effect.
type V2Client struct {
	// BaseURL is the API host, DefaultV2BaseURL when empty (the emulator's
	// URL in tests and in the sandbox profile).
	BaseURL string
	// AppID and MchID identify the merchant; APIKey is its 32-character v2
	// API key. The key is never logged or sent.
	AppID  string
	MchID  string
	APIKey string
	// SignType is SignTypeMD5 (the default when empty) or
	// SignTypeHMACSHA256; it signs requests and verifies answers.
	SignType string
	// HTTPClient sends requests; a client with a 30 s timeout when nil.
	HTTPClient *http.Client
	// Sandbox inserts the /sandboxnew prefix into every path and signs with
	// the sandbox key obtained once from getsignkey (see SandboxSignKey).
	Sandbox bool
	// Certificate is the merchant API certificate presented over mutual TLS
	// to /secapi/pay/refund. It is added to a clone of HTTPClient's
	// transport, which must then be an *http.Transport (or nil).
	Certificate *tls.Certificate

	mu         sync.Mutex
	sandboxKey string       // guarded by mu; cached getsignkey answer
	tlsClient  *http.Client // guarded by mu; HTTPClient plus Certificate
}

// v2Call describes one API call.
type v2Call struct {
	op      string // name for errors, e.g. "unifiedorder"
	path    string // e.g. "/pay/unifiedorder", without the sandbox prefix
	mutual  bool   // present the merchant certificate
	noAppID bool   // the API takes no appid (getsignkey)
	exact   bool   // path is used as is, never prefixed (getsignkey)
}

// signType returns the configured sign type, MD5 when unset.
func (c *V2Client) signType() string {
	if c.SignType == "" {
		return SignTypeMD5
	}
	return c.SignType
}

// url returns the absolute URL of call, with the sandbox prefix if needed.
func (c *V2Client) url(call v2Call) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultV2BaseURL
	}
	base = strings.TrimRight(base, "/")
	if c.Sandbox && !call.exact {
		base += v2SandboxPrefix
	}
	return base + call.path
}

// httpClient returns the client to send with, with the merchant
// certificate when mutual is set.
func (c *V2Client) httpClient(mutual bool) (*http.Client, error) {
	base := c.HTTPClient
	if base == nil {
		base = defaultV2HTTPClient
	}
	if !mutual {
		return base, nil
	}
	if c.Certificate == nil {
		return nil, fmt.Errorf("%w: no merchant certificate configured for mutual TLS", ErrV2Request)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsClient != nil {
		return c.tlsClient, nil
	}
	var tr *http.Transport
	switch t := base.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("%w: HTTPClient.Transport is %T, not *http.Transport: cannot add the merchant certificate", ErrV2Request, t)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.Certificates = []tls.Certificate{*c.Certificate}
	cl := *base
	cl.Transport = tr
	c.tlsClient = &cl
	return c.tlsClient, nil
}

// key returns the key that signs requests and answers: the API key, or the
// sandbox key in sandbox mode.
func (c *V2Client) key(ctx context.Context) (string, error) {
	if !c.Sandbox {
		return c.APIKey, nil
	}
	return c.SandboxSignKey(ctx)
}

// do sends params to call.path and returns the verified answer of a call
// whose return_code and result_code are both SUCCESS.
func (c *V2Client) do(ctx context.Context, call v2Call, params map[string]string) (map[string]string, error) {
	key, err := c.key(ctx)
	if err != nil {
		return nil, err
	}
	m, err := c.post(ctx, call, params, c.signType(), key)
	if err != nil {
		return nil, err
	}
	if err := c.checkAnswer(call.op, m, key); err != nil {
		return nil, err
	}
	return m, nil
}

// post signs params, sends them and decodes the answer; it returns an
// *APIError for return_code FAIL and does not verify anything else.
func (c *V2Client) post(ctx context.Context, call v2Call, params map[string]string, signType, key string) (map[string]string, error) {
	req, err := c.signedBody(call, params, signType, key)
	if err != nil {
		return nil, err
	}
	body, err := c.send(ctx, call, req, MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	m, err := DecodeV2XML(body)
	if err != nil {
		return nil, &TransportError{Op: call.op, Err: err}
	}
	if err := returnCodeError(m); err != nil {
		return nil, err
	}
	return m, nil
}

// signedBody adds the common parameters (appid, mch_id, a fresh nonce_str,
// sign_type) to the non-empty params, signs them and encodes the request.
func (c *V2Client) signedBody(call v2Call, params map[string]string, signType, key string) ([]byte, error) {
	req := make(map[string]string, len(params)+5)
	for k, v := range params {
		if v != "" {
			req[k] = v
		}
	}
	if !call.noAppID {
		req["appid"] = c.AppID
		req["sign_type"] = signType
	}
	req["mch_id"] = c.MchID
	req["nonce_str"] = newNonceV2()
	sign, err := SignV2(req, signType, key)
	if err != nil {
		return nil, fmt.Errorf("wxpay v2 %s: %w", call.op, err)
	}
	req["sign"] = sign
	return EncodeV2XML(req), nil
}

// send posts body and returns at most limit bytes of a 200 answer.
func (c *V2Client) send(ctx context.Context, call v2Call, body []byte, limit int64) ([]byte, error) {
	hc, err := c.httpClient(call.mutual)
	if err != nil {
		return nil, fmt.Errorf("wxpay v2 %s: %w", call.op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(call), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("wxpay v2 %s: %w", call.op, err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &TransportError{Op: call.op, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &TransportError{Op: call.op, Err: fmt.Errorf("HTTP status %d", resp.StatusCode)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &TransportError{Op: call.op, Err: fmt.Errorf("read answer: %w", err)}
	}
	if int64(len(b)) > limit {
		return nil, &TransportError{Op: call.op, Err: fmt.Errorf("answer over %d bytes: %w", limit, ErrBodyTooLarge)}
	}
	return b, nil
}

// returnCodeError returns the *APIError of a return_code FAIL answer, a
// *TransportError for an answer without a return_code, and nil otherwise.
func returnCodeError(m map[string]string) error {
	switch m["return_code"] {
	case "SUCCESS":
		return nil
	case "FAIL":
		return &APIError{Version: 2, Communication: true, Message: m["return_msg"]}
	default:
		return &TransportError{Op: "answer", Err: fmt.Errorf("return_code %q: %w", m["return_code"], ErrMalformed)}
	}
}

// checkAnswer verifies a return_code SUCCESS answer: its signature, that it
// is addressed to this merchant, and its result_code.
func (c *V2Client) checkAnswer(op string, m map[string]string, key string) error {
	if err := VerifyV2(m, c.signType(), key); err != nil {
		return &TransportError{Op: op, Err: fmt.Errorf("answer signature: %w", err)}
	}
	if v, ok := m["mch_id"]; ok && v != c.MchID {
		return &TransportError{Op: op, Err: fmt.Errorf("answer for mch_id %q: %w", v, ErrV2NotOurs)}
	}
	if v, ok := m["appid"]; ok && v != c.AppID {
		return &TransportError{Op: op, Err: fmt.Errorf("answer for appid %q: %w", v, ErrV2NotOurs)}
	}
	switch m["result_code"] {
	case "SUCCESS":
		return nil
	case "FAIL":
		msg := m["err_code_des"]
		if msg == "" {
			msg = m["result_msg"]
		}
		return &APIError{Version: 2, Code: m["err_code"], Message: msg}
	default:
		return &TransportError{Op: op, Err: fmt.Errorf("result_code %q: %w", m["result_code"], ErrMalformed)}
	}
}

// SandboxSignKey returns the sandbox signing key, asking getsignkey
// (POST /sandboxnew/pay/getsignkey, signed with MD5 and the real API key)
// on first use and caching the answer. That answer carries no signature in
// WeChat Pay's documentation; if it has one, it must verify under the API
// key.
func (c *V2Client) SandboxSignKey(ctx context.Context) (string, error) {
	c.mu.Lock()
	k := c.sandboxKey
	c.mu.Unlock()
	if k != "" {
		return k, nil
	}
	call := v2Call{op: "getsignkey", path: v2SandboxPrefix + "/pay/getsignkey", noAppID: true, exact: true}
	m, err := c.post(ctx, call, nil, SignTypeMD5, c.APIKey)
	if err != nil {
		return "", err
	}
	if _, signed := m["sign"]; signed {
		if err := VerifyV2(m, "", c.APIKey); err != nil {
			return "", &TransportError{Op: call.op, Err: fmt.Errorf("answer signature: %w", err)}
		}
	}
	k = m["sandbox_signkey"]
	if k == "" {
		return "", &TransportError{Op: call.op, Err: fmt.Errorf("no sandbox_signkey in answer: %w", ErrMalformed)}
	}
	c.mu.Lock()
	c.sandboxKey = k
	c.mu.Unlock()
	return k, nil
}

// newNonceV2 returns a fresh nonce_str: 32 hex characters from crypto/rand.
func newNonceV2() string {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand panics instead
	return hex.EncodeToString(b[:])
}

// parseFen parses a non-negative integer amount in fen. An absent field is
// 0; a present one that is not a decimal integer is malformed.
func parseFen(m map[string]string, name string) (int64, error) {
	s, ok := m[name]
	if !ok || s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("%s=%q is not an amount in fen: %w", name, s, ErrMalformed)
	}
	return n, nil
}

// fenFields parses several amount fields into the given pointers.
func fenFields(m map[string]string, fields map[string]*int64) error {
	for name, dst := range fields {
		n, err := parseFen(m, name)
		if err != nil {
			return err
		}
		*dst = n
	}
	return nil
}
