package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// fakeMeter is an in-memory Meter enforcing a balance with a conditional
// reserve, like the ledger does.
type fakeMeter struct {
	mu       sync.Mutex
	balance  int64
	holds    map[string]int64
	usages   []gateway.Usage
	released int
	seq      int
	reserves atomic.Int64
	lastHold atomic.Int64
	t        testing.TB
}

var _ gateway.Meter = (*fakeMeter)(nil)

func newFakeMeter(t testing.TB, balance int64) *fakeMeter {
	return &fakeMeter{balance: balance, holds: map[string]int64{}, t: t}
}

func (m *fakeMeter) Reserve(ctx context.Context, h gateway.Hold) (string, error) {
	defer m.reserves.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	var held int64
	for _, c := range m.holds {
		held += c
	}
	if h.Credits <= 0 {
		m.t.Errorf("hold of %d credits", h.Credits)
	}
	if m.balance-held < int64(h.Credits) {
		return "", tollgate.Errorf(tollgate.EINSUFFICIENT, "insufficient balance")
	}
	m.seq++
	m.lastHold.Store(int64(h.Credits))
	id := fmt.Sprintf("hold-%d", m.seq)
	m.holds[id] = int64(h.Credits)
	return id, nil
}

func (m *fakeMeter) Settle(ctx context.Context, id string, u gateway.Usage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	held, ok := m.holds[id]
	if !ok {
		return nil // idempotent
	}
	if int64(u.Credits) > held || u.Credits < 0 {
		m.t.Errorf("settle %d credits on a hold of %d", u.Credits, held)
	}
	m.balance -= int64(u.Credits)
	if m.balance < 0 {
		m.t.Errorf("balance went negative: %d", m.balance)
	}
	delete(m.holds, id)
	m.usages = append(m.usages, u)
	return nil
}

func (m *fakeMeter) Release(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.holds[id]; ok {
		m.released++
	}
	delete(m.holds, id)
	return nil
}

// state returns the balance, the open holds, settled usages and releases.
func (m *fakeMeter) state() (balance int64, holds int, usages []gateway.Usage, released int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.balance, len(m.holds), append([]gateway.Usage(nil), m.usages...), m.released
}

// fakePricer charges 1 credit per input token, 1 per 2 cached tokens
// (rounded up), 2 per output token, and write and write1h per token
// written to a 5-minute and a 1-hour cache (when 0: 1, the input price).
//
// Without units it sells nothing beyond text tokens (as a model the
// operator priced only by token): a unit in t is EINVALID, as pricing's
// Cost answers. With units: 3 credits per audio input token, 4 per audio
// output token, 100 per web search, 50 per web fetch, and the priority
// tier doubles the tokens' price.
type fakePricer struct {
	write, write1h int64
	units          bool
}

func (p fakePricer) Cost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	if model == "unpriced" {
		return 0, tollgate.Errorf(tollgate.ENOTFOUND, "no price")
	}
	if min(t.Input, t.CachedInput, t.CacheWrite, t.CacheWrite1h, t.Output, t.AudioInput, t.AudioOutput, t.WebSearches, t.WebFetches) < 0 {
		return 0, tollgate.Errorf(tollgate.EINVALID, "token counts must not be negative")
	}
	used := t.AudioInput > 0 || t.AudioOutput > 0 || t.WebSearches > 0 || t.WebFetches > 0 || t.Priority || t.Images > 0 || t.Characters > 0 || t.AudioSeconds > 0
	if used && !p.units {
		return 0, tollgate.Errorf(tollgate.EINVALID, "model %s has no price for that unit", model)
	}
	tokens := t.Input + (t.CachedInput+1)/2 + max(p.write, 1)*t.CacheWrite + max(p.write1h, 1)*t.CacheWrite1h + 2*t.Output +
		3*t.AudioInput + 4*t.AudioOutput
	if t.Priority {
		tokens *= 2
	}
	return tollgate.Credits(tokens + 100*t.WebSearches + 50*t.WebFetches), nil
}

// upstream is a scripted OpenAI- or Anthropic-compatible server.
type upstream struct {
	Status     int    // answer with this status (and an error body) when not 0
	RetryAfter string // Retry-After header with Status
	Hang       bool   // never answer until the request is cancelled
	Words      []string
	CutAfter   int  // streams: abort the connection after this many words
	NoUsage    bool // report no usage
	Cached     int64
	// CacheWrite and CacheWrite1h are Anthropic's cache writes reported
	// (cache_creation_input_tokens, split in cache_creation).
	CacheWrite, CacheWrite1h int64
	Prompt                   int64 // prompt_tokens reported, default 10
	// DeepSeek reports Cached as DeepSeek does: prompt_cache_hit_tokens
	// (and _miss_), no prompt_tokens_details.
	DeepSeek   bool
	ToolCall   bool // answer with a tool call instead of text
	FinishLast bool // streams: the last word comes in the chunk with finish_reason
	Gate       chan struct{}
	Pause      chan struct{} // streams: wait on it after word PauseAfter
	PauseAfter int
	// Step, for streams, paces the answer: each word, and (OpenAI) the
	// end of the stream, waits for a receive from it (or the call's end).
	Step chan struct{}
	// Arrived, when set, gets a value as each call arrives (sent without
	// blocking: make it buffered).
	Arrived chan struct{}

	calls  atomic.Int32
	mu     sync.Mutex
	bodies []map[string]any
	srv    *httptest.Server
}

