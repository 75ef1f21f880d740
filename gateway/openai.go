package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"tollgate"
)

// openAI is an OpenAI-compatible upstream: the request passes through with
// the model renamed, and streams always ask for usage.
type openAI struct {
	client *http.Client
	clock  tollgate.Clock
}

func (o *openAI) header(d *deployment) http.Header {
	h := http.Header{}
	if d.provider.APIKey != "" {
		h.Set("Authorization", "Bearer "+d.provider.APIKey)
	}
	return h
}

func (o *openAI) body(d *deployment, req *chatRequest, stream bool) ([]byte, error) {
	set := map[string]any{"model": d.cfg.Model}
	// The hold covers at most maxOut tokens, so the upstream is told so,
	// always: in the field the client used (max_completion_tokens for
	// reasoning models), else max_tokens. Output beyond the hold would be
	// the operator's to pay, since a settle never charges more than held.
	field := "max_tokens"
	if _, ok := req.raw["max_completion_tokens"]; ok {
		field = "max_completion_tokens"
		set["max_tokens"] = nil
	}
	set[field] = d.maxOut(req.MaxTokens)
	if stream {
		opts := map[string]json.RawMessage{}
		if raw, ok := req.raw["stream_options"]; ok {
			_ = json.Unmarshal(raw, &opts)
		}
		opts["include_usage"] = json.RawMessage("true")
		set["stream"], set["stream_options"] = true, opts
	} else {
		set["stream"], set["stream_options"] = nil, nil
	}
	return withFields(req.raw, set)
}

func (o *openAI) chat(ctx context.Context, d *deployment, req *chatRequest) (*chatResult, error) {
	body, err := o.body(d, req, false)
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/chat/completions"), o.header(d), body, o.clock)
	if err != nil {
		return nil, err
	}
	b, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res, choices, err := openAIResult(b, req.ids)
	if err != nil {
		return nil, err
	}
	if choices == nil {
		// Some compatible servers answer 200 with only an error object.
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(b)}
	}
	if res.usage != nil {
		return res, nil // outputs are only counted when there is no usage
	}
	var msgs []struct {
		Message chatMessage `json:"message"`
	}
	_ = json.Unmarshal(choices, &msgs)
	for _, c := range msgs {
		res.outputs = append(res.outputs, messageText(c.Message))
	}
	return res, nil
}

// messageText is the generated text of a message: content and tool calls.
func messageText(m chatMessage) string {
	s := contentText(m.Content)
	for _, tc := range m.ToolCalls {
		s += tc.Function.Name + tc.Function.Arguments
	}
	return s
}

// parseOpenAIUsage reads an OpenAI usage object; nil when absent, empty
// or not of the documented shape (the tokens are then counted instead).
func parseOpenAIUsage(raw json.RawMessage) *tokenUsage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	m, err := objectFields(raw)
	if err != nil {
		return nil
	}
	var u tokenUsage
	if !intField(m, "prompt_tokens", &u.Input) || !intField(m, "completion_tokens", &u.Output) {
		return nil
	}
	if d := m["prompt_tokens_details"]; len(d) > 0 && string(d) != "null" {
		details, err := objectFields(d)
		if err != nil || !intField(details, "cached_tokens", &u.Cached) || !intField(details, "audio_tokens", &u.Units.AudioInput) {
			return nil
		}
	}
	if d := m["completion_tokens_details"]; len(d) > 0 && string(d) != "null" {
		details, err := objectFields(d)
		if err != nil || !intField(details, "audio_tokens", &u.Units.AudioOutput) {
			return nil
		}
	}
	// DeepSeek reports its cache hits apart, as prompt_cache_hit_tokens
	// (counted inside prompt_tokens, as OpenAI's cached_tokens are).
	if u.Cached == 0 && !intField(m, "prompt_cache_hit_tokens", &u.Cached) {
		return nil
	}
	if u.Input == 0 && u.Output == 0 {
		return nil
	}
	u.Cached = min(u.Cached, u.Input)
	// Audio tokens are among prompt_tokens and completion_tokens.
	u.Units.AudioInput = min(u.Units.AudioInput, u.Input-u.Cached)
	u.Units.AudioOutput = min(u.Units.AudioOutput, u.Output)
	u.raw = m
	return &u
}

