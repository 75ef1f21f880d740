package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
)

func TestHoldCoversWorstCase(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		minHold int64 // at least the output part: 2 credits per token
	}{
		{"MaxTokens", `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"x"}]}`, 40},
		{"MaxCompletionTokensWins", `{"model":"m","max_tokens":5,"max_completion_tokens":30,"messages":[{"role":"user","content":"x"}]}`, 60},
		{"DeploymentCapWhenAbsent", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 200},
		{"CappedByDeployment", `{"model":"m","max_tokens":5000,"messages":[{"role":"user","content":"x"}]}`, 200},
		{"TimesN", `{"model":"m","n":3,"max_tokens":20,"messages":[{"role":"user","content":"x"}]}`, 120},
		// Neither the client nor the deployment caps the output: the
		// default cap is held and sent, so the upstream cannot write more
		// than was held.
		{"DefaultCapWhenNone", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 2 * gateway.DefaultMaxOutputTokens},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{}
			e := newEnv(t, 100_000, deploymentSpec{up: up, noCap: tc.name == "DefaultCapWhenNone"})
			if resp, body := e.chat(tc.body); resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			hold := e.meter.lastHold.Load()
			if hold < tc.minHold || hold > tc.minHold+100 {
				t.Fatalf("hold %d, want about %d", hold, tc.minHold)
			}
			if (tc.name == "CappedByDeployment" || tc.name == "DeploymentCapWhenAbsent") && up.lastBody(t)["max_tokens"] != 100.0 {
				t.Fatalf("max_tokens not clamped to the deployment cap: %v", up.lastBody(t))
			}
			if tc.name == "DefaultCapWhenNone" && up.lastBody(t)["max_tokens"] != float64(gateway.DefaultMaxOutputTokens) {
				t.Fatalf("max_tokens %v sent, want the default cap %d", up.lastBody(t)["max_tokens"], gateway.DefaultMaxOutputTokens)
			}
		})
	}
}

