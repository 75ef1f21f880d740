package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"tollgate"
)

// chatStream serves a streaming chat request. Failover is possible until
// the first chunk with output has been read from an upstream (the
// role-only chunks before it are held back); once bytes reached the
// client, a broken upstream ends the stream with an error event and
// [DONE], and the request is billed on what was delivered.
func (g *Gateway) chatStream(w http.ResponseWriter, r *http.Request, m *metered, deps []*deployment, req *chatRequest) {
	var (
		st    chunkStream
		first []*chunk
		att   *attempt
	)
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		s, chunks, err := openStream(a, d, req)
		st, first, att = s, chunks, a
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	defer att.done()
	defer st.Close()

	rl := g.newRelay(w, true)
	st.onWait(func() { rl.flush() })
	m.answered(w, d)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	for _, c := range first {
		rl.push(c)
	}
	rl.flush() // the first token leaves now, whatever else is already buffered
	g.observeFirstToken(m, d)
	var upErr error
	for rl.err == nil {
		chunk, err := st.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			upErr = err
			break
		}
		att.touch()
		rl.push(chunk)
	}

	m.upstreamID = st.upstreamID()
	gone := rl.err != nil || r.Context().Err() != nil
	if upErr != nil && !gone {
		rl.flushPending() // delivered before the error event, so billed
	}
	u, estimated := st.usage(), false
	if u == nil {
		// A chunk still held back is delivered by finish: count it too.
		e := m.estimate(rl.outputs(!gone)...)
		if ir, ok := st.(inputReporter); ok {
			if in := ir.inputUsage(); in != nil {
				e.Input, e.Cached = in.Input, in.Cached
			}
		}
		u, estimated = &e, true
	}
	switch {
	case gone:
		// The client went away: the upstream call is cancelled by the
		// deferred att.done; bill what was delivered.
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case upErr != nil && m.overtime():
		// Ended at MaxRequestDuration: billed for what was delivered, and
		// closed properly, saying why.
		credits := m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		g.opts.Logger.InfoContext(r.Context(), "stream ended at the request time limit", "request_id", m.hold.RequestID, "deployment", d.id)
		if req.IncludeUsage {
			rl.emit(usageChunk(rl.last, usageJSON(*u, credits)))
		}
		_, _, body := errorBody(m.deadlineError())
		rl.emit(body)
		rl.done()
	case upErr != nil:
		m.settle(r.Context(), d, *u, estimated, "interrupted")
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
		_, _, body := errorBody(&tollgate.Error{Code: tollgate.EUPSTREAM, Message: "the upstream stream was interrupted", Err: upErr})
		rl.emit(body)
		rl.done()
	default:
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		rl.finish(usageJSON(*u, credits), req.IncludeUsage)
	}
}

// maxLeadChunks bounds the output-less chunks read before committing to
// an upstream.
const maxLeadChunks = 8

// openStream opens a stream on d and reads up to its first chunk carrying
// output (text, a tool call or a finish reason), so that an upstream
// failing before any output, even after its role chunk, can still be
// failed over. It returns the chunks read.
func openStream(a *attempt, d *deployment, req *chatRequest) (chunkStream, []*chunk, error) {
	s, err := d.up.chatStream(a.ctx, d, req)
	if err != nil {
		return nil, nil, err
	}
	var chunks []*chunk
	for len(chunks) < maxLeadChunks {
		chunk, err := s.next()
		if err == io.EOF && len(chunks) > 0 {
			return s, chunks, nil // a complete answer without output: relay it
		}
		if err != nil {
			s.Close()
			if err == io.EOF {
				return nil, nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream stream ended without output"}
			}
			return nil, nil, err
		}
		a.touch()
		chunks = append(chunks, chunk)
		if hasOutput(chunk) {
			break
		}
	}
	return s, chunks, nil
}

// hasOutput reports whether a chunk carries output or a finish reason.
func hasOutput(chunk *chunk) bool {
	for _, c := range chunk.cs {
		if c.text() != "" || (c.FinishReason != nil && *c.FinishReason != "") {
			return true
		}
	}
	return false
}

// relay writes chunks to the client as SSE. A chunk carrying a
// finish_reason is held back until the next one arrives, so that the last
// chunk before [DONE] can carry the usage when the client did not ask for
// a separate usage chunk.
type relay struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	pending *chunk                   // held back: it carries a finish reason
	last    *chunk                   // the latest chunk, for id/created/model
	texts   map[int]*strings.Builder // delivered output per choice, for billing without usage
	err     error                    // the first write error: the client is gone
	buf     []byte                   // reused for each event written
	// lazy leaves flushing to the upstream stream's onWait hook: events
	// go out when the relay would otherwise wait for the upstream, and at
	// the end of the response, not one write per event.
	lazy bool
	// writeTimeout bounds each write to the client (Options.StreamWriteTimeout).
	writeTimeout time.Duration
}

// newRelay returns a relay writing to w, flushing lazily when lazy.
func (g *Gateway) newRelay(w http.ResponseWriter, lazy bool) *relay {
	return &relay{w: w, rc: http.NewResponseController(w), lazy: lazy, writeTimeout: g.opts.StreamWriteTimeout}
}

