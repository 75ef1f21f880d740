package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
)

// FuzzSSERelay answers a streaming chat completion with arbitrary SSE bytes
// from an OpenAI- or Anthropic-kind upstream, optionally cutting the
// connection after them. Whatever the upstream sends, the gateway must not
// panic; the client must get either an error status with a JSON error body
// or a well-formed SSE stream (only "data: <JSON object>" events) ending in
// [DONE], with an error event only just before it; the hold must be closed
// exactly once, settled at most at its amount, and a completed stream's
// usage must carry the credits settled.
func FuzzSSERelay(f *testing.F) {
	for _, s := range sseSeeds() {
		f.Add(s.anthropic, s.includeUsage, s.cut, []byte(s.body))
	}
	var oa, an sseUpstream
	envs := map[bool]*sseEnv{false: newSSEEnv(f, &oa, gateway.KindOpenAI), true: newSSEEnv(f, &an, gateway.KindAnthropic)}
	f.Fuzz(func(t *testing.T, anthropic, includeUsage, cut bool, body []byte) {
		e := envs[anthropic]
		e.up.set(body, cut)
		e.meter.reset()
		req := `{"model":"m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}`
		if includeUsage {
			req = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}`
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(req))
		r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "acct-1", KeyID: "key-1"}))
		rec := httptest.NewRecorder()
		e.gw.Handler().ServeHTTP(rec, r)

		hold, settled, ok := e.meter.check(t)
		if rec.Code != http.StatusOK {
			checkErrorAnswer(t, rec)
			if settled != nil {
				t.Fatalf("status %d but %d credits were settled", rec.Code, *settled)
			}
			return
		}
		if ok && settled == nil {
			t.Fatalf("a stream was answered but its hold of %d was released, not settled", hold)
		}
		checkSSEAnswer(t, rec, settled)
	})
}

// sseSeed is one upstream answer for FuzzSSERelay's seed corpus.
type sseSeed struct {
	anthropic, includeUsage, cut bool
	body                         string
}

func sseSeeds() []sseSeed {
	chunk := func(delta, finish string) string {
		return fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`+"\n\n", delta, finish)
	}
	usage := `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}` + "\n\n"
	openai := chunk(`{"role":"assistant","content":""}`, "null") + chunk(`{"content":"Hello"}`, "null") +
		chunk(`{"content":" there"}`, "null") + chunk(`{}`, `"stop"`)
	anth := func(ev, data string) string { return "event: " + ev + "\ndata: " + data + "\n\n" }
	anthropic := anth("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}`) +
		anth("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`) +
		anth("ping", `{"type":"ping"}`) +
		anth("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`) +
		anth("content_block_stop", `{"type":"content_block_stop","index":0}`)
	anthEnd := anth("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}`) +
		anth("message_stop", `{"type":"message_stop"}`)
	long := chunk(fmt.Sprintf(`{"content":%q}`, strings.Repeat("word ", 20_000)), "null") // one 100 kB line
	return []sseSeed{
		{body: openai + usage + "data: [DONE]\n\n"},
		{includeUsage: true, body: openai + usage + "data: [DONE]\n\n"},
		{body: openai + "data: [DONE]\n\n"}, // no usage: billed on the tokenizer's count
		{anthropic: true, body: anthropic + anthEnd},
		{anthropic: true, includeUsage: true, body: anthropic + anthEnd},
		{anthropic: true, cut: true, body: anthropic},
		// Cache reads and writes (5-minute and 1-hour), in message_start
		// and again, cumulative, in message_delta; and a split larger
		// than its total.
		{anthropic: true, includeUsage: true, body: strings.Replace(anthropic, `"usage":{"input_tokens":10,"output_tokens":1}`,
			`"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":4,"cache_creation_input_tokens":6,"cache_creation":{"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":4}}`, 1) +
			anth("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2,"cache_creation_input_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":-9}}}`) +
			anth("message_stop", `{"type":"message_stop"}`)},
		{cut: true, body: chunk(`{"role":"assistant","content":""}`, "null") + chunk(`{"content":"Hel`, "null")[:60]},
		{body: chunk(`{"content":"Hello"}`, "null") + long + usage + "data: [DONE]\n\n"},
		{body: strings.ReplaceAll(openai+usage+"data: [DONE]\n\n", "data: ", "data:")},
		{body: strings.ReplaceAll(openai+usage+"data: [DONE]\n\n", "\n", "\r\n")},
		{body: ": keep-alive\n\n" + chunk(`{"content":"Hi"}`, "null") + ": comment\nretry: 10\nid: 7\n\n" + usage + "data: [DONE]\n\n"},
		{body: chunk(`{"content":"Hi"}`, "null") + `data: {"error":{"message":"overloaded","type":"server_error"}}` + "\n\n"},
		{anthropic: true, body: anthropic + anth("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)},
		{body: chunk(`{"content":"Hi"}`, "null") + `data: {"choices":[],"usage":{"prompt_tokens":9000000000000000000,"completion_tokens":-5}}` + "\n\ndata: [DONE]\n\n"},
		{body: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\u2028<&>\"},\"finish_reason\":null}],\"x\\u0000\":1}\n\ndata: [DONE]\n\n"},
		{body: "data: [DONE]\n\n"},
		{body: ""},
	}
}

// sseUpstream answers every request with the body set for the current
// fuzz input, then ends the response or, when cut, aborts the connection.
type sseUpstream struct {
	body atomic.Pointer[[]byte]
	cut  atomic.Bool
}

func (u *sseUpstream) set(body []byte, cut bool) {
	u.body.Store(&body)
	u.cut.Store(cut)
}

func (u *sseUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	if b := u.body.Load(); b != nil {
		_, _ = w.Write(*b)
	}
	w.(http.Flusher).Flush()
	if u.cut.Load() {
		panic(http.ErrAbortHandler)
	}
}

// sseEnv is a gateway whose model "m" has one deployment on a fuzzed upstream.
type sseEnv struct {
	gw    *gateway.Gateway
	up    *sseUpstream
	meter *auditMeter
}

func newSSEEnv(tb testing.TB, up *sseUpstream, kind string) *sseEnv {
	tb.Helper()
	srv := httptest.NewServer(up)
	tb.Cleanup(srv.Close)
	base := srv.URL
	if kind == gateway.KindOpenAI {
		base += "/v1"
	}
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{{Name: "p", Kind: kind, BaseURL: base, Timeout: gateway.Duration(10 * time.Second)}},
		Models:    map[string][]gateway.DeploymentConfig{"m": {{Provider: "p", Model: "up", MaxOutputTokens: 100}}},
	}
	e := &sseEnv{up: up, meter: &auditMeter{}}
	gw, err := gateway.New(cfg, gateway.Options{
		Meter: e.meter, Pricer: strictPricer{}, Seed: 1,
		Retry: gateway.RetryPolicy{MaxAttempts: 1},
		// A breaker that never opens: every input reaches the upstream.
		Breaker: gateway.NewBreaker(1<<30, time.Minute, nil),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatalf("gateway.New: %v", err)
	}
	e.gw = gw
	return e
}

// strictPricer is fakePricer with the real pricing.Pricer's contract:
// negative token counts and costs beyond int64 are EINVALID, never a
// negative or wrapped-around cost.
type strictPricer struct{}

func (strictPricer) Cost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	if t.Input < 0 || t.CachedInput < 0 || t.CacheWrite < 0 || t.CacheWrite1h < 0 || t.Output < 0 {
		return 0, tollgate.Errorf(tollgate.EINVALID, "token counts must not be negative")
	}
	sum := new(big.Int).SetInt64(t.Input)
	sum.Add(sum, big.NewInt(t.CachedInput/2+t.CachedInput%2))
	sum.Add(sum, big.NewInt(t.CacheWrite))
	sum.Add(sum, big.NewInt(t.CacheWrite1h))
	sum.Add(sum, new(big.Int).Mul(big.NewInt(t.Output), big.NewInt(2)))
	if !sum.IsInt64() {
		return 0, tollgate.Errorf(tollgate.EINVALID, "cost is too large")
	}
	return tollgate.Credits(sum.Int64()), nil
}

// auditMeter is a Meter that records every hold and flags, as data, what a
// fuzz iteration then reports with its own t: a non-positive hold, a hold
// closed twice or never, a settlement above the hold or below zero.
type auditMeter struct {
	mu       sync.Mutex
	seq      int
	holds    map[string]int64 // open holds
	held     int64            // the last hold's credits
	settled  *int64           // the last settlement, nil if none
	closes   int
	problems []string
}

var _ gateway.Meter = (*auditMeter)(nil)

func (m *auditMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holds, m.held, m.settled, m.closes, m.problems = map[string]int64{}, 0, nil, 0, nil
}

func (m *auditMeter) Reserve(_ context.Context, h gateway.Hold) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.Credits <= 0 {
		m.problems = append(m.problems, fmt.Sprintf("hold of %d credits", h.Credits))
	}
	m.seq++
	id := fmt.Sprintf("hold-%d", m.seq)
	m.holds[id], m.held = int64(h.Credits), int64(h.Credits)
	return id, nil
}

func (m *auditMeter) Settle(_ context.Context, id string, u gateway.Usage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	held, ok := m.holds[id]
	switch {
	case !ok:
		m.problems = append(m.problems, "settle of a hold not open: "+id)
	case int64(u.Credits) > held || u.Credits < 0:
		m.problems = append(m.problems, fmt.Sprintf("settled %d credits on a hold of %d (usage %+v)", u.Credits, held, u))
	}
	c := int64(u.Credits)
	m.settled = &c
	m.closes++
	delete(m.holds, id)
	return nil
}

func (m *auditMeter) Release(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.holds[id]; !ok {
		m.problems = append(m.problems, "release of a hold not open: "+id)
	}
	m.closes++
	delete(m.holds, id)
	return nil
}

// check fails t on any recorded problem or open hold and returns the last
// hold, the credits settled (nil if released) and whether a hold was made.
func (m *auditMeter) check(t *testing.T) (held int64, settled *int64, reserved bool) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.problems {
		t.Error(p)
	}
	if len(m.holds) != 0 {
		t.Errorf("%d holds left open", len(m.holds))
	}
	if m.seq > 0 && m.closes != 1 {
		t.Errorf("the hold was closed %d times, want once", m.closes)
	}
	if t.Failed() {
		t.FailNow()
	}
	return m.held, m.settled, m.seq > 0
}

// checkErrorAnswer fails unless rec is an error status with a JSON error body.
func checkErrorAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var body struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if rec.Code < 400 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == nil || body.Error.Message == "" {
		t.Fatalf("status %d with body %q, want an error status and a JSON error", rec.Code, rec.Body)
	}
}

// checkSSEAnswer fails unless rec is an SSE stream of "data: <JSON
// object>" events ending in [DONE], with at most one error event, just
// before [DONE]; without one, the last chunk's usage.cost_credits must be
// what was settled.
func checkSSEAnswer(t *testing.T, rec *httptest.ResponseRecorder, settled *int64) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	body := rec.Body.String()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", tail(body))
	}
	events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream does not end in [DONE]: %q", tail(body))
	}
	var last map[string]json.RawMessage
	for i, ev := range events[:len(events)-1] {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.ContainsAny(data, "\r\n") {
			t.Fatalf("event %d is not one data line: %q", i, ev)
		}
		last = nil
		if err := json.Unmarshal([]byte(data), &last); err != nil || last == nil {
			t.Fatalf("event %d is not a JSON object (%v): %q", i, err, data)
		}
		if _, isErr := last["error"]; isErr && i != len(events)-2 {
			t.Fatalf("error event %d is not the last before [DONE]", i)
		}
	}
	if last == nil {
		t.Fatalf("a stream of nothing but [DONE]")
	}
	if _, isErr := last["error"]; isErr {
		return
	}
	var u struct {
		CostCredits *int64 `json:"cost_credits"`
	}
	if err := json.Unmarshal(last["usage"], &u); err != nil || u.CostCredits == nil {
		t.Fatalf("the last chunk carries no usage with cost_credits: %s", last["usage"])
	}
	if settled == nil || *u.CostCredits != *settled {
		t.Fatalf("usage says %d credits, the meter settled %v", *u.CostCredits, settled)
	}
}

