package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"tollgate"
)

// openAI is an OpenAI-compatible upstream: the request passes through with
// the model renamed, and streams always ask for usage. Its kind gives the
// auth header, the URLs (Azure's deployment URLs) and the usage dialect.
type openAI struct {
	client *http.Client
	clock  tollgate.Clock
	kind   *kindSpec // nil: plain OpenAI
	// unknownUsage is told of a usage object in fields the dialect does
	// not know (the request is then billed at its hold); may be nil.
	unknownUsage func(d *deployment, ids *answerIDs, why string)
}

func (o *openAI) header(d *deployment) http.Header {
	h := http.Header{}
	if d.provider.APIKey != "" {
		if o.kind != nil && o.kind.auth == authAzure {
			h.Set("api-key", d.provider.APIKey)
		} else {
			h.Set("Authorization", "Bearer "+d.provider.APIKey)
		}
	}
	return h
}

// url is the endpoint of path ("/chat/completions", "/embeddings") for d:
// BaseURL+path, or Azure's deployment URL with its api-version.
func (o *openAI) url(d *deployment, path string) string {
	if o.kind != nil && o.kind.auth == authAzure {
		v := d.provider.APIVersion
		if v == "" {
			v = DefaultAzureAPIVersion
		}
		return joinURL(d.provider.BaseURL, "/openai/deployments/"+url.PathEscape(d.cfg.Model)+path) + "?api-version=" + url.QueryEscape(v)
	}
	return joinURL(d.provider.BaseURL, path)
}

// dialect is where this upstream's usage reports cached tokens.
func (o *openAI) dialect() *usageDialect {
	if o.kind == nil || o.kind.usage == nil {
		return usageAny
	}
	return o.kind.usage
}

// parseUsage reads raw in o's dialect; a usage in fields the dialect does
// not know is reported and read as none (the request is billed at its
// estimate).
func (o *openAI) parseUsage(d *deployment, ids *answerIDs, raw json.RawMessage) *tokenUsage {
	u, why := o.dialect().parse(raw)
	if why != "" && o.unknownUsage != nil {
		o.unknownUsage(d, ids, why)
	}
	return u
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
	resp, err := post(ctx, o.client, o.url(d, "/chat/completions"), o.header(d), body, o.clock)
	if err != nil {
		return nil, err
	}
	b, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res, choices, err := o.result(d, b, req.ids)
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

// parseOpenAIUsage reads an OpenAI usage object in any dialect's fields;
// nil when absent, empty or not of a known shape (the tokens are then
// counted instead).
func parseOpenAIUsage(raw json.RawMessage) *tokenUsage {
	u, _ := usageAny.parse(raw)
	return u
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
	resp, err := post(ctx, o.client, o.url(d, "/embeddings"), o.header(d), b, o.clock)
	if err != nil {
		return nil, err
	}
	b, err = readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res, _, err := o.result(d, b, ids)
	return res, err
}

// result is openAIResult with the usage read in o's dialect.
func (o *openAI) result(d *deployment, b []byte, ids *answerIDs) (*chatResult, json.RawMessage, error) {
	res, choices, usage, err := openAIAnswer(b, ids)
	if err != nil {
		return nil, nil, err
	}
	res.usage = o.parseUsage(d, ids, usage)
	if res.usage != nil {
		res.usage.Units.Priority = res.body.priority
	}
	return res, choices, nil
}

func (o *openAI) forward(ctx context.Context, d *deployment, path, contentType string, body []byte) (*http.Response, error) {
	return postAs(ctx, o.client, o.url(d, path), o.header(d), contentType, body, o.clock)
}

// openAIResult reads an OpenAI-shaped answer, kept as sent but for its
// usage, which it returns read, and its id and model, which become ids's
// (when not nil); and the value of its choices (nil when absent). b is the
// answer's own buffer.
func openAIResult(b []byte, ids *answerIDs) (*chatResult, json.RawMessage, error) {
	res, choices, usage, err := openAIAnswer(b, ids)
	if err != nil {
		return nil, nil, err
	}
	res.usage = parseOpenAIUsage(usage)
	if res.usage != nil {
		res.usage.Units.Priority = res.body.priority
	}
	return res, choices, nil
}

// openAIAnswer is openAIResult with the usage left unread, returned raw.
func openAIAnswer(b []byte, ids *answerIDs) (*chatResult, json.RawMessage, json.RawMessage, error) {
	var up string
	o, err := cutUsage(b, ids, &up)
	if err != nil {
		return nil, nil, nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	return &chatResult{body: &chunk{raw: o.raw, usageCut: true, priority: o.priority}, upstreamID: up}, o.choices, o.usage, nil
}

func (o *openAI) chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error) {
	body, err := o.body(d, req, true)
	if err != nil {
		return nil, err
	}
	h := o.header(d)
	h.Set("Accept", "text/event-stream")
	resp, err := post(ctx, o.client, o.url(d, "/chat/completions"), h, body, o.clock)
	if err != nil {
		return nil, err
	}
	sse := newSSEReader(resp.Body)
	sse.slack = sseSlack
	return &openAIStream{ctx: ctx, body: resp.Body, sse: sse, ids: req.ids, o: o, d: d}, nil
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
	// o and d read usage in the upstream's dialect (nil o: any dialect);
	// unknown is set once a usage in unknown fields was reported.
	o       *openAI
	d       *deployment
	unknown bool
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
		if u := s.parseUsage(usage); u != nil || (len(usage) > 0 && string(usage) != "null") {
			if u != nil {
				s.u = u
			}
			if len(c.cs) == 0 {
				// The usage-only chunk: the relay decides whether to
				// send it (a usage in unknown fields is not sent).
				continue
			}
		}
		return c, nil
	}
}

// parseUsage reads a chunk's usage, reporting a usage in unknown fields
// once per stream.
func (s *openAIStream) parseUsage(raw json.RawMessage) *tokenUsage {
	if s.o == nil {
		return parseOpenAIUsage(raw)
	}
	u, why := s.o.dialect().parse(raw)
	if why != "" && !s.unknown {
		s.unknown = true
		if s.o.unknownUsage != nil {
			s.o.unknownUsage(s.d, s.ids, why)
		}
	}
	return u
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
