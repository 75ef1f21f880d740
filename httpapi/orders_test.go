package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/httpapi"
	"tollgate/internal/clocktest"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/store/sqlite"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// orderWorld is the HTTP API over a real payment service, SQLite and the
// WeChat Pay emulator.
type orderWorld struct {
	t     *testing.T
	sim   *wxpaysim.Server
	st    *sqlite.Store
	v3    *wxpay.V3Client
	h     http.Handler
	key   string // the account's API key
	acct  tollgate.AccountID
	clock *clocktest.Clock
	led   *ledger.Service
	pr    *pricing.Pricer
	au    *auth.Service
}

const orderFP = "0123456789abcdef0123"

// newOrderWorld serves the API with payments over version; trusted is the
// server's TrustedProxyHeader.
func newOrderWorld(t *testing.T, version, trusted string) *orderWorld {
	t.Helper()
	ctx := context.Background()
	w := &orderWorld{t: t, clock: clocktest.New(time.Now().UTC().Truncate(time.Second))}
	w.sim = &wxpaysim.Server{Clock: w.clock, Logf: t.Logf}
	simSrv := httptest.NewTLSServer(w.sim)
	t.Cleanup(simSrv.Close)
	t.Cleanup(func() { w.sim.Close() })
	var err error
	w.st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(w.st, ledger.Options{Clock: w.clock})
	t.Cleanup(func() { led.Close(); w.st.Close() })
	pr, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.sim.Config()
	v2 := &wxpay.V2Client{BaseURL: simSrv.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey, HTTPClient: simSrv.Client()}
	mkey, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ring := wxpay.NewV3Keyring()
	if err := ring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
		t.Fatal(err)
	}
	w.v3 = &wxpay.V3Client{BaseURL: simSrv.URL, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
		MerchantKey: mkey, APIv3Key: cfg.APIv3Key, Keyring: ring, HTTPClient: simSrv.Client(), Clock: w.clock}
	mem := kv.NewMemory(kv.MemoryOptions{Clock: w.clock})
	svc, err := payment.New(payment.Config{APIVersion: version, NotifyURL: "https://tollgate.example/wxpay/notify",
		NotifyURLV3: "https://tollgate.example/wxpay/notify/v3", TokenSecret: []byte("orders test")},
		payment.Deps{Ledger: led, Store: w.st, Pricer: pr, Nonces: mem, Limiter: mem, V2: v2, V3: w.v3, Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	au := &auth.Service{Store: w.st, Accounts: led, Clock: w.clock}
	w.led, w.pr, w.au = led, pr, au
	created, err := au.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.key, w.acct = created.APIKey, created.Account
	w.h = (&httpapi.Server{Ledger: led, Auth: au, Pricer: pr, Payments: svc, TrustedProxyHeader: trusted}).Handler()
	return w
}

// do sends a request with the account's key and returns the answer.
func (w *orderWorld) do(method, path, body string, header map[string]string) *httptest.ResponseRecorder {
	w.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.10:40000"
	r.Header.Set("Authorization", "Bearer "+w.key)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return rec
}

// orderAnswer is the JSON of an order answer, with the method's fields.
type orderAnswer struct {
	OutTradeNo string               `json:"out_trade_no"`
	Method     string               `json:"method"`
	CodeURL    string               `json:"code_url"`
	H5URL      string               `json:"h5_url"`
	JSAPI      *wxpay.V3JSAPIParams `json:"jsapi"`
	Status     string               `json:"status"`
}

func decodeOrder(t *testing.T, rec *httptest.ResponseRecorder, status int) (orderAnswer, map[string]json.RawMessage) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	var a orderAnswer
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	return a, raw
}

