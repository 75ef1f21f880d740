package mockllm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

const messagesPath = "/v1/messages"

// messagesRequest is the part of an Anthropic Messages request the mock reads.
type messagesRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System        json.RawMessage `json:"system"`
	MaxTokens     *int            `json:"max_tokens"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
	Tools         []struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

// messagesAnswer is a generated Messages answer: text or one tool_use block.
type messagesAnswer struct {
	id, model                            string
	prompt                               prompt
	input, cacheRead, cacheCr, cacheCr1h int
	out                                  output
	call                                 *toolCall
	stopReason                           string
	// searches and fetches are the server tool uses reported.
	searches, fetches int
}

func (a *messagesAnswer) outputTokens() int {
	if a.call != nil {
		return a.call.tokens()
	}
	return len(a.out.pieces)
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, b *behaviour) {
	if r.Header.Get("Anthropic-Version") == "" {
		s.fail(w, messagesPath, apiAnthropic, http.StatusBadRequest, "anthropic-version: header is required")
		return
	}
	var req messagesRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, messagesPath, apiAnthropic, http.StatusBadRequest, err.Error())
		return
	}
	a, err := messagesAnswerFor(&req, b)
	if err != nil {
		s.fail(w, messagesPath, apiAnthropic, http.StatusBadRequest, err.Error())
		return
	}
	if req.Stream {
		s.messagesStream(w, r, b, a)
		return
	}
	if !sleep(r.Context(), generationTime(b, a.outputTokens())) {
		s.record(messagesPath, 0)
		return
	}
	buf := append(a.appendHead(nil), `"content":[`...)
	if a.call != nil {
		buf = append(a.appendToolUse(buf), `,"input":`...)
		buf = append(buf, a.call.args...)
		buf = append(buf, '}')
	} else {
		buf = append(buf, `{"type":"text","text":`...)
		buf = appendString(buf, a.out.text)
		buf = append(buf, '}')
	}
	buf = append(buf, `],"stop_reason":"`...)
	buf = append(buf, a.stopReason...)
	buf = append(buf, `","stop_sequence":`...)
	buf = appendNullable(buf, a.out.stopSeq)
	if !b.omitUsage {
		buf = append(buf, `,"usage":`...)
		buf = a.appendUsage(buf, a.outputTokens())
	}
	buf = append(buf, "}\n"...)
	s.record(messagesPath, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}

func messagesAnswerFor(req *messagesRequest, b *behaviour) (*messagesAnswer, error) {
	if req.MaxTokens == nil {
		return nil, errorf("max_tokens: Field required")
	}
	if *req.MaxTokens < 1 {
		return nil, errorf("max_tokens: must be greater than or equal to 1")
	}
	p, err := messagesPrompt(req)
	if err != nil {
		return nil, err
	}
	a := &messagesAnswer{model: req.Model, prompt: p}
	for _, t := range req.Tools {
		switch {
		case strings.HasPrefix(t.Type, "web_search_"):
			a.searches = max(b.webSearches, 1)
		case strings.HasPrefix(t.Type, "web_fetch_"):
			a.fetches = max(b.webFetches, 1)
		}
	}
	a.id = string(appendID(nil, "msg_", p.hash))
	a.cacheRead = min(b.cached, p.tokens)
	a.cacheCr = min(b.cacheCreation, p.tokens-a.cacheRead)
	a.cacheCr1h = min(b.cacheCreation1h, a.cacheCr)
	a.input = p.tokens - a.cacheRead - a.cacheCr
	t, err := messagesTool(req, p.lastUser)
	if err != nil {
		return nil, err
	}
	seed := p.choiceSeed(0)
	if t != nil {
		call, cut, err := makeToolCall(seed, t, *req.MaxTokens)
		if err != nil {
			return nil, errorf("tools: %w", err)
		}
		a.call, a.stopReason = &call, "tool_use"
		if cut {
			a.stopReason = "max_tokens"
		}
		return a, nil
	}
	a.out = generate(seed, b.outputTokens, *req.MaxTokens, req.StopSequences, false)
	switch {
	case a.out.reason == "length":
		a.stopReason = "max_tokens"
	case a.out.stopSeq != "":
		a.stopReason = "stop_sequence"
	default:
		a.stopReason = "end_turn"
	}
	return a, nil
}

// messagesPrompt validates and counts the prompt of a Messages request.
func messagesPrompt(req *messagesRequest) (prompt, error) {
	p := newPrompt(req.Model)
	if req.Model == "" {
		return p, errorf("model: Field required")
	}
	if len(req.Messages) == 0 {
		return p, errorf("messages: at least one message is required")
	}
	if sys := bytes.TrimSpace(req.System); len(sys) > 0 {
		text, err := contentText(sys)
		if err != nil {
			return p, errorf("system: %w", err)
		}
		p.add("system", text)
	}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return p, errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		text, err := contentText(m.Content)
		if err != nil {
			return p, errorf("messages.%d.content: %w", i, err)
		}
		p.add(m.Role, text)
	}
	return p, nil
}

// countTokens answers POST /v1/messages/count_tokens with
// {"input_tokens":N}: the prompt usage /v1/messages would report.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request, _ *behaviour) {
	const path = "/v1/messages/count_tokens"
	if r.Header.Get("Anthropic-Version") == "" {
		s.fail(w, path, apiAnthropic, http.StatusBadRequest, "anthropic-version: header is required")
		return
	}
	var req messagesRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, path, apiAnthropic, http.StatusBadRequest, err.Error())
		return
	}
	p, err := messagesPrompt(&req)
	if err != nil {
		s.fail(w, path, apiAnthropic, http.StatusBadRequest, err.Error())
		return
	}
	s.record(path, http.StatusOK)
	writeJSON(w, http.StatusOK, append(appendInt([]byte(`{"input_tokens":`), int64(p.tokens)), "}\n"...))
}

