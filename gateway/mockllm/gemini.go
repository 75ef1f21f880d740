package mockllm

import (
	"encoding/json"
	"net/http"
	"strings"
)

// GeminiPrefix starts the Gemini API's routes:
// POST /v1beta/models/{model}:generateContent and
// POST /v1beta/models/{model}:streamGenerateContent?alt=sse.
const GeminiPrefix = "/v1beta/models/"

// geminiRequest is the part of a generateContent request the mock reads.
type geminiRequest struct {
	Contents []struct {
		Role  string       `json:"role"`
		Parts []geminiPart `json:"parts"`
	} `json:"contents"`
	SystemInstruction *struct {
		Parts []geminiPart `json:"parts"`
	} `json:"systemInstruction"`
	GenerationConfig *struct {
		MaxOutputTokens  *int     `json:"maxOutputTokens"`
		StopSequences    []string `json:"stopSequences"`
		CandidateCount   *int     `json:"candidateCount"`
		ResponseMimeType string   `json:"responseMimeType"`
	} `json:"generationConfig"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name                 string          `json:"name"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	ToolConfig *struct {
		FunctionCallingConfig *struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig"`
}

// geminiPart is one part of a Content; exactly one data member is set.
type geminiPart struct {
	Text       *string `json:"text"`
	Thought    bool    `json:"thought"`
	InlineData *struct {
		MimeType string `json:"mimeType"`
		Data     string `json:"data"`
	} `json:"inlineData"`
	FileData *struct {
		FileURI string `json:"fileUri"`
	} `json:"fileData"`
	FunctionCall *struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"functionCall"`
	FunctionResponse *struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse"`
}

// text is what the part adds to the prompt: its text, or a function
// response's response object as written.
func (p *geminiPart) text() string {
	switch {
	case p.Text != nil:
		return *p.Text
	case p.FunctionResponse != nil:
		return string(p.FunctionResponse.Response)
	}
	return ""
}

// kinds counts the data members set.
func (p *geminiPart) kinds() int {
	n := 0
	for _, set := range []bool{p.Text != nil, p.InlineData != nil, p.FileData != nil, p.FunctionCall != nil, p.FunctionResponse != nil} {
		if set {
			n++
		}
	}
	return n
}

// geminiAnswer is a generated answer: one choice per candidate.
type geminiAnswer struct {
	id, model string
	prompt    prompt
	cached    int
	thoughts  int
	choices   []chatChoice
}

func (a *geminiAnswer) candidatesTokens() int {
	n := 0
	for i := range a.choices {
		n += a.choices[i].tokens()
	}
	return n
}

// geminiRoute splits "/v1beta/models/{model}:{method}" (or the same
// under /v1/models/, the version Google's Go SDK defaults to).
func geminiRoute(path string) (model, method string, ok bool) {
	rest, ok := strings.CutPrefix(path, GeminiPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(path, "/v1/models/")
	}
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// gemini answers generateContent and streamGenerateContent (only with
// ?alt=sse, the form Google's SDKs use).
func (s *Server) gemini(w http.ResponseWriter, r *http.Request, b *behaviour) {
	path := r.URL.Path
	model, method, _ := geminiRoute(path)
	stream := method == "streamGenerateContent"
	if !stream && method != "generateContent" {
		s.fail(w, path, apiGemini, http.StatusNotFound, "mockllm: method "+method+" is not modelled")
		return
	}
	if stream && r.URL.Query().Get("alt") != "sse" {
		s.fail(w, path, apiGemini, http.StatusBadRequest, "mockllm: streamGenerateContent is modelled with ?alt=sse only")
		return
	}
	var req geminiRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, path, apiGemini, http.StatusBadRequest, err.Error())
		return
	}
	a, err := geminiAnswerFor(model, &req, b)
	if err != nil {
		s.fail(w, path, apiGemini, http.StatusBadRequest, err.Error())
		return
	}
	if stream {
		s.geminiStream(w, r, path, b, a)
		return
	}
	if !sleep(r.Context(), generationTime(b, a.candidatesTokens())) {
		s.record(path, 0)
		return
	}
	buf := []byte(`{"candidates":[`)
	for i := range a.choices {
		if i > 0 {
			buf = append(buf, ',')
		}
		c := &a.choices[i]
		buf = append(buf, `{"content":{"parts":[`...)
		if c.call != nil {
			buf = appendFunctionCall(buf, c.call)
		} else {
			buf = appendString(append(buf, `{"text":`...), c.out.text)
			buf = append(buf, '}')
		}
		buf = a.appendCandidateEnd(buf, i)
	}
	buf = append(buf, ']')
	if !b.omitUsage {
		buf = a.appendUsage(append(buf, `,"usageMetadata":`...), true)
	}
	buf = a.appendTail(buf)
	buf = append(buf, '\n')
	s.record(path, http.StatusOK)
	writeJSON(w, http.StatusOK, buf)
}

