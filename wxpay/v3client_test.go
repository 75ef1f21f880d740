package wxpay_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// v3TestNow is the clock of the client tests.
var v3TestNow = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

const (
	v3TestMchID          = "1230000109"
	v3TestAppID          = "wxd678efh567hg6787"
	v3TestMerchantSerial = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
)

// v3Seen is what the fake server saw of one request.
type v3Seen struct {
	Method    string
	Canonical string // request URI without the mount prefix
	Body      []byte
	Header    http.Header
}

// v3FakeServer answers like WeChat Pay's API v3: it verifies the merchant's
// Authorization (scheme, mchid, serial, timestamp, signature over the API
// path without its mount prefix) and refuses a bad one with a signed 401
// SIGN_ERROR; otherwise it records the request and sends the canned answer,
// signed with the test WeChat Pay key under the public key id.
type v3FakeServer struct {
	prefix   string
	merchant *rsa.PublicKey
	wechat   *rsa.PrivateKey

	mu     sync.Mutex
	status int               // guarded by mu
	body   string            // guarded by mu
	tamper func(http.Header) // guarded by mu; alters the signed headers
	seen   []v3Seen          // guarded by mu
}

func newV3FakeServer(tb testing.TB, prefix string) (*v3FakeServer, *httptest.Server) {
	tb.Helper()
	f := &v3FakeServer{
		prefix:   prefix,
		merchant: MustV3PublicKey(tb, "merchant_pub.pem"),
		wechat:   MustV3PrivateKey(tb, "wechatpay_key.pem"),
	}
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	return f, srv
}

// answer sets the next answers.
func (f *v3FakeServer) answer(status int, body string, tamper func(http.Header)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body, f.tamper = status, body, tamper
}

func (f *v3FakeServer) requests() []v3Seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]v3Seen(nil), f.seen...)
}

func (f *v3FakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodyBytes))
	canonical, ok := strings.CutPrefix(r.RequestURI, f.prefix)
	if !ok {
		f.write(w, http.StatusNotFound, `{"code":"NOT_FOUND","message":"no such mount"}`, nil)
		return
	}
	if msg := f.verify(r, canonical, body); msg != "" {
		f.write(w, http.StatusUnauthorized, `{"code":"SIGN_ERROR","message":"`+msg+`"}`, nil)
		return
	}
	f.mu.Lock()
	f.seen = append(f.seen, v3Seen{Method: r.Method, Canonical: canonical, Body: body, Header: r.Header.Clone()})
	status, answer, tamper := f.status, f.body, f.tamper
	f.mu.Unlock()
	f.write(w, status, answer, tamper)
}

// verify returns why the request's Authorization is refused, or "".
func (f *v3FakeServer) verify(r *http.Request, canonical string, body []byte) string {
	a, err := wxpay.ParseV3Authorization(r.Header.Get("Authorization"))
	switch {
	case err != nil:
		return "bad Authorization"
	case a.MchID != v3TestMchID || a.SerialNo != v3TestMerchantSerial:
		return "wrong mchid or serial_no"
	case a.Timestamp != strconv.FormatInt(v3TestNow.Unix(), 10):
		return "wrong timestamp"
	case len(a.NonceStr) != 32:
		return "nonce is not 32 characters"
	}
	msg := wxpay.V3RequestMessage(r.Method, canonical, a.Timestamp, a.NonceStr, body)
	if err := wxpay.VerifyV3Signature(f.merchant, msg, a.Signature); err != nil {
		return "signature"
	}
	return ""
}

