package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// geminiEnv is a gateway whose model "m" is served by one deployment of
// kind (gateway.KindGemini unless set) at up, with the mock's token
// counter. The upstream's requests are recorded in rec.
type recorder struct {
	mu      sync.Mutex
	bodies  []map[string]any
	paths   []string
	headers []http.Header
}

func (rc *recorder) last(t *testing.T) (string, http.Header, map[string]any) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bodies) == 0 {
		t.Fatal("the upstream got no request")
	}
	n := len(rc.bodies) - 1
	return rc.paths[n], rc.headers[n], rc.bodies[n]
}

func geminiEnv(t *testing.T, balance int64, up http.Handler, kind string) (*env, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		rec.mu.Lock()
		rec.bodies, rec.paths, rec.headers = append(rec.bodies, m), append(rec.paths, r.URL.RequestURI()), append(rec.headers, r.Header.Clone())
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if kind == "" {
		kind = gateway.KindGemini
	}
	base := srv.URL
	if kind == gateway.KindOpenAI {
		base += "/v1"
	}
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{{Name: "g", Kind: kind, BaseURL: base, APIKey: "goog-secret"}},
		Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "g", Model: "gemini-2.5-flash", MaxOutputTokens: 100}}},
	}
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	gw, err := gateway.New(cfg, gateway.Options{Meter: e.meter, Pricer: fakePricer{}, Seed: 1, Counter: mockCounter{},
		Retry: gateway.RetryPolicy{MaxAttempts: 1, BackoffBase: 1, BackoffMax: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	return e, rec
}

// lastUsage is the one usage settled.
func (e *env) lastUsage() gateway.Usage {
	e.t.Helper()
	_, holds, usages, _ := e.meter.state()
	if holds != 0 || len(usages) == 0 {
		e.t.Fatalf("%d holds open, %d usages settled", holds, len(usages))
	}
	return usages[len(usages)-1]
}

const geminiAsk = `"max_tokens":50,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me four words"}]`

// TestGeminiUpstreamChat: a chat request to a gemini deployment is sent
// as generateContent (systemInstruction, contents, generationConfig, the
// key in x-goog-api-key) and its usageMetadata billed: cached content
// inside the prompt at the cached price, thoughts as output.
func TestGeminiUpstreamChat(t *testing.T) {
	e, rec := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 8, CachedTokens: 2, ThoughtsTokens: 5}, "")
	resp, body := e.chat(`{"model":"m","temperature":0.5,"stop":["zzz"],` + geminiAsk + `}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	p, h, req := rec.last(t)
	if p != "/v1beta/models/gemini-2.5-flash:generateContent" || h.Get("X-Goog-Api-Key") != "goog-secret" {
		t.Errorf("upstream request %s with key %q", p, h.Get("X-Goog-Api-Key"))
	}
	if path(req, "systemInstruction", "parts", 0, "text") != "be brief" || path(req, "contents", 0, "role") != "user" ||
		path(req, "contents", 0, "parts", 0, "text") != "tell me four words" ||
		path(req, "generationConfig", "maxOutputTokens") != 50.0 || path(req, "generationConfig", "temperature") != 0.5 ||
		path(req, "generationConfig", "stopSequences", 0) != "zzz" {
		t.Errorf("upstream request %v", req)
	}
	m := mustJSON(t, body)
	text, _ := path(m, "choices", 0, "message", "content").(string)
	if mockllm.CountTokens(text) != 8 || path(m, "choices", 0, "finish_reason") != "stop" || path(m, "object") != "chat.completion" {
		t.Errorf("answer %s", body)
	}
	// prompt 6 (2 cached), output 8 + 5 thoughts.
	if path(m, "usage", "prompt_tokens") != 6.0 || path(m, "usage", "completion_tokens") != 13.0 ||
		path(m, "usage", "prompt_tokens_details", "cached_tokens") != 2.0 ||
		path(m, "usage", "completion_tokens_details", "reasoning_tokens") != 5.0 {
		t.Errorf("usage %v", path(m, "usage"))
	}
	u := e.lastUsage()
	if u.InputTokens != 6 || u.CachedInputTokens != 2 || u.OutputTokens != 13 || u.Estimated || u.Credits != 4+1+26 ||
		u.Deployment != "g/gemini-2.5-flash" || u.UpstreamID == "" {
		t.Errorf("usage %+v", u)
	}
	if path(m, "usage", "cost_credits") != float64(u.Credits) {
		t.Errorf("cost_credits %v, settled %d", path(m, "usage", "cost_credits"), u.Credits)
	}
}

// TestGeminiUpstreamStream: a streamed chat over streamGenerateContent:
// one content delta per token, for each of two candidates, and the usage
// of the last chunk billed.
func TestGeminiUpstreamStream(t *testing.T) {
	e, rec := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 6}, "")
	resp, body := e.chat(`{"model":"m","stream":true,"n":2,"stream_options":{"include_usage":true},` + geminiAsk + `}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if p, _, req := rec.last(t); p != "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" || path(req, "generationConfig", "candidateCount") != 2.0 {
		t.Errorf("upstream request %s %v", p, req)
	}
	deltas, finishes := map[float64]int{}, map[float64]string{}
	var usage any
	data := sseData(t, body)
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", body)
	}
	for _, d := range data[:len(data)-1] {
		c := mustJSON(t, d)
		if u := path(c, "usage"); u != nil {
			usage = u
		}
		for _, ch := range path(c, "choices").([]any) {
			i := path(ch, "index").(float64)
			if s, _ := path(ch, "delta", "content").(string); s != "" {
				deltas[i]++
			}
			if f, _ := path(ch, "finish_reason").(string); f != "" {
				finishes[i] = f
			}
		}
	}
	if deltas[0] != 6 || deltas[1] != 6 || finishes[0] != "stop" || finishes[1] != "stop" {
		t.Errorf("deltas %v finishes %v", deltas, finishes)
	}
	u := e.lastUsage()
	if u.InputTokens != 6 || u.OutputTokens != 12 || u.Estimated || path(usage, "completion_tokens") != 12.0 || path(usage, "cost_credits") != float64(u.Credits) {
		t.Errorf("usage %+v, chunk usage %v", u, usage)
	}
}

