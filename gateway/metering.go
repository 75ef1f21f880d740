package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate"
)

// metered is one request's hold, from Reserve to Settle or Release.
type metered struct {
	g      *Gateway
	hold   Hold
	holdID string
	// upstreamID is the id the upstream gave its answer, for the usage
	// record; set by the handler before it settles.
	upstreamID string
	start      time.Time
	prompt     int64 // tokenizer count of the prompt, for billing without usage
	// units are the units held for (their worst case): a settle billing
	// more web calls than these bills the hold, and the priority tier
	// only when it was asked for.
	units tollgate.Tokens
	// perAnswer are units every answer of an OpenAI-compatible deployment
	// uses, which its usage does not report: the search call of a chat
	// request with web search.
	perAnswer tollgate.Tokens
	closed    bool
	// answerIDs are the request's answer ids (ids), made once: the
	// upstream's reader marks on them a usage it could not read.
	answerIDs *answerIDs
	// ctx is the request's context for the upstream calls, from the hold
	// to its end (settle or release); cancelled with errRequestDeadline at
	// Options.MaxRequestDuration.
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// errRequestDeadline is the cause of a request's context cancelled at
// Options.MaxRequestDuration.
var errRequestDeadline = errors.New("the request reached the maximum duration")

// StatusClientClosed is the status of a request whose client went away
// (nginx's 499 "client closed request"): nobody reads it, but the HTTP
// metrics count it apart from our failures.
const StatusClientClosed = 499

// clientGone is the error of a request whose client went away, err being
// what that did to the request. It is not a failure of ours.
func clientGone(err error) error {
	return &StatusError{Status: StatusClientClosed, Code: "client_closed_request",
		Err: &tollgate.Error{Code: tollgate.EUNAVAILABLE, Message: "the client closed the request", Err: err}}
}

// isClientGone reports whether err is clientGone's.
func isClientGone(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == StatusClientClosed
}

// ended is the error of a request whose context ended: the client went
// away, or the request reached Options.MaxRequestDuration (504).
func ended(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errRequestDeadline) {
		return &StatusError{Status: http.StatusGatewayTimeout, Code: "request_timeout",
			Err: &tollgate.Error{Code: tollgate.EUPSTREAM, Message: "the request reached this server's time limit", Err: context.Cause(ctx)}}
	}
	return clientGone(ctx.Err())
}

// reserve holds the worst case of a request: its prompt (with a margin
// for tokenizer differences between providers; or ceiling, when not 0:
// the prompt has parts only the upstream can count) at the dearest
// prompt price, and outTokens at the output price.
func (g *Gateway) reserve(r *http.Request, c tollgate.Caller, model string, prompt, ceiling, outTokens int64) (*metered, error) {
	return g.reserveUnits(r, c, model, prompt, ceiling, outTokens, tollgate.Tokens{})
}

// reserveUnits is reserve for a request that may also use units (the unit
// fields of units, at their worst case: the most images, seconds, web
// calls the request can cause; Priority when it asked for the priority
// tier). A unit the model does not sell is refused here, before anything
// is held: Cost's EINVALID, a 400 naming it.
func (g *Gateway) reserveUnits(r *http.Request, c tollgate.Caller, model string, prompt, ceiling, outTokens int64, units tollgate.Tokens) (*metered, error) {
	margin := prompt/4 + 16
	held := prompt + margin
	if ceiling > 0 {
		held = ceiling
	}
	credits, err := g.worstCase(model, held, outTokens, units)
	if tollgate.ErrorCode(err) == tollgate.EINVALID {
		return nil, err
	}
	if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
		// A configured model without a price is our misconfiguration.
		return nil, &tollgate.Error{Code: tollgate.EINTERNAL, Op: "gateway.reserve", Message: "no price for " + model, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("price the hold for %s: %w", model, err) // e.g. EUNAVAILABLE: no exchange rate yet
	}
	if lim := c.Limits.MaxCreditsPerRequest; lim > 0 && credits > lim {
		return nil, &StatusError{Code: "max_credits_per_request_exceeded",
			Err: tollgate.Errorf(tollgate.EFORBIDDEN,
				"this request may cost up to %d credits, above this API key's limit of %d credits per request (max_credits_per_request); lower max_tokens or shorten the prompt",
				credits, lim)}
	}
	id := g.opts.RequestID(r)
	if id == "" {
		id = tollgate.NewRequestID(g.opts.Clock.Now())
	}
	m := &metered{g: g, start: g.opts.Clock.Now(), prompt: prompt, units: units, hold: Hold{
		RequestID: id, Account: c.Account, KeyID: c.KeyID, Model: model, Credits: credits, GrantID: c.GrantID,
	}}
	if err := g.admitTokens(r.Context(), c, model, prompt+margin+outTokens); err != nil {
		if r.Context().Err() != nil {
			return nil, clientGone(err)
		}
		return nil, err
	}
	m.holdID, err = g.opts.Meter.Reserve(r.Context(), m.hold)
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		// The client went away while the hold was being made: the
		// ledger withdraws or releases it.
		return nil, clientGone(fmt.Errorf("reserve %d credits: %w", credits, err))
	case tollgate.ErrorCode(err) == tollgate.EINSUFFICIENT:
		return nil, err
	default:
		return nil, fmt.Errorf("reserve %d credits: %w", credits, err)
	}
	g.observeHeld(m.hold)
	m.ctx, m.cancel = context.WithCancelCause(r.Context())
	m.watch()
	return m, nil
}