func (u *upstream) lastBody(t testing.TB) map[string]any {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		t.Fatal("upstream got no request")
	}
	return u.bodies[len(u.bodies)-1]
}

func (u *upstream) words() []string {
	if u.Words == nil {
		return []string{"Hello", " there", " friend"}
	}
	return u.Words
}

// start serves the upstream in the given kind ("openai" or "anthropic").
func (u *upstream) start(t testing.TB, kind string) *upstream {
	t.Helper()
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		if u.Arrived != nil {
			select {
			case u.Arrived <- struct{}{}:
			default:
			}
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		u.mu.Lock()
		u.bodies = append(u.bodies, body)
		u.mu.Unlock()
		if u.Gate != nil {
			<-u.Gate
		}
		if u.Hang {
			<-r.Context().Done()
			return
		}
		if u.Status != 0 {
			if u.RetryAfter != "" {
				w.Header().Set("Retry-After", u.RetryAfter)
			}
			w.WriteHeader(u.Status)
			io.WriteString(w, `{"error":{"message":"scripted failure","type":"server_error"}}`)
			return
		}
		stream, _ := body["stream"].(bool)
		switch {
		case kind == "anthropic" && stream:
			u.anthropicStream(r.Context(), w)
		case kind == "anthropic":
			u.anthropicJSON(w)
		case strings.HasSuffix(r.URL.Path, "/responses") && !stream:
			// Reasoning tokens are inside output_tokens.
			n := int64(len(u.words())) + 2
			fmt.Fprintf(w, `{"id":"resp_up","object":"response","status":"completed","model":"up","output":[{"id":"rs_1","type":"reasoning","summary":[]},{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":%q,"annotations":[]}]}],"usage":{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":%d,"x_new_field":7}}`,
				strings.Join(u.words(), ""), u.prompt(), u.Cached, n, u.prompt()+n)
		case strings.HasSuffix(r.URL.Path, "/embeddings"):
			fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"e","usage":{"prompt_tokens":%d,"total_tokens":%d}}`, u.prompt(), u.prompt())
		case stream:
			u.openAIStream(r.Context(), w, body)
		default:
			u.openAIJSON(w)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) prompt() int64 {
	if u.Prompt == 0 {
		return 10
	}
	return u.Prompt
}

// anthCacheWrites is the cache-write members of an Anthropic usage object.
func (u *upstream) anthCacheWrites() string {
	return fmt.Sprintf(`"cache_creation_input_tokens":%d,"cache_creation":{"ephemeral_5m_input_tokens":%d,"ephemeral_1h_input_tokens":%d}`,
		u.CacheWrite+u.CacheWrite1h, u.CacheWrite, u.CacheWrite1h)
}

func (u *upstream) usageJSON() string {
	if u.NoUsage {
		return "null"
	}
	n := int64(len(u.words()))
	if u.DeepSeek {
		return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_cache_hit_tokens":%d,"prompt_cache_miss_tokens":%d}`,
			u.prompt(), n, u.prompt()+n, u.Cached, u.prompt()-u.Cached)
	}
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}`, u.prompt(), n, u.prompt()+n, u.Cached)
}

func (u *upstream) openAIJSON(w http.ResponseWriter) {
	msg := fmt.Sprintf(`{"role":"assistant","content":%q}`, strings.Join(u.words(), ""))
	finish := "stop"
	if u.ToolCall {
		msg = `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}`
		finish = "tool_calls"
	}
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up","system_fingerprint":"fp_x","choices":[{"index":0,"message":%s,"logprobs":null,"finish_reason":%q}],"usage":%s}`, msg, finish, u.usageJSON())
}

