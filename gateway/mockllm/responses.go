package mockllm

import (
	"bytes"
	"encoding/json"
	"net/http"
)

const responsesPath = "/v1/responses"

// responsesRequest is the part of a Responses API request the mock reads.
type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    string          `json:"instructions"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
	Tools           []struct {
		Type       string          `json:"type"`
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

// responsesAnswer is a generated Responses API answer.
type responsesAnswer struct {
	id, msgID, model string
	instructions     string
	created          int64
	prompt           prompt
	cached           int
	out              output
	call             *toolCall // the answer is this function call, not a message
	callID           string
	maxOutput        *int
}

// outputTokens is the answer's output token count.
func (a *responsesAnswer) outputTokens() int {
	if a.call != nil {
		return a.call.tokens()
	}
	return len(a.out.pieces)
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req responsesRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, responsesPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	ans, param, err := s.responsesAnswer(&req, b)
	if err != nil {
		s.failParam(w, responsesPath, apiOpenAI, http.StatusBadRequest, err.Error(), param)
		return
	}
	if req.Stream {
		s.responsesStream(w, r, b, ans)
		return
	}
	if !sleep(r.Context(), generationTime(b, ans.outputTokens())) {
		s.record(responsesPath, 0)
		return
	}
	s.record(responsesPath, http.StatusOK)
	buf := ans.appendResponse(nil, ans.status(), true, !b.omitUsage)
	writeJSON(w, http.StatusOK, append(buf, '\n'))
}

func (s *Server) responsesAnswer(req *responsesRequest, b *behaviour) (*responsesAnswer, string, error) {
	if req.Model == "" {
		return nil, "model", errorf("you must provide a model parameter")
	}
	limit := -1
	if req.MaxOutputTokens != nil {
		if *req.MaxOutputTokens < 1 {
			return nil, "max_output_tokens", errorf("max_output_tokens must be at least 1")
		}
		limit = *req.MaxOutputTokens
	}
	p := newPrompt(req.Model)
	if req.Instructions != "" {
		p.add("system", req.Instructions)
	}
	in := bytes.TrimSpace(req.Input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return nil, "input", errorf("input is required")
	case in[0] == '"':
		text, err := contentText(in)
		if err != nil {
			return nil, "input", err
		}
		p.add("user", text)
	default:
		var items []struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
			Output  json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal(in, &items); err != nil {
			return nil, "input", errorf("input must be a string or an array of items: %w", err)
		}
		for i, it := range items {
			raw := it.Content
			if len(raw) == 0 {
				raw = it.Output
			}
			text, err := contentText(raw)
			if err != nil {
				return nil, "input[" + itoa(i) + "]", err
			}
			role := it.Role
			if it.Type == "function_call_output" {
				role = "tool" // its output is prompt text; a function_call item is free, as chat's tool_calls are
			}
			p.add(role, text)
		}
	}
	t, err := responsesTool(req, p.lastUser)
	if err != nil {
		return nil, "tool_choice", err
	}
	ans := &responsesAnswer{model: req.Model, instructions: req.Instructions, created: s.now().Unix(), prompt: p, cached: min(b.cached, p.tokens), maxOutput: req.MaxOutputTokens}
	ans.id = string(appendID(nil, "resp_", p.hash))
	ans.msgID = string(appendID(nil, "msg_", p.hash^1))
	if t != nil {
		ans.msgID = string(appendID(nil, "fc_", p.hash^1))
		ans.callID = string(appendID(nil, "call_", p.hash^2))
		call, cut, err := makeToolCall(p.choiceSeed(0), t, limit)
		if err != nil {
			return nil, "tools", err
		}
		ans.call = &call
		if cut {
			ans.out.reason = "length"
		}
		return ans, "", nil
	}
	ans.out = generate(p.choiceSeed(0), b.outputTokens, limit, nil, false)
	return ans, "", nil
}

// responsesTool picks the function to call, as chatTool does; Responses
// tools are flat ({"type":"function","name":N,"parameters":…}) and a
// named tool_choice is {"type":"function","name":N}.
func responsesTool(req *responsesRequest, lastUser string) (*tool, error) {
	var tools []tool
	for _, t := range req.Tools {
		if t.Type == "function" {
			tools = append(tools, tool{name: t.Name, params: t.Parameters})
		}
	}
	if len(tools) == 0 {
		return nil, nil
	}
	var forced string
	var anyCall, none bool
	tc := bytes.TrimSpace(req.ToolChoice)
	switch {
	case len(tc) == 0, string(tc) == "null", string(tc) == `"auto"`:
	case string(tc) == `"none"`:
		none = true
	case string(tc) == `"required"`:
		anyCall = true
	default:
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(tc, &named); err != nil {
			return nil, errorf("tool_choice: %w", err)
		}
		forced = named.Name
	}
	return pickTool(tools, forced, anyCall, none, lastUser)
}

func (a *responsesAnswer) status() string {
	if a.out.reason == "length" {
		return "incomplete"
	}
	return "completed"
}

// appendItem appends the output message item.
func (a *responsesAnswer) appendItem(buf []byte, status string, text bool) []byte {
	if a.call != nil {
		buf = append(buf, `{"id":`...)
		buf = appendString(buf, a.msgID)
		buf = append(buf, `,"type":"function_call","status":"`...)
		buf = append(buf, status...)
		buf = append(buf, `","arguments":`...)
		if text {
			buf = appendString(buf, a.call.args)
		} else {
			buf = append(buf, `""`...)
		}
		buf = append(buf, `,"call_id":`...)
		buf = appendString(buf, a.callID)
		buf = append(buf, `,"name":`...)
		buf = appendString(buf, a.call.name)
		return append(buf, '}')
	}
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, a.msgID)
	buf = append(buf, `,"type":"message","status":"`...)
	buf = append(buf, status...)
	buf = append(buf, `","role":"assistant","content":[`...)
	if text {
		buf = appendOutputText(buf, a.out.text)
	}
	return append(buf, "]}"...)
}

