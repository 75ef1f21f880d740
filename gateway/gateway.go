package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"tollgate"
)

// RetryPolicy bounds failover for one request.
type RetryPolicy struct {
	MaxAttempts int           // upstream attempts per request, default 3
	MaxTotal    time.Duration // total time for all attempts, default 2m
	BackoffBase time.Duration // first backoff, doubled per attempt, default 100ms
	BackoffMax  time.Duration // backoff cap, default 2s
}

// DefaultStreamWriteTimeout is Options.StreamWriteTimeout when unset: the
// socket buffers between the gateway and a client take MiBs, so a write
// waiting this long means a client that stopped reading.
const DefaultStreamWriteTimeout = 30 * time.Second

// Options are a Gateway's collaborators; Meter and Pricer are required.
type Options struct {
	Meter    Meter
	Pricer   Pricer
	Counter  Counter      // default: a TiktokenCounter
	Breaker  BreakerState // default: NewBreaker(5, 30s)
	Observer Observer     // default: none
	Admitter Admitter     // default: no per-key rate limits
	// Client makes the upstream calls; default: NewUpstreamClient's,
	// net/http's Transport tuned for many concurrent calls.
	Client *http.Client
	Retry  RetryPolicy
	// MaxBodyBytes bounds request bodies, default 8 MiB (413 beyond).
	MaxBodyBytes int64
	// MaxAudioBytes bounds the file of a transcription request, default
	// DefaultMaxAudioBytes (25 MiB, as OpenAI); its multipart body may be
	// 1 MiB more (413 beyond).
	MaxAudioBytes int64
	// StreamWriteTimeout bounds each write of a stream (SSE) to the
	// client, renewed before every event: a client that stops reading
	// for this long is cut off and the request settled on what it was
	// sent. Default DefaultStreamWriteTimeout; negative: no bound.
	StreamWriteTimeout time.Duration
	// Rand picks among weighted deployments; default seeded from Seed.
	Rand *rand.Rand
	Seed uint64
	// Clock is the clock; SystemClock when nil.
	Clock tollgate.Clock
	// Sleep waits between attempts; it returns early when done closes.
	// Default: a timer. Tests may make it instant.
	Sleep func(done <-chan struct{}, d time.Duration)
	// RequestID names a request: the id of its answers (every chunk of a
	// stream), its X-Request-Id response header and its usage record. It
	// must be new for every request, made by the server (a client's id
	// could name two requests alike). Default: tollgate.NewRequestID;
	// an empty id is replaced by one.
	RequestID func(*http.Request) string
	// MaxRequestDuration bounds a metered request from its hold to its
	// end, on Clock: past it, a stream is ended (an error event naming the
	// limit, then [DONE]) and billed for what it delivered, and a call
	// that has delivered nothing is cancelled (504, nothing billed).
	// Providers' timeouts bound each wait for an upstream, not the whole.
	// 0: no bound.
	MaxRequestDuration time.Duration
	Logger             *slog.Logger
}

// Gateway serves the OpenAI-compatible endpoints. It is safe for
// concurrent use.
type Gateway struct {
	opts   Options
	models map[string][]*deployment // public model -> ordered deployments
	names  []string                 // sorted public model names

	mux *http.ServeMux

	randMu sync.Mutex
	rand   *rand.Rand
}

