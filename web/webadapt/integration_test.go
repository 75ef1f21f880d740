package webadapt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/store/sqlite"
	"tollgate/web"
	"tollgate/web/webadapt"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// stack is the checkout over the real services: web.Handler through the
// adapters over payment.Service (API v2, or v3 with WeChat's OAuth) on
// SQLite, with wxpaysim as WeChat Pay delivering notifications back to the
// app server.
type stack struct {
	app, sim *httptest.Server
	ledger   *ledger.Service
}

func mustStack(t *testing.T) *stack { return mustStackAPI(t, payment.APIv2) }

func mustStackAPI(t *testing.T, version string) *stack {
	t.Helper()
	ctx := context.Background()
	sim := &wxpaysim.Server{TimeScale: 0.001, Logf: t.Logf}
	simSrv := httptest.NewTLSServer(sim) // TLS: v2 refunds present the merchant certificate
	t.Cleanup(simSrv.Close)
	t.Cleanup(func() { sim.Close() })

	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(store, ledger.Options{})
	t.Cleanup(func() {
		led.Close()
		store.Close()
	})
	pr, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	// WeChat's OAuth and H5 page send the browser back to the checkout's
	// host only (its web authorization and H5 payment domain).
	sim.RedirectHosts = []string{strings.TrimPrefix(app.URL, "http://")}

	cfg := sim.Config()
	mem := kv.NewMemory(kv.MemoryOptions{})
	v2 := &wxpay.V2Client{BaseURL: simSrv.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
		SignType: wxpay.SignTypeMD5, HTTPClient: simSrv.Client(), Certificate: mustClientCert(t)}
	pcfg := payment.Config{APIVersion: version, SignType: wxpay.SignTypeMD5,
		AppID: cfg.AppID, MchID: cfg.MchID, NotifyURL: app.URL + "/wxpay/notify", TokenSecret: []byte("test secret"),
		RefundPolicy: payment.RefundPolicySelf} // the account page's own refund
	deps := payment.Deps{Ledger: led, Store: store, Pricer: pr, Nonces: mem, Limiter: mem, V2: v2}
	if version == payment.APIv3 {
		pcfg.NotifyURLV3, pcfg.RefundNotifyURL = app.URL+"/wxpay/notify/v3", app.URL+"/wxpay/notify/v3"
		_, v3, err := cfg.Clients(simSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		v3.HTTPClient = simSrv.Client()
		deps.V3 = v3
	}
	svc, err := payment.New(pcfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("POST /wxpay/notify/v3", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		status, reply := svc.HandleV3Notification(r.Context(), r.Header, body)
		w.WriteHeader(status)
		_, _ = w.Write(reply)
	})
	mux.HandleFunc("/wxpay/notify", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		status, reply := svc.HandleV2Notification(r.Context(), body)
		w.WriteHeader(status)
		_, _ = w.Write(reply)
	})
	h := &web.Handler{
		Secret: []byte("0123456789abcdef0123456789abcdef"), MerchantName: "Example AI", Sandbox: true,
		Orders: webadapt.Orders{Payments: svc}, Refunder: webadapt.Orders{Payments: svc},
		Accounts: webadapt.Accounts{Ledger: led}, Catalog: webadapt.Catalog{Pricer: pr},
		Account: func(*http.Request) (tollgate.AccountID, error) { return "acct_it", nil },
		OAuth: webadapt.OAuth{Client: &wxpay.OAuthClient{AuthorizeURL: simSrv.URL, APIURL: simSrv.URL, AppID: cfg.AppID,
			Secret: wxpaysim.DefaultAppSecret, HTTPClient: simSrv.Client()}},
	}
	if err := h.Check(); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", h)
	if _, err := led.CreateAccount(ctx, "acct_it"); err != nil {
		t.Fatal(err)
	}
	return &stack{app: app, sim: simSrv, ledger: led}
}

