package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
)

// This file lets Anthropic-style clients (POST /v1/messages) use models
// served by OpenAI-compatible deployments: the Messages request becomes a
// chat request, and the chat answer (or its chunks) becomes a Messages
// answer (or its events).

// clientMessage is a Messages API request message as a client sends it.
type clientMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// fromMessagesRequest translates a Messages API request into a chat request.
func fromMessagesRequest(raw map[string]json.RawMessage) (*chatRequest, error) {
	out := map[string]any{}
	var msgs []map[string]any
	if sys, ok := raw["system"]; ok && string(sys) != "null" {
		text, err := blocksText(sys)
		if err != nil {
			return nil, invalid("system: %v", err)
		}
		msgs = append(msgs, map[string]any{"role": "system", "content": text})
	}
	var in []clientMessage
	if err := json.Unmarshal(raw["messages"], &in); err != nil {
		return nil, invalid("messages must be an array of messages")
	}
	for i, m := range in {
		converted, err := chatMessages(m)
		if err != nil {
			return nil, invalid("messages[%d]: %v", i, err)
		}
		msgs = append(msgs, converted...)
	}
	out["messages"] = msgs
	for from, to := range map[string]string{"model": "model", "max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "stream": "stream", "stop_sequences": "stop"} {
		if v, ok := raw[from]; ok {
			out[to] = v
		}
	}
	if err := chatTools(raw, out); err != nil {
		return nil, err
	}
	var meta struct {
		UserID string `json:"user_id"`
	}
	if json.Unmarshal(raw["metadata"], &meta) == nil && meta.UserID != "" {
		out["user"] = meta.UserID
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode translated request: %w", err)
	}
	return parseChatRequest(b)
}

// blocksText returns the text of a string or of an array of text blocks.
func blocksText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []anthBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", fmt.Errorf("must be a string or an array of blocks")
	}
	var b strings.Builder
	for _, blk := range blocks {
		b.WriteString(blk.Text)
	}
	return b.String(), nil
}

// chatMessages translates one Messages message: tool results become tool
// messages, tool_use blocks become tool calls, images become image parts.
func chatMessages(m clientMessage) ([]map[string]any, error) {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []map[string]any{{"role": m.Role, "content": s}}, nil
	}
	var blocks []anthBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of blocks")
	}
	var out []map[string]any
	var parts []map[string]any
	var calls []map[string]any
	for _, blk := range blocks {
		switch blk.Type {
		case "text":
			parts = append(parts, map[string]any{"type": "text", "text": blk.Text})
		case "image":
			if blk.Source == nil {
				return nil, fmt.Errorf("image without a source")
			}
			url := blk.Source.URL
			if blk.Source.Type == "base64" {
				url = "data:" + blk.Source.MediaType + ";base64," + blk.Source.Data
			}
			parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": url}})
		case "tool_use":
			args := string(blk.Input)
			if args == "" {
				args = "{}"
			}
			calls = append(calls, map[string]any{"id": blk.ID, "type": "function", "function": map[string]string{"name": blk.Name, "arguments": args}})
		case "tool_result":
			text, err := blocksText(blk.Content)
			if err != nil && len(blk.Content) > 0 {
				return nil, fmt.Errorf("tool_result content %v", err)
			}
			out = append(out, map[string]any{"role": "tool", "tool_call_id": blk.ToolUseID, "content": text})
		case "thinking", "redacted_thinking":
			// Reasoning of another model's turn: not replayable upstream.
		default:
			return nil, fmt.Errorf("content block type %q is not supported by this model", blk.Type)
		}
	}
	if len(parts) == 0 && len(calls) == 0 {
		return out, nil
	}
	msg := map[string]any{"role": m.Role, "content": parts}
	if m.Role == "assistant" {
		// Assistant content is plain text in the chat format.
		var text strings.Builder
		for _, p := range parts {
			if t, ok := p["text"].(string); ok {
				text.WriteString(t)
			}
		}
		msg["content"] = text.String()
		if len(calls) > 0 {
			msg["tool_calls"] = calls
		}
	}
	return append(out, msg), nil
}

// chatTools translates tools and tool_choice.
func chatTools(raw map[string]json.RawMessage, out map[string]any) error {
	if v, ok := raw["tools"]; ok && string(v) != "null" {
		var tools []anthTool
		if err := json.Unmarshal(v, &tools); err != nil {
			return invalid("tools must be an array of tools")
		}
		var types []struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(v, &types)
		for _, t := range types {
			// A server tool runs at Anthropic only: as a function, the
			// client would be asked to run it.
			if strings.HasPrefix(t.Type, serverToolWebSearchPrefix) || strings.HasPrefix(t.Type, serverToolWebFetchPrefix) {
				return invalid("tools: %q is a server tool only Anthropic deployments run", t.Type)
			}
		}
		var fns []map[string]any
		for _, t := range tools {
			fn := map[string]any{"name": t.Name, "parameters": t.InputSchema}
			if t.Description != "" {
				fn["description"] = t.Description
			}
			fns = append(fns, map[string]any{"type": "function", "function": fn})
		}
		out["tools"] = fns
	}
	if v, ok := raw["tool_choice"]; ok && string(v) != "null" {
		var tc struct {
			Type                   string `json:"type"`
			Name                   string `json:"name"`
			DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
		}
		if err := json.Unmarshal(v, &tc); err != nil {
			return invalid("tool_choice must be an object")
		}
		switch tc.Type {
		case "auto", "none":
			out["tool_choice"] = tc.Type
		case "any":
			out["tool_choice"] = "required"
		case "tool":
			out["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return invalid("tool_choice type %q is not valid", tc.Type)
		}
		if tc.DisableParallelToolUse {
			out["parallel_tool_calls"] = false
		}
	}
	return nil
}

// stopReasonOf maps an OpenAI finish reason to an Anthropic stop reason.
func stopReasonOf(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	default:
		return "end_turn"
	}
}