// tail is the end of s, for messages.
func tail(s string) string {
	if len(s) > 300 {
		return "…" + s[len(s)-300:]
	}
	return s
}

// The seed inputs must reach the relay, not just the error paths.
func TestSSESeedsStream(t *testing.T) {
	var oa, an sseUpstream
	envs := map[bool]*sseEnv{false: newSSEEnv(t, &oa, gateway.KindOpenAI), true: newSSEEnv(t, &an, gateway.KindAnthropic)}
	streamed := 0
	for _, s := range sseSeeds() {
		e := envs[s.anthropic]
		e.up.set([]byte(s.body), s.cut)
		e.meter.reset()
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(simpleChat[:len(simpleChat)-1]+`,"stream":true}`))
		r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "acct-1"}))
		rec := httptest.NewRecorder()
		e.gw.Handler().ServeHTTP(rec, r)
		if rec.Code == http.StatusOK && bytes.Contains(rec.Body.Bytes(), []byte(`"content":"H`)) {
			streamed++
		}
	}
	if streamed < 8 {
		t.Fatalf("only %d seeds streamed output to the client", streamed)
	}
}

// TestSSERelayCapsEventSize: an upstream event far larger than any real
// chunk (one 16 MiB data line) must end the stream with an error, not be
// buffered whole and relayed (docs/DESIGN.md §7.2 F8, size caps, for the relay).
func TestSSERelayCapsEventSize(t *testing.T) {
	var up sseUpstream
	e := newSSEEnv(t, &up, gateway.KindOpenAI)
	content := strings.Repeat("x", 16<<20)
	up.set([]byte(fmt.Sprintf(`data: {"choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\ndata: [DONE]\n\n", content)), false)
	e.meter.reset()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(simpleChat[:len(simpleChat)-1]+`,"stream":true}`))
	r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "acct-1"}))
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, r)
	e.meter.check(t)
	if bytes.Contains(rec.Body.Bytes(), []byte(content[:1<<20])) {
		t.Fatalf("a 16 MiB upstream event was relayed to the client (status %d, %d bytes)", rec.Code, rec.Body.Len())
	}
}
