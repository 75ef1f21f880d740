package wxpay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// v3SimEnv is the emulator mounted as `tollgate serve` mounts it, and a v3
// client configured from it. certFetches counts GET /v3/certificates.
type v3SimEnv struct {
	sim         *wxpaysim.Server
	srv         *httptest.Server
	c           *wxpay.V3Client
	certFetches atomic.Int64
}

func newV3SimEnv(t *testing.T, knobs func(*wxpaysim.Server)) *v3SimEnv {
	t.Helper()
	e := &v3SimEnv{sim: &wxpaysim.Server{Logf: t.Logf}}
	if knobs != nil {
		knobs(e.sim)
	}
	t.Cleanup(func() { e.sim.Close() })
	e.srv = httptest.NewServer(http.StripPrefix(simMount, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/certificates" {
			e.certFetches.Add(1)
		}
		e.sim.ServeHTTP(w, r)
	})))
	t.Cleanup(e.srv.Close)
	cfg := e.sim.Config()
	key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	e.c = &wxpay.V3Client{
		BaseURL: e.srv.URL + simMount, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
		MerchantKey: key, APIv3Key: cfg.APIv3Key, Keyring: wxpay.NewV3Keyring(), HTTPClient: e.srv.Client(),
	}
	if cfg.PlatformCertificates {
		wxpay.NewV3Certificates(e.c).Logger = slog.New(slog.DiscardHandler)
	} else {
		if err := e.c.Keyring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
			t.Fatal(err)
		}
		e.c.WechatpaySerial = cfg.PlatformKeyID
	}
	return e
}

func (e *v3SimEnv) mustState(t *testing.T, no, want string) *wxpay.V3Transaction {
	t.Helper()
	tx, err := e.c.QueryOrder(context.Background(), no)
	if err != nil {
		t.Fatal(err)
	}
	if tx.TradeState != want {
		t.Fatalf("order %s is %s, want %s", no, tx.TradeState, want)
	}
	return tx
}

