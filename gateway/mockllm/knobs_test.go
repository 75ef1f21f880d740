package mockllm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tollgate/gateway/mockllm"
)

// tokenCount matches any reported token count.
var tokenCount = regexp.MustCompile(`tokens":[0-9]`)

const chatBody = `{"model":"mock-gpt","messages":[{"role":"user","content":"one two three"}]}`
const chatStreamBody = `{"model":"mock-gpt","messages":[{"role":"user","content":"one two three"}],"stream":true,"stream_options":{"include_usage":true}}`
const claudeBody = `{"model":"claude-haiku-4-5","max_tokens":50,"messages":[{"role":"user","content":"one two three"}]}`

// chatUsage decodes a non-streaming chat answer's usage and content.
func chatUsage(tb testing.TB, body string) (content string, usage map[string]any) {
	tb.Helper()
	var c struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage map[string]any
	}
	if err := json.Unmarshal([]byte(body), &c); err != nil || len(c.Choices) == 0 {
		tb.Fatalf("decoding %s: %v", body, err)
	}
	return c.Choices[0].Message.Content, c.Usage
}

func TestAPIKey(t *testing.T) {
	s := &mockllm.Server{APIKey: "right"}
	base := MustServe(t, s)
	tests := []struct {
		name   string
		c      call
		status int
		errTyp string
	}{
		{"OpenAIRight", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{"Authorization": "Bearer right"}}, 200, ""},
		{"OpenAIWrong", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{"Authorization": "Bearer wrong"}}, 401, `"code":"invalid_api_key"`},
		{"OpenAIMissing", call{path: "/v1/embeddings", body: `{}`}, 401, `"code":"invalid_api_key"`},
		{"AnthropicXAPIKey", call{path: "/v1/messages", body: claudeBody, header: map[string]string{"X-Api-Key": "right"}}, 200, ""},
		{"AnthropicWrong", call{path: "/v1/messages", body: claudeBody, header: map[string]string{"X-Api-Key": "wrong"}}, 401, `"type":"authentication_error"`},
		{"AnthropicNoVersion", call{path: "/v1/messages", body: claudeBody, header: map[string]string{"X-Api-Key": "right", "Anthropic-Version": ""}}, 400, `anthropic-version`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := MustDo(t, base, tc.c)
			if status != tc.status || !strings.Contains(body, tc.errTyp) {
				t.Errorf("got %d %s, want %d with %s", status, body, tc.status, tc.errTyp)
			}
		})
	}
	_, h1, _ := MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody})
	_, h2, _ := MustDo(t, base, call{path: "/v1/messages", body: claudeBody})
	if id1, id2 := h1.Get("X-Request-Id"), h2.Get("Request-Id"); !strings.HasPrefix(id1, "req_") || !strings.HasPrefix(id2, "req_") || id1 == id2 {
		t.Errorf("request ids %q and %q; want distinct req_ ids in each API's header", id1, id2)
	}
	if got := s.Count("/v1/chat/completions", 401); got != 2 {
		t.Errorf("Count(chat, 401) = %d, want 1", got)
	}
}

func TestOutputTokens(t *testing.T) {
	base := MustServe(t, &mockllm.Server{OutputTokens: 7})
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   int
	}{
		{"Field", nil, chatBody, 7},
		{"Header", map[string]string{mockllm.HeaderOutputTokens: "40"}, chatBody, 40},
		{"Zero", map[string]string{mockllm.HeaderOutputTokens: "0"}, chatBody, 0},
		{"MaxTokensCuts", map[string]string{mockllm.HeaderOutputTokens: "40"}, strings.TrimSuffix(chatBody, "}") + `,"max_tokens":5}`, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := MustDo(t, base, call{path: "/v1/chat/completions", body: tc.body, header: tc.header})
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			content, usage := chatUsage(t, body)
			if n := mockllm.CountTokens(content); n != tc.want || usage["completion_tokens"] != float64(tc.want) {
				t.Errorf("content %q (%d tokens), usage %v; want %d", content, n, usage, tc.want)
			}
		})
	}
}

func TestNegativeOutputTokensIsEmpty(t *testing.T) {
	base := MustServe(t, &mockllm.Server{OutputTokens: -1})
	_, _, body := MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody})
	if content, usage := chatUsage(t, body); content != "" || usage["completion_tokens"] != float64(0) {
		t.Errorf("content %q, usage %v; want an empty completion", content, usage)
	}
}