// add records text delivered for choice i.
func (rl *relay) add(i int, s string) {
	if s == "" {
		return
	}
	if rl.texts == nil {
		rl.texts = map[int]*strings.Builder{}
	}
	b, ok := rl.texts[i]
	if !ok {
		b = &strings.Builder{}
		rl.texts[i] = b
	}
	b.WriteString(s)
}

// outputs returns the delivered text of each choice, with the text of the
// chunk held back when withPending.
func (rl *relay) outputs(withPending bool) []string {
	texts := map[int]string{}
	for i, b := range rl.texts {
		texts[i] = b.String()
	}
	if withPending && rl.pending != nil {
		for _, c := range rl.pending.cs {
			texts[c.Index] += c.text()
		}
	}
	out := make([]string, 0, len(texts))
	for _, t := range texts {
		out = append(out, t)
	}
	return out
}

func (rl *relay) push(c *chunk) {
	rl.flushPending()
	rl.last = c
	if anyFinish(c.cs) {
		rl.pending = c
		return
	}
	rl.emitChunk(c)
}

func (rl *relay) flushPending() {
	if rl.pending != nil {
		rl.emitChunk(rl.pending)
		rl.pending = nil
	}
}

// emitChunk writes c and records the text of its choices.
func (rl *relay) emitChunk(c *chunk) {
	if rl.emit(c) {
		for _, ch := range c.cs {
			rl.add(ch.Index, ch.text())
		}
	}
}

// emit writes one data event (a chunk, or a value to marshal) and
// flushes unless lazy; it reports whether it succeeded. A chunk as the
// upstream sent it is written as it is.
func (rl *relay) emit(v any) bool {
	if rl.err != nil {
		return false
	}
	b, err := appendJSON(append(rl.buf[:0], "data: "...), v)
	if err != nil {
		rl.err = err
		return false
	}
	rl.buf = b
	return rl.endEvent()
}

// endEvent ends the event in rl.buf and writes it.
func (rl *relay) endEvent() bool {
	rl.buf = append(rl.buf, "\n\n"...)
	return rl.writeBytes(rl.buf)
}

// appendJSON appends v to dst: a chunk as the bytes it keeps (an
// upstream's chunk or answer as sent) or from its members, anything else
// marshalled. With an empty dst, a chunk's own bytes may come back,
// clipped: appending to them copies.
func appendJSON(dst []byte, v any) ([]byte, error) {
	if c, ok := v.(*chunk); ok {
		if c.raw != nil {
			raw := bytes.TrimRight(c.raw, " \t\r\n")
			if len(dst) == 0 {
				return slices.Clip(raw), nil
			}
			return append(dst, raw...), nil
		}
		v = c.fields
	}
	if obj, ok := v.(map[string]json.RawMessage); ok && appendChunk(&dst, obj) {
		return dst, nil
	}
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// appendChunk appends chunk to *buf as json.Marshal would, keys sorted,
// but copying each value as it is instead of re-encoding it: the values
// are upstream JSON already validated (objectFields), or our own
// json.Marshal output. It reports false, leaving *buf to be overwritten,
// when a key or value needs json.Marshal's care (see verbatim).
func appendChunk(buf *[]byte, chunk map[string]json.RawMessage) bool {
	var arr [16]string
	keys := arr[:0]
	for k := range chunk {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := append(*buf, '{')
	for i, k := range keys {
		v := chunk[k]
		if !plainKey(k) || !verbatim(v) {
			return false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), k...), '"', ':')
		b = append(b, v...)
	}
	*buf = append(b, '}')
	return true
}

// verbatim reports whether a value can be copied into an SSE data line
// as it is: not empty, on one line (a newline could only be whitespace
// between JSON tokens, but would end the event), and free of what
// json.Marshal escapes (<, >, & and U+2028/U+2029).
func verbatim(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for i, c := range v {
		switch {
		case c == '\n' || c == '\r' || c == '<' || c == '>' || c == '&':
			return false
		case c == 0xe2 && i+2 < len(v) && v[i+1] == 0x80 && (v[i+2] == 0xa8 || v[i+2] == 0xa9):
			return false
		}
	}
	return true
}

// plainKey reports whether a key needs no escaping: printable ASCII
// without quotes, backslashes or what json.Marshal escapes.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// write writes s, and flushes it unless the relay is lazy.
func (rl *relay) write(s string) bool {
	return rl.send(func() error { _, err := io.WriteString(rl.w, s); return err }, !rl.lazy)
}

// writeBytes is write for a byte slice, without copying it to a string.
func (rl *relay) writeBytes(b []byte) bool {
	return rl.send(func() error { _, err := rl.w.Write(b); return err }, !rl.lazy)
}

// send runs write unless the client is gone, then flushes when flush is
// set; it reports whether the client is still there.
func (rl *relay) send(write func() error, flush bool) bool {
	if rl.err != nil {
		return false
	}
	rl.renew()
	if err := write(); err != nil {
		rl.err = err
		return false
	}
	return !flush || rl.flushNow()
}

