package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"tollgate"
)

// anthropicVersion is the Messages API version the translation targets.
const anthropicVersion = "2023-06-01"

// anthropic is an Anthropic Messages API upstream: OpenAI chat requests
// are translated to Messages requests and the answers (and stream events)
// back to chat completions.
type anthropic struct {
	client *http.Client
	clock  tollgate.Clock
}

func (an *anthropic) header(d *deployment) http.Header {
	h := http.Header{}
	h.Set("anthropic-version", anthropicVersion)
	if d.provider.APIKey != "" {
		h.Set("x-api-key", d.provider.APIKey)
	}
	return h
}

// anthBlock is one content block of a Messages request or response.
type anthBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      json.RawMessage `json:"content,omitempty"`
	Source       *anthSource     `json:"source,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type anthSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthMessage struct {
	Role    string      `json:"role"`
	Content []anthBlock `json:"content"`
}

type anthTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthRequest struct {
	Model         string            `json:"model"`
	MaxTokens     int64             `json:"max_tokens"`
	System        json.RawMessage   `json:"system,omitempty"` // a string, or blocks when cache_control is used
	Messages      []anthMessage     `json:"messages"`
	Temperature   *float64          `json:"temperature,omitempty"`
	TopP          *float64          `json:"top_p,omitempty"`
	StopSequences []string          `json:"stop_sequences,omitempty"`
	Stream        bool              `json:"stream,omitempty"`
	Tools         []anthTool        `json:"tools,omitempty"`
	ToolChoice    map[string]any    `json:"tool_choice,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

// toAnthropic translates an OpenAI chat request for the deployment d.
func toAnthropic(d *deployment, req *chatRequest, stream bool) (*anthRequest, error) {
	if req.N > 1 {
		return nil, &upstreamError{Status: http.StatusBadRequest, Message: "n > 1 is not supported by this model"}
	}
	out := &anthRequest{Model: d.cfg.Model, MaxTokens: d.maxOut(req.MaxTokens), Stream: stream}
	var system []anthBlock
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			blocks, err := anthBlocks(m.Content)
			if err != nil {
				return nil, &upstreamError{Status: http.StatusBadRequest, Message: fmt.Sprintf("messages[%d]: %v", i, err)}
			}
			system = append(system, blocks...)
		case "tool", "function":
			id := m.ToolCallID
			if id == "" {
				id = m.Name
			}
			text, _ := json.Marshal(contentText(m.Content))
			out.appendBlocks("user", anthBlock{Type: "tool_result", ToolUseID: id, Content: text})
		case "user", "assistant":
			blocks, err := anthBlocks(m.Content)
			if err != nil {
				return nil, &upstreamError{Status: http.StatusBadRequest, Message: fmt.Sprintf("messages[%d]: %v", i, err)}
			}
			for _, tc := range m.ToolCalls {
				input := json.RawMessage(tc.Function.Arguments)
				if strings.TrimSpace(tc.Function.Arguments) == "" {
					input = json.RawMessage("{}")
				} else if !json.Valid(input) {
					return nil, &upstreamError{Status: http.StatusBadRequest, Message: fmt.Sprintf("messages[%d]: tool call arguments are not JSON", i)}
				}
				blocks = append(blocks, anthBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
			}
			out.appendBlocks(m.Role, blocks...)
		}
	}
	out.System = systemPrompt(system)
	if err := anthOptions(out, req.raw); err != nil {
		return nil, err
	}
	return out, nil
}

// systemPrompt is the system text as a string, or as text blocks when one
// of them carries cache_control (prompt caching needs the block form).
func systemPrompt(blocks []anthBlock) json.RawMessage {
	if len(blocks) == 0 {
		return nil
	}
	texts := make([]string, len(blocks))
	cached := false
	for i, b := range blocks {
		texts[i] = b.Text
		cached = cached || len(b.CacheControl) > 0
	}
	var v any = strings.Join(texts, "\n\n")
	if cached {
		v = blocks
	}
	b, _ := json.Marshal(v)
	return b
}

// appendBlocks adds blocks to the conversation, merging consecutive turns
// of one role (tool results following each other become one user turn).
func (r *anthRequest) appendBlocks(role string, blocks ...anthBlock) {
	if len(blocks) == 0 {
		return
	}
	if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == role {
		r.Messages[n-1].Content = append(r.Messages[n-1].Content, blocks...)
		return
	}
	r.Messages = append(r.Messages, anthMessage{Role: role, Content: blocks})
}