// TestGeminiStreamCutBillsDelivered: a Gemini stream cut in the middle
// (no chunk with a finishReason) ends the client's stream with an error
// and is billed on the prompt the upstream reported and the output
// delivered.
func TestGeminiStreamCutBillsDelivered(t *testing.T) {
	e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 20, FailAfter: 4}, "")
	resp, body := e.chat(`{"model":"m","stream":true,` + geminiAsk + `}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "interrupted") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	u := e.lastUsage()
	if u.Status != "interrupted" || u.InputTokens != 6 || u.OutputTokens != 4 || !u.Estimated || u.Credits != 6+8 {
		t.Errorf("usage %+v, want interrupted: 6 prompt tokens as reported, the 4 delivered", u)
	}
}

// TestGeminiToolCalls: offered tools become functionDeclarations, the
// call comes back as a tool call, and a tool result goes back as a
// functionResponse naming the function.
func TestGeminiToolCalls(t *testing.T) {
	e, rec := geminiEnv(t, 1_000_000, &mockllm.Server{}, "")
	tools := `"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"id":{"type":"integer"}}}}}]`
	resp, body := e.chat(`{"model":"m","tool_choice":"required",` + tools + `,"messages":[{"role":"user","content":"find order"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, _, req := rec.last(t)
	if path(req, "tools", 0, "functionDeclarations", 0, "name") != "lookup" || path(req, "toolConfig", "functionCallingConfig", "mode") != "ANY" {
		t.Errorf("upstream request %v", req)
	}
	m := mustJSON(t, body)
	call := path(m, "choices", 0, "message", "tool_calls", 0)
	id, _ := path(call, "id").(string)
	args, _ := path(call, "function", "arguments").(string)
	if path(m, "choices", 0, "finish_reason") != "tool_calls" || path(call, "function", "name") != "lookup" || id == "" || !json.Valid([]byte(args)) {
		t.Fatalf("answer %s", body)
	}
	follow := `{"model":"m",` + tools + `,"messages":[{"role":"user","content":"find order"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"lookup","arguments":` + string(mustMarshal(t, args)) + `}}]},` +
		`{"role":"tool","tool_call_id":"` + id + `","content":"shipped"}]}`
	if resp, body := e.chat(follow); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, _, req = rec.last(t)
	if path(req, "contents", 1, "role") != "model" || path(req, "contents", 1, "parts", 0, "functionCall", "name") != "lookup" ||
		path(req, "contents", 2, "role") != "user" || path(req, "contents", 2, "parts", 0, "functionResponse", "name") != "lookup" ||
		path(req, "contents", 2, "parts", 0, "functionResponse", "response", "content") != "shipped" {
		t.Errorf("follow-up request %v", req)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedGemini answers every generateContent with body.
func fixedGemini(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
}

// TestGeminiUnknownUsageBilledAtHold: usageMetadata with a count tollgate
// does not know is billed at the hold (never less than the provider may
// charge), marked estimated; known extras (details lists, the total)
// are not unknown.
func TestGeminiUnknownUsageBilledAtHold(t *testing.T) {
	const answer = `{"candidates":[{"content":{"role":"model","parts":[{"text":"hi there"}]},"finishReason":"STOP","index":0}],` +
		`"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6,%s},"modelVersion":"g","responseId":"r1"}`
	for _, tc := range []struct {
		name    string
		extra   string
		atHold  bool
		in, out int64
	}{
		{"Known", `"promptTokensDetails":[{"modality":"TEXT","tokenCount":4}],"toolUsePromptTokenCount":3,"trafficType":"ON_DEMAND"`, false, 7, 2},
		{"UnknownCount", `"audioGenerationTokenCount":9`, true, 4, 2},
		{"KnownCountNotANumber", `"thoughtsTokenCount":"many"`, true, 4, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := geminiEnv(t, 1_000_000, fixedGemini(strings.Replace(answer, "%s", tc.extra, 1)), "")
			resp, body := e.chat(`{"model":"m",` + geminiAsk + `}`)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			u := e.lastUsage()
			held := e.meter.lastHold.Load()
			if u.InputTokens != tc.in || u.OutputTokens != tc.out || u.Estimated != tc.atHold || (int64(u.Credits) == held) != tc.atHold {
				t.Errorf("usage %+v (hold %d), want at the hold: %v", u, held, tc.atHold)
			}
		})
	}
}