func TestCachedTokensCapped(t *testing.T) {
	base := MustServe(t, &mockllm.Server{CachedTokens: 100})
	_, _, body := MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody})
	_, usage := chatUsage(t, body)
	if d := usage["prompt_tokens_details"].(map[string]any); d["cached_tokens"] != float64(3) {
		t.Errorf("cached_tokens = %v, want the prompt's 3", d["cached_tokens"])
	}
}

func TestStatusAndRetryAfter(t *testing.T) {
	s := &mockllm.Server{Status: 500, RetryAfter: 2500 * time.Millisecond}
	base := MustServe(t, s)
	tests := []struct {
		name       string
		c          call
		status     int
		retryAfter string
		shape      string
	}{
		{"Field", call{path: "/v1/chat/completions", body: chatBody}, 500, "", `"type":"server_error"`},
		{"HeaderOff", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderStatus: "0"}}, 200, "", `"chat.completion"`},
		{"Header429", call{path: "/v1/embeddings", body: `{}`, header: map[string]string{mockllm.HeaderStatus: "429"}}, 429, "3", `"code":"rate_limit_exceeded"`},
		{"Anthropic429", call{path: "/v1/messages", body: claudeBody, header: map[string]string{mockllm.HeaderStatus: "429"}}, 429, "3", `{"type":"error","error":{"type":"rate_limit_error"`},
		{"Anthropic500", call{path: "/v1/messages", body: claudeBody}, 500, "", `"type":"api_error"`},
		{"BadHeader", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderStatus: "200"}}, 400, "", mockllm.HeaderStatus},
		{"HugeOutput", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderStatus: "0", mockllm.HeaderOutputTokens: "100000000"}}, 400, "", mockllm.HeaderOutputTokens},
		{"HugeN", call{path: "/v1/chat/completions", body: `{"model":"m","n":128,"messages":[{"role":"user","content":"x"}]}`, header: map[string]string{mockllm.HeaderStatus: "0", mockllm.HeaderOutputTokens: "40000"}}, 400, "", `"param":"n"`},
		{"UnknownHeader", call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{"X-Mock-Nope": "1"}}, 400, "", "unknown mock header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := MustDo(t, base, tc.c)
			if status != tc.status || h.Get("Retry-After") != tc.retryAfter || !strings.Contains(body, tc.shape) {
				t.Errorf("got %d Retry-After %q %s; want %d %q with %s", status, h.Get("Retry-After"), body, tc.status, tc.retryAfter, tc.shape)
			}
			if tc.retryAfter != "" && h.Get("Retry-After-Ms") != "2500" {
				t.Errorf("retry-after-ms = %q", h.Get("Retry-After-Ms"))
			}
		})
	}
}

func TestErrorRateIsSeeded(t *testing.T) {
	run := func(s *mockllm.Server) []int {
		base := MustServe(t, s)
		out := make([]int, 60)
		for i := range out {
			out[i], _, _ = MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody})
		}
		return out
	}
	a := run(&mockllm.Server{ErrorRate: 0.5, Seed: 7})
	b := run(&mockllm.Server{ErrorRate: 0.5, Seed: 7})
	seen := map[int]int{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d: %d then %d with the same seed", i, a[i], b[i])
		}
		seen[a[i]]++
	}
	for _, st := range []int{200, 429, 500, 503} {
		if seen[st] == 0 {
			t.Errorf("no %d in 60 requests at rate 0.5: %v", st, seen)
		}
	}
	only := run(&mockllm.Server{ErrorRate: 1, ErrorStatuses: []int{502}})
	hdr := MustServe(t, &mockllm.Server{ErrorRate: 1})
	st, _, _ := MustDo(t, hdr, call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderErrorRate: "0"}})
	if only[0] != 502 || only[59] != 502 || st != 200 {
		t.Errorf("ErrorStatuses {502} gave %d..%d; header rate 0 gave %d", only[0], only[59], st)
	}
}

