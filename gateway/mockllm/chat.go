package mockllm

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
)

const chatPath = "/v1/chat/completions"

// Constant stream deltas.
var (
	roleDelta  = []byte(`{"role":"assistant","content":"","refusal":null}`)
	emptyDelta = []byte(`{}`)
)

// chatRequest is the part of an OpenAI chat completion request the mock
// reads; everything else is accepted and ignored.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                   *int            `json:"n"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Tools               []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	ServiceTier string   `json:"service_tier"`
	Modalities  []string `json:"modalities"`
}

// chatChoice is one generated choice: text or a tool call.
type chatChoice struct {
	out  output
	call *toolCall
}

func (c *chatChoice) tokens() int {
	if c.call != nil {
		return c.call.tokens()
	}
	return len(c.out.pieces)
}

func (c *chatChoice) finish() string {
	if c.call != nil && c.out.reason != "length" {
		return "tool_calls"
	}
	return c.out.reason
}

// chatAnswer is everything both the JSON and the stream answer print.
type chatAnswer struct {
	id, model  string
	created    int64
	choices    []chatChoice
	prompt     prompt
	cached     int
	completion int
	// cacheWrite and reasoning are reported by the dialects that have
	// them (appendUsage), dialect naming it.
	cacheWrite, reasoning int
	dialect               string
	// tier is the service_tier answered; audioIn and audioOut the audio
	// tokens reported (counted in prompt_tokens and completion_tokens).
	tier              string
	audioIn, audioOut int
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, b *behaviour) {
	var req chatRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, chatPath, apiOpenAI, http.StatusBadRequest, err.Error())
		return
	}
	ans, param, err := s.chatAnswer(&req, b)
	if err != nil {
		s.failParam(w, chatPath, apiOpenAI, http.StatusBadRequest, err.Error(), param)
		return
	}
	if req.Stream {
		usage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !b.omitUsage
		s.chatStream(w, r, b, ans, usage)
		return
	}
	if !sleep(r.Context(), generationTime(b, ans.completion)) {
		s.record(chatPath, 0)
		return
	}
	s.record(chatPath, http.StatusOK)
	writeJSON(w, http.StatusOK, ans.appendJSON(nil, !b.omitUsage))
}

// chatAnswer validates req and generates its answer; on error it names the
// offending parameter.
func (s *Server) chatAnswer(req *chatRequest, b *behaviour) (*chatAnswer, string, error) {
	if req.Model == "" {
		return nil, "model", errorf("you must provide a model parameter")
	}
	if len(req.Messages) == 0 {
		return nil, "messages", errorf("messages must be a non-empty array")
	}
	n := 1
	if req.N != nil {
		n = *req.N
		if n < 1 || n > 128 {
			return nil, "n", errorf("n must be between 1 and 128")
		}
	}
	if n*b.outputTokens > maxAnswerTokens {
		return nil, "n", errorf("mockllm: n × output tokens is over %d", maxAnswerTokens)
	}
	limit := -1
	for _, p := range []struct {
		v    *int
		name string
	}{{req.MaxTokens, "max_tokens"}, {req.MaxCompletionTokens, "max_completion_tokens"}} {
		if p.v == nil {
			continue
		}
		if *p.v < 1 {
			return nil, p.name, errorf("%s must be at least 1", p.name)
		}
		limit = *p.v
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, "stream_options", errorf("the stream_options parameter is only allowed when stream is enabled")
	}
	stops, err := parseStop(req.Stop)
	if err != nil {
		return nil, "stop", err
	}
	p := newPrompt(req.Model)
	for i, m := range req.Messages {
		text, err := contentText(m.Content)
		if err != nil {
			return nil, "messages[" + itoa(i) + "].content", err
		}
		p.add(m.Role, text)
	}
	t, err := s.chatTool(req, p.lastUser)
	if err != nil {
		return nil, "tool_choice", err
	}
	jsonMode := req.ResponseFormat != nil && (req.ResponseFormat.Type == "json_object" || req.ResponseFormat.Type == "json_schema")
	ans := &chatAnswer{model: req.Model, created: s.now().Unix(), prompt: p, cached: min(b.cached, p.tokens)}
	ans.id = string(appendID(nil, "chatcmpl-", p.hash))
	ans.choices = make([]chatChoice, n)
	for i := range ans.choices {
		c := &ans.choices[i]
		seed := p.choiceSeed(i)
		if t != nil {
			call, cut, err := makeToolCall(seed, t, limit)
			if err != nil {
				return nil, "tools", err
			}
			c.call = &call
			if cut {
				c.out.reason = "length"
			}
		} else {
			c.out = generate(seed, b.outputTokens, limit, stops, jsonMode)
		}
		ans.completion += c.tokens()
	}
	ans.cacheWrite = min(b.cacheCreation, p.tokens-ans.cached)
	ans.reasoning = min(b.reasoning, ans.completion)
	ans.dialect = b.dialect
	ans.tier = "default"
	if req.ServiceTier == "priority" {
		ans.tier = "priority"
	}
	if b.serviceTier != "" {
		ans.tier = b.serviceTier
	}
	for _, m := range req.Messages {
		ans.audioIn += inputAudioTokens(m.Content)
	}
	if slices.Contains(req.Modalities, "audio") {
		ans.audioOut = ans.completion // the audio is the answer; its transcript is free
	}
	return ans, "", nil
}