func TestOpenAIToolCallsPassThrough(t *testing.T) {
	up := &upstream{ToolCall: true}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	resp, body := e.chat(`{"model":"m","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"tool_choice":"auto","messages":[{"role":"user","content":"Paris?"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := mustJSON(t, body)
	if path(got, "choices", 0, "message", "tool_calls", 0, "function", "name") != "get_weather" || path(got, "choices", 0, "finish_reason") != "tool_calls" {
		t.Fatalf("tool call lost: %s", body)
	}
	if path(up.lastBody(t), "tools", 0, "function", "name") != "get_weather" || up.lastBody(t)["tool_choice"] != "auto" {
		t.Fatalf("tools not passed upstream: %v", up.lastBody(t))
	}
}

func TestEmbeddings(t *testing.T) {
	up := &upstream{Prompt: 7}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	resp, body := e.do(context.Background(), "/v1/embeddings", `{"model":"m","input":["hello world","again"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if c := path(mustJSON(t, body), "usage", "cost_credits"); c != 7.0 {
		t.Fatalf("cost %v: %s", c, body)
	}
	if up.lastBody(t)["model"] != "up-0" {
		t.Fatalf("upstream body %v", up.lastBody(t))
	}
	e.checkNoHolds()
}

func TestModelsListsOnlyAllowedWithPrices(t *testing.T) {
	e := newEnv(t, 10_000, deploymentSpec{up: &upstream{}})
	for _, tc := range []struct {
		allowed []string
		want    int
	}{{nil, 1}, {[]string{"m"}, 1}, {[]string{"other"}, 0}} {
		e.caller.Limits.Models = tc.allowed
		resp, body := e.do(context.Background(), "/v1/models", "")
		data, _ := mustJSON(t, body)["data"].([]any)
		if resp.StatusCode != 200 || len(data) != tc.want {
			t.Fatalf("allowed %v: %d %s", tc.allowed, resp.StatusCode, body)
		}
		if tc.want == 1 && path(data, 0, "pricing", "credits_per_1m_output_tokens") != 2e6 {
			t.Fatalf("prices: %s", body)
		}
	}
}

func TestMessagesEndpoint(t *testing.T) {
	t.Run("NonStreaming", func(t *testing.T) {
		up := &upstream{Cached: 2}
		e := newEnv(t, 10_000, deploymentSpec{up: up, kind: gateway.KindAnthropic})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		// 10 input + 2 cached (1 credit) + 3 output (6 credits).
		if c := path(mustJSON(t, body), "usage", "cost_credits"); c != 17.0 {
			t.Fatalf("cost %v: %s", c, body)
		}
		if up.lastBody(t)["model"] != "up-0" {
			t.Fatalf("upstream body %v", up.lastBody(t))
		}
		e.checkNoHolds()
	})
	t.Run("Streaming", func(t *testing.T) {
		e := newEnv(t, 10_000, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || !strings.Contains(body, "event: message_stop") || !strings.Contains(body, `"cost_credits":16`) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e.checkNoHolds()
	})
	t.Run("FeesNotPricedRefused", func(t *testing.T) {
		// Anthropic charges web search per use and regional inference
		// more; the model prices neither (code execution and regional
		// inference are never sold), so the request is refused before
		// anything is held or sent.
		up := &upstream{}
		e := newEnv(t, 10_000, deploymentSpec{up: up, kind: gateway.KindAnthropic})
		for _, extra := range []string{
			`"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]`,
			`"tools":[{"name":"get_weather","input_schema":{"type":"object"}},{"type":"code_execution_20250825","name":"code_execution"}]`,
			`"tools":{"name":"not_a_list"}`,
			`"inference_geo":"us"`,
		} {
			resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,`+extra+`,"messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != 400 || path(mustJSON(t, body), "error", "type") != "invalid_request_error" {
				t.Fatalf("%s: status %d: %s", extra, resp.StatusCode, body)
			}
		}
		// Tools the client runs are fine (its own, and Anthropic's), and
		// so is inference anywhere.
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"inference_geo":"global","tools":[{"name":"get_weather","input_schema":{"type":"object"}},{"type":"custom","name":"x","input_schema":{"type":"object"}},{"type":"bash_20250124","name":"bash"},{"type":"text_editor_20250728","name":"str_replace_based_edit_tool"}],"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || up.calls.Load() != 1 {
			t.Fatalf("client tools: status %d after %d upstream calls: %s", resp.StatusCode, up.calls.Load(), body)
		}
		e.checkNoHolds()
	})
	t.Run("ErrorsInAnthropicShape", func(t *testing.T) {
		e := newEnv(t, 1, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 402 || path(mustJSON(t, body), "error", "type") != "billing_error" {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("OverloadedAfterMessageStartFailsOver", func(t *testing.T) {
		overloaded := (&upstream{}).start(t, gateway.KindAnthropic)
		overloaded.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"usage\":{\"input_tokens\":5}}}\n\n")
			io.WriteString(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
		})
		second := &upstream{}
		e := newEnv(t, 10_000, deploymentSpec{up: overloaded, kind: gateway.KindAnthropic}, deploymentSpec{up: second, kind: gateway.KindAnthropic})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || strings.Contains(body, "msg_x") || strings.Count(body, "event: message_start") != 1 || second.calls.Load() != 1 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e.checkNoHolds()
	})
	t.Run("FailoverFromAnthropicToOpenAI", func(t *testing.T) {
		e := newEnv(t, 10_000, deploymentSpec{up: &upstream{Status: 529}, kind: gateway.KindAnthropic}, deploymentSpec{up: &upstream{}})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || !strings.Contains(body, "event: message_stop") || !strings.Contains(body, `"text":"Hello"`) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e.checkNoHolds()
	})
	t.Run("OpenAIStreamCut", func(t *testing.T) {
		e := newEnv(t, 10_000, deploymentSpec{up: &upstream{CutAfter: 2}})
		resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || !strings.HasSuffix(body, "event: error\ndata: {\"error\":{\"message\":\"the upstream stream was interrupted\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n") {
			t.Fatalf("status %d: %q", resp.StatusCode, body)
		}
		_, _, usages, _ := e.meter.state()
		if len(usages) != 1 || usages[0].Status != "interrupted" || usages[0].OutputTokens != 2 {
			t.Fatalf("usages %+v", usages)
		}
	})
}

func TestUnpricedModelIsAnInternalError(t *testing.T) {
	up := (&upstream{}).start(t, gateway.KindOpenAI)
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{{Name: "p", Kind: gateway.KindOpenAI, BaseURL: up.srv.URL + "/v1"}},
		Models:    map[string][]gateway.DeploymentConfig{"unpriced": {{Provider: "p", Model: "u"}}},
	}
	gw, err := gateway.New(cfg, gateway.Options{Meter: newFakeMeter(t, 1000), Pricer: fakePricer{}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"unpriced","messages":[{"role":"user","content":"x"}]}`))
	r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "a"}))
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, r)
	if rec.Code != 500 || up.calls.Load() != 0 || strings.Contains(rec.Body.String(), "no price") {
		t.Fatalf("status %d calls %d: %s", rec.Code, up.calls.Load(), rec.Body)
	}
}

func TestBadRequestsOnOtherEndpoints(t *testing.T) {
	e := newEnv(t, 10_000, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"MessagesNotJSON", "/v1/messages", `{`, 400},
		{"MessagesNoMaxTokens", "/v1/messages", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400},
		{"MessagesUnknownModel", "/v1/messages", `{"model":"x","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, 404},
		{"EmbeddingsNotJSON", "/v1/embeddings", `[`, 400},
		{"EmbeddingsNoInput", "/v1/embeddings", `{"model":"m"}`, 400},
		{"EmbeddingsOnAnthropicOnlyModel", "/v1/embeddings", `{"model":"m","input":"x"}`, 400},
		{"EmbeddingsUnknownModel", "/v1/embeddings", `{"model":"x","input":[[1,2],[3]]}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(context.Background(), tc.path, tc.body)
			if resp.StatusCode != tc.status || path(mustJSON(t, body), "error", "message") == nil {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
	e.checkNoHolds()
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	when := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	e := newEnv(t, 10_000, deploymentSpec{up: &upstream{Status: 429, RetryAfter: when}})
	resp, _ := e.chat(simpleChat)
	if ra := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || ra < "80" || ra > "91" || len(ra) != 2 {
		t.Fatalf("status %d Retry-After %q", resp.StatusCode, ra)
	}
}

func TestCountTokens(t *testing.T) {
	up := &upstream{}
	e := newEnv(t, 10_000, deploymentSpec{up: up, kind: gateway.KindAnthropic})
	ctx := context.Background()
	count := func(body string) (int, map[string]any) {
		t.Helper()
		resp, out := e.do(ctx, "/v1/messages/count_tokens", body)
		return resp.StatusCode, mustJSON(t, out)
	}
	status, short := count(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || short["input_tokens"] == nil || short["input_tokens"].(float64) < 1 {
		t.Fatalf("status %d: %v", status, short)
	}
	_, long := count(`{"model":"m","system":"You answer in French, briefly and politely.","messages":[{"role":"user","content":"hi"}]}`)
	if long["input_tokens"].(float64) <= short["input_tokens"].(float64) {
		t.Fatalf("a system prompt added no tokens: %v vs %v", long, short)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		errType    string
	}{
		{"NotJSON", `{"model":`, 400, "invalid_request_error"},
		{"NoMessages", `{"model":"m"}`, 400, "invalid_request_error"},
		{"UnknownModel", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "not_found_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := count(tc.body)
			if status != tc.status || path(body, "error", "type") != tc.errType {
				t.Fatalf("status %d, body %v; want %d %s", status, body, tc.status, tc.errType)
			}
		})
	}
	// Counting is free: nothing was held, charged or sent upstream.
	if balance, holds, usages, _ := e.meter.state(); balance != 10_000 || holds != 0 || len(usages) != 0 || up.calls.Load() != 0 {
		t.Fatalf("counting changed money or called upstream: balance %d holds %d usages %d calls %d", balance, holds, len(usages), up.calls.Load())
	}
}
