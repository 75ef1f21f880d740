package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate"
)

// Messages serves POST /v1/messages for Anthropic-style clients, metered
// like chat, with failover across all the model's deployments. Anthropic
// deployments get the request as sent (model renamed); OpenAI-compatible
// ones get it translated to a chat request, and their answer translated
// back. usage.cost_credits is added to the response, or in a stream to the
// message_delta event. Errors use Anthropic's shape.
func (g *Gateway) Messages(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	var mr *messagesRequest
	if err == nil {
		mr, err = g.parseMessages(c, body)
	}
	if err == nil {
		err = g.admit(r, c, mr.Model)
	}
	if err != nil {
		writeAnthError(w, err)
		return
	}
	prompt := int64(primingTokens)
	for _, k := range []string{"system", "messages", "tools"} {
		prompt += g.opts.Counter.Count(string(mr.raw[k]))
	}
	var ceiling int64
	// A server tool's results (pages searched or fetched) enter the
	// prompt, whose size only the upstream then knows.
	if uncountedBlocks(mr.raw["messages"]) || len(mr.features) > 0 {
		ceiling = promptCeiling(mr.deps)
	}
	m, err := g.reserveUnits(r, c, mr.Model, prompt, ceiling, maxOut(mr.deps, mr.MaxTokens), mr.units)
	if err != nil {
		g.logInternal(r, err)
		writeAnthError(w, err)
		return
	}
	if mr.chat != nil {
		mr.chat.ids = m.ids()
	}
	var (
		resp  *http.Response // from an Anthropic deployment
		res   *chatResult    // from an OpenAI one, not streaming
		st    chunkStream    // from an OpenAI one, streaming
		first []*chunk
		lead  *leadEvents // an Anthropic stream's events before its first output
		att   *attempt
	)
	d, err := g.failover(m.ctx, m.hold.RequestID, mr.Model, mr.deps, func(a *attempt, d *deployment) error {
		var err error
		att = a
		switch an, ok := d.up.(*anthropic); {
		case ok:
			resp, err = an.passThrough(a.ctx, d, mr.raw, mr.MaxTokens)
			if err == nil && mr.Stream {
				if lead, err = readLead(a, resp); err != nil {
					resp.Body.Close()
				}
			}
		case mr.Stream:
			st, first, err = openStream(a, d, mr.chat)
		default:
			res, err = d.up.chat(a.ctx, d, mr.chat)
		}
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeAnthError(w, err)
		return
	}
	defer att.done()
	switch {
	case resp != nil && mr.Stream:
		g.messagesStream(w, r, m, d, resp, lead, att)
	case resp != nil:
		g.messagesPassThrough(w, r, m, d, resp, att)
	case st != nil:
		defer st.Close()
		g.messagesFromChunks(w, r, m, d, st, first, att)
	default:
		u, estimated := res.usage, false
		if u == nil {
			e := m.estimate(res.outputs...)
			u, estimated = &e, true
		}
		m.upstreamID = res.upstreamID
		m.answered(w, d)
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		writeJSON(w, http.StatusOK, toMessagesResponse(res.body.members(), *u, int64(credits)))
	}
}

// messagesRequest is a client's Messages API request, routed.
type messagesRequest struct {
	raw       map[string]json.RawMessage
	Model     string `json:"model"`
	MaxTokens int64  `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	deps      []*deployment
	chat      *chatRequest // the request translated for OpenAI-compatible deployments
	// features are the server tools it offers (web search and fetch), sold
	// where the model prices them.
	features []feature
	units    tollgate.Tokens // the features' units at their worst case
}

// parseMessages decodes and checks a Messages request, finds the model's
// deployments and applies the key's output limit.
func (g *Gateway) parseMessages(c tollgate.Caller, body []byte) (*messagesRequest, error) {
	mr := &messagesRequest{}
	if json.Unmarshal(body, &mr.raw) != nil || json.Unmarshal(body, mr) != nil {
		return nil, invalid("request body must be a Messages API JSON object")
	}
	if mr.Model == "" || mr.MaxTokens < 1 || len(mr.raw["messages"]) == 0 {
		return nil, invalid("model, max_tokens and messages are required")
	}
	var err error
	if mr.features, mr.raw["tools"], err = messagesFeatures(mr.raw["tools"]); err != nil {
		return nil, err
	}
	if mr.raw["tools"] == nil {
		delete(mr.raw, "tools")
	}
	// Inference kept in one region costs more (Anthropic: 1.1× for "us")
	// than the model's price tollgate bills.
	if geo, ok := mr.raw["inference_geo"]; ok && string(geo) != "null" && string(geo) != `"global"` {
		return nil, invalid(`inference_geo: only "global" is available; inference in one region costs more than tollgate bills`)
	}
	deps, err := g.lookup(c, mr.Model)
	if err == nil {
		mr.units, err = g.sellable(mr.Model, mr.features)
	}
	if err != nil {
		return nil, err
	}
	if mr.chat, mr.deps, err = messagesRoutes(mr.Model, mr.raw, deps); err != nil {
		return nil, err
	}
	if lim := c.Limits.MaxOutputTokens; lim > 0 && mr.MaxTokens > lim {
		mr.MaxTokens = lim
		if mr.chat != nil {
			mr.chat.MaxTokens = lim
		}
	}
	return mr, nil
}

// uncountedBlocks reports whether a Messages request's messages hold a
// block whose tokens only the upstream can count: an image or a document
// (a PDF's pages are read as images), in a message or in a tool result.
// Messages it cannot read count as such: the hold then covers anything.
func uncountedBlocks(messages json.RawMessage) bool {
	var msgs []struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(messages, &msgs) != nil {
		return true
	}
	return slices.ContainsFunc(msgs, func(m struct {
		Content json.RawMessage `json:"content"`
	}) bool {
		return uncountedContent(m.Content)
	})
}

// uncountedContent is uncountedBlocks for one content: a string, or blocks.
func uncountedContent(content json.RawMessage) bool {
	if len(content) == 0 || content[0] != '[' {
		return false // a string: text
	}
	var blocks []struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"` // a tool result's
	}
	if json.Unmarshal(content, &blocks) != nil {
		return true
	}
	for _, b := range blocks {
		if b.Type == "image" || b.Type == "document" || (b.Type == "tool_result" && uncountedContent(b.Content)) {
			return true
		}
	}
	return false
}