// TestGeminiFinishReasons: Gemini's finish reasons as chat ones.
func TestGeminiFinishReasons(t *testing.T) {
	for reason, want := range map[string]string{"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter", "MALFORMED_FUNCTION_CALL": "stop"} {
		e, _ := geminiEnv(t, 1_000_000, fixedGemini(`{"candidates":[{"content":{"role":"model","parts":[{"text":"x"}]},"finishReason":"`+reason+
			`","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1}}`), "")
		_, body := e.chat(`{"model":"m",` + geminiAsk + `}`)
		if got := path(mustJSON(t, body), "choices", 0, "finish_reason"); got != want {
			t.Errorf("%s: finish_reason %v, want %s", reason, got, want)
		}
	}
}

// TestGeminiBadUpstreamAnswer: an answer that is not a Gemini answer is a
// 502 and nothing is charged.
func TestGeminiBadUpstreamAnswer(t *testing.T) {
	e, _ := geminiEnv(t, 1_000_000, fixedGemini(`{"candidates":"no"}`), "")
	resp, body := e.chat(`{"model":"m",` + geminiAsk + `}`)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if balance, holds, usages, released := e.meter.state(); balance != 1_000_000 || holds != 0 || len(usages) != 0 || released != 1 {
		t.Errorf("balance %d, %d holds, %d usages, %d released", balance, holds, len(usages), released)
	}
}