// DeploymentHeader is the response header naming the deployment
// (provider/upstream model) that served a gateway answer.
const DeploymentHeader = "X-Tollgate-Deployment"

// answered sets the headers of a held request's answer, once a
// deployment took it: X-Request-Id, the request id the answer's id
// repeats (as httpapi set it, or the gateway's own id without httpapi),
// and DeploymentHeader.
func (m *metered) answered(w http.ResponseWriter, d *deployment) {
	h := w.Header()
	h.Set("X-Request-Id", m.hold.RequestID)
	h.Set(DeploymentHeader, d.id)
}

// ids are the id and model every answer of the request carries.
func (m *metered) ids() *answerIDs {
	if m.answerIDs == nil {
		m.answerIDs = newAnswerIDs(m.hold.RequestID, m.hold.Model)
	}
	return m.answerIDs
}

// maxUpstreamID bounds the upstream id a usage record keeps (the stores'
// bound, ledger.MaxUpstreamID).
const maxUpstreamID = 256

// keptUpstreamID is the upstream's id of its answer as a usage record
// keeps it: "" when it is too long or not text a store takes.
func keptUpstreamID(id string) string {
	if len(id) > maxUpstreamID || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return ""
	}
	return id
}

// watch keeps the hold alive while the request is in flight (the Meter's
// Renewer, every RenewEvery) and ends the request at MaxRequestDuration,
// both on the gateway's clock, until the hold is settled or released or
// the request ends. Neither asked for, it starts nothing.
func (m *metered) watch() {
	o := m.g.opts
	ren, _ := o.Meter.(Renewer)
	var every time.Duration
	if ren != nil {
		every = ren.RenewEvery()
	}
	limit := o.MaxRequestDuration
	if every <= 0 && limit <= 0 {
		return
	}
	deadline := m.start.Add(limit)
	go func() {
		for {
			wait := every
			if left := deadline.Sub(o.Clock.Now()); limit > 0 && (every <= 0 || left < wait) {
				wait = left
			}
			if err := tollgate.Sleep(m.ctx, o.Clock, wait); err != nil {
				return // settled, released, or the request ended
			}
			if limit > 0 && !o.Clock.Now().Before(deadline) {
				m.cancel(errRequestDeadline)
				return
			}
			if err := ren.Renew(m.ctx, m.holdID); err != nil && m.ctx.Err() == nil {
				if c := tollgate.ErrorCode(err); c == tollgate.ECONFLICT || c == tollgate.ENOTFOUND {
					return // the hold ended: its settle charges it all the same
				}
				o.Logger.WarnContext(m.ctx, "renew hold", "request_id", m.hold.RequestID, "hold", m.holdID, "err", err)
			}
		}
	}()
}

// overtime reports whether the request reached MaxRequestDuration.
func (m *metered) overtime() bool {
	return errors.Is(context.Cause(m.ctx), errRequestDeadline)
}

// end stops the watch: the hold is settled or released.
func (m *metered) end() {
	if m.cancel != nil {
		m.cancel(context.Canceled)
	}
}

