package gateway_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
				Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "anth", Model: map[string]string{gateway.KindOpenAI: "gpt-4o-mini", gateway.KindAnthropic: "claude-sonnet-4-5"}[kind], MaxOutputTokens: 1024}}},
			}
			meter := newFakeMeter(t, 1_000_000)
			gw, err := gateway.New(cfg, gateway.Options{Meter: meter, Pricer: fakePricer{}, Now: func() time.Time { return time.Unix(1700000000, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := os.ReadFile(filepath.Join(dir, "request.json"))
			r := httptest.NewRequest("POST", endpoint, bytes.NewReader(req))
			r = r.WithContext(gateway.WithCaller(r.Context(), gateway.Caller{Account: "a"}))
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