// intField reads the integer member name of m into dst (absent or null
// leaves it 0); false when it is anything but an integer.
func intField(m map[string]json.RawMessage, name string, dst *int64) bool {
	v, ok := m[name]
	if !ok || string(v) == "null" {
		return true
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (o *openAI) embed(ctx context.Context, d *deployment, body []byte, ids *answerIDs) (*chatResult, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("embeddings body: %w", err)
	}
	b, err := withFields(raw, map[string]any{"model": d.cfg.Model})
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/embeddings"), o.header(d), b, o.clock)
	if err != nil {
		return nil, err
	}
	b, err = readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res, _, err := openAIResult(b, ids)
	return res, err
}

// openAIResult reads an OpenAI-shaped answer, kept as sent but for its
// usage, which it returns read, and its id and model, which become ids's
// (when not nil); and the value of its choices (nil when absent). b is the
// answer's own buffer.
func openAIResult(b []byte, ids *answerIDs) (*chatResult, json.RawMessage, error) {
	var up string
	o, err := cutUsage(b, ids, &up)
	if err != nil {
		return nil, nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	u := parseOpenAIUsage(o.usage)
	if u != nil {
		u.Units.Priority = o.priority
	}
	return &chatResult{body: &chunk{raw: o.raw, usageCut: true}, usage: u, upstreamID: up}, o.choices, nil
}

func (o *openAI) chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error) {
	body, err := o.body(d, req, true)
	if err != nil {
		return nil, err
	}
	h := o.header(d)
	h.Set("Accept", "text/event-stream")
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/chat/completions"), h, body, o.clock)
	if err != nil {
		return nil, err
	}
	sse := newSSEReader(resp.Body)
	sse.slack = sseSlack
	return &openAIStream{ctx: ctx, body: resp.Body, sse: sse, ids: req.ids}, nil
}

// openAIStream reads an OpenAI SSE stream, its chunks given the request's
// id and model.
type openAIStream struct {
	ctx  context.Context
	body io.ReadCloser
	sse  *sseReader
	ids  *answerIDs
	up   string // the upstream's id of its answer, from its first chunk
	u    *tokenUsage
	done bool
	// priority says a chunk was served at the priority tier.
	priority bool
}

func (s *openAIStream) next() (*chunk, error) {
	for {
		if s.done {
			return nil, io.EOF
		}
		_, data, err := s.sse.next()
		if err == io.EOF && s.u != nil {
			s.done = true // usage came but no [DONE]: some compatible servers end so
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, classify(s.ctx, io.ErrUnexpectedEOF) // no [DONE]: the stream broke
		}
		if err != nil {
			return nil, classify(s.ctx, err)
		}
		if string(data) == "[DONE]" {
			s.done = true
			return nil, io.EOF
		}
		c, usage, e, err := openAIChunk(data, s.ids, &s.up) // usage is added back on the final chunk only
		if err != nil {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream sent an invalid stream chunk", Err: err}
		}
		if e != nil {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage([]byte(`{"error":` + string(e) + `}`))}
		}
		s.priority = s.priority || c.priority
		if u := parseOpenAIUsage(usage); u != nil {
			s.u = u
			if len(c.cs) == 0 {
				continue // the usage-only chunk: the relay decides whether to send it
			}
		}
		return c, nil
	}
}

func (s *openAIStream) usage() *tokenUsage {
	if s.u != nil {
		s.u.Units.Priority = s.priority
	}
	return s.u
}

func (s *openAIStream) upstreamID() string { return s.up }

func (s *openAIStream) onWait(f func()) { s.sse.wait = f }

func (s *openAIStream) Close() error { return s.body.Close() }
