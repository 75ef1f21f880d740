package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"tollgate"
)

// This file lets Responses API clients (POST /v1/responses) use models
// served by deployments not of kind openai: the Responses request becomes
// a chat request, and the chat answer (or its chunks) becomes a response
// (or its typed events).

// fromResponsesRequest translates a checked Responses request into a chat
// request: instructions become a system message, input items messages
// (function calls an assistant's tool_calls, their outputs tool
// messages), function tools chat tools, text.format response_format and
// max_output_tokens max_tokens. Reasoning items are dropped: another
// model's reasoning is not replayable.
func fromResponsesRequest(rr *responsesRequest) (*chatRequest, error) {
	raw := rr.raw
	var msgs []map[string]any
	var instr string
	if json.Unmarshal(raw["instructions"], &instr) == nil && instr != "" {
		msgs = append(msgs, map[string]any{"role": "system", "content": instr})
	}
	var s string
	if json.Unmarshal(raw["input"], &s) == nil {
		msgs = append(msgs, map[string]any{"role": "user", "content": s})
	} else {
		var items []json.RawMessage
		_ = json.Unmarshal(raw["input"], &items) // checked by checkInput
		for i, b := range items {
			var err error
			if msgs, err = appendItemMessages(msgs, b); err != nil {
				return nil, invalid("input[%d]: %v", i, err)
			}
		}
	}
	out := map[string]any{"model": rr.Model, "messages": msgs}
	for from, to := range map[string]string{"temperature": "temperature", "top_p": "top_p", "stream": "stream",
		"parallel_tool_calls": "parallel_tool_calls", "user": "user", "safety_identifier": "safety_identifier", "top_logprobs": "top_logprobs"} {
		if v, ok := raw[from]; ok && string(v) != "null" {
			out[to] = v
		}
	}
	if rr.MaxOutput > 0 {
		out["max_tokens"] = rr.MaxOutput
	}
	var reasoning struct {
		Effort string `json:"effort"`
	}
	if json.Unmarshal(raw["reasoning"], &reasoning) == nil && reasoning.Effort != "" {
		out["reasoning_effort"] = reasoning.Effort
	}
	if err := chatResponseFormat(raw["text"], out); err != nil {
		return nil, err
	}
	tools, _ := parseResponsesTools(raw["tools"]) // checked
	if len(tools) > 0 {
		fns := make([]map[string]any, 0, len(tools))
		for _, t := range tools {
			fn := map[string]any{"name": t.Name}
			if len(t.Parameters) > 0 {
				fn["parameters"] = t.Parameters
			}
			if t.Description != "" {
				fn["description"] = t.Description
			}
			if t.Strict != nil {
				fn["strict"] = *t.Strict
			}
			fns = append(fns, map[string]any{"type": "function", "function": fn})
		}
		out["tools"] = fns
	}
	if v, ok := raw["tool_choice"]; ok && string(v) != "null" {
		var s string
		var tc struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		switch {
		case json.Unmarshal(v, &s) == nil:
			out["tool_choice"] = s
		case json.Unmarshal(v, &tc) == nil && tc.Type == "function":
			out["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, invalid("tool_choice of type %q is served by OpenAI deployments only, and this model has none", tc.Type)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode translated request: %w", err)
	}
	return parseChatRequest(b)
}

// chatResponseFormat translates text.format to response_format.
func chatResponseFormat(raw json.RawMessage, out map[string]any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var text struct {
		Format map[string]json.RawMessage `json:"format"`
	}
	if json.Unmarshal(raw, &text) != nil {
		return invalid("text must be an object")
	}
	if text.Format == nil {
		return nil
	}
	var typ string
	_ = json.Unmarshal(text.Format["type"], &typ)
	switch typ {
	case "text", "":
	case "json_object":
		out["response_format"] = map[string]string{"type": "json_object"}
	case "json_schema":
		schema := map[string]json.RawMessage{}
		for _, k := range []string{"name", "schema", "strict", "description"} {
			if v, ok := text.Format[k]; ok {
				schema[k] = v
			}
		}
		out["response_format"] = map[string]any{"type": "json_schema", "json_schema": schema}
	default:
		return invalid("text.format.type %q is not valid", typ)
	}
	return nil
}

// appendItemMessages appends the chat messages of one input item.
func appendItemMessages(msgs []map[string]any, b json.RawMessage) ([]map[string]any, error) {
	it, err := readItem(b)
	if err != nil {
		return nil, err
	}
	switch it.Type {
	case "message":
		var s string
		if json.Unmarshal(it.Content, &s) == nil {
			return append(msgs, map[string]any{"role": it.Role, "content": s}), nil
		}
		var parts []inputPart
		_ = json.Unmarshal(it.Content, &parts) // checked
		if it.Role == "assistant" {
			var text strings.Builder
			for _, p := range parts {
				if p.Text != nil {
					text.WriteString(*p.Text)
				}
			}
			return append(msgs, map[string]any{"role": "assistant", "content": text.String()}), nil
		}
		cps, err := chatParts(parts)
		if err != nil {
			return nil, err
		}
		return append(msgs, map[string]any{"role": it.Role, "content": cps}), nil
	case "function_call":
		call := map[string]any{"id": *it.CallID, "type": "function", "function": map[string]string{"name": *it.Name, "arguments": *it.Arguments}}
		if n := len(msgs); n > 0 && msgs[n-1]["role"] == "assistant" {
			last := msgs[n-1]
			calls, _ := last["tool_calls"].([]map[string]any)
			last["tool_calls"] = append(calls, call)
			return msgs, nil
		}
		return append(msgs, map[string]any{"role": "assistant", "content": "", "tool_calls": []map[string]any{call}}), nil
	case "function_call_output":
		var s string
		if json.Unmarshal(it.Output, &s) != nil {
			var parts []inputPart
			_ = json.Unmarshal(it.Output, &parts)
			var text strings.Builder
			for _, p := range parts {
				if p.Text == nil {
					return nil, fmt.Errorf("a function_call_output with images or files is served by OpenAI deployments only")
				}
				text.WriteString(*p.Text)
			}
			s = text.String()
		}
		return append(msgs, map[string]any{"role": "tool", "tool_call_id": *it.CallID, "content": s}), nil
	case "reasoning":
		return msgs, nil
	}
	return nil, fmt.Errorf("item type %q is not supported", it.Type)
}

// chatParts translates a user, system or developer message's parts.
func chatParts(parts []inputPart) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "input_text", "output_text":
			out = append(out, map[string]any{"type": "text", "text": *p.Text})
		case "input_image":
			if p.ImageURL == "" {
				return nil, fmt.Errorf("an input_image by file_id is served by OpenAI deployments only")
			}
			img := map[string]string{"url": p.ImageURL}
			if p.Detail != "" {
				img["detail"] = p.Detail
			}
			out = append(out, map[string]any{"type": "image_url", "image_url": img})
		case "input_file":
			if p.FileData == "" {
				return nil, fmt.Errorf("an input_file by file_id or file_url is served by OpenAI deployments only")
			}
			f := map[string]string{"file_data": p.FileData}
			if p.Filename != "" {
				f["filename"] = p.Filename
			}
			out = append(out, map[string]any{"type": "file", "file": f})
		default:
			return nil, fmt.Errorf("a %s part is not supported here", p.Type)
		}
	}
	return out, nil
}