func (s *Server) chatTool(req *chatRequest, lastUser string) (*tool, error) {
	if len(req.Tools) == 0 {
		return nil, nil
	}
	tools := make([]tool, len(req.Tools))
	for i, t := range req.Tools {
		tools[i] = tool{name: t.Function.Name, params: t.Function.Parameters}
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
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(tc, &named); err != nil {
			return nil, errorf("tool_choice: %w", err)
		}
		forced = named.Function.Name
	}
	return pickTool(tools, forced, anyCall, none, lastUser)
}

func (a *chatAnswer) appendHead(buf []byte, object string) []byte {
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, a.id)
	buf = append(buf, `,"object":"`...)
	buf = append(buf, object...)
	buf = append(buf, `","created":`...)
	buf = appendInt(buf, a.created)
	buf = append(buf, `,"model":`...)
	buf = appendString(buf, a.model)
	buf = append(buf, `,"system_fingerprint":"fp_mock","service_tier":`...)
	buf = appendString(buf, a.tier)
	buf = append(buf, `,"choices":[`...)
	return buf
}

func (a *chatAnswer) callID(i int) string {
	return string(appendID(nil, "call_", a.prompt.choiceSeed(i)))
}

// appendJSON appends the non-streaming answer.
func (a *chatAnswer) appendJSON(buf []byte, usage bool) []byte {
	buf = a.appendHead(buf, "chat.completion")
	for i := range a.choices {
		c := &a.choices[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"index":`...)
		buf = appendInt(buf, int64(i))
		buf = append(buf, `,"message":{"role":"assistant","content":`...)
		if c.call != nil {
			buf = append(buf, `null,"refusal":null,"annotations":[],"tool_calls":[{"id":`...)
			buf = appendString(buf, a.callID(i))
			buf = append(buf, `,"type":"function","function":{"name":`...)
			buf = appendString(buf, c.call.name)
			buf = append(buf, `,"arguments":`...)
			buf = appendString(buf, c.call.args)
			buf = append(buf, `}}]}`...)
		} else {
			buf = appendString(buf, c.out.text)
			buf = append(buf, `,"refusal":null,"annotations":[]}`...)
		}
		buf = append(buf, `,"logprobs":null,"finish_reason":"`...)
		buf = append(buf, c.finish()...)
		buf = append(buf, `"}`...)
	}
	buf = append(buf, ']')
	if usage {
		buf = append(buf, `,"usage":`...)
		buf = a.appendUsage(buf)
	}
	return append(buf, "}\n"...)
}