func appendOutputText(buf []byte, text string) []byte {
	buf = append(buf, `{"type":"output_text","text":`...)
	buf = appendString(buf, text)
	return append(buf, `,"annotations":[],"logprobs":[]}`...)
}

// appendResponse appends the response object in the given status; full
// includes the output, usage the usage.
func (a *responsesAnswer) appendResponse(buf []byte, status string, full, usage bool) []byte {
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, a.id)
	buf = append(buf, `,"object":"response","created_at":`...)
	buf = appendInt(buf, a.created)
	buf = append(buf, `,"status":"`...)
	buf = append(buf, status...)
	buf = append(buf, `","error":null,"incomplete_details":`...)
	if status == "incomplete" {
		buf = append(buf, `{"reason":"max_output_tokens"}`...)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"instructions":`...)
	buf = appendNullable(buf, a.instructions)
	buf = append(buf, `,"max_output_tokens":`...)
	if a.maxOutput != nil {
		buf = appendInt(buf, int64(*a.maxOutput))
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"model":`...)
	buf = appendString(buf, a.model)
	buf = append(buf, `,"output":[`...)
	if full {
		buf = a.appendItem(buf, status, true)
	}
	buf = append(buf, `],"parallel_tool_calls":true,"previous_response_id":null,"temperature":1,"tool_choice":"auto","tools":[],"top_p":1,"usage":`...)
	if full && usage {
		n := a.outputTokens()
		buf = append(buf, `{"input_tokens":`...)
		buf = appendInt(buf, int64(a.prompt.tokens))
		buf = append(buf, `,"input_tokens_details":{"cached_tokens":`...)
		buf = appendInt(buf, int64(a.cached))
		buf = append(buf, `},"output_tokens":`...)
		buf = appendInt(buf, int64(n))
		buf = append(buf, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		buf = appendInt(buf, int64(a.prompt.tokens+n))
		buf = append(buf, '}')
	} else {
		buf = append(buf, "null"...)
	}
	return append(buf, '}')
}

// respEvent is one Responses stream event: its type and a function
// appending the fields after "type" and "sequence_number".
type respEvent struct {
	typ  string
	body func([]byte) []byte
}

