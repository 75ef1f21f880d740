package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/gateway"
)

func TestChatNonStreamingMetersAndPassesThrough(t *testing.T) {
	up := &upstream{Cached: 4}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	resp, body := e.chat(`{"model":"m","max_tokens":20,"response_format":{"type":"json_object"},"logprobs":true,"messages":[{"role":"user","content":"Say hello"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := mustJSON(t, body)
	// 10 prompt tokens of which 4 cached, 3 output: 6 + 2 + 6 = 14 credits.
	if c := path(got, "usage", "cost_credits"); c != 14.0 {
		t.Fatalf("cost_credits %v, want 14 (%s)", c, body)
	}
	if fp := path(got, "system_fingerprint"); fp != "fp_x" {
		t.Fatalf("unknown field not passed through: %s", body)
	}
	sent := up.lastBody(t)
	if sent["model"] != "up-0" || path(sent, "response_format", "type") != "json_object" || sent["logprobs"] != true {
		t.Fatalf("upstream got %v", sent)
	}
	if _, ok := sent["stream_options"]; ok {
		t.Fatalf("non-streaming request carried stream_options: %v", sent)
	}
	balance, _, usages, _ := e.meter.state()
	if balance != 10_000-14 || len(usages) != 1 {
		t.Fatalf("balance %d usages %+v", balance, usages)
	}
	u := usages[0]
	if u.InputTokens != 10 || u.CachedInputTokens != 4 || u.OutputTokens != 3 || u.Deployment != "p0/up-0" || u.Estimated || u.Status != "ok" {
		t.Fatalf("usage %+v", u)
	}
	e.checkNoHolds()
}

func TestChatErrors(t *testing.T) {
	up := &upstream{}
	e := newEnv(t, 50, deploymentSpec{up: up})
	e.caller.Limits.Models = []string{"m"}
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"NotJSON", `{"model":`, 400, "invalid_request"},
		{"NoMessages", `{"model":"m","messages":[]}`, 400, "invalid_request"},
		{"BadMaxTokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"BadRole", `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, 400, "invalid_request"},
		{"NotAnObject", `[{"model":"m"}]`, 400, "invalid_request"},
		// One model billed, another run: a key named twice, even spelt
		// with an escape, is refused rather than read one way here and
		// the other way upstream.
		{"DuplicateModel", `{"model":"m","messages":[{"role":"user","content":"x"}],"mod\u0065l":"nope"}`, 400, "invalid_request"},
		{"DuplicateMaxTokens", `{"model":"m","max_tokens":1,"max_tokens":90,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		// What an upstream charges beyond the tokens, which model m
		// (fakePricer without units) does not price.
		{"PriorityTier", `{"model":"m","service_tier":"priority","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"TierNotAString", `{"model":"m","service_tier":1,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"WebSearch", `{"model":"m","web_search_options":{},"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"DashScopeSearch", `{"model":"m","enable_search":true,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"OpenRouterPlugins", `{"model":"m","plugins":[{"id":"web"}],"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"AudioOut", `{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"AudioModality", `{"model":"m","modalities":["audio"],"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"AudioIn", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, 400, "invalid_request"},
		{"ContentNotParts", `{"model":"m","messages":[{"role":"user","content":[1,2]}]}`, 400, "invalid_request"},
		{"UnknownModel", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model_not_found"},
		{"TooExpensive", `{"model":"m","max_tokens":90,"messages":[{"role":"user","content":"x"}]}`, 402, "insufficient_balance"},
		{"TooLarge", `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 70<<10) + `"}]}`, 413, "request_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.chat(tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if c := path(mustJSON(t, body), "error", "code"); c != tc.code {
				t.Fatalf("code %v, want %s: %s", c, tc.code, body)
			}
		})
	}
	if n := up.calls.Load(); n != 0 {
		t.Fatalf("upstream called %d times for refused requests", n)
	}
	t.Run("BilledTiersAndPartsPass", func(t *testing.T) {
		resp, body := e.chat(`{"model":"m","max_tokens":5,"service_tier":"flex","modalities":["text"],"enable_search":false,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("Forbidden", func(t *testing.T) {
		e.caller.Limits.Models = []string{"other"}
		defer func() { e.caller.Limits.Models = nil }()
		resp, body := e.chat(simpleChat)
		if resp.StatusCode != 403 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("Unauthenticated", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(simpleChat))
		req.Header.Set("Authorization", "none")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	e.checkNoHolds()
}

// TestChatStreamDeliversBeforeTheUpstreamGoesOn: events that arrive
// together may leave together, but none waits for the upstream's next one:
// a word reaches the client while the upstream pauses after it, the first
// (flushed at once) as well as a later one (flushed by the onWait hook).
func TestChatStreamDeliversBeforeTheUpstreamGoesOn(t *testing.T) {
	for _, tc := range []struct {
		after int
		word  string
	}{{0, "Hello"}, {1, " there"}} {
		t.Run(fmt.Sprintf("PauseAfterWord%d", tc.after), func(t *testing.T) {
			pause := make(chan struct{})
			up := &upstream{Pause: pause, PauseAfter: tc.after}
			e := newEnv(t, 10_000, deploymentSpec{up: up})
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`))
			got := make(chan error, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- err
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				want := fmt.Sprintf(`"content":%q`, tc.word)
				for sc.Scan() {
					if strings.Contains(sc.Text(), want) {
						got <- nil
						_, _ = io.Copy(io.Discard, resp.Body)
						return
					}
				}
				got <- fmt.Errorf("stream ended without %q: %v", tc.word, sc.Err())
			}()
			select {
			case err := <-got:
				close(pause)
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(3 * time.Second): // well within the upstream's idle timeout
				close(pause)
				t.Fatalf("%q was held back while the upstream paused after it", tc.word)
			}
			<-done
			e.checkNoHolds()
		})
	}
}

func TestChatStreamUsage(t *testing.T) {
	for _, tc := range []struct {
		name         string
		includeUsage bool
		noUsage      bool
	}{
		{"ClientAsksUsage", true, false},
		{"ClientDoesNotAsk", false, false},
		{"UpstreamSendsNoUsage", false, true},
		{"UpstreamSendsNoUsageClientAsks", true, true},
	} {
		for _, finishLast := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/FinishWithLastWord=%v", tc.name, finishLast), func(t *testing.T) {
				testStreamUsage(t, tc.includeUsage, tc.noUsage, finishLast)
			})
		}
	}
}

