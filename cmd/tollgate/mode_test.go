package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
	"tollgate/wxpay/wxpaysim"
)

// writeFile writes body to name in a new temporary directory.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// providersAt is a providers file routing gpt-4o-mini to an OpenAI-style
// upstream at base.
func providersAt(t *testing.T, base string) string {
	return writeFile(t, "providers.json", `{"providers":[{"name":"up","kind":"openai","base_url":"`+base+`/v1"}],
		"models":{"gpt-4o-mini":[{"provider":"up","model":"gpt-4o-mini"}]}}`)
}

// productionArgs is a complete production configuration but for the
// admin token (each test gives it its own way): an https public URL, a
// providers file at a real (not the mock) upstream and WeChat Pay at
// wxpayURL with v2 credentials.
func productionArgs(t *testing.T, wxpayURL, providers string) []string {
	return []string{"--mode", "production", "--public-url", "https://pay.example.com",
		"--providers", providers, "--wxpay-url", wxpayURL, "--wxpay-api-version", "v2",
		"--wxpay-mch-id", "1900000109", "--wxpay-appid", "wxd678efh567hg6787", "--wxpay-api-key", strings.Repeat("k", 32)}
}

func parseServe(args ...string) error {
	return NewMain(io.Discard, io.Discard).ParseFlags(args)
}

// TestServeProductionNamesEveryMissingSetting: production with nothing
// set refuses with one error naming each setting it lacks, whether the
// mode comes from the flag, the environment or the config file. API v3 is
// production's default, so its merchant key files are named.
func TestServeProductionNamesEveryMissingSetting(t *testing.T) {
	want := []string{"--admin-token", "--admin-token-file", "--public-url", "--providers", "--wxpay-url",
		"--wxpay-mch-id", "--wxpay-appid", "--wxpay-private-key", "--wxpay-cert-serial", "--wxpay-apiv3-key-file"}
	check := func(how string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: production with nothing set started", how)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the error does not name %s:\n%v", how, w, err)
			}
		}
	}
	check("flag", parseServe("--mode", "production"))
	check("config", parseServe("--config", writeFile(t, "tollgate.json", `{"mode":"production"}`)))
	t.Setenv("TOLLGATE_MODE", "production")
	check("env", parseServe())
}

