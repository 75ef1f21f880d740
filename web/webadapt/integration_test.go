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
// adapters over payment.Service (API v2) on SQLite, with wxpaysim as WeChat
// Pay delivering notifications back to the app server.
type stack struct {
	app, sim *httptest.Server
	ledger   *ledger.Service
}

func mustStack(t *testing.T) *stack {
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

	cfg := sim.Config()
	mem := kv.NewMemory(kv.MemoryOptions{})
	v2 := &wxpay.V2Client{BaseURL: simSrv.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
		SignType: wxpay.SignTypeMD5, HTTPClient: simSrv.Client(), Certificate: mustClientCert(t)}
	svc, err := payment.New(payment.Config{APIVersion: payment.APIv2, SignType: wxpay.SignTypeMD5,
		AppID: cfg.AppID, MchID: cfg.MchID, NotifyURL: app.URL + "/wxpay/notify", TokenSecret: []byte("test secret")},
		payment.Deps{Ledger: led, Store: store, Pricer: pr, Nonces: mem, Limiter: mem, V2: v2})
	if err != nil {
		t.Fatal(err)
	}
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
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.sim.Client().Do(req) // trusts the emulator's test certificate too
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
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