func TestErrorRatesByStatus(t *testing.T) {
	tests := []struct {
		name   string
		s      *mockllm.Server
		header string
		want   map[int]bool // statuses that must appear; no others may
	}{
		{"Field", &mockllm.Server{ErrorRates: map[int]float64{429: 0.3, 503: 0.3}}, "", map[int]bool{200: true, 429: true, 503: true}},
		{"FieldAllOne", &mockllm.Server{ErrorRates: map[int]float64{500: 1}}, "", map[int]bool{500: true}},
		{"Header", &mockllm.Server{}, "429=0.5, 500=0.5", map[int]bool{429: true, 500: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := MustServe(t, tc.s)
			seen := map[int]int{}
			for range 60 {
				c := call{path: "/v1/chat/completions", body: chatBody}
				if tc.header != "" {
					c.header = map[string]string{mockllm.HeaderErrorRates: tc.header}
				}
				st, _, _ := MustDo(t, base, c)
				seen[st]++
			}
			for st := range tc.want {
				if seen[st] == 0 {
					t.Errorf("no %d in 60 requests: %v", st, seen)
				}
			}
			for st := range seen {
				if !tc.want[st] {
					t.Errorf("unexpected %d: %v", st, seen)
				}
			}
		})
	}
	base := MustServe(t, &mockllm.Server{})
	for _, bad := range []string{"429=0.7,500=0.7", "200=0.1", "429", "429=x"} {
		st, _, _ := MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderErrorRates: bad}})
		if st != 400 {
			t.Errorf("%s=%q: status %d, want 400", mockllm.HeaderErrorRates, bad, st)
		}
	}
}