// TestOrderMethodsOverHTTP: POST /v1/payments/orders takes "method" and
// "openid" and answers the method with its field only (code_url, h5_url
// or a signed jsapi pay sheet); GET of the order answers its method, and
// for a payable jsapi order its pay sheet (signed at most once a minute); the list carries
// each order's method.
func TestOrderMethodsOverHTTP(t *testing.T) {
	t.Parallel()
	w := newOrderWorld(t, payment.APIv3, "")
	only := func(raw map[string]json.RawMessage, field string) {
		t.Helper()
		for _, f := range []string{"code_url", "h5_url", "jsapi"} {
			if _, ok := raw[f]; ok != (f == field) {
				t.Fatalf("answer has %s: %v, want only %s", f, ok, field)
			}
		}
	}
	native, raw := decodeOrder(t, w.do("POST", "/v1/payments/orders", `{"package_id":"starter","device_fingerprint":"`+orderFP+`"}`, nil), 201)
	if native.Method != "native" || native.CodeURL == "" {
		t.Fatalf("native %+v", native)
	}
	only(raw, "code_url")
	h5, raw := decodeOrder(t, w.do("POST", "/v1/payments/orders", `{"package_id":"starter","device_fingerprint":"`+orderFP+`","method":"h5"}`, nil), 201)
	if h5.Method != "h5" || !strings.Contains(h5.H5URL, "/sim/h5/pay?prepay_id=") {
		t.Fatalf("h5 %+v", h5)
	}
	only(raw, "h5_url")
	if so, _ := w.sim.Order(h5.OutTradeNo); so.PayerClientIP != "192.0.2.10" || so.TradeType != "MWEB" {
		t.Fatalf("the emulator's h5 order %+v", so)
	}
	js, raw := decodeOrder(t, w.do("POST", "/v1/payments/orders", `{"package_id":"starter","device_fingerprint":"`+orderFP+`","method":"jsapi","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}`, nil), 201)
	only(raw, "jsapi")
	so, _ := w.sim.Order(js.OutTradeNo)
	if js.Method != "jsapi" || js.JSAPI == nil || js.JSAPI.Package != "prepay_id="+so.PrepayID || so.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" {
		t.Fatalf("jsapi %+v, emulator %+v", js, so)
	}
	if err := wxpay.VerifyV3JSAPIPaySign(&w.v3.MerchantKey.PublicKey, *js.JSAPI); err != nil {
		t.Fatal(err)
	}
	// The JSON names are the ones WeixinJSBridge takes.
	for _, name := range []string{`"appId"`, `"timeStamp"`, `"nonceStr"`, `"package"`, `"signType":"RSA"`, `"paySign"`} {
		if !strings.Contains(string(raw["jsapi"]), name) {
			t.Fatalf("jsapi %s lacks %s", raw["jsapi"], name)
		}
	}

	// Polls within a minute get the sheet of the create (one RSA
	// signature a minute), later ones a fresh one.
	got, _ := decodeOrder(t, w.do("GET", "/v1/payments/orders/"+js.OutTradeNo, "", nil), 200)
	if got.Method != "jsapi" || got.JSAPI == nil || *got.JSAPI != *js.JSAPI {
		t.Fatalf("GET jsapi %+v (created %+v)", got, js.JSAPI)
	}
	w.clock.Advance(time.Minute)
	got, raw = decodeOrder(t, w.do("GET", "/v1/payments/orders/"+js.OutTradeNo, "", nil), 200)
	if got.Method != "jsapi" || got.JSAPI == nil || got.JSAPI.Package != js.JSAPI.Package || got.JSAPI.NonceStr == js.JSAPI.NonceStr {
		t.Fatalf("GET jsapi a minute later %+v (created %+v)", got, js.JSAPI)
	}
	if err := wxpay.VerifyV3JSAPIPaySign(&w.v3.MerchantKey.PublicKey, *got.JSAPI); err != nil {
		t.Fatal(err)
	}
	only(raw, "jsapi")
	if got, raw := decodeOrder(t, w.do("GET", "/v1/payments/orders/"+h5.OutTradeNo, "", nil), 200); got.Method != "h5" || got.H5URL != h5.H5URL {
		t.Fatalf("GET h5 %+v", got)
	} else {
		only(raw, "h5_url")
	}
	if got, _ := decodeOrder(t, w.do("GET", "/v1/payments/orders/"+native.OutTradeNo, "", nil), 200); got.Method != "native" || got.CodeURL != native.CodeURL {
		t.Fatalf("GET native %+v", got)
	}
	// Paid, the jsapi order shows no pay sheet.
	if _, err := payment.UpdateOrder(context.Background(), w.st, js.OutTradeNo, func(o *payment.Order) error {
		o.Status = payment.StatusSuccess
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, raw := decodeOrder(t, w.do("GET", "/v1/payments/orders/"+js.OutTradeNo, "", nil), 200); got.JSAPI != nil || raw["jsapi"] != nil {
		t.Fatalf("GET of a paid jsapi order %s", raw)
	}

	rec := w.do("GET", "/v1/payments/orders", "", nil)
	var list struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Data) != 3 {
		t.Fatalf("list %s, %v", rec.Body, err)
	}
	methods := map[string]int{}
	for _, o := range list.Data {
		var m string
		_ = json.Unmarshal(o["method"], &m)
		methods[m]++
		if o["jsapi"] != nil {
			t.Fatalf("a listed order carries a pay sheet: %s", rec.Body)
		}
	}
	if methods["native"] != 1 || methods["h5"] != 1 || methods["jsapi"] != 1 {
		t.Fatalf("listed methods %v", methods)
	}
}

