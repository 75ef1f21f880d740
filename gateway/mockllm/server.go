package mockllm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate"
)

// DefaultOutputTokens is the length of every completion when neither
// Server.OutputTokens nor the X-Mock-Output-Tokens header says otherwise.
const DefaultOutputTokens = 16

// DefaultEmbeddingDimensions is the length of an embedding vector when the
// request does not set "dimensions".
const DefaultEmbeddingDimensions = 1536

// maxBodyBytes bounds a request body.
const maxBodyBytes = 32 << 20

// maxAnswerTokens bounds the tokens one answer generates (all choices),
// so a mistyped knob cannot exhaust memory.
const maxAnswerTokens = 1 << 22

// Request headers that override a Server's knobs for one request, so one
// server can serve tests that need different behaviours at the same time.
// An unparsable value is answered 400 in the API's error shape.
const (
	HeaderLatency         = "X-Mock-Latency"           // Go duration ("250ms") or integer milliseconds
	HeaderTokensPerSecond = "X-Mock-Tokens-Per-Second" // float; 0 means as fast as possible
	HeaderOutputTokens    = "X-Mock-Output-Tokens"     // completion length in tokens
	HeaderErrorRate       = "X-Mock-Error-Rate"        // probability in [0,1], statuses from ErrorStatuses
	HeaderErrorRates      = "X-Mock-Error-Rates"       // per status: "429=0.1,503=0.05" (sum <= 1)
	HeaderStatus          = "X-Mock-Status"            // fail with this status (400-599); 0 turns it off
	HeaderFailAfter       = "X-Mock-Fail-After"        // cut a stream after K events (0: before any); -1 off
	HeaderOmitUsage       = "X-Mock-Omit-Usage"        // "1"/"true": no usage object, no usage chunk
	HeaderHang            = "X-Mock-Hang"              // "1"/"true": never answer until the client goes away
	HeaderCachedTokens    = "X-Mock-Cached-Tokens"     // prompt tokens reported as read from cache
	HeaderCacheCreation   = "X-Mock-Cache-Creation-Tokens"
	HeaderCacheCreation1h = "X-Mock-Cache-Creation-1h-Tokens" // of those, written to a 1-hour cache
	HeaderReasoningTokens = "X-Mock-Reasoning-Tokens"         // of the completion tokens, reported as reasoning
	HeaderUsageDialect    = "X-Mock-Usage-Dialect"            // a provider kind whose usage fields to report (UsageDialects)
	HeaderThoughtsTokens  = "X-Mock-Thoughts-Tokens"          // Gemini: thoughtsTokenCount reported
	HeaderAudioSeconds    = "X-Mock-Audio-Seconds"            // seconds a transcription reports, instead of AudioSeconds
	HeaderServiceTier     = "X-Mock-Service-Tier"             // the service_tier OpenAI chat answers say
	HeaderWebSearches     = "X-Mock-Web-Searches"             // Anthropic web_search uses reported
	HeaderWebFetches      = "X-Mock-Web-Fetches"              // Anthropic web_fetch uses reported
)