func geminiAnswerFor(model string, req *geminiRequest, b *behaviour) (*geminiAnswer, error) {
	p := newPrompt(model)
	if model == "" {
		return nil, errorf("model: is required in the path")
	}
	if len(req.Contents) == 0 {
		return nil, errorf("contents is not specified")
	}
	if req.SystemInstruction != nil {
		var text strings.Builder
		for i := range req.SystemInstruction.Parts {
			text.WriteString(req.SystemInstruction.Parts[i].text())
		}
		p.add("system", text.String())
	}
	for i, c := range req.Contents {
		role := c.Role
		switch role {
		case "", "user":
			role = "user"
		case "model":
			role = "assistant"
		default:
			return nil, errorf("contents[%d].role: please use a valid role: user, model", i)
		}
		if len(c.Parts) == 0 {
			return nil, errorf("contents[%d].parts: must not be empty", i)
		}
		var text strings.Builder
		for j := range c.Parts {
			part := &c.Parts[j]
			if part.kinds() != 1 {
				return nil, errorf("contents[%d].parts[%d]: a part must hold exactly one of text, inlineData, fileData, functionCall, functionResponse", i, j)
			}
			if part.Thought {
				continue
			}
			if t := part.text(); t != "" {
				if text.Len() > 0 {
					text.WriteByte('\n')
				}
				text.WriteString(t)
			}
		}
		p.add(role, text.String())
	}
	limit, stops, n, jsonMode := -1, []string(nil), 1, false
	if gc := req.GenerationConfig; gc != nil {
		if gc.MaxOutputTokens != nil {
			if *gc.MaxOutputTokens < 1 {
				return nil, errorf("generationConfig.maxOutputTokens: must be positive")
			}
			limit = *gc.MaxOutputTokens
		}
		if gc.CandidateCount != nil {
			if *gc.CandidateCount < 1 || *gc.CandidateCount > 8 {
				return nil, errorf("generationConfig.candidateCount: must be between 1 and 8")
			}
			n = *gc.CandidateCount
		}
		stops = gc.StopSequences
		jsonMode = gc.ResponseMimeType == "application/json"
	}
	t, err := geminiTool(req, p.lastUser)
	if err != nil {
		return nil, err
	}
	a := &geminiAnswer{model: model, prompt: p, cached: min(b.cached, p.tokens), thoughts: b.thoughts}
	a.id = string(appendID(nil, "", p.hash))
	for i := 0; i < n; i++ {
		seed := p.choiceSeed(i)
		var c chatChoice
		if t != nil {
			call, cut, err := makeToolCall(seed, t, limit)
			if err != nil {
				return nil, errorf("tools: %w", err)
			}
			c.call = &call
			if cut {
				c.out.reason = "length"
			}
		} else {
			c.out = generate(seed, b.outputTokens, limit, stops, jsonMode)
		}
		a.choices = append(a.choices, c)
	}
	return a, nil
}

// geminiTool picks the function to call, if any: mode ANY forces a call
// (to the one allowed name when there is one), NONE forbids it, AUTO
// follows the "call <name>" convention.
func geminiTool(req *geminiRequest, lastUser string) (*tool, error) {
	var tools []tool
	for _, t := range req.Tools {
		for _, d := range t.FunctionDeclarations {
			params := d.Parameters
			if len(params) == 0 || string(params) == "null" {
				params = d.ParametersJSONSchema
			}
			tools = append(tools, tool{name: d.Name, params: params})
		}
	}
	var forced string
	var anyCall, none bool
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		switch fc := tc.FunctionCallingConfig; fc.Mode {
		case "", "AUTO", "MODE_UNSPECIFIED", "VALIDATED":
		case "ANY":
			anyCall = true
			if len(fc.AllowedFunctionNames) == 1 {
				forced = fc.AllowedFunctionNames[0]
			}
		case "NONE":
			none = true
		default:
			return nil, errorf("toolConfig.functionCallingConfig.mode: unknown mode %q", fc.Mode)
		}
	}
	return pickTool(tools, forced, anyCall, none, lastUser)
}