func (f *v3FakeServer) write(w http.ResponseWriter, status int, body string, tamper func(http.Header)) {
	ts := strconv.FormatInt(v3TestNow.Unix(), 10)
	nonce := "c5ac7061fccab6bf3e254dcf98995b8c"
	sig, err := wxpay.SignV3(f.wechat, wxpay.V3ResponseMessage(ts, nonce, []byte(body)))
	if err != nil {
		panic(err)
	}
	h := w.Header()
	h.Set("Request-ID", "08F78BB5AF0610D302A4-"+strconv.Itoa(status))
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", v3TestPubKeyID)
	h.Set("Wechatpay-Signature", sig)
	if tamper != nil {
		tamper(h)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// newV3TestClient returns a client of srv mounted under prefix.
func newV3TestClient(tb testing.TB, srv *httptest.Server, prefix string) *wxpay.V3Client {
	return &wxpay.V3Client{
		BaseURL:          srv.URL + prefix,
		MchID:            v3TestMchID,
		AppID:            v3TestAppID,
		MerchantSerialNo: v3TestMerchantSerial,
		MerchantKey:      MustV3PrivateKey(tb, "merchant_key.pem"),
		APIv3Key:         v3TestAPIKey,
		Keyring:          MustV3Keyring(tb),
		HTTPClient:       srv.Client(),
		Clock:            tollgate.ClockFunc(func() time.Time { return v3TestNow }),
	}
}

// v3TestTransaction and v3TestRefund are canned answers of the fake server.
var (
	v3TestTransaction = mustReadV3Line("answer_transaction_success.json")
	v3TestRefund      = mustReadV3Line("answer_refund_processing.json")
)

func v3TestOrder() *wxpay.V3NativeOrderRequest {
	return &wxpay.V3NativeOrderRequest{
		Description:   "Image形象店-深圳腾大-QQ公仔",
		OutTradeNo:    "1217752501201407033233368018",
		TimeExpire:    v3TestNow.Add(30 * time.Minute),
		Attach:        "acct_42",
		NotifyURL:     "https://www.weixin.qq.com/wxpay/pay.php",
		Total:         5000,
		PayerClientIP: "203.0.113.7",
		DeviceID:      "fp-7f3a",
	}
}

// TestV3ClientSuccess runs each endpoint against the fake server, with and
// without a mount prefix, and checks both the request WeChat Pay would see
// and the typed answer.
func TestV3ClientSuccess(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		answer        string
		call          func(*wxpay.V3Client) (any, error)
		wantMethod    string
		wantCanonical string
		wantBody      string
		check         func(t *testing.T, got any)
	}{
		{
			name: "NativeOrder", status: 200, answer: `{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}`,
			call:       func(c *wxpay.V3Client) (any, error) { return c.NativeOrder(context.Background(), v3TestOrder()) },
			wantMethod: "POST", wantCanonical: "/v3/pay/transactions/native",
			wantBody: mustReadV3Line("request_native_order.json"),
			check: func(t *testing.T, got any) {
				if got != "weixin://wxpay/bizpayurl?pr=p4lpSuKzz" {
					t.Errorf("code_url = %v", got)
				}
			},
		},
		{
			name: "QueryOrder", status: 200, answer: v3TestTransaction,
			call: func(c *wxpay.V3Client) (any, error) {
				return c.QueryOrder(context.Background(), "1217752501201407033233368018")
			},
			wantMethod: "GET", wantCanonical: "/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid=1230000109",
			check: func(t *testing.T, got any) {
				tx := got.(*wxpay.V3Transaction)
				if tx.TradeState != wxpay.V3TradeStateSuccess || !tx.Paid() || tx.Amount.Total != 5000 || tx.Amount.PayerTotal != 4900 ||
					tx.TransactionID != "4200000001201407033233368018" || tx.Payer == nil || tx.Payer.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" ||
					tx.SceneInfo == nil || tx.SceneInfo.DeviceID != "fp-7f3a" || tx.Attach != "acct_42" || len(tx.Promotions) != 1 {
					t.Errorf("transaction = %+v", tx)
				}
				at, err := tx.PaidAt()
				if err != nil || !at.Equal(v3TestNow.Add(62*time.Second)) {
					t.Errorf("PaidAt = %v, %v", at, err)
				}
			},
		},
		{
			name: "QueryOrderByTransactionID", status: 200, answer: v3TestTransaction,
			call: func(c *wxpay.V3Client) (any, error) {
				return c.QueryOrderByTransactionID(context.Background(), "4200000001201407033233368018")
			},
			wantMethod: "GET", wantCanonical: "/v3/pay/transactions/id/4200000001201407033233368018?mchid=1230000109",
			check: func(t *testing.T, got any) {
				if tx := got.(*wxpay.V3Transaction); tx.OutTradeNo != "1217752501201407033233368018" || !tx.Paid() {
					t.Errorf("transaction = %+v", tx)
				}
			},
		},
		{
			name: "QueryOrderEscapesPath", status: 200, answer: strings.ReplaceAll(v3TestTransaction, "1217752501201407033233368018\"", "a|b*c-d_e\""),
			call:       func(c *wxpay.V3Client) (any, error) { return c.QueryOrder(context.Background(), "a|b*c-d_e") },
			wantMethod: "GET", wantCanonical: "/v3/pay/transactions/out-trade-no/a%7Cb%2Ac-d_e?mchid=1230000109",
			check: func(t *testing.T, got any) {
				if tx := got.(*wxpay.V3Transaction); tx.OutTradeNo != "a|b*c-d_e" {
					t.Errorf("out_trade_no = %q", tx.OutTradeNo)
				}
			},
		},
		{
			name: "CloseOrder204", status: 204, answer: "",
			call: func(c *wxpay.V3Client) (any, error) {
				return nil, c.CloseOrder(context.Background(), "1217752501201407033233368018")
			},
			wantMethod: "POST", wantCanonical: "/v3/pay/transactions/out-trade-no/1217752501201407033233368018/close",
			wantBody: `{"mchid":"1230000109"}`,
		},
		{
			name: "Refund", status: 200, answer: v3TestRefund,
			call: func(c *wxpay.V3Client) (any, error) {
				return c.Refund(context.Background(), &wxpay.V3RefundRequest{
					OutTradeNo: "1217752501201407033233368018", OutRefundNo: "R1217752501201407033233368018",
					Reason: "unused credits", Refund: 2500, Total: 5000,
				})
			},
			wantMethod: "POST", wantCanonical: "/v3/refund/domestic/refunds",
			wantBody: mustReadV3Line("request_refund.json"),
			check: func(t *testing.T, got any) {
				r := got.(*wxpay.V3Refund)
				if r.Status != wxpay.V3RefundStatusProcessing || r.Final() || r.Amount.Refund != 2500 || r.Amount.PayerRefund != 2450 || r.RefundID == "" {
					t.Errorf("refund = %+v", r)
				}
			},
		},
		{
			name: "QueryRefund", status: 200, answer: strings.Replace(v3TestRefund, `"status":"PROCESSING"`, `"status":"SUCCESS","success_time":"2026-01-01T09:01:00+08:00"`, 1),
			call: func(c *wxpay.V3Client) (any, error) {
				return c.QueryRefund(context.Background(), "R1217752501201407033233368018")
			},
			wantMethod: "GET", wantCanonical: "/v3/refund/domestic/refunds/R1217752501201407033233368018",
			check: func(t *testing.T, got any) {
				r := got.(*wxpay.V3Refund)
				if r.Status != wxpay.V3RefundStatusSuccess || !r.Final() || r.SuccessTime == "" {
					t.Errorf("refund = %+v", r)
				}
			},
		},
	}
	for _, prefix := range []string{"", "/sandbox/wxpay"} {
		for _, tt := range tests {
			t.Run(tt.name+"/prefix="+prefix, func(t *testing.T) {
				f, srv := newV3FakeServer(t, prefix)
				f.answer(tt.status, tt.answer, nil)
				got, err := tt.call(newV3TestClient(t, srv, prefix))
				if err != nil {
					t.Fatal(err)
				}
				seen := f.requests()
				if len(seen) != 1 {
					t.Fatalf("server saw %d verified requests, want 1", len(seen))
				}
				s := seen[0]
				if s.Method != tt.wantMethod || s.Canonical != tt.wantCanonical || string(s.Body) != tt.wantBody {
					t.Errorf("request %s %s %s\nwant    %s %s %s", s.Method, s.Canonical, s.Body, tt.wantMethod, tt.wantCanonical, tt.wantBody)
				}
				if s.Header.Get("Accept") != "application/json" || s.Header.Get("User-Agent") == "" {
					t.Errorf("headers %v", s.Header)
				}
				if tt.wantBody != "" && s.Header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type = %q", s.Header.Get("Content-Type"))
				}
				if tt.check != nil {
					tt.check(t, got)
				}
			})
		}
	}
}