// Server is a deterministic OpenAI- and Anthropic-compatible LLM upstream.
// The zero value is ready to use; set the exported knobs before the first
// request and do not change them afterwards (use the X-Mock-* headers for
// per-request behaviour). It is safe for concurrent use.
//
// Routes: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models,
// POST /v1/responses, POST /v1/messages, POST /v1/messages/count_tokens,
// POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse (Gemini), POST /v1/images/generations,
// POST /v1/audio/speech, POST /v1/audio/transcriptions, POST /v1/moderations,
// POST /v1/completions, GET /mock/stats. Anything else is
// answered 404 (or 405) loudly, in OpenAI's error shape.
type Server struct {
	// APIKey, when set, is the only key accepted (Authorization: Bearer for
	// OpenAI routes; x-api-key or Bearer for /v1/messages). Empty accepts any.
	APIKey string

	// Latency is waited before the first byte of every answer.
	Latency time.Duration

	// TokensPerSecond paces generation: streams wait 1/TokensPerSecond
	// between token events and non-streaming answers wait tokens/rate before
	// answering. Zero is as fast as possible.
	TokensPerSecond float64

	// OutputTokens is the length of each completion before max_tokens and
	// stop sequences cut it; zero means DefaultOutputTokens and a negative
	// value means empty completions.
	OutputTokens int

	// ErrorRate is the probability that a request fails with a status drawn
	// from ErrorStatuses. Draws come from a sequence seeded by Seed, so the
	// n-th request to a server always gets the same draw.
	ErrorRate float64

	// ErrorStatuses are the statuses ErrorRate draws from, evenly; empty
	// means 429, 500 and 503.
	ErrorStatuses []int

	// ErrorRates gives a failure probability per status, e.g.
	// {429: 0.1, 503: 0.02}, drawn from the same seeded sequence; the
	// probabilities must sum to at most 1. ErrorRate, when set, wins.
	ErrorRates map[int]float64

	// Seed seeds the ErrorRate draws.
	Seed uint64

	// Status, when non-zero, fails every model request with that status.
	Status int

	// RetryAfter is sent with every 429 (Retry-After in whole seconds,
	// rounded up, and retry-after-ms); zero means one second.
	RetryAfter time.Duration

	// FailAfter, when positive, cuts every stream after that many SSE
	// events by aborting the connection (no terminating chunk, no [DONE]).
	FailAfter int

	// OmitUsage leaves usage out of every answer: no "usage" in JSON
	// bodies, no usage chunk in OpenAI streams, no usage in Anthropic events.
	OmitUsage bool

	// Hang makes every model request wait until the client goes away.
	Hang bool

	// CachedTokens is reported as prompt tokens read from cache
	// (prompt_tokens_details.cached_tokens, cache_read_input_tokens),
	// capped at the prompt's size.
	CachedTokens int

	// CacheCreationTokens is reported as Anthropic's
	// cache_creation_input_tokens, capped at what the prompt has left.
	CacheCreationTokens int
	// CacheCreation1hTokens is how many of those were written to a
	// 1-hour cache (cache_creation.ephemeral_1h_input_tokens; the rest
	// are ephemeral_5m_input_tokens).
	CacheCreation1hTokens int

	// ReasoningTokens is how many of each answer's completion tokens are
	// reported as completion_tokens_details.reasoning_tokens (capped at
	// the completion; they stay inside completion_tokens).
	ReasoningTokens int

	// UsageDialect names the provider whose usage fields chat answers
	// report (see UsageDialects); empty is OpenAI's. A path prefix
	// /usage/NAME/ selects it per request too.
	UsageDialect string
	// ThoughtsTokens is reported by the Gemini routes as
	// usageMetadata.thoughtsTokenCount: a thinking model's reasoning,
	// billed as output, not shown.
	ThoughtsTokens int
	// TranscriptionSeconds, when positive, is the duration every
	// transcription reports instead of AudioSeconds of its file.
	TranscriptionSeconds float64
	// ServiceTier, when set, is the service_tier every OpenAI chat answer
	// says it was served at; empty: "priority" when the request asked for
	// it, else "default".
	ServiceTier string

	// WebSearches and WebFetches are the server tool uses an Anthropic
	// answer reports (usage.server_tool_use) when the request offers a
	// web_search or web_fetch tool; zero means one use of each offered.
	WebSearches, WebFetches int

	// Models is the list GET /v1/models answers; empty means DefaultModels.
	Models []string

	// Clock stamps "created" fields; nil means SystemClock.
	Clock tollgate.Clock

	seq  atomic.Uint64 // ErrorRate draws
	once sync.Once     // computes rates from the fields on first use
	// rates is ErrorRate or ErrorRates as a sorted table.
	rates []statusRate
	reqs  atomic.Uint64 // request ids

	mu     sync.Mutex // guards counts
	counts map[statKey]int64
}

// DefaultModels is what GET /v1/models lists when Server.Models is empty.
var DefaultModels = []string{"mock-gpt", "gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-5", "claude-haiku-4-5"}

type statKey struct {
	path   string
	status int
}

// api says whose error shape and auth convention a route uses.
type api int