// testStreamUsage checks one stream: the text, where the usage goes, and
// that the cost shown is the cost settled.
func testStreamUsage(t *testing.T, includeUsage, noUsage, finishLast bool) {
	up := &upstream{NoUsage: noUsage, FinishLast: finishLast}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	opts := ""
	if includeUsage {
		opts = `"stream_options":{"include_usage":true},`
	}
	resp, body := e.chat(`{"model":"m","stream":true,` + opts + `"max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if path(up.lastBody(t), "stream_options", "include_usage") != true {
		t.Fatalf("upstream was not asked for usage: %v", up.lastBody(t))
	}
	data := sseData(t, body)
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", data)
	}
	var text strings.Builder
	usageChunks := 0
	for _, d := range data[:len(data)-1] {
		c := mustJSON(t, d)
		if s, ok := path(c, "choices", 0, "delta", "content").(string); ok {
			text.WriteString(s)
		}
		if cs, _ := c["choices"].([]any); len(cs) == 0 {
			usageChunks++
		}
	}
	if text.String() != "Hello there friend" {
		t.Fatalf("text %q", text.String())
	}
	last := mustJSON(t, data[len(data)-2])
	if includeUsage != (usageChunks == 1) || usageChunks > 1 {
		t.Fatalf("%d usage-only chunks with include_usage=%v: %q", usageChunks, includeUsage, data)
	}
	if !includeUsage && path(last, "choices", 0, "finish_reason") != "stop" {
		t.Fatalf("usage not on the last content chunk: %v", last)
	}
	cost, ok := path(last, "usage", "cost_credits").(float64)
	_, _, usages, _ := e.meter.state()
	if !ok || len(usages) != 1 || int64(cost) != int64(usages[0].Credits) || cost <= 0 {
		t.Fatalf("cost %v usages %+v", path(last, "usage"), usages)
	}
	if usages[0].Estimated != noUsage {
		t.Fatalf("estimated %v, want %v", usages[0].Estimated, noUsage)
	}
	if noUsage && usages[0].OutputTokens != 3 {
		t.Fatalf("tokenizer count %d output tokens for 'Hello there friend', want 3", usages[0].OutputTokens)
	}
	e.checkNoHolds()
}

func TestStreamBilling(t *testing.T) {
	words := strings.Fields("one two three four five six seven eight nine ten")
	for i := range words[1:] {
		words[i+1] = " " + words[i+1]
	}
	t.Run("UpstreamDiesMidway", func(t *testing.T) {
		up := &upstream{Words: words, CutAfter: 4}
		e := newEnv(t, 10_000, deploymentSpec{up: up}, deploymentSpec{up: &upstream{}})
		resp, body := e.chat(`{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"count"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		data := sseData(t, body)
		if len(data) < 2 || data[len(data)-1] != "[DONE]" || path(mustJSON(t, data[len(data)-2]), "error", "code") != "upstream_error" {
			t.Fatalf("stream should end with an error event and [DONE]: %q", data)
		}
		_, _, usages, _ := e.meter.state()
		if len(usages) != 1 || usages[0].Status != "interrupted" || usages[0].OutputTokens != 4 || usages[0].Credits == 0 {
			t.Fatalf("usages %+v", usages)
		}
		e.checkNoHolds()
	})
	t.Run("ClientCancelsMidway", func(t *testing.T) {
		gate := make(chan struct{})
		up := &upstream{Words: words}
		e := newEnv(t, 10_000, deploymentSpec{up: up})
		// The upstream hangs after two words until the client has gone.
		up.srv.Config.Handler = hangAfter(t, 2, gate)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"count"}]}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		got := ""
		for strings.Count(got, "data: ") < 2 {
			n, err := resp.Body.Read(buf)
			got += string(buf[:n])
			if err != nil {
				t.Fatalf("read: %v after %q", err, got)
			}
		}
		cancel()
		resp.Body.Close()
		<-gate // the upstream saw its request cancelled
		waitFor(t, func() bool { _, _, u, _ := e.meter.state(); return len(u) == 1 })
		_, _, usages, _ := e.meter.state()
		if usages[0].Status != "client_canceled" || usages[0].OutputTokens != 2 || usages[0].Credits == 0 {
			t.Fatalf("usage %+v", usages[0])
		}
		e.checkNoHolds()
	})
}