// TestOrderRefusedOverHTTP: every bad method, openid and client IP is a
// 400 PARAM_ERROR naming its field ("param"), and nothing is recorded or
// sent to WeChat Pay.
func TestOrderRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	body := func(extra string) string {
		return `{"package_id":"starter","device_fingerprint":"` + orderFP + `"` + extra + `}`
	}
	for _, tc := range []struct {
		name, version, trusted, body string
		header                       map[string]string
		code, param, message         string
	}{
		{"unknown method", "v3", "", body(`,"method":"alipay"`), nil, "PARAM_ERROR", "method", "method must be native, h5 or jsapi"},
		{"method not a string", "v3", "", body(`,"method":5`), nil, "invalid", "", "method"},
		{"jsapi without openid", "v3", "", body(`,"method":"jsapi"`), nil, "PARAM_ERROR", "openid", "method jsapi needs the payer's openid"},
		{"jsapi with empty openid", "v3", "", body(`,"method":"jsapi","openid":""`), nil, "PARAM_ERROR", "openid", "method jsapi needs the payer's openid"},
		{"openid with a slash", "v3", "", body(`,"method":"jsapi","openid":"o/1"`), nil, "PARAM_ERROR", "openid", "openid must be 1-128 characters"},
		{"openid too long", "v3", "", body(`,"method":"jsapi","openid":"` + strings.Repeat("a", 129) + `"`), nil, "PARAM_ERROR", "openid", "openid must be 1-128 characters"},
		{"openid on native", "v3", "", body(`,"openid":"o1"`), nil, "PARAM_ERROR", "openid", "openid is only for method jsapi"},
		{"h5 without the proxy header", "v3", "X-Forwarded-For", body(`,"method":"h5"`), nil, "PARAM_ERROR", "client_ip", "method h5 needs the payer's IP address"},
		{"h5 with a proxy header that is no IP", "v3", "X-Real-IP", body(`,"method":"h5"`), map[string]string{"X-Real-IP": "unknown"}, "PARAM_ERROR", "client_ip", "method h5 needs the payer's IP address"},
		{"h5 with an empty right-most entry", "v3", "X-Forwarded-For", body(`,"method":"h5"`), map[string]string{"X-Forwarded-For": "203.0.113.9,"}, "PARAM_ERROR", "client_ip", "method h5 needs the payer's IP address"},
		{"h5 on v2", "v2", "", body(`,"method":"h5"`), nil, "PARAM_ERROR", "method", "method h5 needs WeChat Pay API v3 (--wxpay-api-version v3)"},
		{"jsapi on v2", "v2", "", body(`,"method":"jsapi","openid":"o1"`), nil, "PARAM_ERROR", "method", "method jsapi needs WeChat Pay API v3 (--wxpay-api-version v3)"},
		{"h5 from the proxy's loopback address", "v3", "X-Forwarded-For", body(`,"method":"h5"`), map[string]string{"X-Forwarded-For": "127.0.0.1"}, "PARAM_ERROR", "client_ip", "set --trusted-proxy-header"},
		{"h5 from a private address", "v3", "X-Real-IP", body(`,"method":"h5"`), map[string]string{"X-Real-IP": "10.0.0.5"}, "PARAM_ERROR", "client_ip", "set --trusted-proxy-header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newOrderWorld(t, tc.version, tc.trusted)
			header := map[string]string{"Idempotency-Key": "k1"}
			for k, v := range tc.header {
				header[k] = v
			}
			rec := w.do("POST", "/v1/payments/orders", tc.body, header)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			e := decodeError(t, rec.Body)
			param := ""
			if e.Param != nil {
				param = *e.Param
			}
			if e.Code != tc.code || param != tc.param || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("error %+v (param %q), want %s %q %q", e, param, tc.code, tc.param, tc.message)
			}
			if os, _ := w.st.ListOrders(context.Background(), w.acct, 10); len(os) != 0 {
				t.Fatal("an order was recorded")
			}
			if len(w.sim.Orders()) != 0 {
				t.Fatal("an order reached WeChat Pay")
			}
			// The key was not used up: a good request takes it.
			if rec := w.do("POST", "/v1/payments/orders", body(""), map[string]string{"Idempotency-Key": "k1"}); rec.Code != http.StatusCreated {
				t.Fatalf("a good request under the refused one's key: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestTrustedProxyHeaderOverHTTP: with a trusted proxy header the payer's
// IP sent to WeChat Pay is the header's (X-Forwarded-For: the right-most
// entry, the one the proxy appended), never the proxy's own address.
func TestTrustedProxyHeaderOverHTTP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ trusted, header, value, want string }{
		{"", "X-Forwarded-For", "198.51.100.1", "192.0.2.10"},
		{"X-Forwarded-For", "X-Forwarded-For", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"x-forwarded-for", "X-Forwarded-For", "203.0.113.9", "203.0.113.9"},
		{"X-Real-IP", "X-Real-IP", " 2001:db8::9 ", "2001:db8::9"},
	} {
		w := newOrderWorld(t, payment.APIv3, tc.trusted)
		a, _ := decodeOrder(t, w.do("POST", "/v1/payments/orders", `{"package_id":"starter","device_fingerprint":"`+orderFP+`","method":"h5"}`,
			map[string]string{tc.header: tc.value}), 201)
		if so, _ := w.sim.Order(a.OutTradeNo); so.PayerClientIP != tc.want {
			t.Errorf("trusted %q, %s: %s: WeChat Pay got %q, want %q", tc.trusted, tc.header, tc.value, so.PayerClientIP, tc.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name, trusted string
		remote        string
		header        http.Header
		want          string
	}{
		{"peer", "", "192.0.2.10:40000", nil, "192.0.2.10"},
		{"peer v6", "", "[2001:db8::1]:40000", nil, "2001:db8::1"},
		{"peer ignores headers", "", "192.0.2.10:40000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "192.0.2.10"},
		{"xff right-most", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"xff last line", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"1.1.1.1", "203.0.113.9"}}, "203.0.113.9"},
		{"xff spaces", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"1.1.1.1 ,  203.0.113.9 "}}, "203.0.113.9"},
		{"xff mapped v4", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"::ffff:203.0.113.9"}}, "203.0.113.9"},
		{"xff missing", "X-Forwarded-For", "192.0.2.10:1", nil, ""},
		{"xff empty entry", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"203.0.113.9, "}}, ""},
		{"xff not an ip", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"203.0.113.9, proxy.local"}}, ""},
		{"xff with port", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"203.0.113.9:443"}}, ""},
		{"xff zone", "X-Forwarded-For", "192.0.2.10:1", http.Header{"X-Forwarded-For": {"fe80::1%eth0"}}, ""},
		{"real ip whole value", "X-Real-IP", "192.0.2.10:1", http.Header{"X-Real-Ip": {" 203.0.113.9 "}}, "203.0.113.9"},
		{"real ip list is no ip", "X-Real-IP", "192.0.2.10:1", http.Header{"X-Real-Ip": {"1.1.1.1, 203.0.113.9"}}, ""},
		{"real ip twice", "X-Real-IP", "192.0.2.10:1", http.Header{"X-Real-Ip": {"1.1.1.1", "203.0.113.9"}}, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Header = tc.remote, tc.header
		if r.Header == nil {
			r.Header = http.Header{}
		}
		if got := httpapi.ClientIP(r, tc.trusted); got != tc.want {
			t.Errorf("%s: ClientIP = %q, want %q", tc.name, got, tc.want)
		}
	}
	for name, ok := range map[string]bool{"X-Forwarded-For": true, "CF-Connecting-IP": true, "": false, "X Real IP": false, "X-Real-IP:": false} {
		if httpapi.ValidHeaderName(name) != ok {
			t.Errorf("ValidHeaderName(%q) = %v", name, !ok)
		}
	}
}