const (
	apiOpenAI api = iota
	apiAnthropic
	apiAzure // OpenAI's shapes at Azure's deployment URLs, with the api-key header
	apiGemini
)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, dialect, azure, msg := routePath(r)
	if msg != "" {
		s.fail(w, "other", apiOpenAI, http.StatusNotFound, msg)
		return
	}
	var h func(http.ResponseWriter, *http.Request, *behaviour)
	method := http.MethodPost
	a := apiOpenAI
	if azure {
		a = apiAzure
	}
	switch path {
	case "/v1/chat/completions":
		h = s.chat
	case "/v1/embeddings":
		h = s.embeddings
	case "/v1/responses":
		h = s.responses
	case "/v1/messages":
		h, a = s.messages, apiAnthropic
	case "/v1/messages/count_tokens":
		h, a = s.countTokens, apiAnthropic
	case "/v1/models":
		h, method = s.models, http.MethodGet
	case imagesPath:
		h = s.images
	case speechPath:
		h = s.speech
	case transcriptionsPath:
		h = s.transcriptions
	case moderationsPath:
		h = s.moderations
	case completionsPath:
		h = s.completions
	case "/mock/stats":
		s.stats(w, r)
		return
	default:
		if _, _, ok := geminiRoute(path); ok {
			h, a = s.gemini, apiGemini
			break
		}
		s.fail(w, "other", apiOpenAI, http.StatusNotFound, "mockllm does not model "+r.Method+" "+path)
		return
	}
	s.setRequestID(w, a)
	if r.Method != method {
		s.fail(w, path, a, http.StatusMethodNotAllowed, "mockllm: "+path+" takes "+method+", not "+r.Method)
		return
	}
	if !s.authorized(r, a) {
		s.fail(w, path, a, http.StatusUnauthorized, "")
		return
	}
	b, err := s.behaviour(r)
	if err != nil {
		s.fail(w, path, a, http.StatusBadRequest, err.Error())
		return
	}
	if dialect != "" {
		b.dialect = dialect
	}
	if !sleep(r.Context(), b.latency) {
		s.record(path, 0)
		return
	}
	if b.hang {
		<-r.Context().Done()
		s.record(path, 0)
		return
	}
	if st := s.injected(b); st != 0 {
		s.fail(w, path, a, st, "")
		return
	}
	h(w, r, b)
}

// setRequestID numbers the answer as each API does: x-request-id for
// OpenAI, request-id for Anthropic ("req_" and a per-server sequence).
func (s *Server) setRequestID(w http.ResponseWriter, a api) {
	id := appendID([]byte("req_"), "", s.reqs.Add(1))
	if a == apiAnthropic {
		w.Header()["Request-Id"] = []string{string(id)}
	} else {
		w.Header()["X-Request-Id"] = []string{string(id)}
	}
}

// behaviour is the knobs in force for one request: the Server's fields
// overridden by X-Mock-* headers.
type behaviour struct {
	latency         time.Duration
	tps             float64
	outputTokens    int
	rates           []statusRate
	statuses        []int // what X-Mock-Error-Rate draws from
	status          int
	failAfter       int // -1: off
	omitUsage       bool
	hang            bool
	cached          int
	cacheCreation   int
	cacheCreation1h int
	reasoning       int
	dialect         string
	thoughts        int
	audioSeconds    float64 // -1: AudioSeconds of the file
	serviceTier     string
	webSearches     int
	webFetches      int
}

func (s *Server) behaviour(r *http.Request) (*behaviour, error) {
	b := &behaviour{
		latency:         s.Latency,
		tps:             s.TokensPerSecond,
		outputTokens:    s.OutputTokens,
		rates:           s.fieldRates(),
		statuses:        s.errorStatuses(),
		status:          s.Status,
		failAfter:       -1,
		audioSeconds:    -1,
		omitUsage:       s.OmitUsage,
		hang:            s.Hang,
		cached:          s.CachedTokens,
		cacheCreation:   s.CacheCreationTokens,
		cacheCreation1h: s.CacheCreation1hTokens,
		reasoning:       s.ReasoningTokens,
		dialect:         s.UsageDialect,
		thoughts:        s.ThoughtsTokens,
		serviceTier:     s.ServiceTier,
		webSearches:     s.WebSearches,
		webFetches:      s.WebFetches,
	}
	if s.FailAfter > 0 {
		b.failAfter = s.FailAfter
	}
	if _, ok := usageDialects[s.UsageDialect]; !ok {
		return nil, fmt.Errorf("mockllm: Server.UsageDialect %q is not one of %s", s.UsageDialect, strings.Join(UsageDialects(), ", "))
	}
	if s.TranscriptionSeconds > 0 {
		b.audioSeconds = s.TranscriptionSeconds
	}
	switch {
	case b.outputTokens == 0:
		b.outputTokens = DefaultOutputTokens
	case b.outputTokens < 0:
		b.outputTokens = 0
	}
	for k, v := range r.Header {
		if len(k) < 7 || k[:7] != "X-Mock-" || len(v) == 0 {
			continue
		}
		if err := b.set(k, v[0]); err != nil {
			return nil, fmt.Errorf("mockllm: header %s: %w", k, err)
		}
	}
	return b, nil
}