// flush sends what is buffered to the client.
func (rl *relay) flush() bool {
	if rl.err != nil {
		return false
	}
	rl.renew()
	return rl.flushNow()
}

func (rl *relay) flushNow() bool {
	if err := rl.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		rl.err = err
		return false
	}
	return true
}

// renew gives the writes that follow writeTimeout to reach the client
// (any write may be the one that sends the buffer): a client that stops
// reading is cut off then, its write fails, and the stream ends settled
// on what was delivered, instead of holding its connection, its upstream
// call and its hold for as long as the client likes. The deadline is real
// time on the socket, not the service's clock; net/http lifts it once the
// response is finished (after the last write, which it makes itself).
func (rl *relay) renew() {
	if rl.writeTimeout > 0 {
		_ = rl.rc.SetWriteDeadline(time.Now().Add(rl.writeTimeout))
	}
}

// done writes [DONE] without flushing it: the handler returns right
// after, and net/http then sends it with the response's terminating
// chunk in one write, where a flush here was a write of its own.
func (rl *relay) done() {
	rl.send(func() error { _, err := io.WriteString(rl.w, "data: [DONE]\n\n"); return err }, false)
}

// finish ends a complete stream: the usage chunk when the client asked for
// it, else the usage on the last chunk; then [DONE].
func (rl *relay) finish(usage json.RawMessage, separate bool) {
	if separate {
		rl.flushPending()
		rl.emit(usageChunk(rl.last, usage))
		rl.done()
		return
	}
	last := rl.pending
	rl.pending = nil
	if last == nil {
		last = usageChunk(rl.last, nil)
	}
	rl.emitChunk(last.with("usage", usage))
	rl.done()
}

// usageChunk is a chunk with no choices, shaped like the stream's others
// (like, when there was one).
func usageChunk(like *chunk, usage json.RawMessage) *chunk {
	c := map[string]json.RawMessage{"object": json.RawMessage(`"chat.completion.chunk"`), "choices": json.RawMessage(`[]`)}
	if like != nil {
		fields := like.members()
		for _, k := range []string{"id", "created", "model", "system_fingerprint"} {
			if v, ok := fields[k]; ok {
				c[k] = v
			}
		}
	}
	if usage != nil {
		c["usage"] = usage
	}
	return &chunk{fields: c}
}

// streamChoice is the part of a chunk's choice the gateway reads.
type streamChoice struct {
	Index int
	Delta struct {
		Content   *string
		Refusal   *string
		ToolCalls []streamToolCall
	}
	FinishReason *string
}

// streamToolCall is the part of a tool call's delta the gateway counts.
type streamToolCall struct {
	Function struct{ Name, Arguments string }
}

// choicesOf reads the choices of a chunk (validated JSON) without decoding
// the rest: a walk over the few members a choice's delta has. A member of
// an unexpected type is skipped, as if absent. The strings it returns may
// share raw's memory (no copy of every chunk): raw must not change after.
func choicesOf(raw json.RawMessage) []streamChoice {
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var cs []streamChoice
	gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw))).ForEach(func(_, c gjson.Result) bool {
		var sc streamChoice
		c.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				if v.Type == gjson.Number {
					sc.Index = int(v.Int())
				}
			case "finish_reason":
				sc.FinishReason = stringOf(v)
			case "delta":
				v.ForEach(func(k, v gjson.Result) bool {
					switch k.Str {
					case "content":
						sc.Delta.Content = stringOf(v)
					case "refusal":
						sc.Delta.Refusal = stringOf(v)
					case "tool_calls":
						v.ForEach(func(_, tc gjson.Result) bool {
							var call streamToolCall
							call.Function.Name = tc.Get("function.name").Str
							call.Function.Arguments = tc.Get("function.arguments").Str
							sc.Delta.ToolCalls = append(sc.Delta.ToolCalls, call)
							return true
						})
					}
					return true
				})
			}
			return true
		})
		cs = append(cs, sc)
		return true
	})
	return cs
}

// stringOf is a JSON string's value; nil for anything else.
func stringOf(v gjson.Result) *string {
	if v.Type != gjson.String {
		return nil
	}
	s := v.Str
	return &s
}

// anyFinish reports whether one of cs carries a finish reason.
func anyFinish(cs []streamChoice) bool {
	for _, c := range cs {
		if c.FinishReason != nil && *c.FinishReason != "" {
			return true
		}
	}
	return false
}

// text is the generated text a choice's delta carries.
func (c streamChoice) text() string {
	if c.Delta.Refusal == nil && len(c.Delta.ToolCalls) == 0 {
		if c.Delta.Content == nil {
			return ""
		}
		return *c.Delta.Content // the usual case, without a copy
	}
	var b strings.Builder
	if c.Delta.Content != nil {
		b.WriteString(*c.Delta.Content)
	}
	if c.Delta.Refusal != nil {
		b.WriteString(*c.Delta.Refusal)
	}
	for _, tc := range c.Delta.ToolCalls {
		b.WriteString(tc.Function.Name + tc.Function.Arguments)
	}
	return b.String()
}