// TestGetOrderWithoutPaySheet: when a payable jsapi order's pay sheet
// cannot be signed (WeChat Pay switched to v2, no v3 client left), GET of
// the order still answers its status, without jsapi, and logs why — as the
// checkout page does — instead of failing every poll with 503.
func TestGetOrderWithoutPaySheet(t *testing.T) {
	t.Parallel()
	w := newOrderWorld(t, payment.APIv3, "")
	js, _ := decodeOrder(t, w.do("POST", "/v1/payments/orders", `{"package_id":"starter","device_fingerprint":"`+orderFP+`","method":"jsapi","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}`, nil), 201)
	if js.JSAPI == nil {
		t.Fatalf("jsapi order without a pay sheet: %+v", js)
	}

	// The operator switches to v2: the new service has no v3 client.
	mem := kv.NewMemory(kv.MemoryOptions{Clock: w.clock})
	v2, err := payment.New(payment.Config{APIVersion: payment.APIv2, NotifyURL: "https://tollgate.example/wxpay/notify",
		TokenSecret: []byte("orders test")},
		payment.Deps{Ledger: w.led, Store: w.st, Pricer: w.pr, Nonces: mem, Limiter: mem,
			Gateway: &payment.V2Gateway{Client: &wxpay.V2Client{}}, Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	w.h = (&httpapi.Server{Ledger: w.led, Auth: w.au, Pricer: w.pr, Payments: v2,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}).Handler()

	got, raw := decodeOrder(t, w.do("GET", "/v1/payments/orders/"+js.OutTradeNo, "", nil), 200)
	if got.Method != "jsapi" || got.Status != "NOTPAY" || raw["jsapi"] != nil {
		t.Fatalf("GET after the switch: %+v %s", got, raw["jsapi"])
	}
	if !strings.Contains(logs.String(), "without its JSAPI pay sheet") || !strings.Contains(logs.String(), js.OutTradeNo) {
		t.Fatalf("the log does not say why the pay sheet is missing:\n%s", logs.String())
	}
}