// TestV3ClientErrors checks how answers WeChat Pay signed as errors, and
// answers that cannot be trusted, reach the caller.
func TestV3ClientErrors(t *testing.T) {
	stale := func(h http.Header) { h.Set("Wechatpay-Timestamp", strconv.FormatInt(v3TestNow.Unix()-300, 10)) }
	flip := func(h http.Header) {
		s := []byte(h.Get("Wechatpay-Signature"))
		if s[5] == 'A' { // another valid base64 digit: a bad signature, not bad base64
			s[5] = 'B'
		} else {
			s[5] = 'A'
		}
		h.Set("Wechatpay-Signature", string(s))
	}
	query := func(c *wxpay.V3Client) error {
		_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
		return err
	}
	order := func(c *wxpay.V3Client) error {
		_, err := c.NativeOrder(context.Background(), v3TestOrder())
		return err
	}
	tests := []struct {
		name      string
		status    int
		answer    string
		tamper    func(http.Header)
		call      func(*wxpay.V3Client) error
		wantAPI   *wxpay.APIError // a trusted WeChat Pay error
		wantErr   error           // a sentinel inside a *TransportError
		retryable bool
	}{
		{
			name: "ParamError400", status: 400, call: order,
			answer:  mustReadV3Line("answer_error_param.json"),
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 400, Code: "PARAM_ERROR", Message: "参数错误", Detail: `{"field":"/amount/currency","value":"XYZ","issue":"Currency code is invalid","location":"body"}`},
		},
		{
			name: "SystemError500", status: 500, call: query, answer: `{"code":"SYSTEM_ERROR","message":"系统错误"}`,
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 500, Code: "SYSTEM_ERROR", Message: "系统错误"}, retryable: true,
		},
		{
			name: "OrderNotExist404", status: 404, call: query, answer: `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`,
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 404, Code: "ORDER_NOT_EXIST", Message: "订单不存在"},
		},
		{
			name: "RateLimited429", status: 429, call: query, answer: `{"code":"FREQUENCY_LIMITED","message":"频率超限"}`,
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 429, Code: "FREQUENCY_LIMITED", Message: "频率超限"}, retryable: true,
		},
		{
			name: "UnsignedHTML502", status: 502, call: query, answer: `<html>Bad Gateway</html>`,
			tamper: func(h http.Header) { h.Del("Wechatpay-Signature") }, wantErr: wxpay.ErrNotSigned, retryable: true,
		},
		{name: "BadSignature200", status: 200, call: query, answer: v3TestTransaction, tamper: flip, wantErr: wxpay.ErrBadSignature, retryable: true},
		{name: "BadSignatureOnOrder", status: 200, call: order, answer: `{"code_url":"weixin://wxpay/bizpayurl?pr=forged"}`, tamper: flip, wantErr: wxpay.ErrBadSignature, retryable: true},
		{
			// A forged "order does not exist" must not pass for WeChat's word.
			name: "BadSignature404", status: 404, call: query, answer: `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`,
			tamper: flip, wantErr: wxpay.ErrBadSignature, retryable: true,
		},
		{name: "Stale200", status: 200, call: query, answer: v3TestTransaction, tamper: stale, wantErr: wxpay.ErrTooOld, retryable: true},
		{
			name: "UnknownSerial200", status: 200, call: query, answer: v3TestTransaction,
			tamper: func(h http.Header) { h.Set("Wechatpay-Serial", "PUB_KEY_ID_9") }, wantErr: wxpay.ErrUnknownSerial, retryable: true,
		},
		{
			name: "Probe200", status: 200, call: query, answer: v3TestTransaction,
			tamper: func(h http.Header) { h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/abc") }, wantErr: wxpay.ErrSignatureProbe, retryable: true,
		},
		{name: "AnotherOrder", status: 200, call: query, answer: strings.ReplaceAll(v3TestTransaction, "1217752501201407033233368018\"", "999999\""), wantErr: wxpay.ErrMalformed, retryable: true},
		{name: "NotJSON", status: 200, call: query, answer: `{"trade_state":`, wantErr: wxpay.ErrMalformed, retryable: true},
		{name: "NoCodeURL", status: 200, call: order, answer: `{}`, wantErr: wxpay.ErrMalformed, retryable: true},
		{name: "TooLarge", status: 200, call: query, answer: `{"x":"` + strings.Repeat("a", wxpay.MaxBodyBytes) + `"}`, wantErr: wxpay.ErrBodyTooLarge, retryable: true},
		{
			name: "RefundUnknownState", status: 200, answer: strings.Replace(v3TestRefund, "PROCESSING", "DONE", 1), wantErr: wxpay.ErrMalformed, retryable: true,
			call: func(c *wxpay.V3Client) error {
				_, err := c.QueryRefund(context.Background(), "R1217752501201407033233368018")
				return err
			},
		},
		{
			name: "RefundNotExist404", status: 404, answer: `{"code":"RESOURCE_NOT_EXISTS","message":"退款单不存在"}`,
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS", Message: "退款单不存在"},
			call: func(c *wxpay.V3Client) error {
				_, err := c.QueryRefund(context.Background(), "R1")
				return err
			},
		},
		{
			name: "CloseOrderPaid400", status: 400, answer: `{"code":"ORDER_PAID","message":"订单已支付"}`,
			wantAPI: &wxpay.APIError{Version: 3, HTTPStatus: 400, Code: "ORDER_PAID", Message: "订单已支付"},
			call: func(c *wxpay.V3Client) error {
				return c.CloseOrder(context.Background(), "1217752501201407033233368018")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, "")
			f.answer(tt.status, tt.answer, tt.tamper)
			err := tt.call(newV3TestClient(t, srv, ""))
			if err == nil {
				t.Fatal("no error")
			}
			var api *wxpay.APIError
			var te *wxpay.TransportError
			if tt.wantAPI != nil {
				if !errors.As(err, &api) {
					t.Fatalf("err = %v, want an *APIError", err)
				}
				if *api != *tt.wantAPI {
					t.Errorf("APIError = %+v\nwant       %+v", *api, *tt.wantAPI)
				}
			} else {
				if !errors.As(err, &te) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want a *TransportError wrapping %v", err, tt.wantErr)
				}
				if errors.As(err, &api) || wxpay.ErrorCode(err) != "" {
					t.Errorf("an untrusted answer surfaced as APIError %v", api)
				}
			}
			if got := wxpay.IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v (%v)", got, tt.retryable, err)
			}
		})
	}
}