// deadlineError is what a stream ended at MaxRequestDuration tells its
// client.
func (m *metered) deadlineError() error {
	return &StatusError{Status: http.StatusGatewayTimeout, Code: "request_timeout",
		Err: tollgate.Errorf(tollgate.EUPSTREAM, "the request reached this server's time limit of %s; the output so far is billed",
			m.g.opts.MaxRequestDuration)}
}

// worstCase is what prompt and out tokens and units may cost at most: a
// provider may write any prompt token to its cache, which can cost more
// than input (Anthropic: 1.25× for 5 minutes, 2× for an hour); and
// units.AudioOutput of the out tokens may be audio, priced apart (all of
// them or none: the cost is linear, so the dearest is one of the two).
func (g *Gateway) worstCase(model string, prompt, out int64, units tollgate.Tokens) (tollgate.Credits, error) {
	var worst tollgate.Credits
	audio := min(units.AudioOutput, out)
	for _, k := range [...]tollgate.Tokens{{Input: prompt}, {CacheWrite: prompt}, {CacheWrite1h: prompt}} {
		for _, a := range [...]int64{0, audio} {
			t := units
			t.Input, t.CacheWrite, t.CacheWrite1h, t.Output, t.AudioOutput = k.Input, k.CacheWrite, k.CacheWrite1h, out-a, a
			c, err := g.opts.Pricer.Cost(model, t)
			if err != nil {
				return 0, err
			}
			worst = max(worst, c)
		}
	}
	return worst, nil
}

// release drops the hold: the request failed before any output.
func (m *metered) release(ctx context.Context) {
	if m.closed {
		return
	}
	m.closed = true
	status := "error"
	switch {
	case m.overtime():
		status = "deadline_exceeded"
	case ctx.Err() != nil:
		status = "client_canceled"
	}
	m.end()
	if err := m.g.opts.Meter.Release(context.WithoutCancel(ctx), m.holdID); err != nil {
		m.g.opts.Logger.ErrorContext(ctx, "release hold", "request_id", m.hold.RequestID, "hold", m.holdID, "err", err)
	}
	m.g.opts.Observer.Done(Usage{RequestID: m.hold.RequestID, Account: m.hold.Account, KeyID: m.hold.KeyID,
		Model: m.hold.Model, Latency: m.g.opts.Clock.Now().Sub(m.start), Status: status})
}

// settle charges u (never more than held) and records it. It returns the
// credits charged.
func (m *metered) settle(ctx context.Context, d *deployment, u tokenUsage, estimated bool, status string) tollgate.Credits {
	if m.closed {
		return 0
	}
	m.closed = true
	m.end()
	if _, ok := d.up.(*openAI); ok {
		u.Units = addUnits(u.Units, m.perAnswer)
	}
	if estimated {
		// No usage: the units are the hold's estimate of them, as the
		// tokens are the tokenizer's (the audio tokens among them).
		u.Units = m.estimateUnits(u)
		u.Input += u.Units.AudioInput
	}
	// The priority tier is billed when asked for and served so: a request
	// left to the project's default tier is billed at the standard one.
	u.Units.Priority = u.Units.Priority && m.units.Priority
	if m.answerIDs != nil {
		if why := m.answerIDs.unknown.Load(); why != nil {
			u.unknown = append(u.unknown, *why)
		}
	}
	credits := m.cost(u)
	if len(u.unknown) > 0 {
		// Usage tollgate cannot price: billed at the hold (cost), and
		// recorded as estimated so the report counts it.
		estimated = true
		m.g.opts.Logger.WarnContext(ctx, "upstream reported usage fields tollgate does not know; billed at the hold",
			"request_id", m.hold.RequestID, "deployment", d.id, "fields", u.unknown, "credits", credits)
	}
	// A negative count (an upstream's mistake, billed as the hold by
	// cost) is recorded as zero: the store refuses negative counts, and
	// the settle must not fail with it.
	n := func(c int64) int64 { return max(c, 0) }
	usage := Usage{
		RequestID: m.hold.RequestID, Account: m.hold.Account, KeyID: m.hold.KeyID, Model: m.hold.Model,
		Deployment: d.id, Provider: d.provider.Name, UpstreamID: keptUpstreamID(m.upstreamID),
		InputTokens: n(u.Input), CachedInputTokens: n(u.Cached), CacheWriteTokens: n(u.CacheWrite),
		CacheWrite1hTokens: n(u.CacheWrite1h), OutputTokens: n(u.Output), Units: recordedUnits(u.Units),
		Credits: credits, Latency: m.g.opts.Clock.Now().Sub(m.start), Status: status, Estimated: estimated,
	}
	if err := m.g.opts.Meter.Settle(context.WithoutCancel(ctx), m.holdID, usage); err != nil {
		m.g.opts.Logger.ErrorContext(ctx, "settle hold", "request_id", m.hold.RequestID, "hold", m.holdID, "credits", credits, "err", err)
	}
	m.g.opts.Observer.Done(usage)
	return credits
}

