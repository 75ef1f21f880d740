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
	return mockEnvPriced(t, balance, fakePricer{}, openai, anth)
}

// mockEnvPriced is mockEnv at pricer's prices.
func mockEnvPriced(t *testing.T, balance int64, pricer gateway.Pricer, openai, anth *mockllm.Server) (*env, *httptest.Server, *httptest.Server) {
	t.Helper()
	oa, an := httptest.NewServer(openai), httptest.NewServer(anth)
	t.Cleanup(oa.Close)
	t.Cleanup(an.Close)
	cfg := gateway.DefaultMockProviders(oa.URL)
	cfg.Providers[1].BaseURL = an.URL
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	gw, err := gateway.New(cfg, gateway.Options{Meter: e.meter, Pricer: pricer, Seed: 1, Counter: mockCounter{},
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

// TestIDsThatMatch: every answer's id (the JSON answer, each chunk of a
// stream, an embeddings answer, a Messages answer and its message_start)
// is the request id: the X-Request-Id header and the usage record's
// RequestID. Its model is the name asked for, the deployment that served
// it is in X-Tollgate-Deployment and the usage, and the upstream's own id
// is kept in the usage: for OpenAI and Anthropic upstreams, streamed and
// not, through both APIs.
func TestIDsThatMatch(t *testing.T) {
	const chat = `"max_tokens":20,"messages":[{"role":"user","content":"four words"}]`
	for _, tc := range []struct {
		name, path, body, model, deployment, upPrefix string
		stream                                        bool
		openai                                        *mockllm.Server
	}{
		{"ChatOpenAI", "/v1/chat/completions", `{"model":"mock-gpt",` + chat + `}`, "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", false, nil},
		{"ChatOpenAIStream", "/v1/chat/completions", `{"model":"mock-gpt","stream":true,` + chat + `}`, "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", true, nil},
		{"ChatOpenAIStreamUsageChunk", "/v1/chat/completions", `{"model":"mock-gpt","stream":true,"stream_options":{"include_usage":true},` + chat + `}`,
			"mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", true, nil},
		{"ChatAnthropic", "/v1/chat/completions", `{"model":"mock-claude",` + chat + `}`, "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", false, nil},
		{"ChatAnthropicStream", "/v1/chat/completions", `{"model":"mock-claude","stream":true,` + chat + `}`, "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", true, nil},
		{"ChatFailedOverToAnthropic", "/v1/chat/completions", `{"model":"mock-gpt",` + chat + `}`, "mock-gpt", "mock-anthropic/claude-haiku-4-5", "msg_", false,
			&mockllm.Server{Status: 503}},
		{"Messages", "/v1/messages", `{"model":"mock-claude",` + chat + `}`, "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", false, nil},
		{"MessagesStream", "/v1/messages", `{"model":"mock-claude","stream":true,` + chat + `}`, "mock-claude", "mock-anthropic/claude-sonnet-4-5", "msg_", true, nil},
		{"MessagesOverOpenAI", "/v1/messages", `{"model":"mock-gpt",` + chat + `}`, "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", false, nil},
		{"MessagesOverOpenAIStream", "/v1/messages", `{"model":"mock-gpt","stream":true,` + chat + `}`, "mock-gpt", "mock-openai/gpt-4o-mini", "chatcmpl-", true, nil},
		{"Embeddings", "/v1/embeddings", `{"model":"mock-embedding","input":["a cat","a dog"]}`, "mock-embedding", "mock-openai/text-embedding-3-small", "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.openai == nil {
				tc.openai = &mockllm.Server{OutputTokens: 6}
			}
			e, _, _ := mockEnv(t, 100_000, tc.openai, &mockllm.Server{OutputTokens: 6})
			resp, body := e.do(context.Background(), tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			id := resp.Header.Get("X-Request-Id")
			if !strings.HasPrefix(id, "req_") || len(id) != 44 {
				t.Fatalf("X-Request-Id %q", id)
			}
			if got := resp.Header.Get(gateway.DeploymentHeader); got != tc.deployment {
				t.Fatalf("%s %q, want %q", gateway.DeploymentHeader, got, tc.deployment)
			}
			objects := []map[string]any{}
			if tc.stream {
				for _, d := range sseData(t, body) {
					if d == "[DONE]" {
						continue
					}
					ev := mustJSON(t, d)
					switch {
					case ev["type"] == "message_start":
						objects = append(objects, ev["message"].(map[string]any))
					case ev["type"] == nil: // a chat.completion.chunk
						objects = append(objects, ev)
					}
				}
			} else {
				objects = append(objects, mustJSON(t, body))
			}
			if len(objects) == 0 {
				t.Fatalf("no answer objects in %s", body)
			}
			for _, o := range objects {
				if o["id"] != id || o["model"] != tc.model {
					t.Fatalf("answer id %v model %v, want %s %s: %v", o["id"], o["model"], id, tc.model, o)
				}
			}
			_, _, usages, _ := e.meter.state()
			if len(usages) != 1 {
				t.Fatalf("usages %+v", usages)
			}
			u := usages[0]
			if u.RequestID != id || u.Model != tc.model || u.Deployment != tc.deployment {
				t.Fatalf("usage %+v, want request %s model %s deployment %s", u, id, tc.model, tc.deployment)
			}
			if tc.upPrefix != "" && !strings.HasPrefix(u.UpstreamID, tc.upPrefix) {
				t.Fatalf("upstream id %q, want %s…", u.UpstreamID, tc.upPrefix)
			}
		})
	}
	// Two calls, two ids; neither is what the client sent as X-Request-Id.
	e, _, _ := mockEnv(t, 100_000, &mockllm.Server{}, &mockllm.Server{})
	seen := map[string]bool{}
	for range 2 {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"mock-gpt",`+chat+`}`))
		req.Header.Set("X-Request-Id", "mine")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if id == "mine" || seen[id] || !strings.HasPrefix(id, "req_") {
			t.Fatalf("request id %q (seen: %v)", id, seen)
		}
		seen[id] = true
	}
}
