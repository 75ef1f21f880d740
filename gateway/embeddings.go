package gateway

import (
	"encoding/json"
	"net/http"

	"tollgate"
)

// Embeddings serves POST /v1/embeddings on OpenAI-compatible deployments,
// metered like chat: the input's tokens are held, then settled.
func (g *Gateway) Embeddings(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, invalid("request body must be a JSON object with model and input"))
		return
	}
	if req.Model == "" || len(req.Input) == 0 || string(req.Input) == "null" {
		writeError(w, invalid("model and input are required"))
		return
	}
	deps, err := g.lookup(c, req.Model)
	if err == nil {
		deps, err = embedders(req.Model, deps)
	}
	if err == nil {
		err = g.admit(r, c, req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := g.reserve(r, c, req.Model, g.inputTokens(req.Input), 0, 0)
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	var res *chatResult
	ids := m.ids()
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		var err error
		res, err = d.up.(embedder).embed(a.ctx, d, body, ids)
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	u, estimated := res.usage, false
	if u == nil {
		u, estimated = &tokenUsage{Input: m.prompt}, true
	}
	m.upstreamID = res.upstreamID
	m.answered(w, d)
	credits := m.settle(r.Context(), d, *u, estimated, "ok")
	writeJSON(w, http.StatusOK, res.body.with("usage", usageJSON(*u, credits)))
}

// embedders keeps the deployments that can serve embeddings.
func embedders(model string, deps []*deployment) ([]*deployment, error) {
	var out []*deployment
	for _, d := range deps {
		if _, ok := d.up.(embedder); ok {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, tollgate.Errorf(tollgate.EINVALID, "the model %q does not serve embeddings", model)
	}
	return out, nil
}

// inputTokens counts an embeddings input: a string, an array of strings,
// an array of token ids or an array of such arrays.
func (g *Gateway) inputTokens(raw json.RawMessage) int64 {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return g.opts.Counter.Count(s)
	}
	var many []json.RawMessage
	if json.Unmarshal(raw, &many) != nil {
		return g.opts.Counter.Count(string(raw))
	}
	var n int64
	for _, item := range many {
		var ids []int64
		var id int64
		switch {
		case json.Unmarshal(item, &s) == nil:
			n += g.opts.Counter.Count(s)
		case json.Unmarshal(item, &id) == nil:
			n++
		case json.Unmarshal(item, &ids) == nil:
			n += int64(len(ids))
		default:
			n += g.opts.Counter.Count(string(item))
		}
	}
	return n
}

// modelInfo is one entry of GET /v1/models, with tollgate's prices as an
// extension field.
type modelInfo struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	OwnedBy string      `json:"owned_by"`
	Pricing *modelPrice `json:"pricing,omitempty"`
}

// modelPrice is what a model costs in credits per million tokens.
type modelPrice struct {
	InputPer1M        tollgate.Credits `json:"credits_per_1m_input_tokens"`
	CachedInputPer1M  tollgate.Credits `json:"credits_per_1m_cached_input_tokens"`
	CacheWritePer1M   tollgate.Credits `json:"credits_per_1m_cache_write_tokens"`
	CacheWrite1hPer1M tollgate.Credits `json:"credits_per_1m_cache_write_1h_tokens"`
	OutputPer1M       tollgate.Credits `json:"credits_per_1m_output_tokens"`
	// PerCall is the model's per-call fee, charged once on every call
	// beside its tokens (rounded up with them, so a call costs at most
	// the tokens' credits plus this); left out when there is none.
	PerCall tollgate.Credits `json:"credits_per_call,omitempty"`
}

// Models serves GET /v1/models: the models the caller may use, with their
// prices in credits.
func (g *Gateway) Models(w http.ResponseWriter, r *http.Request) {
	c, ok := tollgate.CallerFrom(r.Context())
	if !ok {
		writeError(w, tollgate.Errorf(tollgate.EUNAUTHORIZED, "missing or invalid API key"))
		return
	}
	data := []modelInfo{}
	for _, name := range g.names {
		if c.Limits.Allows(name) {
			data = append(data, g.modelInfo(name))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// modelInfo is the model object of the public model name, with its
// prices when the Pricer gives them.
func (g *Gateway) modelInfo(name string) modelInfo {
	info := modelInfo{ID: name, Object: "model", OwnedBy: "tollgate"}
	const m = 1_000_000
	per := [...]tollgate.Tokens{{Input: m}, {CachedInput: m}, {CacheWrite: m}, {CacheWrite1h: m}, {Output: m}}
	tokens, fee := g.opts.Pricer.Cost, func(string, tollgate.Tokens) (tollgate.Credits, error) { return 0, nil }
	if tp, ok := g.opts.Pricer.(TokenPricer); ok {
		tokens, fee = tp.TokenCost, g.opts.Pricer.Cost // Cost of no tokens is the fee alone
	}
	var p [len(per)]tollgate.Credits
	var err error
	for i, t := range per {
		if p[i], err = tokens(name, t); err != nil {
			break
		}
	}
	var call tollgate.Credits
	if err == nil {
		call, err = fee(name, tollgate.Tokens{})
	}
	if err == nil {
		info.Pricing = &modelPrice{InputPer1M: p[0], CachedInputPer1M: p[1], CacheWritePer1M: p[2], CacheWrite1hPer1M: p[3], OutputPer1M: p[4], PerCall: call}
	}
	return info
}