// cost is what u costs, never more than held. When u cannot be priced
// (counts an upstream got wrong, or usage fields tollgate does not know),
// the hold is what it costs: the upstream did the work, and the hold is
// the most the caller agreed to.
func (m *metered) cost(u tokenUsage) tollgate.Credits {
	// More web calls than held: the provider ran past the max_uses it was
	// given, which is its mistake; the hold is the most the caller agreed to.
	if u.Units.WebSearches > m.units.WebSearches || u.Units.WebFetches > m.units.WebFetches {
		return m.hold.Credits
	}
	credits, err := m.g.opts.Pricer.Cost(m.hold.Model, u.tokens())
	if err != nil || credits > m.hold.Credits || len(u.unknown) > 0 {
		return m.hold.Credits
	}
	return credits
}

// estimateUnits are the units of u, an estimate without usage: those
// held (the input audio's estimated tokens, the web calls allowed, the
// priority tier asked for), and, when audio output was asked for, every
// output token as audio.
func (m *metered) estimateUnits(u tokenUsage) tollgate.Tokens {
	e := u.Units
	e.AudioInput, e.Priority = m.units.AudioInput, m.units.Priority
	if m.units.AudioOutput > 0 {
		e.AudioOutput = u.Output
	}
	e.WebSearches, e.WebFetches = max(e.WebSearches, m.units.WebSearches), max(e.WebFetches, m.units.WebFetches)
	return e
}

// recordedUnits is u as a usage record keeps it: a negative count (an
// upstream's mistake, billed as the hold) is zero, as the token counts are.
func recordedUnits(u tollgate.Tokens) tollgate.Tokens {
	for _, c := range []*int64{&u.AudioInput, &u.AudioOutput, &u.Characters, &u.AudioSeconds, &u.Images, &u.WebSearches, &u.WebFetches} {
		*c = max(*c, 0)
	}
	if u.Images == 0 {
		u.ImageSize = ""
	}
	return u
}

// estimate is the usage billed when the upstream reported none: the
// prompt and the delivered output of each choice counted with the
// tokenizer; never zero output tokens when some output was delivered.
func (m *metered) estimate(outputs ...string) tokenUsage {
	var out int64
	delivered := false
	for _, o := range outputs {
		out += m.g.opts.Counter.Count(o)
		delivered = delivered || o != ""
	}
	if out == 0 && delivered {
		out = 1
	}
	return tokenUsage{Input: m.prompt, Output: out}
}

// usageJSON is the OpenAI usage object for u with cost_credits added;
// fields the upstream sent and the gateway does not know are kept.
func usageJSON(u tokenUsage, credits tollgate.Credits) json.RawMessage {
	set := map[string]any{
		"prompt_tokens":     u.Input,
		"completion_tokens": u.Output,
		"total_tokens":      u.Input + u.Output,
		"cost_credits":      int64(credits),
	}
	if raw, ok := u.raw["prompt_tokens_details"]; !ok || u.Cached > 0 {
		details, _ := objectFields(raw) // nil when absent or not an object
		set["prompt_tokens_details"] = cachedTokens{details, u.Cached}
	}
	b, err := withFields(u.raw, set)
	if err != nil { // only set's values are marshalled: plain numbers
		panic(fmt.Sprintf("gateway: encode usage: %v", err))
	}
	return b
}

// cachedTokens is a prompt_tokens_details object with cached_tokens set.
type cachedTokens struct {
	details map[string]json.RawMessage
	cached  int64
}

func (c cachedTokens) MarshalJSON() ([]byte, error) {
	return withFields(c.details, map[string]any{"cached_tokens": c.cached})
}