func TestOmitUsage(t *testing.T) {
	base := MustServe(t, &mockllm.Server{OmitUsage: true})
	tests := []struct {
		name string
		c    call
	}{
		{"Chat", call{path: "/v1/chat/completions", body: chatBody}},
		{"ChatStream", call{path: "/v1/chat/completions", body: chatStreamBody}},
		{"Embeddings", call{path: "/v1/embeddings", body: `{"model":"e","input":"x","dimensions":2}`}},
		{"Responses", call{path: "/v1/responses", body: `{"model":"m","input":"x"}`}},
		{"Messages", call{path: "/v1/messages", body: claudeBody}},
		{"MessagesStream", call{path: "/v1/messages", body: strings.TrimSuffix(claudeBody, "}") + `,"stream":true}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := MustDo(t, base, tc.c)
			if status != 200 || strings.Contains(body, `"usage":{`) || tokenCount.MatchString(body) {
				t.Errorf("got %d with usage: %s", status, body)
			}
		})
	}
	on := MustServe(t, &mockllm.Server{})
	_, _, body := MustDo(t, on, call{path: "/v1/chat/completions", body: chatStreamBody, header: map[string]string{mockllm.HeaderOmitUsage: "true"}})
	if strings.Contains(body, `"usage":{`) {
		t.Errorf("header did not omit the usage chunk: %s", body)
	}
}

// events reads SSE data lines until the stream ends and returns them with
// the read error (nil on a clean end).
func events(tb testing.TB, base string, c call) ([]string, error) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+c.path, strings.NewReader(c.body))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out, sc.Err()
}

func TestFailAfter(t *testing.T) {
	s := &mockllm.Server{FailAfter: 3}
	base := MustServe(t, s)
	tests := []struct {
		name string
		c    call
		want int
	}{
		{"Field", call{path: "/v1/chat/completions", body: chatStreamBody}, 3},
		{"HeaderZero", call{path: "/v1/chat/completions", body: chatStreamBody, header: map[string]string{mockllm.HeaderFailAfter: "0"}}, 0},
		{"Anthropic", call{path: "/v1/messages", body: strings.TrimSuffix(claudeBody, "}") + `,"stream":true}`, header: map[string]string{mockllm.HeaderFailAfter: "5"}}, 5},
		{"Responses", call{path: "/v1/responses", body: `{"model":"m","input":"x","stream":true}`}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events(t, base, tc.c)
			if err == nil || len(got) != tc.want {
				t.Errorf("got %d events, err %v; want %d events and a cut connection", len(got), err, tc.want)
			}
		})
	}
	got, err := events(t, base, call{path: "/v1/chat/completions", body: chatStreamBody, header: map[string]string{mockllm.HeaderFailAfter: "-1"}})
	if err != nil || got[len(got)-1] != "[DONE]" {
		t.Errorf("FailAfter -1: %d events, err %v; want a whole stream", len(got), err)
	}
	if n := s.Count("/v1/chat/completions", 200); n != 3 {
		t.Errorf("Count(chat, 200) = %d, want 3 (cut streams count as started)", n)
	}
}

// serveFake runs one request through s inside a synctest bubble and
// returns the fake time it took and the recorder.
func serveFake(t *testing.T, s *mockllm.Server, c call) (time.Duration, *httptest.ResponseRecorder) {
	t.Helper()
	var took time.Duration
	var rec *httptest.ResponseRecorder
	synctest.Test(t, func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		req.Header.Set("Anthropic-Version", "2023-06-01")
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		rec = httptest.NewRecorder()
		start := time.Now()
		s.ServeHTTP(rec, req)
		took = time.Since(start)
	})
	return took, rec
}

func TestLatencyAndTokensPerSecond(t *testing.T) {
	tests := []struct {
		name string
		s    *mockllm.Server
		c    call
		want time.Duration
	}{
		{"LatencyField", &mockllm.Server{Latency: 3 * time.Second}, call{path: "/v1/chat/completions", body: chatBody}, 3 * time.Second},
		{"LatencyHeaderMillis", &mockllm.Server{}, call{path: "/v1/embeddings", body: `{"model":"e","input":"x"}`, header: map[string]string{mockllm.HeaderLatency: "250"}}, 250 * time.Millisecond},
		{"LatencyBeforeErrors", &mockllm.Server{Status: 503}, call{path: "/v1/messages", body: claudeBody, header: map[string]string{mockllm.HeaderLatency: "2s"}}, 2 * time.Second},
		{"TPSNonStream", &mockllm.Server{TokensPerSecond: 8}, call{path: "/v1/chat/completions", body: chatBody}, 2 * time.Second},
		{"TPSStream", &mockllm.Server{TokensPerSecond: 4, Latency: time.Second}, call{path: "/v1/chat/completions", body: chatStreamBody}, time.Second + 4*time.Second},
		{"TPSHeaderAnthropicStream", &mockllm.Server{}, call{path: "/v1/messages", body: strings.TrimSuffix(claudeBody, "}") + `,"stream":true}`, header: map[string]string{mockllm.HeaderTokensPerSecond: "16"}}, time.Second},
		{"TPSResponsesStream", &mockllm.Server{TokensPerSecond: 2}, call{path: "/v1/responses", body: `{"model":"m","input":"x","stream":true}`, header: map[string]string{mockllm.HeaderOutputTokens: "3"}}, 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			took, rec := serveFake(t, tc.s, tc.c)
			if took != tc.want {
				t.Errorf("took %v of fake time, want %v (status %d)", took, tc.want, rec.Code)
			}
		})
	}
}

func TestHang(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *mockllm.Server
		h    map[string]string
	}{
		{"Field", &mockllm.Server{Hang: true}, nil},
		{"Header", &mockllm.Server{}, map[string]string{mockllm.HeaderHang: "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody))
				for k, v := range tc.h {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				done := make(chan struct{})
				go func() { tc.s.ServeHTTP(rec, req); close(done) }()
				time.Sleep(time.Hour)
				synctest.Wait()
				select {
				case <-done:
					t.Fatal("answered while hanging")
				default:
				}
				cancel()
				<-done
				if rec.Body.Len() != 0 || tc.s.Count("/v1/chat/completions", 0) != 1 {
					t.Errorf("body %q, Count(chat, 0) = %d; want nothing sent and one unanswered", rec.Body, tc.s.Count("/v1/chat/completions", 0))
				}
			})
		})
	}
}

func TestStats(t *testing.T) {
	s := &mockllm.Server{}
	base := MustServe(t, s)
	MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody})
	MustDo(t, base, call{path: "/v1/chat/completions", body: chatBody, header: map[string]string{mockllm.HeaderStatus: "503"}})
	MustDo(t, base, call{method: "GET", path: "/v1/models"})
	MustDo(t, base, call{method: "GET", path: "/nope"})
	MustDo(t, base, call{method: "GET", path: "/v1/chat/completions"})
	_, _, body := MustDo(t, base, call{method: "GET", path: "/mock/stats"})
	want := `{"requests":{"/v1/chat/completions":{"200":1,"405":1,"503":1},"/v1/models":{"200":1},"other":{"404":1}},"total":5}` + "\n"
	if body != want {
		t.Errorf("/mock/stats = %s, want %s", body, want)
	}
	if st := s.Stats(); st["/v1/chat/completions"][503] != 1 {
		t.Errorf("Stats() = %v", st)
	}
	s.ResetStats()
	if s.Count("/v1/models", 200) != 0 {
		t.Error("ResetStats kept counts")
	}
}

// TestConcurrentBehaviours runs requests with different X-Mock headers on
// one server at once (under -race), each getting its own behaviour.
func TestConcurrentBehaviours(t *testing.T) {
	base := MustServe(t, &mockllm.Server{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			n := i%5 + 1
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set(mockllm.HeaderOutputTokens, itoa(n))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var c struct {
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.Usage.CompletionTokens != n {
				errs <- errors.Join(err, errors.New("wrong completion tokens "+itoa(c.Usage.CompletionTokens)+" want "+itoa(n)))
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