func (u *upstream) openAIStream(ctx context.Context, w http.ResponseWriter, body map[string]any) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	send := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s); f.Flush() }
	step := func() bool {
		if u.Step == nil {
			return true
		}
		select {
		case <-u.Step:
			return true
		case <-ctx.Done():
			return false
		}
	}
	send(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	for i, word := range u.words() {
		if !step() {
			return
		}
		if u.CutAfter > 0 && i == u.CutAfter {
			panic(http.ErrAbortHandler)
		}
		if u.FinishLast && i == len(u.words())-1 {
			send(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":%q},"finish_reason":"stop"}]}`, word))
			break
		}
		send(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, word))
		if i == u.PauseAfter && u.Pause != nil {
			<-u.Pause
		}
	}
	if !step() {
		return
	}
	if !u.FinishLast {
		send(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	}
	opts, _ := body["stream_options"].(map[string]any)
	if inc, _ := opts["include_usage"].(bool); inc && !u.NoUsage {
		send(fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":%s}`, u.usageJSON()))
	}
	send("[DONE]")
}

func (u *upstream) anthropicJSON(w http.ResponseWriter) {
	content := fmt.Sprintf(`[{"type":"text","text":%q}]`, strings.Join(u.words(), ""))
	stop := "end_turn"
	if u.ToolCall {
		content = `[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]`
		stop = "tool_use"
	}
	fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":%s,"stop_reason":%q,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,%s}}`,
		content, stop, u.prompt(), len(u.words()), u.Cached, u.anthCacheWrites())
}

func (u *upstream) anthropicStream(ctx context.Context, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	send := func(event, data string) { fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); f.Flush() }
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":[],"stop_reason":null,"usage":{"input_tokens":%d,"output_tokens":1,"cache_read_input_tokens":%d,%s}}}`, u.prompt(), u.Cached, u.anthCacheWrites()))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	send("ping", `{"type":"ping"}`)
	for i, word := range u.words() {
		if u.CutAfter > 0 && i == u.CutAfter {
			panic(http.ErrAbortHandler)
		}
		if u.Step != nil {
			select {
			case <-u.Step:
			case <-ctx.Done():
				return
			}
		}
		send("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%q}}`, word))
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	stop := "end_turn"
	if u.ToolCall {
		stop = "tool_use"
		send("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}`)
		send("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`)
		send("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`)
		send("content_block_stop", `{"type":"content_block_stop","index":1}`)
	}
	if !u.NoUsage {
		send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, len(u.words())))
	} else {
		send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null}}`, stop))
	}
	send("message_stop", `{"type":"message_stop"}`)
}

// env is a gateway under test with its upstreams and meter.
type env struct {
	t       testing.TB
	gw      *gateway.Gateway
	srv     *httptest.Server
	meter   *fakeMeter
	caller  tollgate.Caller
	breaker *gateway.Breaker
}

// deploymentSpec names an upstream for a model's deployment list.
type deploymentSpec struct {
	up       *upstream
	kind     string
	priority int
	weight   int
	timeout  time.Duration
	context  int64 // the deployment's context_tokens
	noCap    bool  // no max_output_tokens (else 100)
}

// newEnv builds a gateway whose model "m" is served by deps in order (each
// in its own priority tier unless set), with a meter holding balance.
func newEnv(t testing.TB, balance int64, deps ...deploymentSpec) *env {
	t.Helper()
	return newEnvWith(t, balance, nil, deps...)
}

// newEnvWith is newEnv with a hook to change the gateway's options.
func newEnvWith(t testing.TB, balance int64, mod func(*gateway.Options), deps ...deploymentSpec) *env {
	t.Helper()
	cfg := &gateway.Config{Models: map[string][]gateway.DeploymentConfig{}}
	for i, d := range deps {
		if d.kind == "" {
			d.kind = gateway.KindOpenAI
		}
		if d.up.srv == nil {
			d.up.start(t, d.kind)
		}
		name := fmt.Sprintf("p%d", i)
		base := d.up.srv.URL
		if d.kind == gateway.KindOpenAI {
			base += "/v1"
		}
		timeout := d.timeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		cfg.Providers = append(cfg.Providers, gateway.ProviderConfig{Name: name, Kind: d.kind, BaseURL: base, Timeout: gateway.Duration(timeout)})
		prio := d.priority
		if prio < 0 {
			prio = 0
		} else if prio == 0 {
			prio = i
		}
		maxOut := int64(100)
		if d.noCap {
			maxOut = 0
		}
		cfg.Models["m"] = append(cfg.Models["m"], gateway.DeploymentConfig{Provider: name, Model: fmt.Sprintf("up-%d", i), Priority: prio, Weight: d.weight, MaxOutputTokens: maxOut, ContextTokens: d.context})
	}
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	opts := gateway.Options{
		Meter: e.meter, Pricer: fakePricer{}, Seed: 1,
		Retry:        gateway.RetryPolicy{MaxAttempts: 4, BackoffBase: time.Microsecond, BackoffMax: time.Microsecond},
		MaxBodyBytes: 64 << 10,
	}
	if mod != nil {
		mod(&opts)
	}
	if opts.Breaker == nil {
		e.breaker = gateway.NewBreaker(3, time.Minute, opts.Clock)
		opts.Breaker = e.breaker
	}
	gw, err := gateway.New(cfg, opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "none" {
			r = r.WithContext(tollgate.WithCaller(r.Context(), e.caller))
		}
		gw.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request and returns the response with its body read.
func (e *env) do(ctx context.Context, path, body string) (*http.Response, string) {
	e.t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// chat posts a chat completion.
func (e *env) chat(body string) (*http.Response, string) {
	e.t.Helper()
	return e.do(context.Background(), "/v1/chat/completions", body)
}

// sseData splits an SSE body into its data payloads.
func sseData(t testing.TB, body string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// mustJSON decodes s into a generic map.
func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return m
}

// path walks a decoded JSON value: keys for objects, ints for arrays.
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// checkNoHolds fails when a hold was left open.
func (e *env) checkNoHolds() {
	e.t.Helper()
	if _, holds, _, _ := e.meter.state(); holds != 0 {
		e.t.Fatalf("%d holds left open", holds)
	}
}

const simpleChat = `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`
