package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"tollgate/gateway/mockllm"
	"tollgate/internal/testenv"
)

// gatedUpstream is the mock LLM behind a gate: while closed, a chat
// request that reaches it says so on arrived and waits for the gate, so
// a test can act while the request is in flight (held, not settled).
type gatedUpstream struct {
	mock    mockllm.Server
	gate    atomic.Pointer[chan struct{}]
	arrived chan struct{}
}

func (g *gatedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if gate := g.gate.Load(); gate != nil && strings.HasSuffix(r.URL.Path, "/chat/completions") {
		g.arrived <- struct{}{}
		<-*gate
	}
	g.mock.ServeHTTP(w, r)
}

// houseCatalog is a catalog selling house-model (routed to the mock at
// base) at in and out CNY per 1M tokens, with 100,000 credits per CNY:
// 10 CNY per 1M tokens is 1 credit a token.
func houseCatalog(base, in, out string) string {
	return fmt.Sprintf(`providers:
  - {name: up, kind: openai, base_url: "%s/v1", api_key_env: TOLLGATE_TEST_UP_KEY}
models:
  house-model:
    price: {currency: CNY, input: "%s", output: "%s"}
    deployments: [{provider: up, model: gpt-4o-mini}]
    context_window: 32000
  hidden-model:
    price: {currency: CNY, input: "1", output: "1"}
    deployments: [{provider: up, model: gpt-4o-mini}]
    checkout: false
packages:
  - {id: p1, fen: 1000, credits: 5000000, label: {zh: "体验包", en: "Trial"}}
credit: {credits_per_cny: 100000}
branding: {name: "Harness AI", accent: "#aa3300", support: "help@harness.example", footer: "Harness AI Ltd."}
`, base, in, out)
}