// TestServeProductionRefusesContradictions: each setting production cannot
// work with is refused, by name, while the same configuration without it
// is accepted.
func TestServeProductionRefusesContradictions(t *testing.T) {
	prov := providersAt(t, "http://127.0.0.1:9")
	tokenFile := writeFile(t, "admin-token", strings.Repeat("t", 32)+"\n")
	base := append(productionArgs(t, "http://127.0.0.1:9", prov), "--admin-token-file", tokenFile)
	if err := parseServe(base...); err != nil {
		t.Fatalf("a complete production configuration was refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"http public URL", []string{"--public-url", "http://pay.example.com"}, "--public-url must be https"},
		{"providers at the mock model", []string{"--providers", providersAt(t, "https://pay.example.com/mockllm")}, `provider "up" points at the mock model`},
		{"unreadable providers", []string{"--providers", filepath.Join(t.TempDir(), "none.json")}, "--providers"},
		{"two admin tokens", []string{"--admin-token", strings.Repeat("a", 32)}, "--admin-token and --admin-token-file"},
		{"API v3 without merchant keys", []string{"--wxpay-api-version", "v3"}, "no --wxpay-private-key"},
		{"API v2 without its key", []string{"--wxpay-api-key", ""}, "no --wxpay-api-key"},
		{"unknown mode", []string{"--mode", "staging"}, "--mode must be dev or production"},
		// The AppSecret, the payer's OAuth code and the merchant's signed
		// requests go over TLS, or stay on this machine.
		{"plain http WeChat API", []string{"--wechat-api-url", "http://api.weixin.example"}, `--wechat-api-url must be https in --mode production (the AppSecret is sent there), not "http://api.weixin.example"`},
		{"plain http OAuth", []string{"--wechat-oauth-url", "http://open.weixin.example"}, "--wechat-oauth-url must be https in --mode production"},
		{"plain http WeChat Pay", []string{"--wxpay-url", "http://10.0.0.7:8090"}, "--wxpay-url must be https in --mode production"},
	} {
		err := parseServe(append(append([]string{}, base...), tc.extra...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// Plain http to a loopback host never leaves the machine.
	for _, u := range []string{"http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9", "https://api.weixin.example"} {
		if err := parseServe(append(append([]string{}, base...), "--wechat-api-url", u, "--wechat-oauth-url", u, "--wxpay-url", u)...); err != nil {
			t.Errorf("WeChat's URLs at %s were refused: %v", u, err)
		}
	}
	// A short admin token given directly (not from a file).
	short := append(productionArgs(t, "http://127.0.0.1:9", prov), "--admin-token", "short")
	if err := parseServe(short...); err == nil || !strings.Contains(err.Error(), "--admin-token must be at least 16") {
		t.Errorf("short admin token: %v", err)
	}
	// Several problems at once are all named, not only the first.
	err := parseServe(append(append([]string{}, base...), "--public-url", "http://x", "--wxpay-api-key", "", "--wxpay-api-version", "v3")...)
	for _, w := range []string{"https", "--wxpay-private-key", "--wxpay-apiv3-key-file"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("several problems: %v lacks %q", err, w)
		}
	}
}

// Production refuses a catalog whose provider is the mock model, and an
// invalid catalog, with the other problems; a catalog at a real upstream
// stands in for --providers.
func TestServeProductionCatalog(t *testing.T) {
	tokenFile := writeFile(t, "admin-token", strings.Repeat("t", 32)+"\n")
	args := func(cat string) []string {
		a := productionArgs(t, "http://127.0.0.1:9", "")
		return append(slices.DeleteFunc(a, func(s string) bool { return s == "--providers" || s == "" }), "--admin-token-file", tokenFile, "--catalog", cat)
	}
	if err := parseServe(args(writeFile(t, "c.yaml", houseCatalog("https://llm.example.com", "1", "2")))...); err != nil {
		t.Fatalf("a production catalog was refused: %v", err)
	}
	err := parseServe(args(writeFile(t, "c.yaml", houseCatalog("https://pay.example.com/mockllm", "1", "2")))...)
	if err == nil || !strings.Contains(err.Error(), `provider "up" points at the mock model`) {
		t.Fatalf("a catalog at the mock model: %v", err)
	}
	err = parseServe(args(writeFile(t, "c.yaml", "models: {}\n"))...)
	if err == nil || !strings.Contains(err.Error(), "models: at least one model is required") {
		t.Fatalf("an invalid catalog: %v", err)
	}
}

// TestServeDevRefusesRealWxpay: dev moves no real money, so WeChat Pay's
// own API is refused there; an emulator elsewhere is not.
func TestServeDevRefusesRealWxpay(t *testing.T) {
	creds := []string{"--wxpay-mch-id", "1900000109", "--wxpay-appid", "wxd678efh567hg6787", "--wxpay-api-key", strings.Repeat("k", 32)}
	for _, u := range []string{"https://api.mch.weixin.qq.com", "https://api2.mch.weixin.qq.com/", "https://API.MCH.WEIXIN.QQ.COM."} {
		err := parseServe(append([]string{"--wxpay-url", u}, creds...)...)
		if err == nil || !strings.Contains(err.Error(), "real WeChat Pay") {
			t.Errorf("dev with --wxpay-url %s: %v", u, err)
		}
	}
	if err := parseServe(append([]string{"--wxpay-url", "http://127.0.0.1:9"}, creds...)...); err != nil {
		t.Errorf("dev with an external emulator refused: %v", err)
	}
}

// TestServeProductionMountsNoDevPieces starts serve in production against
// an external emulator and a real-looking upstream, with its admin token
// from a file: it mounts no /sandbox/ and no mock model route, generates
// no admin token and /readyz says production; dev's /readyz says dev.
func TestServeProductionMountsNoDevPieces(t *testing.T) {
	sim := &wxpaysim.Server{NoHandshake: true, Logf: t.Logf}
	t.Cleanup(func() { _ = sim.Close() })
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	up := httptest.NewServer(&mockllm.Server{})
	t.Cleanup(up.Close)
	sc := sim.Config()
	args := productionArgs(t, api.URL, providersAt(t, up.URL))
	args = append(args, "--wxpay-mch-id", sc.MchID, "--wxpay-appid", sc.AppID, "--wxpay-api-key", sc.APIKey)
	data := t.TempDir()
	t.Setenv("TOLLGATE_ADMIN_TOKEN_FILE", writeFile(t, "admin-token", "tga_"+strings.Repeat("s", 40)+"\n"))

	var out bytes.Buffer
	m := NewMain(&out, tbWriter{t})
	if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", data}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if m.Sim != nil {
		t.Error("production built the in-process emulator")
	}
	if m.AdminToken != "tga_"+strings.Repeat("s", 40) {
		t.Errorf("admin token %q is not the file's", m.AdminToken)
	}
	if _, err := os.Stat(filepath.Join(data, "admin-token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("production wrote a generated admin token: %v", err)
	}
	if !strings.Contains(out.String(), "mode:           production") || strings.Contains(out.String(), "/sandbox/") {
		t.Errorf("banner:\n%s", out.String())
	}
	// The public URL is https://pay.example.com; the test reaches the listener.
	c := client{t, "http://" + m.ln.Addr().String()}
	mustMountNoDevPieces(c, m)
	mustAccount(c, m.AdminToken)
	var rz struct{ Status, Mode string }
	c.must(http.StatusOK, "GET", "/readyz", "", "", &rz)
	if rz.Mode != "production" || rz.Status != "ok" {
		t.Errorf("production /readyz: %+v", rz)
	}

	// API v3 (production's default) with the operator's keys mounts none
	// of them either, nor the emulator's OAuth, JSAPI, H5 and rotation.
	k := newOperatorKeys(t, 0)
	sim3 := &wxpaysim.Server{MchID: testMchID, AppID: testAppID, APIv3Key: k.APIv3Key, MerchantSerial: k.MerchantSerial,
		MerchantPublicKey: &k.MerchantPrivateKey.PublicKey, PlatformKey: k.WechatpayPrivateKey, PlatformKeyID: k.WechatpayKeyID, NoHandshake: true, Logf: t.Logf}
	t.Cleanup(func() { _ = sim3.Close() })
	api3 := httptest.NewServer(sim3)
	t.Cleanup(api3.Close)
	var out3 bytes.Buffer
	m3 := NewMain(&out3, tbWriter{t})
	args3 := set(set(productionV3Args(t, k, false), "--wxpay-url", api3.URL), "--providers", providersAt(t, up.URL))
	if err := m3.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, args3...)); err != nil {
		t.Fatal(err)
	}
	if err := m3.Run(context.Background()); err != nil {
		m3.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m3.Close() })
	if m3.Config.WxpayAPIVersion != "v3" || m3.Sim != nil || strings.Contains(out3.String(), "/sandbox/") {
		t.Errorf("v3 production: version %s, emulator %v, banner:\n%s", m3.Config.WxpayAPIVersion, m3.Sim != nil, out3.String())
	}
	mustMountNoDevPieces(client{t, "http://" + m3.ln.Addr().String()}, m3)

	dev := MustRunMain(t)
	dc := client{t, dev.URL}
	c.must(http.StatusOK, "GET", "/readyz", "", "", nil)
	dc.must(http.StatusOK, "GET", "/readyz", "", "", &rz)
	if rz.Mode != "dev" {
		t.Errorf("dev /readyz: %+v", rz)
	}
	dc.must(http.StatusOK, "GET", "/admin/sandbox", dev.AdminToken, "", nil)
	// Not vacuous: dev mounts them.
	if st, _, _ := dc.call("GET", "/sandbox/wxpay/sim/jsapi/bridge.js", "", "", nil); st != http.StatusOK {
		t.Errorf("dev: the emulator's JSAPI bridge answers %d", st)
	}
}