// TestGeminiMessagesOverGemini: /v1/messages reaches a gemini deployment
// through the chat translation.
func TestGeminiMessagesOverGemini(t *testing.T) {
	e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 5}, "")
	resp, body := e.do(context.Background(), "/v1/messages", `{"model":"m","max_tokens":20,"system":"be brief","messages":[{"role":"user","content":"tell me four words"}]}`)
	m := mustJSON(t, body)
	if resp.StatusCode != 200 || path(m, "usage", "input_tokens") != 6.0 || path(m, "usage", "output_tokens") != 5.0 || path(m, "stop_reason") != "end_turn" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if u := e.lastUsage(); path(m, "usage", "cost_credits") != float64(u.Credits) || u.OutputTokens != 5 {
		t.Errorf("usage %+v, answer %s", u, body)
	}
}

const geminiNative = `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"tell me four words"}]}],"generationConfig":{"maxOutputTokens":50}}`

// TestGeminiNativeEndpoint: POST /v1beta/models/m:generateContent served
// by each deployment kind (translated through chat): the answer is a
// GenerateContentResponse with the mock's text and usageMetadata
// carrying costCredits, the request's id and the model asked for.
func TestGeminiNativeEndpoint(t *testing.T) {
	for _, kind := range []string{gateway.KindGemini, gateway.KindOpenAI} {
		t.Run(kind, func(t *testing.T) {
			e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 7, CachedTokens: 2, ThoughtsTokens: 3}, kind)
			resp, body := e.do(context.Background(), "/v1beta/models/m:generateContent", geminiNative)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			m := mustJSON(t, body)
			text, _ := path(m, "candidates", 0, "content", "parts", 0, "text").(string)
			u := e.lastUsage()
			if mockllm.CountTokens(text) != 7 || path(m, "candidates", 0, "finishReason") != "STOP" || path(m, "candidates", 0, "content", "role") != "model" ||
				path(m, "modelVersion") != "m" || path(m, "responseId") != u.RequestID || resp.Header.Get("X-Request-Id") != u.RequestID {
				t.Errorf("answer %s", body)
			}
			thoughts := 0.0
			if kind == gateway.KindGemini {
				thoughts = 3 // the OpenAI mock reports no reasoning
			}
			um := path(m, "usageMetadata")
			if path(um, "promptTokenCount") != 6.0 || path(um, "cachedContentTokenCount") != 2.0 || path(um, "candidatesTokenCount") != 7.0 ||
				path(um, "thoughtsTokenCount") != nilIfZero(thoughts) || path(um, "totalTokenCount") != 13+thoughts || path(um, "costCredits") != float64(u.Credits) {
				t.Errorf("usageMetadata %v, usage %+v", um, u)
			}
			if u.InputTokens != 6 || u.CachedInputTokens != 2 || u.OutputTokens != 7+int64(thoughts) || u.Status != "ok" {
				t.Errorf("usage %+v", u)
			}
		})
	}
}

func nilIfZero(f float64) any {
	if f == 0 {
		return nil
	}
	return f
}

// TestGeminiNativeStream: streamGenerateContent?alt=sse answers Gemini
// chunks, one per token, the last with the finishReason and the
// usageMetadata billed.
func TestGeminiNativeStream(t *testing.T) {
	for _, kind := range []string{gateway.KindGemini, gateway.KindAnthropic} {
		t.Run(kind, func(t *testing.T) {
			e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 5}, kind)
			resp, body := e.do(context.Background(), "/v1beta/models/m:streamGenerateContent?alt=sse", geminiNative)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			data := sseData(t, body)
			var text strings.Builder
			for _, d := range data[:len(data)-1] {
				s, _ := path(mustJSON(t, d), "candidates", 0, "content", "parts", 0, "text").(string)
				text.WriteString(s)
			}
			last := mustJSON(t, data[len(data)-1])
			u := e.lastUsage()
			if len(data) != 6 || mockllm.CountTokens(text.String()) != 5 || path(last, "candidates", 0, "finishReason") != "STOP" ||
				path(last, "usageMetadata", "candidatesTokenCount") != 5.0 || path(last, "usageMetadata", "costCredits") != float64(u.Credits) || u.OutputTokens != 5 {
				t.Errorf("%d chunks, text %q, last %v, usage %+v", len(data), text.String(), last, u)
			}
		})
	}
}