// New builds a Gateway for cfg (already validated and resolved).
func New(cfg *Config, opts Options) (*Gateway, error) {
	if opts.Meter == nil || opts.Pricer == nil {
		return nil, errors.New("gateway: Meter and Pricer are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	setDefaults(&opts)
	g := &Gateway{opts: opts, models: map[string][]*deployment{}, rand: opts.Rand}
	providers := map[string]*ProviderConfig{}
	for i := range cfg.Providers {
		p := cfg.Providers[i].withDefaults()
		providers[p.Name] = &p
	}
	for _, name := range sortedKeys(cfg.Models) {
		for _, dc := range cfg.Models[name] {
			p := providers[dc.Provider]
			d := &deployment{id: p.Name + "/" + dc.Model, provider: p, cfg: dc}
			if d.cfg.Weight == 0 {
				d.cfg.Weight = 1
			}
			k := kinds[p.Kind] // Validate refused an unknown kind
			d.up = k.up(opts.Client, opts.Clock, k)
			if o, ok := d.up.(*openAI); ok {
				o.unknownUsage = g.unknownUsage
			}
			g.models[name] = append(g.models[name], d)
		}
		g.names = append(g.names, name)
	}
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("POST /v1/chat/completions", g.ChatCompletions)
	g.mux.HandleFunc("POST /v1/embeddings", g.Embeddings)
	g.mux.HandleFunc("GET /v1/models", g.Models)
	g.mux.HandleFunc("GET /v1/models/{id...}", g.Model)
	g.mux.HandleFunc("POST /v1/moderations", g.Moderations)
	g.mux.HandleFunc("POST /v1/completions", g.Completions)
	g.mux.HandleFunc("POST /v1/images/generations", g.ImageGenerations)
	g.mux.HandleFunc("POST /v1/audio/speech", g.Speech)
	g.mux.HandleFunc("POST /v1/audio/transcriptions", g.Transcriptions)
	g.mux.HandleFunc("POST /v1/messages", g.Messages)
	g.mux.HandleFunc("POST /v1/messages/count_tokens", g.CountTokens)
	g.mux.HandleFunc("POST /v1/responses", g.Responses)
	g.mux.HandleFunc("GET /v1/responses/{id}", g.ResponseByID)
	g.mux.HandleFunc("DELETE /v1/responses/{id}", g.ResponseByID)
	g.mux.HandleFunc("GET /v1/responses/{id}/input_items", g.ResponseByID)
	g.mux.HandleFunc("POST /v1/responses/{id}/cancel", g.ResponseByID)
	g.mux.HandleFunc("POST /v1beta/models/{rest}", g.Gemini)
	g.mux.HandleFunc("POST /v1/models/{rest}", g.Gemini) // the version Google's Go SDK uses by default
	return g, nil
}

func setDefaults(o *Options) {
	if o.Counter == nil {
		o.Counter = &TiktokenCounter{}
	}
	o.Clock = tollgate.ClockOr(o.Clock)
	if o.Breaker == nil {
		o.Breaker = NewBreaker(5, 30*time.Second, o.Clock)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Client == nil {
		o.Client = NewUpstreamClient()
	}
	r := &o.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 3
	}
	if r.MaxTotal <= 0 {
		r.MaxTotal = 2 * time.Minute
	}
	if r.BackoffBase <= 0 {
		r.BackoffBase = 100 * time.Millisecond
	}
	if r.BackoffMax <= 0 {
		r.BackoffMax = 2 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.MaxAudioBytes <= 0 {
		o.MaxAudioBytes = DefaultMaxAudioBytes
	}
	if o.StreamWriteTimeout == 0 {
		o.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	}
	if o.Sleep == nil {
		o.Sleep = func(done <-chan struct{}, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-done:
			}
		}
	}
	if o.RequestID == nil {
		clock := o.Clock
		o.RequestID = func(*http.Request) string { return tollgate.NewRequestID(clock.Now()) }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handler returns the routes the HTTP layer mounts (behind authentication
// that calls tollgate.WithCaller): POST /v1/chat/completions, POST /v1/embeddings,
// GET /v1/models, GET /v1/models/{id}, POST /v1/messages, POST /v1/responses
// and the stored-response routes under /v1/responses/{id}, which answer 404,
// POST /v1/moderations, POST /v1/completions, POST /v1/images/generations,
// POST /v1/audio/speech and POST /v1/audio/transcriptions, and the Gemini
// API's POST /v1beta/models/{model}:generateContent and :streamGenerateContent
// (also under /v1/models/, the version Google's Go SDK defaults to).
func (g *Gateway) Handler() http.Handler { return g.mux }

// ModelNames returns the public model names, sorted.
func (g *Gateway) ModelNames() []string { return append([]string(nil), g.names...) }

// lookup finds the model and checks the caller may use it.
func (g *Gateway) lookup(c tollgate.Caller, model string) ([]*deployment, error) {
	deps, ok := g.models[model]
	if !ok {
		return nil, tollgate.Errorf(tollgate.ENOTFOUND, "the model %q does not exist", model)
	}
	if !c.Limits.Allows(model) {
		return nil, tollgate.Errorf(tollgate.EFORBIDDEN, "this API key may not use the model %q", model)
	}
	return deps, nil
}

// maxOut is the worst-case output tokens over a model's deployments.
func maxOut(deps []*deployment, asked int64) int64 {
	var n int64
	for _, d := range deps {
		n = max(n, d.maxOut(asked))
	}
	return n
}

// promptCeiling is the longest prompt any of deps accepts: what a request
// whose prompt cannot be counted before the call holds for it.
func promptCeiling(deps []*deployment) int64 {
	var n int64
	for _, d := range deps {
		n = max(n, d.contextTokens())
	}
	return n
}

// tiers groups untried deployments by priority, lowest first.
func tiers(deps []*deployment, tried map[string]bool) [][]*deployment {
	by := map[int][]*deployment{}
	for _, d := range deps {
		if !tried[d.id] {
			by[d.cfg.Priority] = append(by[d.cfg.Priority], d)
		}
	}
	keys := make([]int, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	out := make([][]*deployment, len(keys))
	for i, k := range keys {
		out[i] = by[k]
	}
	return out
}

// weighted picks one deployment of a tier with probability proportional
// to its weight.
func (g *Gateway) weighted(tier []*deployment) *deployment {
	total := 0
	for _, d := range tier {
		total += d.cfg.Weight
	}
	g.randMu.Lock()
	n := g.rand.IntN(total)
	g.randMu.Unlock()
	for _, d := range tier {
		if n < d.cfg.Weight {
			return d
		}
		n -= d.cfg.Weight
	}
	return tier[len(tier)-1]
}