// clientToolTypes are the tool types a Messages request may carry that
// the client runs (its own, and Anthropic's bash, text editor, computer and
// memory tools), whose only cost is tokens. Anthropic's server tools carry
// fees per use: web search and web fetch are sold where priced
// (messagesFeatures), the others refused.
var clientToolTypes = []string{"bash_", "text_editor_", "computer_", "memory_"}

// messagesRoutes returns the deployments that can serve a Messages request
// and, when OpenAI-compatible ones are among them, the request translated
// for them. A request that cannot be translated keeps only the Anthropic
// deployments.
func messagesRoutes(model string, raw map[string]json.RawMessage, deps []*deployment) (*chatRequest, []*deployment, error) {
	anth, err := anthropicDeployments(model, deps)
	if len(anth) == len(deps) {
		return nil, deps, nil
	}
	creq, terr := fromMessagesRequest(raw)
	if terr == nil {
		return creq, deps, nil
	}
	if err != nil {
		return nil, nil, terr
	}
	return nil, anth, nil
}

// messagesPassThrough relays a complete Anthropic answer with its cost,
// the request's id and the model asked for.
func (g *Gateway) messagesPassThrough(w http.ResponseWriter, r *http.Request, m *metered, d *deployment, resp *http.Response, att *attempt) {
	b, err := readBody(att.ctx, resp)
	var out map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		m.release(r.Context())
		writeAnthError(w, &tollgate.Error{Code: tollgate.EUPSTREAM, Message: "the upstream answer could not be read", Err: err})
		return
	}
	var au anthUsage
	_ = json.Unmarshal(out["usage"], &au)
	u, estimated := au.normalise(), false
	if au == (anthUsage{}) {
		var msg anthResponse
		_ = json.Unmarshal(b, &msg)
		e := m.estimate(anthText(msg.Content))
		u, estimated = &e, true
	}
	_ = json.Unmarshal(out["id"], &m.upstreamID)
	ids := m.ids()
	out["id"], out["model"] = ids.id, ids.model
	m.answered(w, d)
	credits := m.settle(r.Context(), d, *u, estimated, "ok")
	out["usage"] = withCost(out["usage"], credits)
	writeJSON(w, http.StatusOK, out)
}

// messagesFromChunks relays an OpenAI-compatible stream as Messages events.
func (g *Gateway) messagesFromChunks(w http.ResponseWriter, r *http.Request, m *metered, d *deployment, st chunkStream, first []*chunk, att *attempt) {
	m.answered(w, d)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ew := &eventWriter{rl: g.newRelay(w, false)}
	for _, c := range first {
		ew.chunk(c)
	}
	g.observeFirstToken(m, d)
	var upErr error
	for ew.rl.err == nil {
		chunk, err := st.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			upErr = err
			break
		}
		att.touch()
		ew.chunk(chunk)
	}
	m.upstreamID = st.upstreamID()
	u, estimated := st.usage(), false
	if u == nil {
		e := m.estimate(ew.rl.outputs(false)...)
		u, estimated = &e, true
	}
	switch {
	case ew.rl.err != nil || r.Context().Err() != nil:
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case upErr != nil && m.overtime():
		m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		ew.event("error", anthDeadlineEvent(m))
	case upErr != nil:
		m.settle(r.Context(), d, *u, estimated, "interrupted")
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
		ew.fail("the upstream stream was interrupted")
	default:
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		ew.finish(*u, int64(credits))
	}
}