// anthBlocks translates OpenAI message content (a string or content parts).
func anthBlocks(raw json.RawMessage) ([]anthBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []anthBlock{{Type: "text", Text: s}}, nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL struct {
			URL string `json:"url"`
		} `json:"image_url"`
		CacheControl json.RawMessage `json:"cache_control"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of parts")
	}
	var blocks []anthBlock
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, anthBlock{Type: "text", Text: p.Text, CacheControl: p.CacheControl})
			}
		case "image_url":
			blocks = append(blocks, anthBlock{Type: "image", Source: imageSource(p.ImageURL.URL), CacheControl: p.CacheControl})
		default:
			return nil, fmt.Errorf("content part type %q is not supported by this model", p.Type)
		}
	}
	return blocks, nil
}

// imageSource turns a data: URL into base64 source, any other URL into a url source.
func imageSource(u string) *anthSource {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, _ := strings.Cut(rest, ",")
		return &anthSource{Type: "base64", MediaType: strings.TrimSuffix(meta, ";base64"), Data: data}
	}
	return &anthSource{Type: "url", URL: u}
}

// anthOptions translates sampling options, stop sequences, tools and tool_choice.
func anthOptions(out *anthRequest, raw map[string]json.RawMessage) error {
	bad := func(field string) error {
		return &upstreamError{Status: http.StatusBadRequest, Message: field + " has a form this model does not accept"}
	}
	if v, ok := raw["temperature"]; ok && string(v) != "null" {
		var t float64
		if json.Unmarshal(v, &t) != nil {
			return bad("temperature")
		}
		t = min(t, 1) // Anthropic's range is 0..1, OpenAI's 0..2
		out.Temperature = &t
	}
	if v, ok := raw["top_p"]; ok && string(v) != "null" {
		var p float64
		if json.Unmarshal(v, &p) != nil {
			return bad("top_p")
		}
		out.TopP = &p
	}
	if v, ok := raw["stop"]; ok && string(v) != "null" {
		var one string
		var stops []string
		if json.Unmarshal(v, &one) == nil {
			stops = []string{one}
		} else if json.Unmarshal(v, &stops) != nil {
			return bad("stop")
		}
		for _, s := range stops {
			if strings.TrimSpace(s) != "" { // Anthropic refuses whitespace-only stop sequences
				out.StopSequences = append(out.StopSequences, s)
			}
		}
	}
	if out.Temperature != nil && out.TopP != nil {
		out.TopP = nil // recent Claude models refuse both; temperature is the common knob
	}
	if v, ok := raw["user"]; ok {
		var u string
		if json.Unmarshal(v, &u) == nil && u != "" {
			out.Metadata = map[string]string{"user_id": u}
		}
	}
	if v, ok := raw["tools"]; ok && string(v) != "null" {
		var tools []struct {
			Type     string `json:"type"`
			Function struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
			} `json:"function"`
		}
		if json.Unmarshal(v, &tools) != nil {
			return bad("tools")
		}
		for _, t := range tools {
			schema := t.Function.Parameters
			if len(schema) == 0 || string(schema) == "null" {
				schema = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			out.Tools = append(out.Tools, anthTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
		}
	}
	if v, ok := raw["tool_choice"]; ok && string(v) != "null" {
		var mode string
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(v, &mode) == nil:
			out.ToolChoice = map[string]any{"type": map[string]string{"auto": "auto", "required": "any", "none": "none"}[mode]}
			if mode == "none" && len(out.Tools) == 0 {
				out.ToolChoice = nil
			}
		case json.Unmarshal(v, &named) == nil && named.Function.Name != "":
			out.ToolChoice = map[string]any{"type": "tool", "name": named.Function.Name}
		default:
			return bad("tool_choice")
		}
		if out.ToolChoice != nil && out.ToolChoice["type"] == "" {
			return bad("tool_choice")
		}
	}
	if v, ok := raw["parallel_tool_calls"]; ok && string(v) == "false" && out.ToolChoice != nil {
		out.ToolChoice["disable_parallel_tool_use"] = true
	}
	return nil
}

// anthUsage is the Messages API's usage; prompt tokens read from and
// written to the cache are reported apart from input_tokens.
type anthUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	// CacheCreation splits the cache writes by how long the cache keeps
	// them; Anthropic charges a 1-hour write more than a 5-minute one.
	CacheCreation anthCacheCreation `json:"cache_creation"`
	// ServerToolUse counts the server tools' uses, billed per use.
	ServerToolUse anthServerToolUse `json:"server_tool_use"`
}

type anthServerToolUse struct {
	WebSearchRequests int64 `json:"web_search_requests"`
	WebFetchRequests  int64 `json:"web_fetch_requests"`
}

type anthCacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// normalise converts to OpenAI's convention, where prompt_tokens includes
// the tokens read from and written to the cache. Writes are the larger of
// cache_creation_input_tokens and the sum of its split, and those not
// said to be 1-hour ones are billed as 5-minute ones.
func (u anthUsage) normalise() *tokenUsage {
	written := max(u.CacheCreationInputTokens, u.CacheCreation.Ephemeral5m+u.CacheCreation.Ephemeral1h)
	in := u.InputTokens + u.CacheReadInputTokens + written
	details, _ := json.Marshal(map[string]int64{"cached_tokens": u.CacheReadInputTokens, "cache_creation_tokens": written})
	return &tokenUsage{Input: in, Cached: u.CacheReadInputTokens, CacheWrite: written - u.CacheCreation.Ephemeral1h,
		CacheWrite1h: u.CacheCreation.Ephemeral1h, Output: u.OutputTokens,
		Units: tollgate.Tokens{WebSearches: u.ServerToolUse.WebSearchRequests, WebFetches: u.ServerToolUse.WebFetchRequests},
		raw:   map[string]json.RawMessage{"prompt_tokens_details": details}}
}

// merge returns u, a message_start's usage, updated with a message_delta's,
// whose counts are cumulative; a count the delta leaves out keeps u's.
func (u anthUsage) merge(d anthUsage) anthUsage {
	u.OutputTokens = d.OutputTokens
	if d.InputTokens > 0 {
		u.InputTokens = d.InputTokens
	}
	if d.CacheReadInputTokens > 0 {
		u.CacheReadInputTokens = d.CacheReadInputTokens
	}
	if d.CacheCreationInputTokens > 0 {
		u.CacheCreationInputTokens = d.CacheCreationInputTokens
	}
	if d.CacheCreation != (anthCacheCreation{}) {
		u.CacheCreation = d.CacheCreation
	}
	if d.ServerToolUse != (anthServerToolUse{}) {
		u.ServerToolUse = d.ServerToolUse
	}
	return u
}

// stopReasons maps Anthropic stop reasons to OpenAI finish reasons.
var stopReasons = map[string]string{
	"end_turn":      "stop",
	"stop_sequence": "stop",
	"pause_turn":    "stop",
	"max_tokens":    "length",
	"tool_use":      "tool_calls",
	"refusal":       "content_filter",
}

func finishReason(stop string) string {
	if r, ok := stopReasons[stop]; ok {
		return r
	}
	return "stop"
}

type anthResponse struct {
	ID         string      `json:"id"`
	Model      string      `json:"model"`
	Content    []anthBlock `json:"content"`
	StopReason string      `json:"stop_reason"`
	Usage      anthUsage   `json:"usage"`
}

// oaToolCall is a tool call in OpenAI's response shape.
type oaToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// fromAnthropic translates a Messages response into a chat completion,
// with ids's id and model (the upstream's when ids is nil).
func fromAnthropic(b []byte, created int64, ids *answerIDs) (*chatResult, error) {
	var m anthResponse
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	var text strings.Builder
	var calls []oaToolCall
	for _, blk := range m.Content {
		switch blk.Type {
		case "text":
			text.WriteString(blk.Text)
		case "tool_use":
			var tc oaToolCall
			tc.ID, tc.Type, tc.Function.Name, tc.Function.Arguments = blk.ID, "function", blk.Name, string(blk.Input)
			calls = append(calls, tc)
		}
	}
	msg := map[string]any{"role": "assistant", "content": nil}
	if text.Len() > 0 || len(calls) == 0 {
		msg["content"] = text.String()
	}
	output := text.String()
	if len(calls) > 0 {
		msg["tool_calls"] = calls
		for _, c := range calls {
			output += c.Function.Name + c.Function.Arguments
		}
	}
	choice := map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finishReason(m.StopReason)}
	body := map[string]json.RawMessage{}
	for k, v := range map[string]any{"id": m.ID, "object": "chat.completion", "created": created, "model": m.Model, "choices": []any{choice}} {
		body[k], _ = json.Marshal(v)
	}
	if ids != nil {
		body["id"], body["model"] = ids.id, ids.model
	}
	res := &chatResult{body: &chunk{fields: body}, outputs: []string{output}, upstreamID: m.ID}
	if m.Usage != (anthUsage{}) {
		res.usage = m.Usage.normalise()
	}
	return res, nil
}

func (an *anthropic) send(ctx context.Context, d *deployment, req *chatRequest, stream bool) (*http.Response, error) {
	ar, err := toAnthropic(d, req, stream)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(ar)
	if err != nil {
		return nil, fmt.Errorf("encode messages request: %w", err)
	}
	h := an.header(d)
	if stream {
		h.Set("Accept", "text/event-stream")
	}
	return post(ctx, an.client, joinURL(d.provider.BaseURL, "/v1/messages"), h, body, an.clock)
}

// passThrough sends a client's Messages request as is, with the model
// renamed and max_tokens capped for the deployment.
func (an *anthropic) passThrough(ctx context.Context, d *deployment, raw map[string]json.RawMessage, maxTokens int64) (*http.Response, error) {
	b, err := withFields(raw, map[string]any{"model": d.cfg.Model, "max_tokens": d.maxOut(maxTokens)})
	if err != nil {
		return nil, err
	}
	return post(ctx, an.client, joinURL(d.provider.BaseURL, "/v1/messages"), an.header(d), b, an.clock)
}

func (an *anthropic) chat(ctx context.Context, d *deployment, req *chatRequest) (*chatResult, error) {
	resp, err := an.send(ctx, d, req, false)
	if err != nil {
		return nil, err
	}
	b, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	return fromAnthropic(b, an.clock.Now().Unix(), req.ids)
}

func (an *anthropic) chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error) {
	resp, err := an.send(ctx, d, req, true)
	if err != nil {
		return nil, err
	}
	return &anthStream{ctx: ctx, body: resp.Body, sse: newSSEReader(resp.Body), created: an.clock.Now().Unix(), tools: map[int]int{}, ids: req.ids}, nil
}
