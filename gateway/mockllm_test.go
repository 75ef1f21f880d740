package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// mockEnv is a gateway in front of mockllm servers with the default mock
// providers file: "mock-gpt" on an OpenAI-compatible mock with an
// Anthropic-compatible fallback, "mock-claude" on the Anthropic mock.
func mockEnv(t *testing.T, balance int64, openai, anth *mockllm.Server) (*env, *httptest.Server, *httptest.Server) {
	t.Helper()
	oa, an := httptest.NewServer(openai), httptest.NewServer(anth)
	t.Cleanup(oa.Close)
	t.Cleanup(an.Close)
	cfg := gateway.DefaultMockProviders(oa.URL)
	cfg.Providers[1].BaseURL = an.URL
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	gw, err := gateway.New(cfg, gateway.Options{Meter: e.meter, Pricer: fakePricer{}, Seed: 1, Counter: mockCounter{},
		Retry: gateway.RetryPolicy{BackoffBase: 1, BackoffMax: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	return e, oa, an
}

func TestAgainstMockLLM(t *testing.T) {
	const ask = `"max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me four words"}]`
	for _, tc := range []struct {
		name       string
		openai     *mockllm.Server
		anth       *mockllm.Server
		body       string
		status     int
		deployment string
		in, cached int64
		out        int64
		est        bool
		result     string // usage status
	}{
		{name: "OpenAI", openai: &mockllm.Server{OutputTokens: 8, CachedTokens: 2},
			body: `{"model":"mock-gpt",` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", in: 6, cached: 2, out: 8, result: "ok"},
		{name: "OpenAIStream", openai: &mockllm.Server{OutputTokens: 8},
			body: `{"model":"mock-gpt","stream":true,` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", in: 6, out: 8, result: "ok"},
		{name: "OpenAIStreamWithoutUsage", openai: &mockllm.Server{OutputTokens: 8, OmitUsage: true},
			body: `{"model":"mock-gpt","stream":true,` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", out: 8, est: true, result: "ok"},
		{name: "OpenAIStreamCut", openai: &mockllm.Server{OutputTokens: 8, FailAfter: 4},
			body: `{"model":"mock-gpt","stream":true,` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", out: 3, est: true, result: "interrupted"},
		{name: "OpenAITwoChoices", openai: &mockllm.Server{OutputTokens: 8},
			body: `{"model":"mock-gpt","n":2,` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", in: 6, out: 16, result: "ok"},
		{name: "OpenAITwoChoicesStreamWithoutUsage", openai: &mockllm.Server{OutputTokens: 8, OmitUsage: true},
			body: `{"model":"mock-gpt","n":2,"stream":true,` + ask + `}`, status: 200, deployment: "mock-openai/gpt-4o-mini", out: 16, est: true, result: "ok"},
		{name: "StreamCutAfterRoleFailsOver", openai: &mockllm.Server{FailAfter: 1}, anth: &mockllm.Server{OutputTokens: 5},
			body: `{"model":"mock-gpt","stream":true,` + ask + `}`, status: 200, deployment: "mock-anthropic/claude-haiku-4-5", in: 6, out: 5, result: "ok"},
		{name: "FailoverToAnthropic", openai: &mockllm.Server{Status: 503}, anth: &mockllm.Server{OutputTokens: 5},
			body: `{"model":"mock-gpt",` + ask + `}`, status: 200, deployment: "mock-anthropic/claude-haiku-4-5", in: 6, out: 5, result: "ok"},
		{name: "AnthropicStreamCached", anth: &mockllm.Server{OutputTokens: 5, CachedTokens: 4},
			body: `{"model":"mock-claude","stream":true,` + ask + `}`, status: 200, deployment: "mock-anthropic/claude-sonnet-4-5", in: 6, cached: 4, out: 5, result: "ok"},
		{name: "AllDown", openai: &mockllm.Server{Status: 500}, anth: &mockllm.Server{Status: 503},
			body: `{"model":"mock-gpt",` + ask + `}`, status: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.openai == nil {
				tc.openai = &mockllm.Server{}
			}
			if tc.anth == nil {
				tc.anth = &mockllm.Server{}
			}
			e, _, _ := mockEnv(t, 100_000, tc.openai, tc.anth)
			resp, body := e.do(context.Background(), "/v1/chat/completions", tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			balance, holds, usages, _ := e.meter.state()
			if holds != 0 {
				t.Fatalf("%d holds left", holds)
			}
			if tc.status != 200 {
				if balance != 100_000 || len(usages) != 0 {
					t.Fatalf("charged a failed request: balance %d usages %+v", balance, usages)
				}
				return
			}
			u := usages[0]
			if u.Deployment != tc.deployment || u.OutputTokens != tc.out || u.Estimated != tc.est || u.Status != tc.result || u.Credits <= 0 {
				t.Fatalf("usage %+v", u)
			}
			if !tc.est && (u.InputTokens != tc.in || u.CachedInputTokens != tc.cached) {
				t.Fatalf("usage %+v, want in %d cached %d", u, tc.in, tc.cached)
			}
			if strings.Contains(tc.body, `"stream":true`) && tc.result == "ok" && !strings.Contains(body, `"cost_credits":`) {
				t.Fatalf("no cost in stream: %s", body)
			}
		})
	}
}

func TestMockLLMToolCallThroughAnthropic(t *testing.T) {
	e, _, _ := mockEnv(t, 100_000, &mockllm.Server{}, &mockllm.Server{})
	resp, body := e.do(context.Background(), "/v1/chat/completions", `{"model":"mock-claude","tool_choice":"required",
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
		"messages":[{"role":"user","content":"weather?"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := mustJSON(t, body)
	if path(got, "choices", 0, "finish_reason") != "tool_calls" || path(got, "choices", 0, "message", "tool_calls", 0, "function", "name") != "get_weather" {
		t.Fatalf("no tool call: %s", body)
	}
}

// mockCounter counts tokens the way mockllm does, so estimates are exact.
type mockCounter struct{}

func (mockCounter) Count(s string) int64 { return int64(mockllm.CountTokens(s)) }