// messagesStream relays a Messages stream verbatim, reading usage from
// message_start and message_delta, giving the former the request's id and
// the model asked for, and adding cost_credits to the latter.
func (g *Gateway) messagesStream(w http.ResponseWriter, r *http.Request, m *metered, d *deployment, resp *http.Response, lead *leadEvents, att *attempt) {
	defer resp.Body.Close()
	m.answered(w, d)
	ids := m.ids()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rl := g.newRelay(w, false)
	g.observeFirstToken(m, d) // lead holds the events up to the first output
	var start anthUsage
	startSeen := false
	var final *tokenUsage
	var upErr error
	complete := false
	for rl.err == nil && !complete && upErr == nil {
		event, data, err := lead.next()
		if err != nil {
			upErr = classify(att.ctx, err)
			break
		}
		att.touch()
		var ev anthEvent
		_ = json.Unmarshal(data, &ev)
		switch ev.Type {
		case "error":
			upErr = &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(data)} // relayed as is below
		case "message_start":
			start, startSeen = ev.Message.Usage, true
			if m.upstreamID == "" {
				m.upstreamID = ev.Message.ID
			}
			data = withMessageIDs(data, ids)
		case "content_block_delta":
			rl.add(0, ev.Delta.Text+ev.Delta.PartialJSON)
		case "message_delta":
			if ev.Usage != nil {
				final = start.merge(*ev.Usage).normalise()
				data = g.annotateDelta(data, m, *final)
			}
		case "message_stop":
			complete = true
		}
		line := "data: " + string(data) + "\n\n"
		if event != "" {
			line = "event: " + event + "\n" + line
		}
		rl.write(line)
	}
	u, estimated := final, false
	if u == nil {
		e := m.estimate(rl.outputs(false)...)
		if startSeen {
			// The upstream already reported the prompt in message_start:
			// bill that (docs/DESIGN.md §2.6), and only the output delivered is counted.
			out := e.Output
			e = *start.normalise()
			e.Output = out
		}
		u, estimated = &e, true
	}
	switch {
	case rl.err != nil || r.Context().Err() != nil:
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case !complete && m.overtime():
		m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		msg, _ := json.Marshal(anthDeadlineEvent(m))
		rl.write("event: error\ndata: " + string(msg) + "\n\n")
	case !complete:
		m.settle(r.Context(), d, *u, estimated, "interrupted")
		var ue *upstreamError
		if !errors.As(upErr, &ue) || ue.Status == 0 { // an upstream error event was relayed already
			msg, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": "the upstream stream was interrupted"}})
			rl.write("event: error\ndata: " + string(msg) + "\n\n")
		}
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
	default:
		m.settle(r.Context(), d, *u, estimated, "ok")
	}
}

// withMessageIDs gives a message_start event's message ids's id and
// model: the two values are spliced in place of the upstream's, the rest
// of the event left as sent. data is the event's own buffer.
func withMessageIDs(data []byte, ids *answerIDs) []byte {
	var arr [2]span
	spans := arr[:0]
	for _, f := range []struct {
		path string
		to   []byte
	}{{"message.model", ids.model}, {"message.id", ids.id}} {
		v := gjson.GetBytes(data, f.path)
		if v.Exists() && v.Index > 0 && !bytes.Equal(data[v.Index:v.Index+len(v.Raw)], f.to) {
			spans = append(spans, span{v.Index, v.Index + len(v.Raw), f.to})
		}
	}
	if len(spans) == 2 && spans[0].from < spans[1].from {
		spans[0], spans[1] = spans[1], spans[0] // the last first
	}
	for _, sp := range spans {
		data = slices.Replace(data, sp.from, sp.to, sp.repl...)
	}
	return data
}

// anthDeadlineEvent is the error event that ends a Messages stream at
// MaxRequestDuration.
func anthDeadlineEvent(m *metered) map[string]any {
	msg := tollgate.ErrorMessage(m.deadlineError())
	return map[string]any{"type": "error", "error": map[string]string{"type": "timeout_error", "message": msg}}
}

