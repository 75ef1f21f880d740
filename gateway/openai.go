package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// openAI is an OpenAI-compatible upstream: the request passes through with
// the model renamed, and streams always ask for usage.
type openAI struct {
	client *http.Client
	now    func() time.Time
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
	// The hold covers at most maxOut tokens, so the upstream is told so:
	// in the field the client used (max_completion_tokens for reasoning
	// models), else max_tokens. Without a client limit or a configured
	// cap nothing is sent, and billing stops at the hold.
	if req.MaxTokens > 0 || d.cfg.MaxOutputTokens > 0 {
		field := "max_tokens"
		if _, ok := req.raw["max_completion_tokens"]; ok {
			field = "max_completion_tokens"
			set["max_tokens"] = nil
		}
		set[field] = d.maxOut(req.MaxTokens)
	}
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
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/chat/completions"), o.header(d), body, o.now)
	if err != nil {
		return nil, err
	}
	b, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res := &chatResult{}
	if err := json.Unmarshal(b, &res.body); err != nil || res.body == nil {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	if _, ok := res.body["choices"]; !ok {
		// Some compatible servers answer 200 with only an error object.
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(b)}
	}
	res.usage = parseOpenAIUsage(res.body["usage"])
	if res.usage != nil {
		return res, nil // outputs are only counted when there is no usage
	}
	var choices []struct {
		Message chatMessage `json:"message"`
	}
	_ = json.Unmarshal(res.body["choices"], &choices)
	for _, c := range choices {
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

// parseOpenAIUsage reads an OpenAI usage object; nil when absent or empty.
func parseOpenAIUsage(raw json.RawMessage) *tokenUsage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var u struct {
		PromptTokens        int64 `json:"prompt_tokens"`
		CompletionTokens    int64 `json:"completion_tokens"`
		PromptTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &u) != nil || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	if u.PromptTokens == 0 && u.CompletionTokens == 0 {
		return nil
	}
	cached := min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	return &tokenUsage{Input: u.PromptTokens, Cached: cached, Output: u.CompletionTokens, raw: m}
}

func (o *openAI) embed(ctx context.Context, d *deployment, body []byte) (*chatResult, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("embeddings body: %w", err)
	}
	b, err := withFields(raw, map[string]any{"model": d.cfg.Model})
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/embeddings"), o.header(d), b, o.now)
	if err != nil {
		return nil, err
	}
	b, err = readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	res := &chatResult{}
	if err := json.Unmarshal(b, &res.body); err != nil || res.body == nil {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	res.usage = parseOpenAIUsage(res.body["usage"])
	return res, nil
}

func (o *openAI) chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error) {
	body, err := o.body(d, req, true)
	if err != nil {
		return nil, err
	}
	h := o.header(d)
	h.Set("Accept", "text/event-stream")
	resp, err := post(ctx, o.client, joinURL(d.provider.BaseURL, "/chat/completions"), h, body, o.now)
	if err != nil {
		return nil, err
	}
	return &openAIStream{ctx: ctx, body: resp.Body, sse: newSSEReader(resp.Body)}, nil
}

// openAIStream reads an OpenAI SSE stream.
type openAIStream struct {
	ctx  context.Context
	body io.ReadCloser
	sse  *sseReader
	u    *tokenUsage
	done bool
}

func (s *openAIStream) next() (map[string]json.RawMessage, error) {
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
		var chunk map[string]json.RawMessage
		if err := json.Unmarshal(data, &chunk); err != nil {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream sent an invalid stream chunk", Err: err}
		}
		if e, ok := chunk["error"]; ok {
			return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage([]byte(`{"error":` + string(e) + `}`))}
		}
		if u := parseOpenAIUsage(chunk["usage"]); u != nil {
			s.u = u
			if isEmptyArray(chunk["choices"]) {
				continue // the usage-only chunk: the relay decides whether to send it
			}
		}
		delete(chunk, "usage") // usage is added back on the final chunk only
		return chunk, nil
	}
}

func isEmptyArray(raw json.RawMessage) bool {
	var a []json.RawMessage
	return len(raw) == 0 || string(raw) == "null" || (json.Unmarshal(raw, &a) == nil && len(a) == 0)
}

func (s *openAIStream) usage() *tokenUsage { return s.u }

func (s *openAIStream) Close() error { return s.body.Close() }