// responsesStream writes the Responses API event sequence: created,
// in_progress, output_item.added, content_part.added, one
// output_text.delta per token, output_text.done, content_part.done,
// output_item.done, and completed (or incomplete when max_output_tokens
// cut the text).
func (s *Server) responsesStream(w http.ResponseWriter, r *http.Request, b *behaviour, a *responsesAnswer) {
	st := s.startSSE(w, r, responsesPath, b)
	seq := 0
	var buf []byte
	emit := func(e respEvent) error {
		buf = append(buf[:0], `{"type":"`...)
		buf = append(buf, e.typ...)
		buf = append(buf, `","sequence_number":`...)
		buf = appendInt(buf, int64(seq))
		seq++
		buf = append(e.body(buf), '}')
		return st.event(e.typ, buf)
	}
	for _, e := range a.openingEvents(!b.omitUsage) {
		if emit(e) != nil {
			return
		}
	}
	for _, p := range a.deltas() {
		err := st.pace()
		if err == nil {
			err = emit(a.deltaEvent(p))
		}
		if err != nil {
			return
		}
	}
	for _, e := range a.closingEvents(!b.omitUsage) {
		if emit(e) != nil {
			return
		}
	}
}

// appendLoc appends where a text event belongs.
func (a *responsesAnswer) appendLoc(buf []byte) []byte {
	buf = append(buf, `,"item_id":`...)
	buf = appendString(buf, a.msgID)
	return append(buf, `,"output_index":0,"content_index":0`...)
}

func (a *responsesAnswer) responseEvent(typ, status string, full, usage bool) respEvent {
	return respEvent{typ, func(buf []byte) []byte {
		buf = append(buf, `,"response":`...)
		return a.appendResponse(buf, status, full, usage)
	}}
}

// deltas are the pieces streamed: text tokens, or a call's argument
// fragments (its name, one token, is in output_item.added).
func (a *responsesAnswer) deltas() []string {
	if a.call != nil {
		return a.call.frags
	}
	return a.out.pieces
}

func (a *responsesAnswer) deltaEvent(p string) respEvent {
	if a.call != nil {
		return respEvent{"response.function_call_arguments.delta", func(b2 []byte) []byte {
			b2 = append(b2, `,"item_id":`...)
			b2 = appendString(b2, a.msgID)
			b2 = append(b2, `,"output_index":0,"delta":`...)
			return appendString(b2, p)
		}}
	}
	return respEvent{"response.output_text.delta", func(b2 []byte) []byte {
		b2 = append(a.appendLoc(b2), `,"delta":`...)
		b2 = appendString(b2, p)
		return append(b2, `,"logprobs":[]`...)
	}}
}

func (a *responsesAnswer) openingEvents(usage bool) []respEvent {
	added := respEvent{"response.output_item.added", func(buf []byte) []byte {
		buf = append(buf, `,"output_index":0,"item":`...)
		return a.appendItem(buf, "in_progress", false)
	}}
	if a.call != nil {
		return []respEvent{
			a.responseEvent("response.created", "in_progress", false, usage),
			a.responseEvent("response.in_progress", "in_progress", false, usage),
			added,
		}
	}
	return []respEvent{
		a.responseEvent("response.created", "in_progress", false, usage),
		a.responseEvent("response.in_progress", "in_progress", false, usage),
		added,
		{"response.content_part.added", func(buf []byte) []byte {
			buf = append(a.appendLoc(buf), `,"part":`...)
			return appendOutputText(buf, "")
		}},
	}
}

func (a *responsesAnswer) closingEvents(usage bool) []respEvent {
	status := a.status()
	itemDone := respEvent{"response.output_item.done", func(buf []byte) []byte {
		buf = append(buf, `,"output_index":0,"item":`...)
		return a.appendItem(buf, status, true)
	}}
	if a.call != nil {
		return []respEvent{
			{"response.function_call_arguments.done", func(buf []byte) []byte {
				buf = append(buf, `,"item_id":`...)
				buf = appendString(buf, a.msgID)
				buf = append(buf, `,"output_index":0,"arguments":`...)
				return appendString(buf, a.call.args)
			}},
			itemDone,
			a.responseEvent("response."+status, status, true, usage),
		}
	}
	return []respEvent{
		{"response.output_text.done", func(buf []byte) []byte {
			buf = append(a.appendLoc(buf), `,"text":`...)
			buf = appendString(buf, a.out.text)
			return append(buf, `,"logprobs":[]`...)
		}},
		{"response.content_part.done", func(buf []byte) []byte {
			buf = append(a.appendLoc(buf), `,"part":`...)
			return appendOutputText(buf, a.out.text)
		}},
		{"response.output_item.done", func(buf []byte) []byte {
			buf = append(buf, `,"output_index":0,"item":`...)
			return a.appendItem(buf, status, true)
		}},
		a.responseEvent("response."+status, status, true, usage),
	}
}