// messagesUsage is Anthropic's usage for u: input_tokens excludes the
// tokens read from and written to the cache, reported apart.
func messagesUsage(u tokenUsage, credits int64) map[string]int64 {
	t := u.tokens()
	return map[string]int64{
		"input_tokens":                t.Input,
		"cache_read_input_tokens":     t.CachedInput,
		"cache_creation_input_tokens": t.CacheWrite + t.CacheWrite1h,
		"output_tokens":               u.Output,
		"cost_credits":                credits,
	}
}

// toMessagesResponse translates a chat completion into a Messages answer.
func toMessagesResponse(body map[string]json.RawMessage, u tokenUsage, credits int64) map[string]any {
	var id, model string
	_ = json.Unmarshal(body["id"], &id)
	_ = json.Unmarshal(body["model"], &model)
	var choices []struct {
		Message      chatMessage `json:"message"`
		FinishReason string      `json:"finish_reason"`
	}
	_ = json.Unmarshal(body["choices"], &choices)
	content := []map[string]any{}
	stop := "end_turn"
	if len(choices) > 0 {
		c := choices[0]
		if text := contentText(c.Message.Content); text != "" {
			content = append(content, map[string]any{"type": "text", "text": text})
		}
		for _, tc := range c.Message.ToolCalls {
			input := json.RawMessage(tc.Function.Arguments)
			if !json.Valid(input) {
				input = json.RawMessage("{}")
			}
			content = append(content, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": input})
		}
		stop = stopReasonOf(c.FinishReason)
	}
	return map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
		"stop_reason": stop, "stop_sequence": nil, "usage": messagesUsage(u, credits),
	}
}

// eventWriter turns chat.completion.chunk objects into Messages stream
// events: message_start, content blocks (text, tool_use) with their
// deltas, then message_delta with the stop reason and usage, and
// message_stop.
type eventWriter struct {
	rl      *relay
	started bool
	open    bool // a content block is open at index
	tool    bool // the open block is a tool_use
	index   int
	stop    string
}

func (ew *eventWriter) startText() {
	ew.startBlock(map[string]any{"type": "text", "text": ""})
	ew.tool = false
}

func (ew *eventWriter) event(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	ew.rl.write("event: " + name + "\ndata: " + string(b) + "\n\n")
}

func (ew *eventWriter) startBlock(block map[string]any) {
	ew.closeBlock()
	ew.index++
	ew.open = true
	ew.event("content_block_start", map[string]any{"type": "content_block_start", "index": ew.index, "content_block": block})
}

func (ew *eventWriter) closeBlock() {
	if ew.open {
		ew.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": ew.index})
		ew.open = false
	}
}

// chunk writes the events for one chunk (only choice 0: Messages has one).
func (ew *eventWriter) chunk(c *chunk) {
	if !ew.started {
		var id, model string
		fields := c.members()
		_ = json.Unmarshal(fields["id"], &id)
		_ = json.Unmarshal(fields["model"], &model)
		ew.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": map[string]int64{"input_tokens": 0, "output_tokens": 0},
		}})
		ew.started, ew.index = true, -1
	}
	var choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	}
	_ = json.Unmarshal(c.members()["choices"], &choices)
	for _, ch := range choices {
		if ch.Index != 0 {
			continue
		}
		if t := ch.Delta.Content; t != nil && *t != "" {
			if !ew.open || ew.tool {
				ew.startText()
			}
			ew.rl.add(0, *t)
			ew.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": ew.index, "delta": map[string]string{"type": "text_delta", "text": *t}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.ID != "" {
				ew.startBlock(map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}})
				ew.tool = true
			}
			ew.rl.add(0, tc.Function.Name+tc.Function.Arguments)
			if tc.Function.Arguments != "" && ew.open {
				ew.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": ew.index, "delta": map[string]string{"type": "input_json_delta", "partial_json": tc.Function.Arguments}})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			ew.stop = stopReasonOf(*ch.FinishReason)
		}
	}
}

// finish closes the message with its stop reason and usage.
func (ew *eventWriter) finish(u tokenUsage, credits int64) {
	ew.closeBlock()
	if ew.stop == "" {
		ew.stop = "end_turn"
	}
	ew.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": ew.stop, "stop_sequence": nil}, "usage": messagesUsage(u, credits)})
	ew.event("message_stop", map[string]any{"type": "message_stop"})
}

// fail ends a broken stream with an error event.
func (ew *eventWriter) fail(message string) {
	ew.event("error", map[string]any{"type": "error", "error": map[string]string{"type": "api_error", "message": message}})
}
