package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestAnthropicTranslationGolden replays recorded Messages API answers
// (testdata/anthropic/*/upstream_response.json or upstream.sse) and checks
// both what the gateway sent upstream and what the OpenAI client got
// against golden files. Regenerate with go test ./gateway -run Golden -update.
func TestAnthropicTranslationGolden(t *testing.T) {
	runGolden(t, "testdata/anthropic/*", gateway.KindAnthropic, "/v1/chat/completions")
}

// TestMessagesOverOpenAIGolden is the reverse: Anthropic-style clients on
// /v1/messages served by an OpenAI-compatible deployment, replaying
// testdata/messages/*.
func TestMessagesOverOpenAIGolden(t *testing.T) {
	runGolden(t, "testdata/messages/*", gateway.KindOpenAI, "/v1/messages")
}

// TestOpenAIRelayGolden replays OpenAI answers (testdata/openai/*): unknown
// fields pass through, the usage chunk is stripped unless asked for, and
// cost_credits is added.
func TestOpenAIRelayGolden(t *testing.T) {
	runGolden(t, "testdata/openai/*", gateway.KindOpenAI, "/v1/chat/completions")
}

func runGolden(t *testing.T, pattern, kind, endpoint string) {
	dirs, err := filepath.Glob(pattern)
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var sent []byte
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wantPath, auth := "/v1/messages", r.Header.Get("x-api-key")
				if kind == gateway.KindOpenAI {
					wantPath, auth = "/v1/chat/completions", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				}
				if r.URL.Path != wantPath || auth != "test-key" {
					t.Errorf("upstream request %s %v", r.URL.Path, r.Header)
				}
				sent, _ = io.ReadAll(r.Body)
				if b, err := os.ReadFile(filepath.Join(dir, "upstream.sse")); err == nil {
					w.Header().Set("Content-Type", "text/event-stream")
					w.Write(b)
					return
				}
				b, err := os.ReadFile(filepath.Join(dir, "upstream_response.json"))
				if err != nil {
					t.Fatal(err)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write(b)
			}))
			defer up.Close()
			cfg := &gateway.Config{
				Providers: []gateway.ProviderConfig{{Name: "anth", Kind: kind, BaseURL: up.URL + map[string]string{gateway.KindOpenAI: "/v1"}[kind], APIKey: "test-key"}},
				Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "anth", Model: map[string]string{gateway.KindOpenAI: "gpt-4o-mini", gateway.KindAnthropic: "claude-sonnet-4-5"}[kind], MaxOutputTokens: 1024, ContextTokens: 200_000}}},
			}
			meter := newFakeMeter(t, 1_000_000)
			gw, err := gateway.New(cfg, gateway.Options{Meter: meter, Pricer: fakePricer{}, Clock: tollgate.ClockFunc(func() time.Time { return time.Unix(1700000000, 0) }),
				RequestID: func(*http.Request) string { return "req_golden" }})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := os.ReadFile(filepath.Join(dir, "request.json"))
			r := httptest.NewRequest("POST", endpoint, bytes.NewReader(req))
			r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "a"}))
			rec := httptest.NewRecorder()
			gw.Handler().ServeHTTP(rec, r)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			golden(t, filepath.Join(dir, "upstream_request.golden.json"), indent(t, sent))
			out := rec.Body.Bytes()
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
				out = indent(t, out)
			}
			golden(t, filepath.Join(dir, "response.golden"), out)
			if _, holds, usages, _ := meter.state(); holds != 0 || len(usages) != 1 || usages[0].Estimated {
				t.Fatalf("holds %d usages %+v", holds, usages)
			}
		})
	}
}

func indent(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(b), "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return append(out.Bytes(), '\n')
}

// golden compares got with the file, or rewrites it under -update.
func golden(t testing.TB, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

func TestAnthropicUpstreamBilling(t *testing.T) {
	for _, tc := range []struct {
		name   string
		up     *upstream
		stream bool
		in     int64
		cached int64
		out    int64
		est    bool
	}{
		{"CachedTokensNormalised", &upstream{Prompt: 10, Cached: 6}, false, 16, 6, 3, false},
		{"StreamCachedTokens", &upstream{Prompt: 10, Cached: 6}, true, 16, 6, 3, false},
		{"StreamWithoutUsage", &upstream{NoUsage: true}, true, 0, 0, 3, true},
		{"StreamToolUse", &upstream{ToolCall: true}, true, 10, 0, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 10_000, deploymentSpec{up: tc.up, kind: gateway.KindAnthropic})
			body := simpleChat
			if tc.stream {
				body = `{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`
			}
			resp, got := e.chat(body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			_, _, usages, _ := e.meter.state()
			u := usages[0]
			if (!tc.est && (u.InputTokens != tc.in || u.CachedInputTokens != tc.cached)) || u.OutputTokens != tc.out || u.Estimated != tc.est {
				t.Fatalf("usage %+v", u)
			}
			if tc.name == "CachedTokensNormalised" {
				// 10 uncached + 6 cached at half price + 3 output at 2.
				if c := path(mustJSON(t, got), "usage", "cost_credits"); c != 19.0 || u.Credits != 19 {
					t.Fatalf("cost %v credits %d", c, u.Credits)
				}
			}
			if tc.name == "StreamToolUse" && !strings.Contains(got, `"finish_reason":"tool_calls"`) {
				t.Fatalf("no tool_calls finish: %s", got)
			}
		})
	}
}

