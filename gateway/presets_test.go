package gateway_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// presetEnv is a gateway whose model "m" is served by one provider of
// kind at the mock, with base (the mock's URL) turned into the kind's
// base_url by at.
func presetEnv(t *testing.T, kind string, mock *mockllm.Server, at func(base string) string, mod func(*gateway.Options)) (*env, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{{Name: "p", Kind: kind, BaseURL: at(srv.URL), APIKey: mock.APIKey, Timeout: gateway.Duration(10 * time.Second)}},
		Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "p", Model: "up-model", MaxOutputTokens: 100}}},
	}
	e := &env{t: t, meter: newFakeMeter(t, 100_000), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	opts := gateway.Options{Meter: e.meter, Pricer: fakePricer{write: 3}, Seed: 1, Counter: mockCounter{},
		Retry: gateway.RetryPolicy{MaxAttempts: 1, BackoffBase: 1, BackoffMax: 1}}
	if mod != nil {
		mod(&opts)
	}
	gw, err := gateway.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	return e, srv
}

// usageDialectAt is the base_url of a provider of a preset pointed at the
// mock speaking that preset's usage dialect.
func usageDialectAt(dialect, suffix string) func(string) string {
	return func(base string) string { return base + "/usage/" + dialect + suffix }
}

// TestPresetsBillCachedAndReasoningTokens: each preset's answers, in its
// provider's usage fields (the mock speaks them), are billed through the
// gateway with cached tokens at the cached price, cache writes at theirs
// and reasoning inside the output, streamed or not; the balance moves by
// exactly the cost_credits the answer reports.
func TestPresetsBillCachedAndReasoningTokens(t *testing.T) {
	// The prompt is 6 tokens (the mock's words); the answer 8 tokens,
	// 3 of them reasoning; 2 prompt tokens read from the cache.
	// fakePricer: 1 credit per uncached input token, 1 per 2 cached
	// (rounded up), 3 per token written to the cache, 2 per output.
	const ask = `"max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me four words"}]`
	for _, tc := range []struct {
		kind, dialect, suffix string
		apiKey                string
		write                 int // cache writes the mock reports
		cached, writes        int64
		credits               int64
	}{
		{kind: "openai", dialect: "openai", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "azure-openai", dialect: "azure-openai", apiKey: "az-key", cached: 2, credits: 4 + 1 + 16},
		{kind: "deepseek", dialect: "deepseek", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "dashscope", dialect: "dashscope", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "moonshot", dialect: "moonshot", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "zhipu", dialect: "zhipu", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "ark", dialect: "ark", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "siliconflow", dialect: "siliconflow", suffix: "/v1", cached: 2, credits: 4 + 1 + 16},
		{kind: "openrouter", dialect: "openrouter", suffix: "/v1", write: 2, cached: 2, writes: 2, credits: 2 + 1 + 6 + 16},
		{kind: "ollama", dialect: "ollama", suffix: "/v1", cached: 0, credits: 6 + 16},
		{kind: "vllm", dialect: "vllm", suffix: "/v1", apiKey: "vllm-key", cached: 2, credits: 4 + 1 + 16},
	} {
		for _, stream := range []bool{false, true} {
			name := tc.kind
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				mock := &mockllm.Server{APIKey: tc.apiKey, OutputTokens: 8, CachedTokens: 2, ReasoningTokens: 3, CacheCreationTokens: tc.write}
				e, _ := presetEnv(t, tc.kind, mock, usageDialectAt(tc.dialect, tc.suffix), nil)
				body := `{"model":"m",` + ask + `}`
				if stream {
					body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},` + ask + `}`
				}
				resp, out := e.chat(body)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				balance, holds, usages, _ := e.meter.state()
				if holds != 0 || len(usages) != 1 {
					t.Fatalf("holds %d usages %+v", holds, usages)
				}
				u := usages[0]
				if u.Estimated || u.InputTokens != 6 || u.CachedInputTokens != tc.cached || u.CacheWriteTokens != tc.writes || u.OutputTokens != 8 {
					t.Fatalf("usage %+v, want 6 in (%d cached, %d written), 8 out", u, tc.cached, tc.writes)
				}
				if int64(u.Credits) != tc.credits || balance != 100_000-tc.credits {
					t.Fatalf("charged %d (balance %d), want %d", u.Credits, balance, tc.credits)
				}
				usage := out
				if stream {
					data := sseData(t, out)
					usage = data[len(data)-2] // the usage chunk before [DONE]
				}
				if got := path(mustJSON(t, usage), "usage", "cost_credits"); got != float64(tc.credits) {
					t.Fatalf("cost_credits %v, want %d: %s", got, tc.credits, usage)
				}
				if got := path(mustJSON(t, usage), "usage", "completion_tokens_details", "reasoning_tokens"); tc.kind != "ollama" && tc.kind != "moonshot" && got != float64(3) {
					t.Fatalf("reasoning_tokens %v not relayed: %s", got, usage)
				}
			})
		}
	}
}

// TestUnknownUsageFieldsBilledAtHold: a provider reporting its usage in
// fields tollgate does not know for it is billed at the hold (recorded
// with the estimate's counts: the counted prompt and delivered output),
// logged and counted in tollgate_gateway_usage_unknown_total.
func TestUnknownUsageFieldsBilledAtHold(t *testing.T) {
	const ask = `"max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me four words"}]`
	for _, tc := range []struct{ name, kind, dialect, why string }{
		{"CountsInOtherFields", "openai", "unknown", "neither prompt_tokens nor completion_tokens"},
		{"CacheInOtherField", "dashscope", "unknown-cache", "cache_read_tokens"},
		{"DeepSeekFieldsFromAnotherPreset", "zhipu", "deepseek", "prompt_cache_hit_tokens"},
	} {
		for _, stream := range []bool{false, true} {
			name := tc.name
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				metrics := gateway.NewMetrics(reg)
				var logs strings.Builder
				mock := &mockllm.Server{OutputTokens: 8, CachedTokens: 2}
				e, _ := presetEnv(t, tc.kind, mock, usageDialectAt(tc.dialect, "/v1"), func(o *gateway.Options) {
					o.Observer = metrics
					o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				})
				body := `{"model":"m",` + ask + `}`
				if stream {
					body = `{"model":"m","stream":true,` + ask + `}`
				}
				resp, out := e.chat(body)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				balance, _, usages, _ := e.meter.state()
				u := usages[0]
				// The estimate: the prompt as counted for the hold
				// (priming 3, per message 4 + role + words) and the
				// 8 delivered words.
				const prompt = 3 + (4 + 1 + 2) + (4 + 1 + 4)
				if !u.Estimated || u.InputTokens != prompt || u.CachedInputTokens != 0 || u.OutputTokens != 8 {
					t.Fatalf("usage %+v, want the estimate %d in, 8 out", u, prompt)
				}
				// Billed at the hold: the provider's real usage may be
				// above the estimate (a cache write in a field unknown),
				// never above what the caller agreed to.
				if want := e.meter.lastHold.Load(); int64(u.Credits) != want || balance != 100_000-want || want <= prompt+16 {
					t.Fatalf("charged %d (balance %d), want the hold %d", u.Credits, balance, want)
				}
				if n := unknownUsageCount(t, reg); n != 1 {
					t.Fatalf("tollgate_gateway_usage_unknown_total = %v, want 1", n)
				}
				if !strings.Contains(logs.String(), "does not know") || !strings.Contains(logs.String(), tc.why) || !strings.Contains(logs.String(), "deployment=p/up-model") {
					t.Fatalf("log %q does not name the field %q", logs.String(), tc.why)
				}
			})
		}
	}
}

// unknownUsageCount is tollgate_gateway_usage_unknown_total summed.
func unknownUsageCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "tollgate_gateway_usage_unknown_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestAzureOpenAIWireFormat: an azure-openai provider calls its
// deployment's URL with the api-version and the api-key header, never a
// Bearer token; a missing api-version is the mock's 404, as Azure's.
func TestAzureOpenAIWireFormat(t *testing.T) {
	var seen *http.Request
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		(&mockllm.Server{APIKey: "az"}).ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{{Name: "az", Kind: gateway.KindAzureOpenAI, BaseURL: up.URL + "/", APIVersion: "2025-01-01-preview", APIKey: "az"}},
		Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "az", Model: "my gpt"}}},
	}
	e := &env{t: t, meter: newFakeMeter(t, 100_000), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	gw, err := gateway.New(cfg, gateway.Options{Meter: e.meter, Pricer: fakePricer{}, Counter: mockCounter{}})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	resp, out := e.chat(simpleChat)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	if seen.URL.Path != "/openai/deployments/my gpt/chat/completions" || seen.URL.EscapedPath() != "/openai/deployments/my%20gpt/chat/completions" ||
		seen.URL.Query().Get("api-version") != "2025-01-01-preview" || seen.Header.Get("Api-Key") != "az" || seen.Header.Get("Authorization") != "" {
		t.Fatalf("called %s %v", seen.URL, seen.Header)
	}
	resp, out = e.do(context.Background(), "/v1/embeddings", `{"model":"m","input":"two words"}`)
	if resp.StatusCode != 200 || seen.URL.Path != "/openai/deployments/my gpt/embeddings" {
		t.Fatalf("embeddings: %d %s at %s", resp.StatusCode, out, seen.URL)
	}
	// The mock refuses what Azure refuses.
	r, err := http.Post(up.URL+"/openai/deployments/x/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var e404 struct {
		Error struct{ Message string } `json:"error"`
	}
	_ = json.NewDecoder(r.Body).Decode(&e404)
	r.Body.Close()
	if r.StatusCode != 404 || !strings.Contains(e404.Error.Message, "api-version") {
		t.Fatalf("no api-version: %d %+v", r.StatusCode, e404)
	}
}