func (b *behaviour) set(k, v string) error {
	var err error
	switch k {
	case HeaderLatency:
		b.latency, err = parseDuration(v)
	case HeaderTokensPerSecond:
		b.tps, err = strconv.ParseFloat(v, 64)
		if err == nil && (b.tps < 0 || math.IsNaN(b.tps)) {
			err = errors.New("must be >= 0")
		}
	case HeaderOutputTokens:
		b.outputTokens, err = parseCount(v, 0)
		if err == nil && b.outputTokens > maxAnswerTokens {
			err = fmt.Errorf("must be <= %d", maxAnswerTokens)
		}
	case HeaderErrorRate:
		var rate float64
		rate, err = strconv.ParseFloat(v, 64)
		if err == nil && !(rate >= 0 && rate <= 1) {
			err = errors.New("must be in [0,1]")
		}
		b.rates = evenRates(rate, b.statuses)
	case HeaderErrorRates:
		b.rates, err = parseRates(v)
	case HeaderStatus:
		b.status, err = strconv.Atoi(v)
		if err == nil && b.status != 0 && (b.status < 400 || b.status > 599) {
			err = errors.New("must be 0 or 400-599")
		}
	case HeaderFailAfter:
		b.failAfter, err = parseCount(v, -1)
	case HeaderOmitUsage:
		b.omitUsage, err = strconv.ParseBool(v)
	case HeaderHang:
		b.hang, err = strconv.ParseBool(v)
	case HeaderCachedTokens:
		b.cached, err = parseCount(v, 0)
	case HeaderCacheCreation:
		b.cacheCreation, err = parseCount(v, 0)
	case HeaderCacheCreation1h:
		b.cacheCreation1h, err = parseCount(v, 0)
	case HeaderReasoningTokens:
		b.reasoning, err = parseCount(v, 0)
	case HeaderUsageDialect:
		if _, ok := usageDialects[v]; !ok {
			err = fmt.Errorf("unknown dialect %q (one of %s)", v, strings.Join(UsageDialects(), ", "))
		}
		b.dialect = v
	case HeaderThoughtsTokens:
		b.thoughts, err = parseCount(v, 0)
	case HeaderAudioSeconds:
		b.audioSeconds, err = strconv.ParseFloat(v, 64)
		if err == nil && !(b.audioSeconds >= 0 && b.audioSeconds < 1e7) {
			err = errors.New("must be in [0, 1e7)")
		}
	case HeaderServiceTier:
		b.serviceTier = v
	case HeaderWebSearches:
		b.webSearches, err = parseCount(v, 0)
	case HeaderWebFetches:
		b.webFetches, err = parseCount(v, 0)
	default:
		err = errors.New("unknown mock header")
	}
	return err
}

func parseDuration(v string) (time.Duration, error) {
	if ms, err := strconv.Atoi(v); err == nil {
		v = strconv.Itoa(ms) + "ms"
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("must be >= 0")
	}
	return d, err
}

func parseCount(v string, least int) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < least {
		err = fmt.Errorf("must be >= %d", least)
	}
	return n, err
}

// injected returns the status a request is failed with by Status or the
// error rates, or 0. The n-th draw of a server is always the same.
func (s *Server) injected(b *behaviour) int {
	if b.status != 0 {
		return b.status
	}
	if len(b.rates) == 0 {
		return 0
	}
	state := s.Seed ^ s.seq.Add(1)*0x2545f4914f6cdd1d
	x := float64(splitmix64(&state)>>11) / (1 << 53)
	cum := 0.0
	for _, r := range b.rates {
		cum += r.rate
		if x < cum {
			return r.status
		}
	}
	return 0
}

// statusRate is the probability of failing with one status.
type statusRate struct {
	status int
	rate   float64
}

var defaultErrorStatuses = []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable}

