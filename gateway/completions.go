package gateway

import (
	"encoding/json"
	"net/http"

	"tollgate"
)

// Model serves GET /v1/models/{id}: the model object GET /v1/models lists
// for id, or a 404 in OpenAI's error shape for a model this gateway does
// not serve or the caller's key may not use.
func (g *Gateway) Model(w http.ResponseWriter, r *http.Request) {
	c, ok := tollgate.CallerFrom(r.Context())
	if !ok {
		writeError(w, tollgate.Errorf(tollgate.EUNAUTHORIZED, "missing or invalid API key"))
		return
	}
	id := r.PathValue("id")
	if _, known := g.models[id]; !known || !c.Limits.Allows(id) {
		writeError(w, &StatusError{Code: "model_not_found",
			Err: tollgate.Errorf(tollgate.ENOTFOUND, "the model %q does not exist or you do not have access to it", id)})
		return
	}
	writeJSON(w, http.StatusOK, g.modelInfo(id))
}

// Moderations serves POST /v1/moderations on a model's OpenAI-compatible
// deployments, free: no hold is made and no usage recorded (OpenAI does
// not charge for it), the request passes through with the model renamed
// and the answer comes back as the upstream sent it. model is required:
// it names the public model whose deployments moderate.
func (g *Gateway) Moderations(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Model string
		Input json.RawMessage
	}
	raw, err := requestObject(body, map[string]any{"model": &req.Model, "input": &req.Input})
	if err == nil && (req.Model == "" || len(req.Input) == 0) {
		err = invalid("model and input are required: model names a moderation model this gateway serves")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	deps, err := g.lookup(c, req.Model)
	if err == nil {
		deps, err = forwarders(req.Model, "moderations", deps)
	}
	if err == nil {
		err = g.admit(r, c, req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	id := g.opts.RequestID(r)
	var answer []byte
	d, err := g.failover(r.Context(), id, req.Model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		out, err := withFields(raw, map[string]any{"model": d.cfg.Model})
		if err != nil {
			return err
		}
		resp, err := d.up.(forwarder).forward(a.ctx, d, "/moderations", "application/json", out)
		if err != nil {
			return err
		}
		answer, err = readBody(a.ctx, resp)
		if err == nil && !json.Valid(answer) {
			err = &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON"}
		}
		return err
	})
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	if id != "" {
		w.Header().Set("X-Request-Id", id)
	}
	w.Header().Set(DeploymentHeader, d.id)
	setCost(w, 0)
	writeJSON(w, http.StatusOK, json.RawMessage(answer))
}

// Completions serves the legacy POST /v1/completions on a model's
// OpenAI-compatible deployments, metered like chat: the prompt's tokens
// (a string, strings, token ids) and max_tokens (default 16, as OpenAI's)
// times the larger of n and best_of are held, the upstream's usage
// settled. A model with no OpenAI-compatible deployment is a 400, as is
// stream: true (streamed legacy completions are not relayed; use chat).
func (g *Gateway) Completions(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Model              string
		Prompt, Suffix     json.RawMessage
		MaxTokens, N, Best int64
		Stream             bool
	}
	req.N, req.MaxTokens = 1, 16
	raw, err := requestObject(body, map[string]any{"model": &req.Model, "prompt": &req.Prompt, "suffix": &req.Suffix,
		"max_tokens": &req.MaxTokens, "n": &req.N, "best_of": &req.Best, "stream": &req.Stream})
	switch {
	case err != nil:
	case req.Model == "" || len(req.Prompt) == 0:
		err = invalid("model and prompt are required")
	case req.Stream:
		err = invalid("streamed legacy completions are not supported here; use /v1/chat/completions to stream")
	case req.N < 1 || req.N > maxN || req.Best < 0 || req.Best > maxN:
		err = invalid("n and best_of must be between 1 and %d", maxN)
	case req.MaxTokens < 0:
		err = invalid("max_tokens must not be negative")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	deps, err := g.lookup(c, req.Model)
	if err == nil {
		deps, err = forwarders(req.Model, "legacy completions", deps)
	}
	if err == nil {
		err = g.admit(r, c, req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if lim := c.Limits.MaxOutputTokens; lim > 0 && (req.MaxTokens == 0 || req.MaxTokens > lim) {
		req.MaxTokens = lim
	}
	prompt := g.inputTokens(req.Prompt)
	if len(req.Suffix) > 0 && string(req.Suffix) != "null" {
		prompt += g.inputTokens(req.Suffix)
	}
	m, err := g.reserve(r, c, req.Model, prompt, 0, maxOut(deps, req.MaxTokens)*max(req.N, req.Best))
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	var res *chatResult
	var choices json.RawMessage
	ids := m.ids()
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		out, err := withFields(raw, map[string]any{"model": d.cfg.Model, "max_tokens": d.maxOut(req.MaxTokens)})
		if err != nil {
			return err
		}
		resp, err := d.up.(forwarder).forward(a.ctx, d, "/completions", "application/json", out)
		if err != nil {
			return err
		}
		b, err := readBody(a.ctx, resp)
		if err != nil {
			return err
		}
		if res, choices, err = openAIResult(b, ids); err == nil && choices == nil {
			err = &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(b)}
		}
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
		var cs []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(choices, &cs)
		texts := make([]string, len(cs))
		for i, ch := range cs {
			texts[i] = ch.Text
		}
		e := m.estimate(texts...)
		u, estimated = &e, true
	}
	m.upstreamID = res.upstreamID
	m.answered(w, d)
	credits := m.settle(r.Context(), d, *u, estimated, "ok")
	writeJSON(w, http.StatusOK, res.body.with("usage", usageJSON(*u, credits)))
}
