package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/testenv"
)

// MustRunMain runs the real `tollgate serve` wiring on 127.0.0.1:0 with a
// fresh data directory, closed when the test ends.
//
// A test on the shared Redis must give --redis-prefix (testenv.MustRedis's):
// serve's default prefix would leave its keys, 24-hour nonces among them,
// in the shared Redis after the test.
func MustRunMain(tb testing.TB, args ...string) *Main {
	tb.Helper()
	if slices.Contains(args, "--redis-url") && !slices.Contains(args, "--redis-prefix") {
		tb.Fatal("MustRunMain: --redis-url without --redis-prefix would write under serve's default prefix in the shared Redis")
	}
	var out bytes.Buffer
	m := NewMain(&out, tbWriter{tb})
	all := append([]string{"--addr", "127.0.0.1:0", "--data", tb.TempDir()}, args...)
	if err := m.ParseFlags(all); err != nil {
		tb.Fatalf("parse flags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		tb.Fatalf("run: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	if !strings.Contains(out.String(), "tollgate serving on "+m.URL) {
		tb.Fatalf("start-up banner lacks the URL:\n%s", out.String())
	}
	return m
}

// tbWriter sends the server's log to the test log, shown on failure.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client calls a running Main.
type client struct {
	tb   testing.TB
	base string
}

// call sends one request; auth is the bearer credential ("" for none).
func (c client) call(method, path, auth, body string, hdr map[string]string) (int, []byte, http.Header) {
	c.tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// must calls and checks the status, decoding the JSON answer into v.
func (c client) must(want int, method, path, auth, body string, v any) {
	c.tb.Helper()
	st, b, _ := c.call(method, path, auth, body, nil)
	if st != want {
		c.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.tb.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

type account struct {
	AccountID string `json:"account_id"`
	APIKey    string `json:"api_key"`
}

func mustAccount(c client, admin string) account {
	c.tb.Helper()
	var a account
	c.must(201, "POST", "/admin/accounts", admin, "", &a)
	if a.AccountID == "" || !strings.HasPrefix(a.APIKey, "tg-") {
		c.tb.Fatalf("account %+v", a)
	}
	return a
}

type balance struct {
	Credits, Held, Provisional, Debt int64
}

func mustBalance(c client, key string) balance {
	c.tb.Helper()
	var b balance
	c.must(200, "GET", "/v1/balance", key, "", &b)
	return b
}

// eventually polls cond (a notification is delivered asynchronously) and
// fails after a generous bound; it asserts an outcome, not a duration.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	tb.Fatalf("never happened: %s", what)
}

const fingerprint = "0123456789abcdef0123"

type orderResult struct {
	OutTradeNo  string `json:"out_trade_no"`
	CodeURL     string `json:"code_url"`
	AmountFen   int64  `json:"amount_fen"`
	Credits     int64  `json:"credits"`
	Status      string `json:"status"`
	AccessToken *struct {
		Token   string `json:"token"`
		Credits int64  `json:"credits"`
	} `json:"access_token"`
}

func mustOrder(c client, key, idem string) orderResult {
	c.tb.Helper()
	st, b, _ := c.call("POST", "/v1/payments/orders", key, `{"package_id":"starter","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": idem})
	if st != 201 && st != 200 {
		c.tb.Fatalf("create order: %d %s", st, b)
	}
	var o orderResult
	if err := json.Unmarshal(b, &o); err != nil {
		c.tb.Fatal(err)
	}
	if o.OutTradeNo == "" || o.CodeURL == "" || o.Status != "NOTPAY" {
		c.tb.Fatalf("order %s", b)
	}
	return o
}

func TestServeEndToEnd(t *testing.T) {
	for _, v := range []string{"v2", "v3"} {
		t.Run(v, func(t *testing.T) { testServeEndToEnd(t, v) })
	}
}

// testServeEndToEnd makes an account, buys credits through the emulator
// with orders placed on API version, spends them through the mock LLM and
// refunds the rest.
func testServeEndToEnd(t *testing.T, version string) {
	m := MustRunMain(t, "--wxpay-api-version", version, "--refund-policy", "self") // a user refunds through /v1
	c := client{t, m.URL}
	c.must(200, "GET", "/healthz", "", "", nil)
	c.must(200, "GET", "/readyz", "", "", nil)
	var pk struct{ Data []struct{ ID string } }
	c.must(200, "GET", "/v1/packages", "", "", &pk)
	if len(pk.Data) == 0 {
		t.Fatal("no packages on sale")
	}
	a := mustAccount(c, m.AdminToken)
	if b := mustBalance(c, a.APIKey); b != (balance{}) {
		t.Fatalf("new account balance %+v", b)
	}

	o := mustOrder(c, a.APIKey, "idem-1")
	if again := mustOrder(c, a.APIKey, "idem-1"); again.OutTradeNo != o.OutTradeNo {
		t.Fatalf("same Idempotency-Key made another order: %s, %s", o.OutTradeNo, again.OutTradeNo)
	}
	st, png, hdr := c.call("GET", "/v1/payments/orders/"+o.OutTradeNo+"/qr.png", a.APIKey, "", nil)
	if st != 200 || hdr.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("qr.png: %d %s", st, hdr.Get("Content-Type"))
	}
	if o.AccessToken != nil {
		if b := mustBalance(c, o.AccessToken.Token); b.Provisional <= 0 {
			t.Fatalf("provisional token balance %+v", b)
		}
		if st, _, _ := c.call("POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", o.AccessToken.Token, "", nil); st != 403 {
			t.Fatalf("a provisional token asked for a refund: %d", st)
		}
		// The first request need not wait for the payment: the token
		// spends the provisional grant.
		c.must(200, "POST", "/v1/chat/completions", o.AccessToken.Token, `{"model":"mock-gpt","messages":[{"role":"user","content":"early"}],"max_tokens":8}`, nil)
	}

	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	var early int64 // what the provisional request cost, drawn from the lot
	eventually(t, "the paid order is credited", func() bool {
		b := mustBalance(c, a.APIKey)
		early = o.Credits - b.Credits
		return b.Credits > 0 && b.Provisional == 0 && b.Debt == 0
	})
	if o.AccessToken == nil && early != 0 {
		t.Fatalf("credited %d of %d credits", o.Credits-early, o.Credits)
	}
	// The lot is credited first, then the order row says SUCCESS.
	eventually(t, "the paid order reads SUCCESS", func() bool {
		var got struct{ Status string }
		c.must(200, "GET", "/v1/payments/orders/"+o.OutTradeNo, a.APIKey, "", &got)
		return got.Status == "SUCCESS"
	})

	var chat struct {
		Usage struct {
			CostCredits int64 `json:"cost_credits"`
		}
	}
	c.must(200, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hello there"}],"max_tokens":32}`, &chat)
	if chat.Usage.CostCredits <= 0 {
		t.Fatalf("chat cost %d credits", chat.Usage.CostCredits)
	}
	left := o.Credits - early - chat.Usage.CostCredits
	if b := mustBalance(c, a.APIKey); b.Credits != left || b.Held != 0 {
		t.Fatalf("balance after chat %+v, want %d credits", b, left)
	}
	var usage struct {
		Data []struct {
			Credits int64
			Model   string
		}
	}
	c.must(200, "GET", "/v1/usage", a.APIKey, "", &usage)
	if n := len(usage.Data); n < 1 || usage.Data[0].Credits != chat.Usage.CostCredits || usage.Data[0].Model != "mock-gpt" {
		t.Fatalf("usage %+v", usage)
	}
	var models struct{ Data []struct{ ID string } }
	c.must(200, "GET", "/v1/models", a.APIKey, "", &models)
	if len(models.Data) == 0 {
		t.Fatal("no models")
	}

	var refund struct {
		RefundFen int64 `json:"refund_fen"`
		Credits   int64 `json:"credits"`
	}
	c.must(200, "POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", a.APIKey, "", &refund)
	if refund.Credits != left || refund.RefundFen <= 0 || refund.RefundFen >= o.AmountFen {
		t.Fatalf("refund %+v of order %+v", refund, o)
	}
	var session struct{ URL string }
	c.must(201, "POST", "/v1/checkout/sessions", a.APIKey, `{"package_id":"starter"}`, &session)
	if !strings.HasPrefix(session.URL, m.URL+"/checkout/") {
		t.Fatalf("checkout link %q", session.URL)
	}
	st, page, hdr := c.call("GET", strings.TrimPrefix(session.URL, m.URL), "", "", nil)
	if st != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || bytes.Contains(page, []byte(a.APIKey)) {
		t.Fatalf("checkout page: %d %s", st, hdr.Get("Content-Type"))
	}
	var sandbox struct {
		MchID string `json:"mch_id"`
	}
	c.must(200, "GET", "/admin/sandbox", m.AdminToken, "", &sandbox)
	if sandbox.MchID == "" {
		t.Fatal("no mch_id in /admin/sandbox")
	}
	_, metrics, _ := c.call("GET", "/metrics", "", "", nil)
	for _, want := range []string{"go_goroutines", "process_", "tollgate_http_requests_total", "tollgate_gateway_credits_settled_total", "tollgate_payment_events_total"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestServeRefusesBadInput runs bad requests against the real router and
// checks each gets a clear error and changes nothing.
func TestServeRefusesBadInput(t *testing.T) {
	m := MustRunMain(t, "--refund-policy", "self") // the /v1 refund's own bad input
	c := client{t, m.URL}
	a := mustAccount(c, m.AdminToken)
	other := mustAccount(c, m.AdminToken)
	o := mustOrder(c, a.APIKey, "bad-input-order")
	orders := "/v1/payments/orders"
	fp := `"device_fingerprint":"` + fingerprint + `"`
	big := `{"package_id":"` + strings.Repeat("x", 20<<10) + `",` + fp + `}`
	for _, tc := range []struct {
		name, method, path, auth, body string
		hdr                            map[string]string
		status                         int
		code                           string
	}{
		{"admin no token", "POST", "/admin/accounts", "", "", nil, 401, "invalid_admin_token"},
		{"admin wrong token", "POST", "/admin/accounts", m.AdminToken + "x", "", nil, 401, "invalid_admin_token"},
		{"admin user key", "POST", "/admin/accounts", a.APIKey, "", nil, 401, "invalid_admin_token"},
		{"admin body", "POST", "/admin/accounts", m.AdminToken, `{"account_id":"mine"}`, nil, 400, "invalid"},
		{"admin oversized", "POST", "/admin/accounts", m.AdminToken, `{"x":"` + strings.Repeat("y", 20<<10) + `"}`, nil, 413, "request_too_large"},
		{"sandbox no token", "GET", "/admin/sandbox", "", "", nil, 401, "invalid_admin_token"},
		{"balance no key", "GET", "/v1/balance", "", "", nil, 401, "missing_api_key"},
		{"balance bad key", "GET", "/v1/balance", "tg-nope", "", nil, 401, "invalid_api_key"},
		{"balance basic auth", "GET", "/v1/balance", "", "", map[string]string{"Authorization": "Basic " + a.APIKey}, 401, "missing_api_key"},
		{"balance provisional-looking", "GET", "/v1/balance", "tgp_" + strings.Repeat("a", 43), "", nil, 401, "invalid_api_key"},
		{"usage bad limit", "GET", "/v1/usage?limit=abc", a.APIKey, "", nil, 400, "invalid"},
		{"usage limit too big", "GET", "/v1/usage?limit=100000", a.APIKey, "", nil, 400, "invalid"},
		{"order no key", "POST", orders, "", `{"package_id":"starter",` + fp + `}`, nil, 401, "missing_api_key"},
		{"order empty body", "POST", orders, a.APIKey, "", nil, 400, "invalid"},
		{"order not json", "POST", orders, a.APIKey, `{"package_id":`, nil, 400, "invalid"},
		{"order wrong type", "POST", orders, a.APIKey, `{"amount_fen":"100",` + fp + `}`, nil, 400, "invalid"},
		{"order unknown field", "POST", orders, a.APIKey, `{"package":"starter",` + fp + `}`, nil, 400, "invalid"},
		{"order no fingerprint", "POST", orders, a.APIKey, `{"package_id":"starter"}`, nil, 400, "PARAM_ERROR"},
		{"order bad fingerprint", "POST", orders, a.APIKey, `{"package_id":"starter","device_fingerprint":"x"}`, nil, 400, "PARAM_ERROR"},
		{"order both", "POST", orders, a.APIKey, `{"package_id":"starter","amount_fen":100,` + fp + `}`, nil, 400, "PARAM_ERROR"},
		{"order neither", "POST", orders, a.APIKey, `{` + fp + `}`, nil, 400, "PARAM_ERROR"},
		{"order negative", "POST", orders, a.APIKey, `{"amount_fen":-5,` + fp + `}`, nil, 400, "PARAM_ERROR"},
		{"order unknown package", "POST", orders, a.APIKey, `{"package_id":"gold",` + fp + `}`, nil, 400, "PARAM_ERROR"},
		{"order oversized", "POST", orders, a.APIKey, big, nil, 413, "request_too_large"},
		{"order bad idempotency key", "POST", orders, a.APIKey, `{"package_id":"starter",` + fp + `}`, map[string]string{"Idempotency-Key": "a b"}, 400, "invalid"},
		// HTTP trims a header's value: a key of spaces arrives empty, and
		// must not place an order as if no key were sent.
		{"order blank idempotency key", "POST", orders, a.APIKey, `{"package_id":"starter",` + fp + `}`, map[string]string{"Idempotency-Key": "   "}, 400, "invalid"},
		{"order empty idempotency key", "POST", orders, a.APIKey, `{"package_id":"starter",` + fp + `}`, map[string]string{"Idempotency-Key": ""}, 400, "invalid"},
		{"order key reused with another body", "POST", orders, a.APIKey, `{"package_id":"plus",` + fp + `}`, map[string]string{"Idempotency-Key": "bad-input-order"}, 409, "conflict"},
		{"list bad limit", "GET", orders + "?limit=0", a.APIKey, "", nil, 400, "invalid"},
		{"get other's order", "GET", orders + "/" + o.OutTradeNo, other.APIKey, "", nil, 404, "not_found"},
		{"get unknown order", "GET", orders + "/NOPE123456", a.APIKey, "", nil, 404, "not_found"},
		{"get malformed order", "GET", orders + "/%3Cscript%3E", a.APIKey, "", nil, 404, "not_found"},
		{"qr other's order", "GET", orders + "/" + o.OutTradeNo + "/qr.png", other.APIKey, "", nil, 404, "not_found"},
		{"qr bad size", "GET", orders + "/" + o.OutTradeNo + "/qr.png?size=5", a.APIKey, "", nil, 400, "invalid"},
		{"refund other's order", "POST", orders + "/" + o.OutTradeNo + "/refund", other.APIKey, "", nil, 404, "not_found"},
		{"refund unpaid order", "POST", orders + "/" + o.OutTradeNo + "/refund", a.APIKey, "", nil, 409, "conflict"},
		{"refund with body", "POST", orders + "/" + o.OutTradeNo + "/refund", a.APIKey, `{"fen":1}`, nil, 400, "invalid"},
		{"checkout no key", "POST", "/v1/checkout/sessions", "", `{}`, nil, 401, "missing_api_key"},
		{"checkout forged link", "GET", "/checkout/forged.link", "", "", nil, 404, ""},
		{"chat no key", "POST", "/v1/chat/completions", "", `{"model":"mock-gpt","messages":[]}`, nil, 401, "missing_api_key"},
		{"chat unfunded", "POST", "/v1/chat/completions", other.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, nil, 402, ""},
		{"notify v2 garbage", "POST", "/wxpay/notify", "", `<xml><a>`, nil, 400, ""},
		{"notify v2 oversized", "POST", "/wxpay/notify", "", strings.Repeat("x", 70<<10), nil, 413, "request_too_large"},
		{"notify v3 unsigned", "POST", "/wxpay/notify/v3", "", `{}`, nil, 400, ""},
		{"unknown route", "GET", "/v1/nothing", a.APIKey, "", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/balance", a.APIKey, "", nil, 405, "method_not_allowed"},
		{"balance with a body", "GET", "/v1/balance", a.APIKey, strings.Repeat("x", 5<<10), nil, 413, "request_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b, _ := c.call(tc.method, tc.path, tc.auth, tc.body, tc.hdr)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, b)
			}
			if tc.code == "" {
				return
			}
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("error body %s, want code %q", b, tc.code)
			}
			if strings.Contains(string(b), a.APIKey) || strings.Contains(string(b), m.AdminToken) {
				t.Fatalf("a secret was echoed: %s", b)
			}
		})
	}
	// Anthropic clients get Anthropic's error shape.
	st, b, _ := c.call("POST", "/v1/messages", "", `{}`, map[string]string{"X-Api-Key": "sk-wrong"})
	var ae struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(b, &ae); err != nil || st != 401 || ae.Type != "error" || ae.Error.Type != "authentication_error" {
		t.Fatalf("/v1/messages with a bad x-api-key: %d %s", st, b)
	}
	// Nothing changed: no money moved, the order stands, the only orders
	// are the one made above.
	if b := mustBalance(c, a.APIKey); b.Credits != 0 || b.Held != 0 || b.Debt != 0 {
		t.Fatalf("balance changed: %+v", b)
	}
	if b := mustBalance(c, other.APIKey); b != (balance{}) {
		t.Fatalf("other balance changed: %+v", b)
	}
	var got struct{ Status string }
	c.must(200, "GET", orders+"/"+o.OutTradeNo, a.APIKey, "", &got)
	if got.Status != "NOTPAY" {
		t.Fatalf("order status %q", got.Status)
	}
	var mine struct {
		Data []struct {
			OutTradeNo string `json:"out_trade_no"`
		}
	}
	c.must(200, "GET", orders, a.APIKey, "", &mine)
	if len(mine.Data) != 1 || mine.Data[0].OutTradeNo != o.OutTradeNo {
		t.Fatalf("orders %+v", mine)
	}
	c.must(200, "GET", orders, other.APIKey, "", &mine)
	if len(mine.Data) != 0 {
		t.Fatalf("another account sees orders %+v", mine)
	}
	var sims []json.RawMessage
	c.must(200, "GET", "/sandbox/wxpay/sim/orders", "", "", &sims)
	if len(sims) != 1 {
		t.Fatalf("WeChat Pay saw %d orders, want only the valid one", len(sims))
	}
}

func TestServeFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.json")
	if err := os.WriteFile(cfg, []byte(`{"_comment":"x","addr":"127.0.0.1:9999","log-format":"json","wxpay-api-version":"v3"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_ADDR", "127.0.0.1:7777")
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--config", cfg, "--log-format", "text"}); err != nil {
		t.Fatal(err)
	}
	if m.Config.Addr != "127.0.0.1:7777" || m.Config.LogFormat != "text" || m.Config.WxpayAPIVersion != "v3" {
		t.Fatalf("precedence flag > env > file broken: %+v", m.Config)
	}
	for _, bad := range [][]string{
		{"--wxpay-api-version", "v4"},
		{"--log-format", "xml"},
		{"--wxpay-api-key", "short"},
		{"--wxpay-url", "https://api.mch.weixin.qq.com"},
		{"--public-url", "ftp://x"},
		{"--wxpay-cert", "cert.pem"},
		{"--rate-limit", "-1"},
		{"--max-request-duration", "-1s"},
		{"--idle-timeout", "0s"},
		{"--stream-write-timeout", "-1s"},
		{"--notify-body-timeout", "soon"},
		{"--no-such-flag"},
	} {
		if err := NewMain(io.Discard, io.Discard).ParseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := os.WriteFile(cfg, []byte(`{"adress":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewMain(io.Discard, io.Discard).ParseFlags([]string{"--config", cfg}); err == nil {
		t.Error("a misspelt config key was accepted")
	}
}

// TestServeAdminTokenKept checks that a generated admin token is kept in
// the data directory and reused by the next start.
func TestServeAdminTokenKept(t *testing.T) {
	dir := t.TempDir()
	m1 := MustRunMain(t, "--data", dir)
	tok := m1.AdminToken
	if m1.AdminTokenFile != filepath.Join(dir, "admin-token") {
		t.Fatalf("token file %q", m1.AdminTokenFile)
	}
	url := m1.URL
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("still accepting connections after Close")
	}
	m2 := MustRunMain(t, "--data", dir)
	if m2.AdminToken != tok {
		t.Fatal("the admin token changed across restarts")
	}
}

// serve keeps account balances in memory on SQLite, so it must be the
// database's only serve: a second one on the same data directory stops
// with a clear error and changes nothing; short commands still work.
func TestServeOneWriterPerSQLiteDirectory(t *testing.T) {
	dir := t.TempDir()
	m1 := MustRunMain(t, "--data", dir)
	m2 := NewMain(io.Discard, io.Discard)
	if err := m2.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", dir}); err != nil {
		t.Fatal(err)
	}
	err := m2.Run(context.Background())
	m2.Close()
	if err == nil || !strings.Contains(err.Error(), "another tollgate serve is using") {
		t.Fatalf("second serve on %s: %v; want the one-writer error", dir, err)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"accounts", "create", "--data", dir}, &out, io.Discard); err != nil {
		t.Fatalf("accounts create beside a running serve: %v", err)
	}
	key := regexp.MustCompile(`api_key:\s+(\S+)`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no key printed:\n%s", out.String())
	}
	if b := mustBalance(client{t, m1.URL}, key[1]); b != (balance{}) {
		t.Fatalf("balance of the account created beside serve: %+v", b)
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	MustRunMain(t, "--data", dir) // the lock went with the first serve
}

func TestAccountsCreate(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"accounts", "create", "--data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`api_key:\s+(\S+)`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no key printed:\n%s", out.String())
	}
	m := MustRunMain(t, "--data", dir)
	if b := mustBalance(client{t, m.URL}, key[1]); b != (balance{}) {
		t.Fatalf("balance %+v", b)
	}
	if err := Run(context.Background(), []string{"accounts", "delete"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown action accepted")
	}
}

func TestAccountsCreatePostgres(t *testing.T) {
	dbURL := testenv.MustPostgres(t)
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"accounts", "create", "--database-url", dbURL}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`api_key:\s+(\S+)`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no key printed:\n%s", out.String())
	}
	m := MustRunMain(t, "--database-url", dbURL)
	if b := mustBalance(client{t, m.URL}, key[1]); b != (balance{}) {
		t.Fatalf("balance %+v", b)
	}
}

// TestServeSharedServices runs two instances over one PostgreSQL and one
// Redis: an account made through one is served by the other.
func TestServeSharedServices(t *testing.T) {
	dbURL := testenv.MustPostgres(t)
	redisURL, prefix := testenv.MustRedis(t)
	args := []string{"--database-url", dbURL, "--redis-url", redisURL, "--redis-prefix", prefix, "--admin-token", "shared-admin-token-for-tests"}
	m1, m2 := MustRunMain(t, args...), MustRunMain(t, args...)
	c1, c2 := client{t, m1.URL}, client{t, m2.URL}
	var ready struct{ Checks map[string]string }
	c1.must(200, "GET", "/readyz", "", "", &ready)
	if ready.Checks["store"] != "ok" || ready.Checks["redis"] != "ok" {
		t.Fatalf("readyz %+v", ready)
	}
	a := mustAccount(c1, "shared-admin-token-for-tests")
	if b := mustBalance(c2, a.APIKey); b != (balance{}) {
		t.Fatalf("balance through the second instance %+v", b)
	}
	if st, b, _ := c2.call("POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, nil); st != 402 {
		t.Fatalf("unfunded chat: %d %s", st, b)
	}
	// An order placed and paid through the first instance is credited
	// once, and the second instance sees the credit and replays the
	// Idempotency-Key from the shared database.
	o := mustOrder(c1, a.APIKey, "shared-1")
	if again := mustOrder(c2, a.APIKey, "shared-1"); again.OutTradeNo != o.OutTradeNo {
		t.Fatalf("the second instance made another order: %s, %s", o.OutTradeNo, again.OutTradeNo)
	}
	c1.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	eventually(t, "the payment is credited", func() bool { return mustBalance(c2, a.APIKey).Credits == o.Credits })
	c2.must(200, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`, nil)
}

// TestExampleConfigParses keeps tollgate.example.json in step with the
// flags: every key it sets must be a serve flag.
func TestExampleConfigParses(t *testing.T) {
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--config", "../../tollgate.example.json"}); err != nil {
		t.Fatal(err)
	}
	if m.Config.Addr != "127.0.0.1:8080" || m.Config.WxpayAPIVersion != "v2" || m.Config.MaxRequestDuration != 30*time.Minute {
		t.Fatalf("example config read as %+v", m.Config)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeStopsOnCancel runs `tollgate serve` as main does and cancels
// its context, as SIGINT/SIGTERM do: it returns nil and stops listening.
func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, &out, io.Discard)
	}()
	re := regexp.MustCompile(`tollgate serving on (\S+)`)
	var url string
	eventually(t, "the server starts", func() bool {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	})
	client{t, url}.must(200, "GET", "/healthz", "", "", nil)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if resp, err := http.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("still serving after cancel")
	}
}

// TestServeRateLimitsKeys checks --rate-limit: a key over its budget gets
// 429 with Retry-After and spends nothing.
func TestServeRateLimitsKeys(t *testing.T) {
	m := MustRunMain(t, "--rate-limit", "1")
	c := client{t, m.URL}
	a := mustAccount(c, m.AdminToken)
	body := `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`
	if st, b, _ := c.call("POST", "/v1/chat/completions", a.APIKey, body, nil); st != 402 {
		t.Fatalf("first request: %d %s", st, b)
	}
	st, b, hdr := c.call("POST", "/v1/chat/completions", a.APIKey, body, nil)
	if st != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(b), "rate_limit_exceeded") {
		t.Fatalf("second request: %d %s (Retry-After %q)", st, b, hdr.Get("Retry-After"))
	}
	if bal := mustBalance(c, a.APIKey); bal != (balance{}) {
		t.Fatalf("balance %+v", bal)
	}
}
