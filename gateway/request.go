package gateway

import (
	"encoding/json"
	"errors"
	"slices"

	"tollgate"
)

// chatRequest is a client's chat completion request: every field as sent,
// so unknown ones pass through to OpenAI-compatible upstreams, plus the
// fields the gateway itself reads.
type chatRequest struct {
	raw          map[string]json.RawMessage
	Model        string
	Stream       bool
	IncludeUsage bool  // stream_options.include_usage as the client sent it
	MaxTokens    int64 // max_completion_tokens, else max_tokens; 0 when absent
	N            int64
	Messages     []chatMessage
	// uncounted says some content is not text (an image, a file): its
	// tokens are known only to the upstream, whatever its size in bytes.
	uncounted bool
	// ids are the answer's id and model, set once the request is held;
	// nil: the upstream's are kept.
	ids *answerIDs
}

// chatMessage is one message of the OpenAI chat format.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []toolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// toolCall is an assistant's call of a function tool.
type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// maxN bounds n, the number of choices asked for.
const maxN = 16

func invalid(format string, args ...any) error {
	return tollgate.Errorf(tollgate.EINVALID, format, args...)
}

// parseChatRequest decodes and checks a chat completion request body.
func parseChatRequest(body []byte) (*chatRequest, error) {
	req := &chatRequest{N: 1}
	var err error
	if req.raw, err = objectFields(body); err != nil {
		var dup duplicateKeyError
		if errors.As(err, &dup) {
			return nil, invalid("request body has the key %q twice", dup.key)
		}
		if errors.Is(err, errKeyNotUTF8) {
			return nil, invalid("request body has a key that is not valid UTF-8")
		}
		return nil, invalid("request body must be a JSON object")
	}
	fields := []struct {
		name string
		dst  any
	}{
		{"model", &req.Model}, {"stream", &req.Stream}, {"messages", &req.Messages}, {"n", &req.N},
	}
	for _, f := range fields {
		if raw, ok := req.raw[f.name]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return nil, invalid("field %q has the wrong type", f.name)
			}
		}
	}
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		raw, ok := req.raw[name]
		if !ok || string(raw) == "null" {
			continue
		}
		var v int64
		if err := json.Unmarshal(raw, &v); err != nil || v < 1 {
			return nil, invalid("%s must be a positive integer", name)
		}
		if name == "max_completion_tokens" || req.MaxTokens == 0 {
			req.MaxTokens = v
		}
	}
	if raw, ok := req.raw["stream_options"]; ok && string(raw) != "null" {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, invalid("stream_options must be an object")
		}
		req.IncludeUsage = so.IncludeUsage
	}
	switch {
	case req.Model == "":
		return nil, invalid("model is required")
	case len(req.Messages) == 0:
		return nil, invalid("messages must be a non-empty array")
	case req.N < 1 || req.N > maxN:
		return nil, invalid("n must be between 1 and %d", maxN)
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return nil, invalid("messages[%d].role %q is not valid", i, m.Role)
		}
	}
	if err := billable(req); err != nil {
		return nil, err
	}
	return req, nil
}

// billable refuses a request an OpenAI-compatible upstream would charge
// for beyond the tokens tollgate prices (the fields pass through as sent):
// priority processing, web search calls, and audio in or out, whose tokens
// cost several times text ones but are counted among them. Reading the
// content parts, it also marks the request uncounted when a part is not
// text.
func billable(req *chatRequest) error {
	present := func(name string) bool {
		raw, ok := req.raw[name]
		return ok && string(raw) != "null"
	}
	if present("service_tier") {
		var tier string
		if json.Unmarshal(req.raw["service_tier"], &tier) != nil {
			return invalid("service_tier must be a string")
		}
		switch tier {
		case "auto", "default", "flex":
		default:
			return invalid("service_tier %q is billed above the model's price, which is what tollgate charges; use \"auto\", \"default\" or \"flex\"", tier)
		}
	}
	// Web search, as OpenAI (web_search_options), DashScope (enable_search)
	// and OpenRouter (plugins) take it: charged per call or result.
	for _, name := range []string{"web_search_options", "enable_search", "plugins"} {
		if present(name) && string(req.raw[name]) != "false" {
			return invalid("%s: web search and plugins are charged per call, which tollgate cannot bill", name)
		}
	}
	if present("audio") {
		return invalid("audio output is priced above text tokens, which tollgate cannot bill")
	}
	if present("modalities") {
		var ms []string
		if json.Unmarshal(req.raw["modalities"], &ms) != nil {
			return invalid("modalities must be an array of strings")
		}
		if slices.Contains(ms, "audio") {
			return invalid("audio output is priced above text tokens, which tollgate cannot bill")
		}
	}
	for i, m := range req.Messages {
		if len(m.Content) == 0 || m.Content[0] != '[' {
			continue // a string: text
		}
		var parts []struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(m.Content, &parts) != nil {
			return invalid("messages[%d].content must be a string or an array of content parts", i)
		}
		for _, p := range parts {
			switch p.Type {
			case "input_audio":
				return invalid("messages[%d]: audio input is priced above text tokens, which tollgate cannot bill", i)
			case "text", "refusal":
			default:
				req.uncounted = true
			}
		}
	}
	return nil
}
