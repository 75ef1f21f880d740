package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"tollgate"
)

// metered is one request's hold, from Reserve to Settle or Release.
type metered struct {
	g      *Gateway
	hold   Hold
	holdID string
	start  time.Time
	prompt int64 // tokenizer count of the prompt, for billing without usage
	closed bool
}

// reserve holds the worst case of a request: its prompt (with a margin
// for tokenizer differences between providers; or ceiling, when not 0:
// the prompt has parts only the upstream can count) at the dearest
// prompt price, and outTokens at the output price.
func (g *Gateway) reserve(r *http.Request, c tollgate.Caller, model string, prompt, ceiling, outTokens int64) (*metered, error) {
	margin := prompt/4 + 16
	held := prompt + margin
	if ceiling > 0 {
		held = ceiling
	}
	credits, err := g.worstCase(model, held, outTokens)
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
	m := &metered{g: g, start: g.opts.Clock.Now(), prompt: prompt, hold: Hold{
		RequestID: g.opts.RequestID(r), Account: c.Account, KeyID: c.KeyID, Model: model, Credits: credits, GrantID: c.GrantID,
	}}
	if err := g.admitTokens(r.Context(), c, model, prompt+margin+outTokens); err != nil {
		return nil, err
	}
	m.holdID, err = g.opts.Meter.Reserve(r.Context(), m.hold)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.EINSUFFICIENT {
			return nil, err
		}
		return nil, fmt.Errorf("reserve %d credits: %w", credits, err)
	}
	g.observeHeld(m.hold)
	return m, nil
}

// worstCase is what prompt and out tokens may cost at most: a provider may
// write any prompt token to its cache, which can cost more than input
// (Anthropic: 1.25× for 5 minutes, 2× for an hour).
func (g *Gateway) worstCase(model string, prompt, out int64) (tollgate.Credits, error) {
	var worst tollgate.Credits
	for _, t := range [...]tollgate.Tokens{{Input: prompt}, {CacheWrite: prompt}, {CacheWrite1h: prompt}} {
		t.Output = out
		c, err := g.opts.Pricer.Cost(model, t)
		if err != nil {
			return 0, err
		}
		worst = max(worst, c)
	}
	return worst, nil
}

// release drops the hold: the request failed before any output.
func (m *metered) release(ctx context.Context) {
	if m.closed {
		return
	}
	m.closed = true
	if err := m.g.opts.Meter.Release(context.WithoutCancel(ctx), m.holdID); err != nil {
		m.g.opts.Logger.ErrorContext(ctx, "release hold", "request_id", m.hold.RequestID, "hold", m.holdID, "err", err)
	}
	m.g.opts.Observer.Done(Usage{RequestID: m.hold.RequestID, Account: m.hold.Account, KeyID: m.hold.KeyID,
		Model: m.hold.Model, Latency: m.g.opts.Clock.Now().Sub(m.start), Status: "error"})
}

// settle charges u (never more than held) and records it. It returns the
// credits charged.
func (m *metered) settle(ctx context.Context, d *deployment, u tokenUsage, estimated bool, status string) tollgate.Credits {
	if m.closed {
		return 0
	}
	m.closed = true
	credits := m.cost(u)
	// A negative count (an upstream's mistake, billed as the hold by
	// cost) is recorded as zero: the store refuses negative counts, and
	// the settle must not fail with it.
	n := func(c int64) int64 { return max(c, 0) }
	usage := Usage{
		RequestID: m.hold.RequestID, Account: m.hold.Account, KeyID: m.hold.KeyID, Model: m.hold.Model,
		Deployment: d.id, Provider: d.provider.Name,
		InputTokens: n(u.Input), CachedInputTokens: n(u.Cached), CacheWriteTokens: n(u.CacheWrite),
		CacheWrite1hTokens: n(u.CacheWrite1h), OutputTokens: n(u.Output),
		Credits: credits, Latency: m.g.opts.Clock.Now().Sub(m.start), Status: status, Estimated: estimated,
	}
	if err := m.g.opts.Meter.Settle(context.WithoutCancel(ctx), m.holdID, usage); err != nil {
		m.g.opts.Logger.ErrorContext(ctx, "settle hold", "request_id", m.hold.RequestID, "hold", m.holdID, "credits", credits, "err", err)
	}
	m.g.opts.Observer.Done(usage)
	return credits
}

// cost is what u costs, never more than held. When u cannot be priced
// (counts an upstream got wrong), the hold is what it costs: the upstream
// did the work, and the hold is the most the caller agreed to.
func (m *metered) cost(u tokenUsage) tollgate.Credits {
	credits, err := m.g.opts.Pricer.Cost(m.hold.Model, u.tokens())
	if err != nil || credits > m.hold.Credits {
		return m.hold.Credits
	}
	return credits
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
