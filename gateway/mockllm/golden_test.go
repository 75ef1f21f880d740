package mockllm_test

import (
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
	"tollgate/gateway/mockllm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedNow is the clock every golden answer is stamped with.
func fixedNow() time.Time { return time.Unix(1767225600, 0) }

// MustServe runs s on a loopback HTTP server for the test's lifetime and
// returns its base URL.
func MustServe(tb testing.TB, s *mockllm.Server) string {
	tb.Helper()
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	return ts.URL
}

// call is one HTTP request to the mock.
type call struct {
	method, path string
	header       map[string]string
	body         string
}

// MustDo sends c and returns the status, the response headers and the body.
func MustDo(tb testing.TB, base string, c call) (int, http.Header, string) {
	tb.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(c.path, "/v1/messages") {
		req.Header.Set("anthropic-version", "2023-06-01")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, c.path, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

const (
	hello      = `{"model":"mock-gpt","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the world"}]`
	weatherFn  = `{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}`
	claudeHi   = `{"model":"claude-sonnet-4-5","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","content":"Say hello to the world"}]`
	weatherAnt = `{"name":"get_weather","description":"Weather in a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`
)

// goldenCases are the answers pinned in testdata/<name>.golden.
var goldenCases = []struct {
	name string
	call call
}{
	{"chat", call{path: "/v1/chat/completions", body: hello + `}`}},
	{"chat_stream_usage", call{path: "/v1/chat/completions", body: hello + `,"stream":true,"stream_options":{"include_usage":true}}`, header: map[string]string{"X-Mock-Output-Tokens": "4", "X-Mock-Cached-Tokens": "3"}}},
	{"chat_stream", call{path: "/v1/chat/completions", body: hello + `,"stream":true,"max_tokens":2}`}},
	{"chat_n2_length", call{path: "/v1/chat/completions", body: hello + `,"n":2,"max_completion_tokens":3}`}},
	{"chat_stop", call{path: "/v1/chat/completions", body: hello + `,"stop":["glacier"]}`}},
	{"chat_json", call{path: "/v1/chat/completions", body: hello + `,"response_format":{"type":"json_object"}}`, header: map[string]string{"X-Mock-Output-Tokens": "5"}}},
	{"chat_tools", call{path: "/v1/chat/completions", body: `{"model":"mock-gpt","messages":[{"role":"user","content":"please call get_weather for Paris"}],"tools":[` + weatherFn + `]}`}},
	{"chat_tools_stream", call{path: "/v1/chat/completions", body: `{"model":"mock-gpt","messages":[{"role":"user","content":"Paris?"}],"tools":[` + weatherFn + `],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"stream":true}`}},
	{"chat_bad_request", call{path: "/v1/chat/completions", body: `{"model":"mock-gpt","messages":[]}`}},
	{"chat_stream_options_without_stream", call{path: "/v1/chat/completions", body: hello + `,"stream_options":{"include_usage":true}}`}},
	{"chat_429", call{path: "/v1/chat/completions", body: hello + `}`, header: map[string]string{"X-Mock-Status": "429"}}},
	{"embeddings", call{path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":["hello world","bye"],"dimensions":4}`}},
	{"embeddings_base64", call{path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"hello world","dimensions":4,"encoding_format":"base64"}`}},
	{"models", call{method: "GET", path: "/v1/models"}},
	{"models_anthropic", call{method: "GET", path: "/v1/models", header: map[string]string{"Anthropic-Version": "2023-06-01"}}},
	{"messages_stop_sequence", call{path: "/v1/messages", body: claudeHi + `,"stop_sequences":["delta"]}`}},
	{"messages_401_shape", call{path: "/v1/messages", body: claudeHi + `}`, header: map[string]string{"X-Mock-Status": "401"}}},
	{"responses", call{path: "/v1/responses", body: `{"model":"mock-gpt","instructions":"Be brief.","input":"Say hello to the world"}`, header: map[string]string{"X-Mock-Output-Tokens": "5"}}},
	{"responses_stream", call{path: "/v1/responses", body: `{"model":"mock-gpt","input":[{"role":"user","content":[{"type":"input_text","text":"Say hello"}]}],"stream":true}`, header: map[string]string{"X-Mock-Output-Tokens": "3"}}},
	{"messages", call{path: "/v1/messages", body: claudeHi + `}`, header: map[string]string{"X-Mock-Cached-Tokens": "2", "X-Mock-Cache-Creation-Tokens": "1"}}},
	{"messages_stream", call{path: "/v1/messages", body: claudeHi + `,"stream":true}`, header: map[string]string{"X-Mock-Output-Tokens": "4"}}},
	{"messages_tool_stream", call{path: "/v1/messages", body: `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"call get_weather for Paris"}],"tools":[` + weatherAnt + `],"stream":true}`}},
	{"messages_max_tokens_missing", call{path: "/v1/messages", body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`}},
	{"unknown_path", call{path: "/v1/files", body: `{}`}},
}

func TestGolden(t *testing.T) {
	base := MustServe(t, &mockllm.Server{Clock: tollgate.ClockFunc(fixedNow)})
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := MustDo(t, base, tc.call)
			got := fmt.Sprintf("%d %s\nContent-Type: %s\n", status, http.StatusText(status), h.Get("Content-Type"))
			if ra := h.Get("Retry-After"); ra != "" {
				got += "Retry-After: " + ra + "\n"
			}
			got += "\n" + body
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("answer differs from %s (run go test -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