// fieldRates is the rate table of ErrorRate / ErrorRates, computed once.
func (s *Server) fieldRates() []statusRate {
	s.once.Do(func() {
		if s.ErrorRate > 0 {
			s.rates = evenRates(s.ErrorRate, s.errorStatuses())
			return
		}
		for st, r := range s.ErrorRates {
			if r > 0 {
				s.rates = append(s.rates, statusRate{st, r})
			}
		}
		sort.Slice(s.rates, func(i, j int) bool { return s.rates[i].status < s.rates[j].status })
	})
	return s.rates
}

func (s *Server) errorStatuses() []int {
	if len(s.ErrorStatuses) > 0 {
		return s.ErrorStatuses
	}
	return defaultErrorStatuses
}

// evenRates splits rate evenly over statuses.
func evenRates(rate float64, statuses []int) []statusRate {
	if rate <= 0 {
		return nil
	}
	out := make([]statusRate, len(statuses))
	for i, st := range statuses {
		out[i] = statusRate{st, rate / float64(len(statuses))}
	}
	return out
}

// parseRates reads "429=0.1,503=0.05".
func parseRates(v string) ([]statusRate, error) {
	var out []statusRate
	sum := 0.0
	for _, f := range strings.Split(v, ",") {
		code, rate, ok := strings.Cut(strings.TrimSpace(f), "=")
		st, err1 := strconv.Atoi(code)
		r, err2 := strconv.ParseFloat(rate, 64)
		if !ok || err1 != nil || err2 != nil || st < 400 || st > 599 || !(r >= 0 && r <= 1) {
			return nil, fmt.Errorf("%q is not STATUS=RATE with a status in 400-599 and a rate in [0,1]", f)
		}
		sum += r
		out = append(out, statusRate{st, r})
	}
	if sum > 1 {
		return nil, fmt.Errorf("rates sum to %v, over 1", sum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].status < out[j].status })
	return out, nil
}

func (s *Server) authorized(r *http.Request, a api) bool {
	if s.APIKey == "" {
		return true
	}
	if a == apiAnthropic && r.Header.Get("X-Api-Key") == s.APIKey {
		return true
	}
	if a == apiAzure {
		return r.Header.Get("Api-Key") == s.APIKey
	}
	if a == apiGemini && (r.Header.Get("X-Goog-Api-Key") == s.APIKey || r.URL.Query().Get("key") == s.APIKey) {
		return true
	}
	return r.Header.Get("Authorization") == "Bearer "+s.APIKey
}

func (s *Server) now() time.Time { return tollgate.ClockOr(s.Clock).Now() }

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readJSON reads the request body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("parsing the request body: %w", err)
	}
	return nil
}

// record counts one answer. Status 0 counts a request that got no answer
// (hang, client gone during latency).
func (s *Server) record(path string, status int) {
	s.mu.Lock()
	if s.counts == nil {
		s.counts = make(map[statKey]int64)
	}
	s.counts[statKey{path, status}]++
	s.mu.Unlock()
}

// Count returns how many requests to path were answered with status (0:
// not answered: hang, or the client left during the latency). Paths are
// the routes ("/v1/chat/completions"); unmodelled paths count as "other".
// A stream cut by FailAfter counts with the status it started with.
func (s *Server) Count(path string, status int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[statKey{path, status}]
}

// Stats returns every count: path -> status -> requests.
func (s *Server) Stats() map[string]map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[int]int64)
	for k, n := range s.counts {
		if out[k.path] == nil {
			out[k.path] = make(map[int]int64)
		}
		out[k.path][k.status] = n
	}
	return out
}

// ResetStats sets every count back to zero.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.counts = nil
	s.mu.Unlock()
}

// stats answers GET /mock/stats:
// {"requests":{"/v1/chat/completions":{"200":3,"429":1}},"total":4}.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.fail(w, "/mock/stats", apiOpenAI, http.StatusMethodNotAllowed, "mockllm: /mock/stats takes GET")
		return
	}
	st := s.Stats()
	paths := make([]string, 0, len(st))
	for p := range st {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var total int64
	buf := []byte(`{"requests":{`)
	for i, p := range paths {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, p)
		buf = append(buf, ":{"...)
		codes := make([]int, 0, len(st[p]))
		for c := range st[p] {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for j, c := range codes {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = appendInt(buf, int64(c))
			buf = append(buf, `":`...)
			buf = appendInt(buf, st[p][c])
			total += st[p][c]
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `},"total":`...)
	buf = appendInt(buf, total)
	buf = append(buf, "}\n"...)
	writeJSON(w, http.StatusOK, buf)
}

// writeJSON answers status with body.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