// mustMountNoDevPieces checks that m (production) answers 404 on every
// route of the emulator and of the mock model that dev mounts: the paying
// and notification API, the emulator's WeChat OAuth, its JSAPI sheet and
// bridge, its H5 page and its certificate rotation.
func mustMountNoDevPieces(c client, m *Main) {
	c.tb.Helper()
	for _, r := range []struct{ method, path string }{
		{"GET", "/sandbox/wxpay/sim/orders/tg_x/pay"},
		{"POST", "/sandbox/wxpay/sim/orders/tg_x/pay"},
		{"POST", "/sandbox/wxpay/pay/unifiedorder"},
		{"POST", "/sandbox/wxpay/v3/pay/transactions/native"},
		{"GET", "/sandbox/wxpay/connect/oauth2/authorize?appid=" + testAppID + "&redirect_uri=https%3A%2F%2Fpay.example.com%2F&response_type=code&scope=snsapi_base&state=s"},
		{"GET", "/sandbox/wxpay/sns/oauth2/access_token?appid=" + testAppID + "&secret=x&code=c&grant_type=authorization_code"},
		{"POST", "/sandbox/wxpay/sim/jsapi/pay"},
		{"GET", "/sandbox/wxpay/sim/jsapi/bridge.js"},
		{"GET", "/sandbox/wxpay/sim/h5/pay?prepay_id=wx0"},
		{"POST", "/sandbox/wxpay/sim/h5/pay?prepay_id=wx0"},
		{"POST", "/sandbox/wxpay/sim/rotate-certificate"},
		{"GET", "/mockllm/v1/models"},
		{"POST", "/mockllm/v1/chat/completions"},
	} {
		c.must(http.StatusNotFound, r.method, r.path, "", "", nil)
	}
	c.must(http.StatusNotFound, "GET", "/admin/sandbox", m.AdminToken, "", nil)
}
