package gateway

import (
	"encoding/json"
	"errors"

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
	// features are what the request asks for beyond text tokens (the
	// priority tier, web search, audio), sold where the model prices them.
	features []feature
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
	if req.features, err = chatFeatures(req); err != nil {
		return nil, err
	}
	return req, nil
}