// TestV3ClientRefusesBadRequests checks that requests the client refuses
// never reach the server.
func TestV3ClientRefusesBadRequests(t *testing.T) {
	mutate := func(m func(*wxpay.V3NativeOrderRequest)) func(*wxpay.V3Client) error {
		return func(c *wxpay.V3Client) error {
			r := v3TestOrder()
			m(r)
			_, err := c.NativeOrder(context.Background(), r)
			return err
		}
	}
	refund := func(m func(*wxpay.V3RefundRequest)) func(*wxpay.V3Client) error {
		return func(c *wxpay.V3Client) error {
			r := &wxpay.V3RefundRequest{OutTradeNo: "1217752501201407033233368018", OutRefundNo: "R1", Refund: 1, Total: 2}
			m(r)
			_, err := c.Refund(context.Background(), r)
			return err
		}
	}
	tests := []struct {
		name string
		call func(*wxpay.V3Client) error
	}{
		{"ZeroAmount", mutate(func(r *wxpay.V3NativeOrderRequest) { r.Total = 0 })},
		{"NegativeAmount", mutate(func(r *wxpay.V3NativeOrderRequest) { r.Total = -1 })},
		{"NoDescription", mutate(func(r *wxpay.V3NativeOrderRequest) { r.Description = "" })},
		{"NoNotifyURL", mutate(func(r *wxpay.V3NativeOrderRequest) { r.NotifyURL = "" })},
		{"ShortOutTradeNo", mutate(func(r *wxpay.V3NativeOrderRequest) { r.OutTradeNo = "12345" })},
		{"OutTradeNoSlash", mutate(func(r *wxpay.V3NativeOrderRequest) { r.OutTradeNo = "123456/../x" })},
		{"DeviceWithoutIP", mutate(func(r *wxpay.V3NativeOrderRequest) { r.PayerClientIP = "" })},
		{"QueryEmpty", func(c *wxpay.V3Client) error { _, err := c.QueryOrder(context.Background(), ""); return err }},
		{"QueryTraversal", func(c *wxpay.V3Client) error { _, err := c.QueryOrder(context.Background(), "../../v3/x"); return err }},
		{"QueryByIDTraversal", func(c *wxpay.V3Client) error {
			_, err := c.QueryOrderByTransactionID(context.Background(), "../x")
			return err
		}},
		{"CloseEmpty", func(c *wxpay.V3Client) error { return c.CloseOrder(context.Background(), "") }},
		{"RefundOverTotal", refund(func(r *wxpay.V3RefundRequest) { r.Refund = 3 })},
		{"RefundZero", refund(func(r *wxpay.V3RefundRequest) { r.Refund = 0 })},
		{"RefundNoOrder", refund(func(r *wxpay.V3RefundRequest) { r.OutTradeNo = "" })},
		{"RefundNoNumber", refund(func(r *wxpay.V3RefundRequest) { r.OutRefundNo = "" })},
		{"QueryRefundEmpty", func(c *wxpay.V3Client) error { _, err := c.QueryRefund(context.Background(), ""); return err }},
		{"NoKeyring", func(c *wxpay.V3Client) error {
			c.Keyring = nil
			_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
			return err
		}},
		{"NoMerchantKey", func(c *wxpay.V3Client) error {
			c.MerchantKey = nil
			_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newV3FakeServer(t, "")
			f.answer(200, `{}`, nil)
			err := tt.call(newV3TestClient(t, srv, ""))
			checkErrIs(t, err, wxpay.ErrV3Request)
			if n := len(f.requests()); n != 0 {
				t.Errorf("server saw %d requests", n)
			}
		})
	}
}