// hangAfter is an OpenAI stream handler that sends n words, then waits
// for the request to be cancelled and closes gate.
func hangAfter(t testing.TB, n int, gate chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < n; i++ {
			w.Write([]byte(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}` + "\n\n"))
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		close(gate)
	})
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-time.After(time.Millisecond):
		case <-t.Context().Done():
			t.Fatal("gave up waiting")
		}
	}
}

func TestClientGoneCancelsUpstreamAndReleases(t *testing.T) {
	up := (&upstream{}).start(t, "openai")
	gone := make(chan struct{})
	up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // a server notices a closed connection only once the body is read
		up.calls.Add(1)
		<-r.Context().Done()
		close(gone)
	})
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return up.calls.Load() == 1 })
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(simpleChat))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	<-gone
	waitFor(t, func() bool { _, _, _, released := e.meter.state(); return released == 1 })
	balance, holds, usages, _ := e.meter.state()
	if balance != 10_000 || holds != 0 || len(usages) != 0 {
		t.Fatalf("balance %d holds %d usages %d", balance, holds, len(usages))
	}
}

// TestDeepSeekCacheHitsBilledAtTheCacheRate: DeepSeek reports cache hits
// as prompt_cache_hit_tokens, not OpenAI's prompt_tokens_details; they are
// billed at the cache rate all the same, and the client sees them in both
// shapes.
func TestDeepSeekCacheHitsBilledAtTheCacheRate(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newEnv(t, 10_000, deploymentSpec{up: &upstream{Cached: 4, DeepSeek: true}})
			body := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`
			if stream {
				body = `{"model":"m","max_tokens":20,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello"}]}`
			}
			resp, got := e.chat(body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if stream {
				data := sseData(t, got)
				got = data[len(data)-2] // the usage chunk, before [DONE]
			}
			// 10 prompt tokens of which 4 cached, 3 output: 6 + 2 + 6 = 14 credits.
			u := mustJSON(t, got)
			if c := path(u, "usage", "cost_credits"); c != 14.0 {
				t.Fatalf("cost_credits %v, want 14: %s", c, got)
			}
			if c, hit := path(u, "usage", "prompt_tokens_details", "cached_tokens"), path(u, "usage", "prompt_cache_hit_tokens"); c != 4.0 || hit != 4.0 {
				t.Fatalf("cached_tokens %v, prompt_cache_hit_tokens %v, want 4 and 4: %s", c, hit, got)
			}
			if _, _, usages, _ := e.meter.state(); usages[0].CachedInputTokens != 4 || usages[0].Credits != 14 {
				t.Fatalf("usage %+v", usages[0])
			}
		})
	}
}

