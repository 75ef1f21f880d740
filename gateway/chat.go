package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"tollgate"
)

// begin authenticates (through the tollgate.Caller in the context), reads
// the body within the size limit and returns both.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request) (tollgate.Caller, []byte, error) {
	return g.beginLimit(w, r, g.opts.MaxBodyBytes)
}

// beginLimit is begin for a body of at most limit bytes.
func (g *Gateway) beginLimit(w http.ResponseWriter, r *http.Request, limit int64) (tollgate.Caller, []byte, error) {
	c, ok := tollgate.CallerFrom(r.Context())
	if !ok {
		return c, nil, tollgate.Errorf(tollgate.EUNAUTHORIZED, "missing or invalid API key")
	}
	if r.ContentLength > limit {
		return c, nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return c, nil, tooLarge(limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The body's read deadline (httpapi.WithBodyDeadline) passed.
			return c, nil, &StatusError{Status: http.StatusRequestTimeout, Code: "request_timeout",
				Err: &tollgate.Error{Code: tollgate.EINVALID, Message: "request body not received in time; send it at once", Err: err}}
		}
		return c, nil, &tollgate.Error{Code: tollgate.EINVALID, Message: "request body could not be read", Err: err}
	}
	return c, body, nil
}

func tooLarge(limit int64) error {
	return &StatusError{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
		Err: tollgate.Errorf(tollgate.EINVALID, "request body larger than %d bytes", limit)}
}

// admit asks the Admitter, if any, whether the caller may start a request.
func (g *Gateway) admit(r *http.Request, c tollgate.Caller, model string) error {
	if g.opts.Admitter == nil {
		return nil
	}
	return g.opts.Admitter.Admit(r.Context(), c, model)
}

// ChatCompletions serves POST /v1/chat/completions, streaming (SSE) or not.
// Every call is reserved through the Meter before going upstream and
// settled after; the answer's usage carries cost_credits.
func (g *Gateway) ChatCompletions(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := parseChatRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	deps, err := g.lookup(c, req.Model)
	var units tollgate.Tokens
	if err == nil {
		units, err = g.sellable(req.Model, req.features)
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
	var ceiling int64
	if req.uncounted {
		ceiling = promptCeiling(deps)
	}
	out := maxOut(deps, req.MaxTokens) * req.N
	if units.AudioOutput > 0 {
		units.AudioOutput = out // any output token may be audio
	}
	m, err := g.reserveUnits(r, c, req.Model, promptTokens(g.opts.Counter, req), ceiling, out, units)
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	m.perAnswer.WebSearches = units.WebSearches // billed per answer, not reported
	req.ids = m.ids()
	if req.Stream {
		g.chatStream(w, r, m, deps, req)
		return
	}
	var res *chatResult
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		var err error
		res, err = d.up.chat(a.ctx, d, req)
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
		e := m.estimate(res.outputs...)
		u, estimated = &e, true
	}
	m.upstreamID = res.upstreamID
	m.answered(w, d)
	credits := m.settle(r.Context(), d, *u, estimated, "ok")
	writeJSON(w, http.StatusOK, res.body.with("usage", usageJSON(*u, credits)))
}

// logInternal logs errors that are shown to clients only as "internal
// error". A client that went away is not one: it is noted at info.
func (g *Gateway) logInternal(r *http.Request, err error) {
	switch {
	case isClientGone(err):
		g.opts.Logger.InfoContext(r.Context(), "client went away", "path", r.URL.Path, "err", err)
	case tollgate.ErrorCode(err) == tollgate.EINTERNAL:
		g.opts.Logger.ErrorContext(r.Context(), "gateway internal error", "path", r.URL.Path, "err", err)
	}
}

// writeJSON writes v as the response body (appendJSON).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := appendJSON(nil, v)
	if err != nil {
		writeError(w, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n")
}