func (s *stack) call(t *testing.T, method, url, body string, headers ...string) (int, string) {
	t.Helper()
	code, body, _ := s.callH(t, method, url, body, headers...)
	return code, body
}

// callH is call that also returns the answer's headers; it follows no
// redirect.
func (s *stack) callH(t *testing.T, method, url, body string, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := *s.sim.Client() // trusts the emulator's test certificate too
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// waitStatus polls the page's order endpoint until the order has status;
// the deadline only stops a hung test.
func (s *stack) waitStatus(t *testing.T, url, status string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := s.call(t, "GET", url, "")
		var o map[string]any
		_ = json.Unmarshal([]byte(body), &o)
		if code == 200 && o["status"] == status {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order never became %s: %d %s", status, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCheckoutOverPayment(t *testing.T) {
	s := mustStack(t)
	code, body := s.call(t, "POST", s.app.URL+"/v1/checkout/sessions", `{"package_id":"plus"}`)
	if code != 201 {
		t.Fatalf("session: %d %s", code, body)
	}
	var sess struct {
		URL        string `json:"url"`
		AccountURL string `json:"account_url"`
	}
	_ = json.Unmarshal([]byte(body), &sess)

	order := func(pkg, key string) string {
		code, body := s.call(t, "POST", sess.URL+"/orders", `{"package_id":"`+pkg+`","device_fingerprint":"0123456789abcdef0123"}`, "Idempotency-Key", key)
		if code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		var o map[string]any
		_ = json.Unmarshal([]byte(body), &o)
		if o["status"] != "NOTPAY" {
			t.Fatalf("created %v", o)
		}
		return o["out_trade_no"].(string)
	}
	paid := order("plus", "key-integration-1")
	if code, body := s.call(t, "GET", sess.URL+"/orders/"+paid+"/qr.png", ""); code != 200 || !strings.HasPrefix(body, "\x89PNG") {
		t.Fatalf("qr: %d", code)
	}
	if code, body := s.call(t, "POST", s.sim.URL+"/sim/orders/"+paid+"/pay", ""); code != 200 {
		t.Fatalf("sim pay: %d %s", code, body)
	}
	o := s.waitStatus(t, sess.URL+"/orders/"+paid, "SUCCESS")
	if bal := o["balance"].(map[string]any); bal["credits"] != float64(7_200_000) {
		t.Fatalf("balance after paying: %v", bal)
	}

	code, page := s.call(t, "GET", sess.AccountURL, "", "Accept-Language", "en")
	if code != 200 || !strings.Contains(page, paid) || !strings.Contains(page, "7,200,000") || !strings.Contains(page, ">Refund<") {
		t.Fatalf("account page: %d\n%s", code, page)
	}
	code, body = s.call(t, "POST", sess.URL+"/orders/"+paid+"/refund", "{}")
	if code != 200 || !strings.Contains(body, `"amount":"50.00"`) {
		t.Fatalf("refund: %d %s", code, body)
	}
}

// mustClientCert is a throwaway merchant client certificate for the
// emulator's /secapi/ endpoints.
func mustClientCert(tb testing.TB) *tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: wxpaysim.DefaultMchID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPhoneMethodsOverPayment pays an H5 and a JSAPI order placed by the
// checkout's handlers through payment.Service over API v3, the emulator
// playing WeChat Pay (its H5 page, its OAuth, its JSAPI sheet checking
// paySign): each is credited once.
func TestPhoneMethodsOverPayment(t *testing.T) {
	s := mustStackAPI(t, payment.APIv3)
	code, body := s.call(t, "POST", s.app.URL+"/v1/checkout/sessions", `{}`)
	var sess struct{ URL string }
	if _ = json.Unmarshal([]byte(body), &sess); code != 201 {
		t.Fatalf("session: %d %s", code, body)
	}
	const fp = "0123456789abcdef0123"

	// H5: the page's order has WeChat Pay's h5_url with the way back.
	code, body = s.call(t, "POST", sess.URL+"/orders", `{"package_id":"starter","device_fingerprint":"`+fp+`","method":"h5"}`,
		"Idempotency-Key", "key-h5-000001")
	var h5 struct {
		OutTradeNo string `json:"out_trade_no"`
		Method     string `json:"method"`
		H5URL      string `json:"h5_url"`
	}
	_ = json.Unmarshal([]byte(body), &h5)
	back := sess.URL + "?order=" + h5.OutTradeNo
	if code != 201 || h5.Method != "h5" || !strings.HasPrefix(h5.H5URL, s.sim.URL+"/sim/h5/pay?prepay_id=") ||
		!strings.HasSuffix(h5.H5URL, "&redirect_url="+url.QueryEscape(back)) {
		t.Fatalf("h5 order: %d %s", code, body)
	}
	u, _ := url.Parse(h5.H5URL)
	code, _, hdr := s.callH(t, "POST", s.sim.URL+"/sim/h5/pay", u.Query().Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusFound || hdr.Get("Location") != back {
		t.Fatalf("paying on the H5 page: %d, back to %q, want %q", code, hdr.Get("Location"), back)
	}
	if o := s.waitStatus(t, sess.URL+"/orders/"+h5.OutTradeNo, "SUCCESS"); o["balance"].(map[string]any)["credits"] != float64(1_400_000) {
		t.Fatalf("after H5: %v", o)
	}

	// JSAPI: OAuth through the emulator, then the sheet.
	code, _, hdr = s.callH(t, "GET", sess.URL, "", "User-Agent", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
	if code != http.StatusFound {
		t.Fatalf("checkout inside WeChat: %d", code)
	}
	stateCookie := hdr.Get("Set-Cookie")
	authorize, _, _ := strings.Cut(hdr.Get("Location"), "#")
	code, _, hdr = s.callH(t, "GET", authorize+"&openid=oIntegration00000000000001", "")
	if code != http.StatusFound {
		t.Fatalf("authorize: %d", code)
	}
	cb := hdr.Get("Location")
	code, _, hdr = s.callH(t, "GET", cb, "", "Cookie", strings.Split(stateCookie, ";")[0])
	if code != http.StatusSeeOther {
		t.Fatalf("callback: %d", code)
	}
	var wx string
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == "tollgate_wx" {
			wx = c.Name + "=" + c.Value
		}
	}
	// A replayed code changes nothing.
	if code, page, _ := s.callH(t, "GET", cb, "", "Cookie", strings.Split(stateCookie, ";")[0]); code != 400 ||
		!strings.Contains(page, "WeChat did not accept the sign-in") {
		t.Fatalf("replayed code: %d", code)
	}
	code, body = s.call(t, "POST", sess.URL+"/orders", `{"package_id":"plus","device_fingerprint":"`+fp+`","method":"jsapi"}`,
		"Idempotency-Key", "key-jsapi-0001", "Cookie", wx)
	var js struct {
		OutTradeNo string          `json:"out_trade_no"`
		JSAPI      json.RawMessage `json:"jsapi"`
	}
	_ = json.Unmarshal([]byte(body), &js)
	if code != 201 || len(js.JSAPI) == 0 {
		t.Fatalf("jsapi order: %d %s", code, body)
	}
	if code, body := s.call(t, "POST", s.sim.URL+"/sim/jsapi/pay", string(js.JSAPI)); code != 200 ||
		!strings.Contains(body, "get_brand_wcpay_request:ok") {
		t.Fatalf("the sheet: %d %s", code, body)
	}
	if o := s.waitStatus(t, sess.URL+"/orders/"+js.OutTradeNo, "SUCCESS"); o["balance"].(map[string]any)["credits"] != float64(8_600_000) {
		t.Fatalf("after JSAPI: %v", o)
	}
	if n, _ := s.ledger.Balance(context.Background(), "acct_it"); n.Credits != 8_600_000 {
		t.Fatalf("ledger balance %d", n.Credits)
	}
}