// appendFunctionCall appends a functionCall part.
func appendFunctionCall(buf []byte, c *toolCall) []byte {
	buf = appendString(append(buf, `{"functionCall":{"name":`...), c.name)
	args := c.args
	if !json.Valid([]byte(args)) {
		args = "{}" // cut by maxOutputTokens: Gemini sends whole calls only
	}
	return append(append(append(buf, `,"args":`...), args...), "}}"...)
}

// geminiFinish is a choice's finishReason.
func geminiFinish(c *chatChoice) string {
	if c.out.reason == "length" {
		return "MAX_TOKENS"
	}
	return "STOP"
}

// appendCandidateEnd closes a candidate's parts and content and adds its
// finishReason and index.
func (a *geminiAnswer) appendCandidateEnd(buf []byte, i int) []byte {
	buf = append(buf, `],"role":"model"},"finishReason":"`...)
	buf = append(buf, geminiFinish(&a.choices[i])...)
	buf = append(buf, `","index":`...)
	buf = appendInt(buf, int64(i))
	return append(buf, '}')
}

// appendUsage appends usageMetadata: the prompt's count (cached content
// inside it), and when final the candidates' and thoughts' counts.
func (a *geminiAnswer) appendUsage(buf []byte, final bool) []byte {
	buf = appendInt(append(buf, `{"promptTokenCount":`...), int64(a.prompt.tokens))
	total := a.prompt.tokens
	if final {
		buf = appendInt(append(buf, `,"candidatesTokenCount":`...), int64(a.candidatesTokens()))
		total += a.candidatesTokens()
		if a.thoughts > 0 {
			buf = appendInt(append(buf, `,"thoughtsTokenCount":`...), int64(a.thoughts))
			total += a.thoughts
		}
	}
	if a.cached > 0 {
		buf = appendInt(append(buf, `,"cachedContentTokenCount":`...), int64(a.cached))
	}
	buf = appendInt(append(buf, `,"totalTokenCount":`...), int64(total))
	buf = append(buf, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	buf = appendInt(buf, int64(a.prompt.tokens))
	return append(buf, "}]}"...)
}

// appendTail appends modelVersion and responseId and closes the object.
func (a *geminiAnswer) appendTail(buf []byte) []byte {
	buf = appendString(append(buf, `,"modelVersion":`...), a.model)
	buf = appendString(append(buf, `,"responseId":`...), a.id)
	return append(buf, '}')
}

// geminiStream writes streamGenerateContent's SSE chunks (data lines, no
// event names, no end marker): per candidate, one chunk per token (a
// function call whole, in one chunk), the last with its finishReason.
// Every chunk carries usageMetadata with the prompt's count, the last the
// final counts.
func (s *Server) geminiStream(w http.ResponseWriter, r *http.Request, path string, b *behaviour, a *geminiAnswer) {
	st := s.startSSE(w, r, path, b)
	var buf []byte
	chunk := func(i int, part func([]byte) []byte, last, final bool) error {
		buf = append(buf[:0], `{"candidates":[{"content":{"parts":[`...)
		buf = part(buf)
		if last {
			buf = a.appendCandidateEnd(buf, i)
		} else {
			buf = append(buf, `],"role":"model"},"index":`...)
			buf = append(appendInt(buf, int64(i)), '}')
		}
		buf = append(buf, ']')
		if !b.omitUsage {
			buf = a.appendUsage(append(buf, `,"usageMetadata":`...), final)
		}
		return st.event("", a.appendTail(buf))
	}
	for i := range a.choices {
		c := &a.choices[i]
		final := i == len(a.choices)-1
		if c.call != nil {
			if st.pace() != nil || chunk(i, func(buf []byte) []byte { return appendFunctionCall(buf, c.call) }, true, final) != nil {
				return
			}
			continue
		}
		pieces := c.out.pieces
		if len(pieces) == 0 {
			pieces = []string{""}
		}
		for k, p := range pieces {
			if st.pace() != nil {
				return
			}
			text := func(buf []byte) []byte { return append(appendString(append(buf, `{"text":`...), p), '}') }
			if chunk(i, text, k == len(pieces)-1, final && k == len(pieces)-1) != nil {
				return
			}
		}
	}
}