// responseWriter builds a response, and in a stream its events, from a
// chat answer or its chunks.
type responseWriter struct {
	rr      *responsesRequest
	ids     *answerIDs
	reqID   string
	created int64
	output  []json.RawMessage // the items done
	status  string            // "completed", or "incomplete" with reason
	reason  string
	// streaming
	rl      *relay
	seq     int64
	started bool
	open    string // "", "text" or "call": the item being streamed
	text    strings.Builder
	call    *toolCall
}

func newResponseWriter(rr *responsesRequest, ids *answerIDs, created int64) *responseWriter {
	var id string
	_ = json.Unmarshal(ids.id, &id)
	return &responseWriter{rr: rr, ids: ids, reqID: id, created: created, status: "completed"}
}

// finishReason sets the status from a chat finish reason.
func (rw *responseWriter) finishReason(finish string) {
	switch finish {
	case "length":
		rw.status, rw.reason = "incomplete", "max_output_tokens"
	case "content_filter":
		rw.status, rw.reason = "incomplete", "content_filter"
	}
}

func (rw *responseWriter) itemID(prefix string) string {
	return prefix + "_" + rw.reqID + "_" + strconv.Itoa(len(rw.output))
}

func (rw *responseWriter) messageItem(status, text string) map[string]any {
	content := []any{}
	if status == "completed" || text != "" {
		content = append(content, outputText(text))
	}
	return map[string]any{"id": rw.itemID("msg"), "type": "message", "status": status, "role": "assistant", "content": content}
}