// TestAnthropicCacheWritesBilledAtTheirPrice: Anthropic charges prompt
// tokens written to its cache above the input price (a 1-hour write more
// than a 5-minute one); the gateway bills each kind at its own price, in
// the answer's cost_credits and in what it settles, for an answer and a
// stream alike, and holds enough for a prompt written to the cache whole.
func TestAnthropicCacheWritesBilledAtTheirPrice(t *testing.T) {
	pricer := fakePricer{write: 2, write1h: 3}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			up := &upstream{Prompt: 10, Cached: 6, CacheWrite: 4, CacheWrite1h: 5}
			e := newEnvWith(t, 10_000, func(o *gateway.Options) { o.Pricer = pricer }, deploymentSpec{up: up, kind: gateway.KindAnthropic})
			body := simpleChat
			if stream {
				body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello"}]}`
			}
			resp, got := e.chat(body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			// 10 input + 6 cached at half price + 4×2 + 5×3 written + 3 output at 2.
			const want = 10 + 3 + 8 + 15 + 6
			_, _, usages, _ := e.meter.state()
			u := usages[0]
			if u.InputTokens != 25 || u.CachedInputTokens != 6 || u.CacheWriteTokens != 4 || u.CacheWrite1hTokens != 5 || u.Credits != want {
				t.Fatalf("usage %+v, want 25 prompt tokens (6 cached, 4+5 written) costing %d", u, want)
			}
			last := got
			if stream {
				data := sseData(t, got)
				last = data[len(data)-2] // the usage chunk, before [DONE]
			}
			if c := path(mustJSON(t, last), "usage", "cost_credits"); c != float64(want) {
				t.Fatalf("cost_credits %v, want %d: %s", c, want, last)
			}
			if w := path(mustJSON(t, last), "usage", "prompt_tokens_details", "cache_creation_tokens"); w != 9.0 {
				t.Fatalf("cache_creation_tokens %v, want 9: %s", w, last)
			}
			e.checkNoHolds()
		})
	}
	// /v1/messages relays an Anthropic upstream's answer as sent, with
	// cost_credits added.
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("messages/stream=%v", stream), func(t *testing.T) {
			up := &upstream{Prompt: 10, Cached: 6, CacheWrite: 4, CacheWrite1h: 5}
			e := newEnvWith(t, 10_000, func(o *gateway.Options) { o.Pricer = pricer }, deploymentSpec{up: up, kind: gateway.KindAnthropic})
			resp, got := e.do(context.Background(), "/v1/messages", fmt.Sprintf(`{"model":"m","max_tokens":50,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream))
			if resp.StatusCode != 200 || !strings.Contains(got, `"cost_credits":42`) {
				t.Fatalf("status %d, want cost_credits 42: %s", resp.StatusCode, got)
			}
			if _, _, usages, _ := e.meter.state(); usages[0].Credits != 42 || usages[0].CacheWrite1hTokens != 5 {
				t.Fatalf("usage %+v", usages[0])
			}
			e.checkNoHolds()
		})
	}
	t.Run("HoldCoversAPromptWrittenWhole", func(t *testing.T) {
		// A prompt of a few tokens (with the tokenizer margin, under 30)
		// and 60 output tokens at 2: at the input price the hold would fit
		// in 150 credits, at 3 a token (a 1-hour write, the dearest prompt
		// price) it does not.
		e := newEnvWith(t, 150, func(o *gateway.Options) { o.Pricer = pricer }, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
		resp, got := e.chat(`{"model":"m","max_tokens":60,"messages":[{"role":"user","content":"Say hello"}]}`)
		if resp.StatusCode != http.StatusPaymentRequired {
			t.Fatalf("status %d, want 402 (a hold at the input price alone would fit): %s", resp.StatusCode, got)
		}
		e.checkNoHolds()
	})
}

func TestAnthropicRefusesNGreaterThanOne(t *testing.T) {
	e := newEnv(t, 10_000, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
	resp, body := e.chat(`{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 400 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e.checkNoHolds()
}

func TestAnthropicStreamCutBillsReportedPrompt(t *testing.T) {
	e := newEnv(t, 10_000, deploymentSpec{up: &upstream{Prompt: 40, Cached: 8, CutAfter: 2, Words: []string{"a", " b", " c", " d"}}, kind: gateway.KindAnthropic})
	resp, body := e.chat(`{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"code":"upstream_error"`) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, _, usages, _ := e.meter.state()
	u := usages[0]
	if u.Status != "interrupted" || u.InputTokens != 48 || u.CachedInputTokens != 8 || u.OutputTokens != 2 || !u.Estimated {
		t.Fatalf("usage %+v", u)
	}
}