// chatStream writes the answer as chat.completion.chunk events: per choice
// a role delta, one delta per token (the tool call's name, then each
// argument fragment), a finish delta; then the usage chunk when asked for,
// and [DONE].
func (s *Server) chatStream(w http.ResponseWriter, r *http.Request, b *behaviour, a *chatAnswer, usage bool) {
	st := s.startSSE(w, r, chatPath, b)
	head := a.appendHead(nil, "chat.completion.chunk")
	tail := "]}"
	if usage {
		tail = `],"usage":null}`
	}
	var buf []byte
	chunk := func(i int, delta []byte, finish string) error {
		buf = append(buf[:0], head...)
		buf = append(buf, `{"index":`...)
		buf = appendInt(buf, int64(i))
		buf = append(buf, `,"delta":`...)
		buf = append(buf, delta...)
		buf = append(buf, `,"logprobs":null,"finish_reason":`...)
		if finish == "" {
			buf = append(buf, "null"...)
		} else {
			buf = append(buf, '"')
			buf = append(buf, finish...)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
		buf = append(buf, tail...)
		return st.event("", buf)
	}
	var delta []byte
	for i := range a.choices {
		c := &a.choices[i]
		if err := chunk(i, roleDelta, ""); err != nil {
			return
		}
		pieces := c.out.pieces
		if c.call != nil {
			pieces = c.call.frags
			delta = a.appendToolStart(delta[:0], i)
			if st.pace() != nil || chunk(i, delta, "") != nil {
				return
			}
		}
		for _, p := range pieces {
			delta = appendPieceDelta(delta[:0], p, c.call != nil)
			if st.pace() != nil || chunk(i, delta, "") != nil {
				return
			}
		}
		if chunk(i, emptyDelta, c.finish()) != nil {
			return
		}
	}
	if usage {
		buf = append(buf[:0], head...)
		buf = append(buf, `],"usage":`...)
		buf = a.appendUsage(buf)
		buf = append(buf, '}')
		if st.event("", buf) != nil {
			return
		}
	}
	_ = st.event("", []byte("[DONE]"))
}

// appendToolStart appends the delta that opens choice i's tool call.
func (a *chatAnswer) appendToolStart(buf []byte, i int) []byte {
	buf = append(buf, `{"tool_calls":[{"index":0,"id":`...)
	buf = appendString(buf, a.callID(i))
	buf = append(buf, `,"type":"function","function":{"name":`...)
	buf = appendString(buf, a.choices[i].call.name)
	return append(buf, `,"arguments":""}}]}`...)
}

// appendPieceDelta appends the delta carrying one token: content, or a
// fragment of tool-call arguments.
func appendPieceDelta(buf []byte, p string, tool bool) []byte {
	if tool {
		buf = append(buf, `{"tool_calls":[{"index":0,"function":{"arguments":`...)
		buf = appendString(buf, p)
		return append(buf, `}}]}`...)
	}
	buf = append(buf, `{"content":`...)
	buf = appendString(buf, p)
	return append(buf, '}')
}

// inputAudioTokens are the audio tokens of content's input_audio parts:
// 10 a second (OpenAI's 100 ms a token), rounded up; a WAV file's seconds
// from its header's byte rate, any other's at 128 kbit/s. Data that is not
// base64 counts nothing.
func inputAudioTokens(content json.RawMessage) int {
	if len(content) == 0 || content[0] != '[' {
		return 0
	}
	var parts []struct {
		Type       string `json:"type"`
		InputAudio struct {
			Data   string `json:"data"`
			Format string `json:"format"`
		} `json:"input_audio"`
	}
	_ = json.Unmarshal(content, &parts)
	n := 0
	for _, p := range parts {
		if p.Type != "input_audio" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(p.InputAudio.Data)
		if err != nil {
			continue
		}
		size, rate := len(raw), 16000
		if len(raw) >= 44 && string(raw[0:4]) == "RIFF" && string(raw[8:12]) == "WAVE" {
			if br := int(binary.LittleEndian.Uint32(raw[28:32])); br > 0 {
				size, rate = len(raw)-44, br
			}
		}
		n += (size*10 + rate - 1) / rate
	}
	return n
}