// TestGeminiNativeStreamCut: an upstream stream cut mid-answer ends the
// Gemini stream with an error chunk; billed on what was delivered.
func TestGeminiNativeStreamCut(t *testing.T) {
	e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{OutputTokens: 20, FailAfter: 5}, "")
	resp, body := e.do(context.Background(), "/v1beta/models/m:streamGenerateContent?alt=sse", geminiNative)
	data := sseData(t, body)
	if resp.StatusCode != 200 || len(data) != 6 || path(mustJSON(t, data[5]), "error", "status") != "UNAVAILABLE" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if u := e.lastUsage(); u.Status != "interrupted" || u.OutputTokens != 5 || u.InputTokens != 6 {
		t.Errorf("usage %+v, want interrupted with the 5 tokens delivered", u)
	}
}

// TestGeminiNativeToolCall: functionDeclarations and a forced call come
// back as a functionCall part; a functionResponse answers it.
func TestGeminiNativeToolCall(t *testing.T) {
	e, rec := geminiEnv(t, 1_000_000, &mockllm.Server{}, gateway.KindOpenAI)
	tools := `"tools":[{"functionDeclarations":[{"name":"lookup","parameters":{"type":"OBJECT","properties":{"id":{"type":"INTEGER"}}}}]}]`
	resp, body := e.do(context.Background(), "/v1beta/models/m:generateContent",
		`{"contents":[{"parts":[{"text":"find it"}]}],`+tools+`,"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["lookup"]}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, _, req := rec.last(t)
	if path(req, "tools", 0, "function", "parameters", "properties", "id", "type") != "integer" || path(req, "tool_choice", "function", "name") != "lookup" {
		t.Errorf("upstream request %v", req)
	}
	call := path(mustJSON(t, body), "candidates", 0, "content", "parts", 0, "functionCall")
	if path(call, "name") != "lookup" || path(call, "args", "id") == nil || path(call, "id") == nil {
		t.Fatalf("answer %s", body)
	}
	args, _ := json.Marshal(path(call, "args"))
	follow := `{"contents":[{"role":"user","parts":[{"text":"find it"}]},{"role":"model","parts":[{"functionCall":{"name":"lookup","args":` + string(args) + `}}]},` +
		`{"role":"user","parts":[{"functionResponse":{"name":"lookup","response":{"status":"shipped"}}}]}],` + tools + `}`
	if resp, body := e.do(context.Background(), "/v1beta/models/m:generateContent", follow); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, _, req = rec.last(t)
	msgs := path(req, "messages").([]any)
	if len(msgs) != 3 || path(msgs[1], "tool_calls", 0, "id") != path(msgs[2], "tool_call_id") || path(msgs[2], "content") != `{"status":"shipped"}` {
		t.Errorf("follow-up request %v", req)
	}
}

// TestGeminiNativeBadInput: malformed requests are refused in Google's
// error shape before anything is held.
func TestGeminiNativeBadInput(t *testing.T) {
	e, rec := geminiEnv(t, 1_000_000, &mockllm.Server{}, "")
	for _, tc := range []struct{ name, path, body, want string }{
		{"NotJSON", ":generateContent", `{"contents":`, "JSON object"},
		{"NoContents", ":generateContent", `{"contents":[]}`, "contents must be a non-empty array"},
		{"ContentsNotArray", ":generateContent", `{"contents":{"parts":[]}}`, "contents has the wrong type"},
		{"BadRole", ":generateContent", `{"contents":[{"role":"system","parts":[{"text":"x"}]}]}`, `role must be "user" or "model"`},
		{"EmptyParts", ":generateContent", `{"contents":[{"role":"user","parts":[]}]}`, "parts must be a non-empty array"},
		{"EmptyPart", ":generateContent", `{"contents":[{"parts":[{}]}]}`, "has no data"},
		{"TwoKinds", ":generateContent", `{"contents":[{"parts":[{"text":"a","inlineData":{"mimeType":"image/png","data":"AA=="}}]}]}`, "one kind of data"},
		{"TextNotString", ":generateContent", `{"contents":[{"parts":[{"text":5}]}]}`, "text must be a string"},
		{"Audio", ":generateContent", `{"contents":[{"parts":[{"inlineData":{"mimeType":"audio/wav","data":"AA=="}}]}]}`, "only images"},
		{"OrphanResponse", ":generateContent", `{"contents":[{"parts":[{"functionResponse":{"name":"f","response":{}}}]}]}`, "answers no earlier functionCall"},
		{"CallInUserTurn", ":generateContent", `{"contents":[{"parts":[{"functionCall":{"name":"f","args":{}}}]}]}`, "belongs in a model turn"},
		{"UnknownField", ":generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"cachedContent":"c/1"}`, "cachedContent is not supported"},
		{"UnknownConfig", ":generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"speechConfig":{}}}`, "generationConfig.speechConfig"},
		{"BadMaxTokens", ":generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":0}}`, "maxOutputTokens must be a positive integer"},
		{"GoogleSearch", ":generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"googleSearch":{}}]}`, "charged per use"},
		{"AudioOut", ":generateContent", `{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"responseModalities":["AUDIO"]}}`, "only TEXT"},
		{"StreamWithoutSSE", ":streamGenerateContent", geminiNative, "alt=sse"},
		{"UnknownMethod", ":embedContent", geminiNative, "not served"},
		{"UnknownModel", "", geminiNative, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := "m"
			if tc.name == "UnknownModel" {
				model, tc.path = "nope", ":generateContent"
			}
			resp, body := e.do(context.Background(), "/v1beta/models/"+model+tc.path, tc.body)
			m := mustJSON(t, body)
			msg, _ := path(m, "error", "message").(string)
			if resp.StatusCode/100 != 4 || path(m, "error", "code") != float64(resp.StatusCode) || path(m, "error", "status") == nil || !strings.Contains(msg, tc.want) {
				t.Errorf("status %d: %s; want a 4xx saying %q", resp.StatusCode, body, tc.want)
			}
		})
	}
	if balance, holds, usages, _ := e.meter.state(); balance != 1_000_000 || holds != 0 || len(usages) != 0 || len(rec.bodies) != 0 {
		t.Errorf("bad requests changed something: balance %d, %d holds, %d usages, %d upstream calls", balance, holds, len(usages), len(rec.bodies))
	}
}

// TestGeminiNativeCountTokens: :countTokens is free and counts the prompt.
func TestGeminiNativeCountTokens(t *testing.T) {
	e, _ := geminiEnv(t, 1_000_000, &mockllm.Server{}, "")
	resp, body := e.do(context.Background(), "/v1beta/models/m:countTokens", geminiNative)
	if n, _ := path(mustJSON(t, body), "totalTokens").(float64); resp.StatusCode != 200 || n < 6 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if balance, holds, usages, _ := e.meter.state(); balance != 1_000_000 || holds != 0 || len(usages) != 0 {
		t.Errorf("countTokens charged: balance %d, %d holds, %d usages", balance, holds, len(usages))
	}
}

// TestGeminiNativeInsufficientBalance: a hold refused is a 402 in
// Google's shape and nothing goes upstream.
func TestGeminiNativeInsufficientBalance(t *testing.T) {
	e, rec := geminiEnv(t, 10, &mockllm.Server{}, "")
	resp, body := e.do(context.Background(), "/v1beta/models/m:generateContent", geminiNative)
	if resp.StatusCode != http.StatusPaymentRequired || path(mustJSON(t, body), "error", "code") != 402.0 || len(rec.bodies) != 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}