// TestUncountedPartsHoldTheContextWindow: an image's or a file's tokens
// are known only to the upstream (a short URL, or a well-compressed image,
// may be thousands of tokens), so a request with one holds its prompt at
// the deployments' context window, the longest a prompt can be; a text
// request holds its estimate as before.
func TestUncountedPartsHoldTheContextWindow(t *testing.T) {
	image := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`
	file := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`
	messagesImage := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}`
	messagesToolImage := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"look"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"shot","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"url","url":"https://example.com/s.png"}}]}]}]}`
	messagesPDF := `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}},{"type":"text","text":"Summarise"}]}]}`
	for _, tc := range []struct {
		name, path, body string
		kind             string
	}{
		{"ChatImage", "/v1/chat/completions", image, gateway.KindOpenAI},
		{"ChatFile", "/v1/chat/completions", file, gateway.KindOpenAI},
		{"MessagesImage", "/v1/messages", messagesImage, gateway.KindAnthropic},
		{"MessagesImageInToolResult", "/v1/messages", messagesToolImage, gateway.KindAnthropic},
		{"MessagesPDF", "/v1/messages", messagesPDF, gateway.KindAnthropic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 1,000 credits: the window of 900 tokens and 20 output
			// tokens at 2 fit; a window of 2,000 does not.
			fits := newEnv(t, 1_000, deploymentSpec{up: &upstream{}, kind: tc.kind, context: 900})
			if resp, body := fits.do(context.Background(), tc.path, tc.body); resp.StatusCode != 200 {
				t.Fatalf("context 900: status %d: %s", resp.StatusCode, body)
			}
			fits.checkNoHolds()
			up := &upstream{}
			short := newEnv(t, 1_000, deploymentSpec{up: up, kind: tc.kind, context: 2_000})
			if resp, body := short.do(context.Background(), tc.path, tc.body); resp.StatusCode != http.StatusPaymentRequired || up.calls.Load() != 0 {
				t.Fatalf("context 2,000: status %d after %d upstream calls, want 402 and none: %s", resp.StatusCode, up.calls.Load(), body)
			}
		})
	}
	t.Run("TextHoldsItsEstimate", func(t *testing.T) {
		e := newEnv(t, 1_000, deploymentSpec{up: &upstream{}, context: 2_000})
		if resp, body := e.chat(simpleChat); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}