func outputText(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}
}

func (rw *responseWriter) callItem(status string, c *toolCall) map[string]any {
	return map[string]any{"id": rw.itemID("fc"), "type": "function_call", "status": status,
		"call_id": c.ID, "name": c.Function.Name, "arguments": c.Function.Arguments}
}

func (rw *responseWriter) done(item map[string]any) {
	b, _ := json.Marshal(item)
	rw.output = append(rw.output, b)
}

// fromCompletion reads a chat completion's first choice.
func (rw *responseWriter) fromCompletion(body map[string]json.RawMessage) {
	var choices []struct {
		Message struct {
			chatMessage
			Refusal string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	}
	_ = json.Unmarshal(body["choices"], &choices)
	if len(choices) == 0 {
		return
	}
	c := choices[0]
	if text := contentText(c.Message.Content); text != "" {
		rw.done(rw.messageItem("completed", text))
	} else if c.Message.Refusal != "" {
		item := rw.messageItem("completed", "")
		item["content"] = []any{map[string]string{"type": "refusal", "refusal": c.Message.Refusal}}
		rw.done(item)
	}
	for i := range c.Message.ToolCalls {
		rw.done(rw.callItem("completed", &c.Message.ToolCalls[i]))
	}
	rw.finishReason(c.FinishReason)
}

// response is the response object, in status (the writer's when "").
func (rw *responseWriter) responseIn(status string, usage json.RawMessage) map[string]any {
	raw := rw.rr.raw
	or := func(name string, def any) any {
		if v, ok := raw[name]; ok && string(v) != "null" {
			return v
		}
		return def
	}
	var incomplete any
	if status == "incomplete" {
		incomplete = map[string]string{"reason": rw.reason}
	}
	var maxOutput any
	if rw.rr.MaxOutput > 0 {
		maxOutput = rw.rr.MaxOutput
	}
	output := rw.output
	if output == nil {
		output = []json.RawMessage{}
	}
	var u any
	if usage != nil {
		u = usage
	}
	return map[string]any{
		"id": json.RawMessage(rw.ids.id), "object": "response", "created_at": rw.created, "status": status, "error": nil,
		"incomplete_details": incomplete, "instructions": or("instructions", nil), "max_output_tokens": maxOutput,
		"model": json.RawMessage(rw.ids.model), "output": output, "parallel_tool_calls": or("parallel_tool_calls", true),
		"previous_response_id": nil, "store": false, "temperature": or("temperature", 1.0), "top_p": or("top_p", 1.0),
		"tool_choice": or("tool_choice", "auto"), "tools": or("tools", []any{}), "metadata": or("metadata", map[string]any{}),
		"text": or("text", map[string]any{"format": map[string]string{"type": "text"}}), "truncation": or("truncation", "disabled"),
		"usage": u,
	}
}

// response is the complete response with its usage and cost.
func (rw *responseWriter) response(u tokenUsage, credits tollgate.Credits) map[string]any {
	return rw.responseIn(rw.status, responsesUsage(u, credits))
}

// event writes one stream event with its type and sequence number.
func (rw *responseWriter) event(typ string, fields map[string]any) {
	fields["type"], fields["sequence_number"] = typ, rw.seq
	rw.seq++
	b, err := json.Marshal(fields)
	if err != nil {
		return
	}
	rw.rl.write("event: " + typ + "\ndata: " + string(b) + "\n\n")
}

// chunk writes the events for one chat chunk (choice 0 only: a response
// has one).
func (rw *responseWriter) chunk(c *chunk) {
	if !rw.started {
		rw.started = true
		rw.event("response.created", map[string]any{"response": rw.responseIn("in_progress", nil)})
		rw.event("response.in_progress", map[string]any{"response": rw.responseIn("in_progress", nil)})
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
			if rw.open != "text" {
				rw.closeItem()
				rw.open = "text"
				idx := len(rw.output)
				rw.event("response.output_item.added", map[string]any{"output_index": idx, "item": rw.messageItem("in_progress", "")})
				rw.event("response.content_part.added", map[string]any{"item_id": rw.itemID("msg"), "output_index": idx, "content_index": 0, "part": outputText("")})
			}
			rw.rl.add(0, *t)
			rw.text.WriteString(*t)
			rw.event("response.output_text.delta", map[string]any{"item_id": rw.itemID("msg"), "output_index": len(rw.output), "content_index": 0, "delta": *t, "logprobs": []any{}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.ID != "" {
				rw.closeItem()
				rw.open = "call"
				rw.call = &toolCall{ID: tc.ID, Type: "function"}
				rw.call.Function.Name = tc.Function.Name
				rw.event("response.output_item.added", map[string]any{"output_index": len(rw.output), "item": rw.callItem("in_progress", rw.call)})
			}
			rw.rl.add(0, tc.Function.Name+tc.Function.Arguments)
			if tc.Function.Arguments != "" && rw.open == "call" {
				rw.call.Function.Arguments += tc.Function.Arguments
				rw.event("response.function_call_arguments.delta", map[string]any{"item_id": rw.itemID("fc"), "output_index": len(rw.output), "delta": tc.Function.Arguments})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			rw.finishReason(*ch.FinishReason)
		}
	}
}

// closeItem ends the item being streamed.
func (rw *responseWriter) closeItem() {
	idx := len(rw.output)
	switch rw.open {
	case "text":
		id, text := rw.itemID("msg"), rw.text.String()
		rw.event("response.output_text.done", map[string]any{"item_id": id, "output_index": idx, "content_index": 0, "text": text, "logprobs": []any{}})
		rw.event("response.content_part.done", map[string]any{"item_id": id, "output_index": idx, "content_index": 0, "part": outputText(text)})
		item := rw.messageItem("completed", text)
		rw.event("response.output_item.done", map[string]any{"output_index": idx, "item": item})
		rw.done(item)
		rw.text.Reset()
	case "call":
		rw.event("response.function_call_arguments.done", map[string]any{"item_id": rw.itemID("fc"), "output_index": idx, "arguments": rw.call.Function.Arguments})
		item := rw.callItem("completed", rw.call)
		rw.event("response.output_item.done", map[string]any{"output_index": idx, "item": item})
		rw.done(item)
	}
	rw.open = ""
}

// finish ends a complete stream: response.completed (or incomplete) with
// the usage and its cost.
func (rw *responseWriter) finish(u tokenUsage, credits tollgate.Credits) {
	rw.closeItem()
	rw.event("response."+rw.status, map[string]any{"response": rw.response(u, credits)})
}

// fail ends a broken stream with response.failed, carrying the usage billed.
func (rw *responseWriter) fail(code, msg string, u tokenUsage, credits tollgate.Credits) {
	rw.open = "" // the item being streamed stays unfinished
	resp := rw.responseIn("failed", responsesUsage(u, credits))
	resp["error"] = map[string]string{"code": code, "message": msg}
	rw.event("response.failed", map[string]any{"response": resp})
}

// responsesFromChunks relays a chat stream as Responses events.
func (g *Gateway) responsesFromChunks(w http.ResponseWriter, r *http.Request, m *metered, d *deployment, rr *responsesRequest, st chunkStream, first []*chunk, att *attempt) {
	m.answered(w, d)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rw := newResponseWriter(rr, m.ids(), m.start.Unix())
	rw.rl = g.newRelay(w, true)
	st.onWait(func() { rw.rl.flush() })
	for _, c := range first {
		rw.chunk(c)
	}
	rw.rl.flush()
	g.observeFirstToken(m, d)
	var upErr error
	for rw.rl.err == nil {
		c, err := st.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			upErr = err
			break
		}
		att.touch()
		rw.chunk(c)
	}
	m.upstreamID = st.upstreamID()
	u, estimated := st.usage(), false
	if u == nil {
		e := m.estimate(rw.rl.outputs(false)...)
		if ir, ok := st.(inputReporter); ok {
			if in := ir.inputUsage(); in != nil {
				e.Input, e.Cached = in.Input, in.Cached
			}
		}
		u, estimated = &e, true
	}
	switch {
	case rw.rl.err != nil || r.Context().Err() != nil:
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case upErr != nil && m.overtime():
		credits := m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		rw.fail("request_timeout", tollgate.ErrorMessage(m.deadlineError()), *u, credits)
	case upErr != nil:
		credits := m.settle(r.Context(), d, *u, estimated, "interrupted")
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
		rw.fail("server_error", "the upstream stream was interrupted; the output so far is billed", *u, credits)
	default:
		if !rw.started {
			rw.chunk(&chunk{fields: map[string]json.RawMessage{}})
		}
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		rw.finish(*u, credits)
	}
}