func writeCatalog(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type chatUsage struct {
	Prompt     int64 `json:"prompt_tokens"`
	Completion int64 `json:"completion_tokens"`
	Cost       int64 `json:"cost_credits"`
}

// houseChat calls house-model and returns its usage.
func houseChat(c client, key string) chatUsage {
	c.tb.Helper()
	var resp struct{ Usage chatUsage }
	c.must(200, "POST", "/v1/chat/completions", key, `{"model":"house-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}`, &resp)
	if resp.Usage.Prompt == 0 || resp.Usage.Completion == 0 {
		c.tb.Fatalf("usage %+v", resp.Usage)
	}
	return resp.Usage
}

type catalogView struct {
	Source, Digest, Merchant string
	Models, Advertised       []string
	Packages                 []struct {
		ID     string
		Labels map[string]string
	}
}

func TestServeCatalog(t *testing.T) {
	testServeCatalog(t)
}

func TestServeCatalogPostgres(t *testing.T) {
	testServeCatalog(t, "--database-url", testenv.MustPostgres(t))
}

// testServeCatalog: a custom catalog sells a model under its own name,
// routed to the mock LLM and billed at the catalog's price; its packages,
// name and models are what the checkout shows; a bad file is refused on
// reload with the catalog in force kept; and a reload while a request is
// in flight bills that request at the price it was held at.
func testServeCatalog(t *testing.T, args ...string) {
	t.Setenv("TOLLGATE_TEST_UP_KEY", "up-key")
	up := &gatedUpstream{arrived: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	digest := writeCatalog(t, path, houseCatalog(upSrv.URL, "10.00", "20.00"))
	const admin = "catalog-admin-token-for-tests"
	m := MustRunMain(t, append([]string{"--catalog", path, "--admin-token", admin}, args...)...)
	c := client{t, m.URL}

	// What is sold: the catalog's models and packages.
	var models struct{ Data []struct{ ID string } }
	a := mustAccount(c, admin)
	c.must(200, "GET", "/v1/models", a.APIKey, "", &models)
	if len(models.Data) != 2 || models.Data[0].ID != "hidden-model" || models.Data[1].ID != "house-model" {
		t.Fatalf("/v1/models %+v", models)
	}
	var view catalogView
	c.must(200, "GET", "/admin/catalog", admin, "", &view)
	if view.Source != path || view.Digest != digest || view.Merchant != "Harness AI" || strings.Join(view.Advertised, ",") != "house-model" ||
		len(view.Packages) != 1 || view.Packages[0].Labels["zh"] != "体验包" {
		t.Fatalf("GET /admin/catalog %+v, want digest %s", view, digest)
	}
	if _, _, h := c.call("GET", "/admin/catalog", admin, "", nil); h.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /admin/catalog Cache-Control %q", h.Get("Cache-Control"))
	}
	if !strings.Contains(metricsText(c), `tollgate_catalog_reloads_total{result="refused"} 0`) ||
		!strings.Contains(metricsText(c), "tollgate_catalog_loaded_timestamp_seconds ") {
		t.Fatalf("/metrics before any reload lacks the catalog metrics")
	}
	if st, _, _ := c.call("GET", "/admin/catalog", "", "", nil); st != 401 {
		t.Fatalf("GET /admin/catalog without the admin token: %d", st)
	}

	// Paid with the catalog's package, billed at the catalog's price.
	st, b, _ := c.call("POST", "/v1/payments/orders", a.APIKey, `{"package_id":"p1","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": "cat-1"})
	var o orderResult
	if st != 201 || json.Unmarshal(b, &o) != nil || o.AmountFen != 1000 || o.Credits != 5_000_000 {
		t.Fatalf("order p1: %d %s", st, b)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	eventually(t, "the paid order is credited", func() bool { return mustBalance(c, a.APIKey).Credits == 5_000_000 })
	u := houseChat(c, a.APIKey)
	if u.Cost != u.Prompt*1+u.Completion*2 {
		t.Fatalf("house-model usage %+v: want %d credits (1 a prompt token, 2 a completion token)", u, u.Prompt+2*u.Completion)
	}
	eventually(t, "the call is charged", func() bool { return mustBalance(c, a.APIKey).Credits == 5_000_000-u.Cost })

	// The checkout shows the catalog's package, name and models.
	var session struct{ URL string }
	c.must(201, "POST", "/v1/checkout/sessions", a.APIKey, `{"package_id":"p1"}`, &session)
	_, page, _ := c.call("GET", strings.TrimPrefix(session.URL, m.URL)+"?lang=zh", "", "", nil)
	for _, want := range []string{"Harness AI", "house-model", "体验包", "help@harness.example", "Harness AI Ltd.", "/web/brand.css"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the checkout page lacks %q", want)
		}
	}
	for _, not := range []string{"gpt-4o-mini", "deepseek-chat", "claude-sonnet-4", "hidden-model", "tollgate"} {
		if bytes.Contains(page, []byte(">"+not)) || bytes.Contains(page, []byte("<b>"+not+"</b>")) {
			t.Errorf("the checkout page shows %q", not)
		}
	}
	if _, css, _ := c.call("GET", "/web/brand.css", "", "", nil); !bytes.Contains(css, []byte("#aa3300")) {
		t.Errorf("brand.css %s", css)
	}

	// A bad file is refused, named, and the catalog in force is kept.
	writeCatalog(t, path, strings.Replace(houseCatalog(upSrv.URL, "10.00", "20.00"), `fen: 1000`, `fen: 0`, 1)+"bogus: 1\n")
	st, b, h := c.call("POST", "/admin/catalog/reload", admin, "", nil)
	if h.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST /admin/catalog/reload Cache-Control %q", h.Get("Cache-Control"))
	}
	if st != 400 || !bytes.Contains(b, []byte(`"path":"bogus"`)) || !bytes.Contains(b, []byte(digest[len("sha256:"):])) {
		t.Fatalf("reload of a bad file: %d %s", st, b)
	}
	writeCatalog(t, path, strings.Replace(houseCatalog(upSrv.URL, "10.00", "20.00"), `fen: 1000`, `fen: 0`, 1))
	st, b, _ = c.call("POST", "/admin/catalog/reload", admin, "", nil)
	if st != 400 || !strings.Contains(string(b), "packages[0].fen: 0 is below 1 fen") {
		t.Fatalf("reload of a package below 1 fen: %d %s", st, b)
	}
	if err := m.ReloadCatalog(context.Background()); err == nil { // as SIGHUP does
		t.Fatal("SIGHUP reload of a bad file succeeded")
	}
	c.must(200, "GET", "/admin/catalog", admin, "", &view)
	if view.Digest != digest {
		t.Fatalf("after refused reloads the digest is %s, want %s", view.Digest, digest)
	}
	if mt := metricsText(c); !strings.Contains(mt, `tollgate_catalog_reloads_total{result="refused"} 3`) ||
		!strings.Contains(mt, `tollgate_catalog_reloads_total{result="ok"} 0`) {
		t.Fatalf("after three refused reloads, /metrics:\n%s", grepLines(mt, "tollgate_catalog_"))
	}
	if u := houseChat(c, a.APIKey); u.Cost != u.Prompt+2*u.Completion {
		t.Fatalf("after refused reloads, usage %+v", u)
	}

	// A reload while a request is in flight: that request is billed at
	// the price it was held at, the next one at the new price.
	gate := make(chan struct{})
	up.gate.Store(&gate)
	done := make(chan chatUsage)
	go func() {
		var resp struct{ Usage chatUsage }
		st, b, _ := c.call("POST", "/v1/chat/completions", a.APIKey, `{"model":"house-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}`, nil)
		if st != 200 || json.Unmarshal(b, &resp) != nil {
			t.Errorf("in-flight chat: %d %s", st, b)
		}
		done <- resp.Usage
	}()
	<-up.arrived // held, at the upstream
	newDigest := writeCatalog(t, path, houseCatalog(upSrv.URL, "30.00", "60.00"))
	c.must(200, "POST", "/admin/catalog/reload", admin, "", &view)
	if view.Digest != newDigest {
		t.Fatalf("reload answered digest %s, want %s", view.Digest, newDigest)
	}
	if mt := metricsText(c); !strings.Contains(mt, `tollgate_catalog_reloads_total{result="ok"} 1`) {
		t.Fatalf("after a reload, /metrics:\n%s", grepLines(mt, "tollgate_catalog_"))
	}
	up.gate.Store(nil)
	close(gate)
	if held := <-done; held.Cost != held.Prompt+2*held.Completion {
		t.Fatalf("the request in flight during the reload: usage %+v, want the old price (%d credits)", held, held.Prompt+2*held.Completion)
	}
	if u := houseChat(c, a.APIKey); u.Cost != 3*u.Prompt+6*u.Completion {
		t.Fatalf("after the reload: usage %+v, want the new price (%d credits)", u, 3*u.Prompt+6*u.Completion)
	}
}

// serve refuses to start on an invalid catalog, naming each problem with
// its path; and without a catalog, on a --providers model that has no
// price (it used to start and answer every call to it with a 500).
func TestServeRefusesCatalog(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_UP_KEY", "up-key")
	dir := t.TempDir()
	good := houseCatalog("http://127.0.0.1:9", "10.00", "20.00")
	unpriced := filepath.Join(dir, "providers.json")
	if err := os.WriteFile(unpriced, []byte(`{"providers":[{"name":"up","kind":"openai","base_url":"http://127.0.0.1:9/v1"}],
		"models":{"gpt-4o-mini":[{"provider":"up","model":"gpt-4o-mini"}],"qwen-max":[{"provider":"up","model":"qwen-max"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, body string
		args             []string
		want             []string
	}{
		{"unpriced model", "c.yaml", strings.Replace(good, `    price: {currency: CNY, input: "10.00", output: "20.00"}`+"\n", "", 1), nil,
			[]string{"models.house-model.price: missing: a model that can be routed must have a price"}},
		{"several problems", "c.yaml", strings.Replace(strings.Replace(good, "fen: 1000", "fen: 0", 1), `input: "1"`, `input: "-1"`, 1), nil,
			[]string{"2 problems", "packages[0].fen: 0 is below 1 fen", "models.hidden-model.price.input: -1 is negative"}},
		{"unknown key", "c.json", `{"models": {}, "extra": true}`, nil, []string{`extra: unknown key "extra"`}},
		{"unset API key variable", "c.yaml", strings.Replace(good, "TOLLGATE_TEST_UP_KEY", "TOLLGATE_TEST_UNSET_KEY", 1), nil,
			[]string{"TOLLGATE_TEST_UNSET_KEY is not set"}},
		{"missing file", "none.yaml", "", nil, []string{"none.yaml"}},
		{"--providers with a model without a price", "", "", []string{"--providers", unpriced},
			[]string{`models.qwen-max: no price: the built-in prices (pricing/default.json) do not price "qwen-max"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), tc.file)
				if tc.body != "" {
					writeCatalog(t, path, tc.body)
				}
				args = []string{"--catalog", path}
			}
			m := NewMain(io.Discard, io.Discard)
			if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			m.Close()
			if err == nil {
				t.Fatal("serve started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"--catalog", "c.yaml", "--providers", unpriced}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("--catalog with --providers: %v", err)
	}
}

// Without --catalog there is no file to reload: a clear 409, and the
// built-in catalog is shown.
func TestServeBuiltinCatalog(t *testing.T) {
	m := MustRunMain(t, "--admin-token", "builtin-admin-token-for-tests")
	c := client{t, m.URL}
	var view catalogView
	c.must(200, "GET", "/admin/catalog", m.AdminToken, "", &view)
	if view.Source != "built-in" || view.Digest != "" || view.Merchant != "tollgate" || !strings.Contains(strings.Join(view.Models, ","), "mock-gpt") {
		t.Fatalf("GET /admin/catalog %+v", view)
	}
	st, b, _ := c.call("POST", "/admin/catalog/reload", m.AdminToken, "", nil)
	if st != 409 || !bytes.Contains(b, []byte("without --catalog")) {
		t.Fatalf("reload without a catalog: %d %s", st, b)
	}
}

// tollgate catalog check names every problem and exits 1; a good catalog
// exits 0 and says what it holds.
func TestCatalogCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeCatalog(t, good, houseCatalog("http://127.0.0.1:9", "10.00", "20.00"))
	status, out, _ := runCLI(t, "catalog", "check", good)
	if status != 0 || !strings.Contains(out, "ok") || !strings.Contains(out, "house-model") || !strings.Contains(out, "digest:     sha256:") {
		t.Fatalf("check of a good catalog: %d\n%s", status, out)
	}
	issue := filepath.Join(dir, "issue.yaml")
	if b, err := os.ReadFile("../../catalog/testdata/issue.yaml"); err != nil {
		t.Fatal(err)
	} else {
		writeCatalog(t, issue, string(b))
	}
	if status, out, _ := runCLI(t, "catalog", "check", issue); status != 0 || !strings.Contains(out, "Harness AI") {
		t.Fatalf("check of the issue's example: %d\n%s", status, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeCatalog(t, bad, `models:
  m:
    deployments: [{provider: nope, model: x}]
packages:
  - {id: p, fen: 0, credits: 1, label: {en: a}}
  - {id: p, fen: 5, credits: 1, label: {en: b}}
`)
	status, out, _ = runCLI(t, "catalog", "check", bad)
	for _, want := range []string{"4 problem(s)", "models.m.price: missing", `models.m.deployments[0].provider: unknown provider "nope"`,
		"packages[0].fen: 0 is below 1 fen", `packages[1].id: duplicate package id "p"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if status != 1 {
		t.Fatalf("exit status %d, want 1", status)
	}
	if status, _, _ := runCLI(t, "catalog", "check"); status != 1 {
		t.Fatalf("no file: exit status %d", status)
	}
}

// TestServePerCall: a model with a per_call fee is billed its tokens plus
// the fee once a call; its hold while in flight covers the fee once; and
// /v1/models lists the fee beside the per-1M prices, which leave it out.
func TestServePerCall(t *testing.T) {
	testServePerCall(t)
}

func TestServePerCallPostgres(t *testing.T) {
	testServePerCall(t, "--database-url", testenv.MustPostgres(t))
}

func testServePerCall(t *testing.T, args ...string) {
	t.Setenv("TOLLGATE_TEST_UP_KEY", "up-key")
	up := &gatedUpstream{arrived: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	// 0.005 CNY a call at 100,000 credits per CNY: 500 credits.
	writeCatalog(t, path, strings.Replace(houseCatalog(upSrv.URL, "10.00", "20.00"), `output: "20.00"}`, `output: "20.00", per_call: "0.005"}`, 1))
	const admin = "catalog-admin-token-for-tests"
	m := MustRunMain(t, append([]string{"--catalog", path, "--admin-token", admin}, args...)...)
	c := client{t, m.URL}
	a := mustAccount(c, admin)

	var models struct {
		Data []struct {
			ID      string
			Pricing map[string]int64
		}
	}
	c.must(200, "GET", "/v1/models", a.APIKey, "", &models)
	if p := models.Data[1].Pricing; models.Data[1].ID != "house-model" || p["credits_per_call"] != 500 ||
		p["credits_per_1m_input_tokens"] != 1_000_000 || p["credits_per_1m_output_tokens"] != 2_000_000 {
		t.Fatalf("/v1/models %+v", models)
	}
	if _, ok := models.Data[0].Pricing["credits_per_call"]; ok {
		t.Fatalf("hidden-model has no fee, but lists one: %+v", models.Data[0])
	}

	st, b, _ := c.call("POST", "/v1/payments/orders", a.APIKey, `{"package_id":"p1","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": "fee-1"})
	var o orderResult
	if st != 201 || json.Unmarshal(b, &o) != nil {
		t.Fatalf("order p1: %d %s", st, b)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	eventually(t, "the paid order is credited", func() bool { return mustBalance(c, a.APIKey).Credits == 5_000_000 })

	// In flight, the hold is the tokens' worst case plus the fee once.
	gate := make(chan struct{})
	up.gate.Store(&gate)
	done := make(chan chatUsage)
	go func() {
		var resp struct{ Usage chatUsage }
		st, b, _ := c.call("POST", "/v1/chat/completions", a.APIKey, `{"model":"house-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}`, nil)
		if st != 200 || json.Unmarshal(b, &resp) != nil {
			t.Errorf("chat: %d %s", st, b)
		}
		done <- resp.Usage
	}()
	<-up.arrived
	held := mustBalance(c, a.APIKey).Held
	up.gate.Store(nil)
	close(gate)
	u := <-done
	if want := u.Prompt + 2*u.Completion + 500; u.Cost != want || held < want || held >= 1000 {
		t.Fatalf("usage %+v held %d: want %d credits (1 a prompt token, 2 a completion token, 500 a call), held at least that and the fee once", u, held, want)
	}
	eventually(t, "the call is charged", func() bool { return mustBalance(c, a.APIKey).Credits == 5_000_000-u.Cost })
	if u := houseChat(c, a.APIKey); u.Cost != u.Prompt+2*u.Completion+500 {
		t.Fatalf("second call: usage %+v", u)
	}
}

// metricsText is the server's /metrics.
func metricsText(c client) string {
	c.tb.Helper()
	_, b, _ := c.call("GET", "/metrics", "", "", nil)
	return string(b)
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimRight(l, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