func messagesTool(req *messagesRequest, lastUser string) (*tool, error) {
	if len(req.Tools) == 0 {
		return nil, nil
	}
	tools := make([]tool, len(req.Tools))
	for i, t := range req.Tools {
		tools[i] = tool{name: t.Name, params: t.InputSchema}
	}
	var forced string
	var anyCall, none bool
	if tc := req.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "":
		case "any":
			anyCall = true
		case "none":
			none = true
		case "tool":
			forced = tc.Name
		default:
			return nil, errorf("tool_choice.type: unknown type %q", tc.Type)
		}
	}
	return pickTool(tools, forced, anyCall, none, lastUser)
}

func (a *messagesAnswer) appendHead(buf []byte) []byte {
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, a.id)
	buf = append(buf, `,"type":"message","role":"assistant","model":`...)
	buf = appendString(buf, a.model)
	return append(buf, ',')
}

// appendToolUse appends a tool_use block up to (not including) its input.
func (a *messagesAnswer) appendToolUse(buf []byte) []byte {
	buf = append(buf, `{"type":"tool_use","id":`...)
	buf = appendID(append(buf, '"'), "toolu_", a.prompt.choiceSeed(0))
	buf = append(buf, `","name":`...)
	return appendString(buf, a.call.name)
}

// appendUsage appends Anthropic's usage with output tokens: input_tokens
// excludes the prompt tokens read from and written to the cache, reported
// apart, the writes split by how long the cache keeps them.
func (a *messagesAnswer) appendUsage(buf []byte, output int) []byte {
	buf = append(buf, `{"input_tokens":`...)
	buf = appendInt(buf, int64(a.input))
	buf = append(buf, `,"cache_creation_input_tokens":`...)
	buf = appendInt(buf, int64(a.cacheCr))
	buf = append(buf, `,"cache_read_input_tokens":`...)
	buf = appendInt(buf, int64(a.cacheRead))
	buf = append(buf, `,"cache_creation":{"ephemeral_5m_input_tokens":`...)
	buf = appendInt(buf, int64(a.cacheCr-a.cacheCr1h))
	buf = append(buf, `,"ephemeral_1h_input_tokens":`...)
	buf = appendInt(buf, int64(a.cacheCr1h))
	buf = append(buf, '}')
	buf = append(buf, `,"output_tokens":`...)
	buf = appendInt(buf, int64(output))
	if a.searches > 0 || a.fetches > 0 {
		buf = append(buf, `,"server_tool_use":{"web_search_requests":`...)
		buf = appendInt(buf, int64(a.searches))
		buf = append(buf, `,"web_fetch_requests":`...)
		buf = appendInt(buf, int64(a.fetches))
		buf = append(buf, '}')
	}
	return append(buf, `,"service_tier":"standard"}`...)
}

// messagesStream writes Anthropic's event sequence: message_start (usage
// with the input side and output_tokens 0), ping, content_block_start, one
// delta per token (text_delta, or for tool_use the name counts as one
// token and each input_json_delta fragment as one), content_block_stop,
// message_delta (stop_reason and cumulative usage) and message_stop.
func (s *Server) messagesStream(w http.ResponseWriter, r *http.Request, b *behaviour, a *messagesAnswer) {
	st := s.startSSE(w, r, messagesPath, b)
	usage := !b.omitUsage
	buf := append(a.appendHead([]byte(`{"type":"message_start","message":`)), `"content":[],"stop_reason":null,"stop_sequence":null`...)
	if usage {
		buf = append(buf, `,"usage":`...)
		buf = a.appendUsage(buf, 0)
	}
	buf = append(buf, "}}"...)
	if st.event("message_start", buf) != nil || st.event("ping", []byte(`{"type": "ping"}`)) != nil {
		return
	}
	buf = append(buf[:0], `{"type":"content_block_start","index":0,"content_block":`...)
	if a.call != nil {
		buf = append(a.appendToolUse(buf), `,"input":{}}}`...)
	} else {
		buf = append(buf, `{"type":"text","text":""}}`...)
	}
	if st.event("content_block_start", buf) != nil {
		return
	}
	pieces, key, typ := a.out.pieces, `"text":`, "text_delta"
	if a.call != nil {
		pieces, key, typ = a.call.frags, `"partial_json":`, "input_json_delta"
	}
	for _, p := range pieces {
		if st.pace() != nil {
			return
		}
		buf = append(buf[:0], `{"type":"content_block_delta","index":0,"delta":{"type":"`...)
		buf = append(buf, typ...)
		buf = append(buf, `",`...)
		buf = append(buf, key...)
		buf = appendString(buf, p)
		buf = append(buf, "}}"...)
		if st.event("content_block_delta", buf) != nil {
			return
		}
	}
	if st.event("content_block_stop", []byte(`{"type":"content_block_stop","index":0}`)) != nil {
		return
	}
	buf = append(buf[:0], `{"type":"message_delta","delta":{"stop_reason":"`...)
	buf = append(buf, a.stopReason...)
	buf = append(buf, `","stop_sequence":`...)
	buf = appendNullable(buf, a.out.stopSeq)
	buf = append(buf, '}')
	if usage {
		buf = append(buf, `,"usage":`...)
		buf = a.appendUsage(buf, a.outputTokens())
	}
	buf = append(buf, '}')
	if st.event("message_delta", buf) != nil {
		return
	}
	_ = st.event("message_stop", []byte(`{"type":"message_stop"}`))
}