// TestV3SimJSAPI pays a JSAPI order the way a page inside WeChat does:
// JSAPIOrder, JSAPIParams, then the payment sheet, which checks paySign
// with the merchant's public key.
func TestV3SimJSAPI(t *testing.T) {
	e := newV3SimEnv(t, nil)
	ctx := context.Background()
	r := v3TestJSAPIOrder()
	r.OutTradeNo, r.TimeExpire = "tg_jsapi_0001", time.Now().Add(30*time.Minute)
	prepayID, err := e.c.JSAPIOrder(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.c.JSAPIParams(prepayID)
	if err != nil {
		t.Fatal(err)
	}
	sheet := func(p wxpay.V3JSAPIParams) (int, map[string]string) {
		t.Helper()
		b, _ := json.Marshal(p)
		resp, err := e.srv.Client().Post(e.srv.URL+simMount+"/sim/jsapi/pay", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	forged := p
	forged.Package = "prepay_id=" + prepayID + "0"
	if status, a := sheet(forged); status == http.StatusOK || a["err_msg"] != "get_brand_wcpay_request:fail" {
		t.Fatalf("a forged package was accepted: %d %v", status, a)
	}
	tampered := p
	tampered.NonceStr = strings.ToLower(p.NonceStr)
	if status, a := sheet(tampered); status == http.StatusOK {
		t.Fatalf("a paySign over other fields was accepted: %v", a)
	}
	e.mustState(t, r.OutTradeNo, wxpay.V3TradeStateNotPay)
	if status, a := sheet(p); status != http.StatusOK || a["err_msg"] != "get_brand_wcpay_request:ok" {
		t.Fatalf("payment sheet: %d %v", status, a)
	}
	tx := e.mustState(t, r.OutTradeNo, wxpay.V3TradeStateSuccess)
	if tx.TradeType != "JSAPI" || tx.Payer == nil || tx.Payer.OpenID != v3TestOpenID || tx.Amount.Total != r.Total {
		t.Errorf("transaction %+v", tx)
	}
}

// TestV3SimH5 pays an H5 order through its h5_url, as a phone's browser.
func TestV3SimH5(t *testing.T) {
	e := newV3SimEnv(t, func(s *wxpaysim.Server) { s.RedirectHosts = []string{"merchant.example"} })
	r := v3TestH5Order()
	r.OutTradeNo, r.TimeExpire = "tg_h5_0001", time.Now().Add(30*time.Minute)
	h5URL, err := e.c.H5Order(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(h5URL)
	if err != nil || u.Query().Get("prepay_id") == "" {
		t.Fatalf("h5_url %q", h5URL)
	}
	back := "https://merchant.example/checkout?order=" + r.OutTradeNo
	noFollow := *e.srv.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.PostForm(u.Scheme+"://"+u.Host+u.Path, url.Values{"prepay_id": {u.Query().Get("prepay_id")}, "redirect_url": {back}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != back {
		t.Fatalf("Pay: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if tx := e.mustState(t, r.OutTradeNo, wxpay.V3TradeStateSuccess); tx.TradeType != "MWEB" {
		t.Errorf("trade_type %q", tx.TradeType)
	}
}

// TestV3SimCertificates runs certificate mode against the emulator:
// Preflight downloads the certificates, a rotation costs one download,
// and a retired certificate leaves the keyring at the next refresh.
func TestV3SimCertificates(t *testing.T) {
	e := newV3SimEnv(t, func(s *wxpaysim.Server) { s.PlatformCertificates = true })
	ctx := context.Background()
	for _, r := range e.c.Preflight(ctx) {
		if !r.OK {
			t.Errorf("preflight %s: %s", r.Name, r.Problem)
		}
	}
	first := e.c.Certificates.Serials()
	if len(first) != 1 || e.certFetches.Load() != 1 {
		t.Fatalf("after preflight: serials %v, %d downloads", first, e.certFetches.Load())
	}
	o := v3TestOrder()
	o.OutTradeNo, o.TimeExpire = "tg_cert_0001", time.Now().Add(30*time.Minute)
	if _, err := e.c.NativeOrder(ctx, o); err != nil {
		t.Fatal(err)
	}

	second, err := e.sim.RotateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	e.mustState(t, o.OutTradeNo, wxpay.V3TradeStateNotPay)
	e.mustState(t, o.OutTradeNo, wxpay.V3TradeStateNotPay)
	if got := e.c.Certificates.Serials(); !slices.Contains(got, second) || !slices.Contains(got, first[0]) || e.certFetches.Load() != 2 {
		t.Fatalf("after rotation: serials %v, %d downloads; want %s and %s after 2", got, e.certFetches.Load(), first[0], second)
	}

	e.sim.RetireCertificates()
	if err := e.c.Certificates.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.c.Keyring.Lookup(first[0]); ok {
		t.Errorf("retired certificate %s still verifies", first[0])
	}
	e.mustState(t, o.OutTradeNo, wxpay.V3TradeStateNotPay)
}

// TestV3SimCertificatesRotationDuringFaults is the reliability harness's
// finding in isolation: WeChat Pay rotates its certificate while it
// answers SYSTEM_ERROR (to GET /v3/certificates too). The answer signed
// by the new certificate is refused after the download's 3 attempts
// failed; once WeChat Pay is healthy again, the next answer is verified
// V3CertificateRefetchBackoff later, not a minute later.
func TestV3SimCertificatesRotationDuringFaults(t *testing.T) {
	clock := clocktest.New(v3TestNow)
	e := newV3SimEnv(t, func(s *wxpaysim.Server) { s.PlatformCertificates, s.Clock = true, clock })
	e.c.Clock = clock
	ctx := context.Background()
	for _, r := range e.c.Preflight(ctx) {
		if !r.OK {
			t.Fatalf("preflight %s: %s", r.Name, r.Problem)
		}
	}
	o := v3TestOrder()
	o.OutTradeNo, o.TimeExpire = "tg_cert_0002", clock.Now().Add(30*time.Minute)
	if _, err := e.c.NativeOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	second, err := e.sim.RotateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(wxpaysim.Faults{SystemError: map[string]float64{"query": 1}}); err != nil {
		t.Fatal(err)
	}
	clock.Run(func() { _, err = e.c.QueryOrder(ctx, o.OutTradeNo) })
	checkUnknownSerial(t, err)
	if n := e.certFetches.Load(); n != 4 {
		t.Errorf("%d downloads, want 4 (preflight, then 3 attempts for the new serial)", n)
	}
	if err := e.sim.SetFaults(wxpaysim.Faults{}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.QueryOrder(ctx, o.OutTradeNo)
	checkUnknownSerial(t, err)
	clock.Advance(wxpay.V3CertificateRefetchBackoff)
	e.mustState(t, o.OutTradeNo, wxpay.V3TradeStateNotPay)
	if got := e.c.Certificates.Serials(); !slices.Contains(got, second) || e.certFetches.Load() != 5 {
		t.Errorf("after the backoff: serials %v, %d downloads; want %s after 5", got, e.certFetches.Load(), second)
	}
}