// annotateDelta adds cost_credits to a message_delta event's usage; the
// cost is the one settle will charge for the same usage.
func (g *Gateway) annotateDelta(data []byte, m *metered, u tokenUsage) []byte {
	credits := m.cost(u)
	var ev map[string]json.RawMessage
	if json.Unmarshal(data, &ev) != nil {
		return data
	}
	ev["usage"] = withCost(ev["usage"], credits)
	b, err := json.Marshal(ev)
	if err != nil {
		return data
	}
	return b
}

// withCost adds cost_credits to a usage object.
func withCost(raw json.RawMessage, credits tollgate.Credits) json.RawMessage {
	u := map[string]json.RawMessage{}
	_ = json.Unmarshal(raw, &u)
	u["cost_credits"], _ = json.Marshal(int64(credits))
	b, _ := json.Marshal(u)
	return b
}

func anthText(blocks []anthBlock) string {
	var b strings.Builder
	for _, blk := range blocks {
		b.WriteString(blk.Text)
		b.WriteString(blk.Name)
		b.Write(blk.Input)
	}
	return b.String()
}

// anthropicDeployments keeps the deployments speaking the Messages API.
func anthropicDeployments(model string, deps []*deployment) ([]*deployment, error) {
	var out []*deployment
	for _, d := range deps {
		if d.provider.Kind == KindAnthropic {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, tollgate.Errorf(tollgate.EINVALID, "the model %q is not served over /v1/messages; use /v1/chat/completions", model)
	}
	return out, nil
}

// writeAnthError writes err in Anthropic's error shape with the status
// the OpenAI endpoints would use and the Anthropic type of tollgate's
// error table; a body too large and a timed-out upstream have types of
// their own.
func writeAnthError(w http.ResponseWriter, err error) {
	status, retry, kind, _, msg := shownError(err)
	typ := kind.AnthropicType
	switch status {
	case http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case http.StatusGatewayTimeout:
		typ = "timeout_error"
	}
	if retry > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
	}
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// sseEvent is one Server-Sent Event read ahead.
type sseEvent struct {
	event string
	data  []byte
}

// leadEvents replays the events read before committing to an upstream,
// then reads on.
type leadEvents struct {
	events []sseEvent
	sse    *sseReader
}

func (l *leadEvents) next() (string, []byte, error) {
	if len(l.events) > 0 {
		e := l.events[0]
		l.events = l.events[1:]
		return e.event, e.data, nil
	}
	return l.sse.next()
}

// readLead reads a Messages stream up to its first output (a content delta
// or the message's end), so an upstream that fails before any output (an
// overloaded_error event right after message_start) can still be failed
// over.
func readLead(a *attempt, resp *http.Response) (*leadEvents, error) {
	l := &leadEvents{sse: newSSEReader(resp.Body)}
	for len(l.events) < maxLeadChunks {
		event, data, err := l.sse.next()
		if err != nil {
			return nil, classify(a.ctx, err)
		}
		a.touch()
		var ev anthEvent
		_ = json.Unmarshal(data, &ev)
		switch ev.Type {
		case "error":
			status := http.StatusBadGateway
			if strings.Contains(string(ev.Error), "overloaded") {
				status = http.StatusServiceUnavailable
			}
			return nil, &upstreamError{Status: status, Message: upstreamMessage(data)}
		case "content_block_delta", "message_delta", "message_stop":
			l.events = append(l.events, sseEvent{event, data})
			return l, nil
		}
		l.events = append(l.events, sseEvent{event, data})
	}
	return l, nil
}

// CountTokens serves POST /v1/messages/count_tokens (Anthropic's token
// counting): the prompt of a Messages request (system, messages, tools)
// counted with the gateway's tokenizer, as {"input_tokens": N}. It needs
// a key allowed to use the model and no balance; nothing is held or
// charged.
func (g *Gateway) CountTokens(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeAnthError(w, err)
		return
	}
	var req struct {
		Model string `json:"model"`
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &req) != nil {
		writeAnthError(w, invalid("request body must be a Messages API JSON object"))
		return
	}
	if req.Model == "" || len(raw["messages"]) == 0 {
		writeAnthError(w, invalid("model and messages are required"))
		return
	}
	if _, err := g.lookup(c, req.Model); err != nil {
		writeAnthError(w, err)
		return
	}
	n := int64(primingTokens)
	for _, k := range []string{"system", "messages", "tools"} {
		if v := raw[k]; len(v) > 0 {
			n += g.opts.Counter.Count(string(v))
		}
	}
	writeJSON(w, http.StatusOK, map[string]int64{"input_tokens": n})
}