func TestV3ClientNetworkErrorIsTransport(t *testing.T) {
	_, srv := newV3FakeServer(t, "")
	c := newV3TestClient(t, srv, "")
	srv.Close()
	_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
	var te *wxpay.TransportError
	if !errors.As(err, &te) || !wxpay.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable *TransportError", err)
	}
}

// TestV3ClientWrongMerchantKey checks that a client signing with a key that
// is not the merchant's gets WeChat Pay's 401 SIGN_ERROR as an *APIError.
func TestV3ClientWrongMerchantKey(t *testing.T) {
	f, srv := newV3FakeServer(t, "")
	f.answer(200, v3TestTransaction, nil)
	c := newV3TestClient(t, srv, "")
	c.MerchantKey = MustV3PrivateKey(t, "wechatpay_key.pem") // not the merchant's key
	_, err := c.QueryOrder(context.Background(), "1217752501201407033233368018")
	var api *wxpay.APIError
	if !errors.As(err, &api) || api.Code != "SIGN_ERROR" || api.HTTPStatus != 401 {
		t.Fatalf("err = %v, want 401 SIGN_ERROR", err)
	}
}

func TestV3ClientValidate(t *testing.T) {
	_, srv := newV3FakeServer(t, "")
	tests := []struct {
		name   string
		mutate func(*wxpay.V3Client)
		want   error
	}{
		{"OK", func(*wxpay.V3Client) {}, nil},
		{"DefaultBaseURL", func(c *wxpay.V3Client) { c.BaseURL = "" }, nil},
		{"NoMchID", func(c *wxpay.V3Client) { c.MchID = "" }, wxpay.ErrV3Request},
		{"NoAppID", func(c *wxpay.V3Client) { c.AppID = "" }, wxpay.ErrV3Request},
		{"NoSerial", func(c *wxpay.V3Client) { c.MerchantSerialNo = "" }, wxpay.ErrV3Request},
		{"NoKeyring", func(c *wxpay.V3Client) { c.Keyring = nil }, wxpay.ErrV3Request},
		{"EmptyKeyring", func(c *wxpay.V3Client) { c.Keyring = wxpay.NewV3Keyring() }, wxpay.ErrV3Request},
		{"ShortAPIv3Key", func(c *wxpay.V3Client) { c.APIv3Key = "testAPIv3Key0000" }, wxpay.ErrV3KeyLength},
		{"RelativeBaseURL", func(c *wxpay.V3Client) { c.BaseURL = "api.mch.weixin.qq.com" }, wxpay.ErrV3Request},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newV3TestClient(t, srv, "")
			tt.mutate(c)
			checkErrIs(t, c.Validate(), tt.want)
		})
	}
}

func TestV3ClientRefusesAnswerForAnotherApp(t *testing.T) {
	f, srv := newV3FakeServer(t, "")
	f.answer(200, strings.Replace(v3TestTransaction, v3TestAppID, "wx0000000000000000", 1), nil)
	_, err := newV3TestClient(t, srv, "").QueryOrder(context.Background(), "1217752501201407033233368018")
	checkErrIs(t, err, wxpay.ErrMalformed)
}
