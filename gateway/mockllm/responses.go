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
}

// responsesAnswer is a generated Responses API answer.
type responsesAnswer struct {
	id, msgID, model string
	instructions     string
	created          int64
	prompt           prompt
	cached           int
	out              output
	maxOutput        *int
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
	if !sleep(r.Context(), generationTime(b, len(ans.out.pieces))) {
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
			p.add(it.Role, text)
		}
	}
	ans := &responsesAnswer{model: req.Model, instructions: req.Instructions, created: s.now().Unix(), prompt: p, cached: min(b.cached, p.tokens), maxOutput: req.MaxOutputTokens}
	ans.id = string(appendID(nil, "resp_", p.hash))
	ans.msgID = string(appendID(nil, "msg_", p.hash^1))
	ans.out = generate(p.choiceSeed(0), b.outputTokens, limit, nil, false)
	return ans, "", nil
}

func (a *responsesAnswer) status() string {
	if a.out.reason == "length" {
		return "incomplete"
	}
	return "completed"
}

// appendItem appends the output message item.
func (a *responsesAnswer) appendItem(buf []byte, status string, text bool) []byte {
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
		n := len(a.out.pieces)
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
	for _, p := range a.out.pieces {
		err := st.pace()
		if err == nil {
			err = emit(respEvent{"response.output_text.delta", func(b2 []byte) []byte {
				b2 = append(a.appendLoc(b2), `,"delta":`...)
				b2 = appendString(b2, p)
				return append(b2, `,"logprobs":[]`...)
			}})
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

func (a *responsesAnswer) openingEvents(usage bool) []respEvent {
	return []respEvent{
		a.responseEvent("response.created", "in_progress", false, usage),
		a.responseEvent("response.in_progress", "in_progress", false, usage),
		{"response.output_item.added", func(buf []byte) []byte {
			buf = append(buf, `,"output_index":0,"item":`...)
			return a.appendItem(buf, "in_progress", false)
		}},
		{"response.content_part.added", func(buf []byte) []byte {
			buf = append(a.appendLoc(buf), `,"part":`...)
			return appendOutputText(buf, "")
		}},
	}
}

func (a *responsesAnswer) closingEvents(usage bool) []respEvent {
	status := a.status()
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
