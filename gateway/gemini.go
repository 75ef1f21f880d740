package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"tollgate"
)

// This file is the Gemini API upstream (provider kind "gemini"): chat
// requests are translated to generateContent requests and the answers
// (and streamGenerateContent?alt=sse chunks) back to chat completions,
// as for Anthropic. The wire shapes follow Google's public reference for
// the Gemini API v1beta (ai.google.dev/api/generate-content: Content,
// Part, GenerationConfig, Tool.functionDeclarations, ToolConfig,
// Candidate.finishReason, UsageMetadata), checked against the published
// SDK types (googleapis.github.io/js-genai: GenerateContentResponseUsageMetadata,
// FinishReason).

// DefaultGeminiBaseURL is the Gemini API's base URL: requests go to
// BaseURL + "/v1beta/models/{model}:generateContent".
const DefaultGeminiBaseURL = "https://generativelanguage.googleapis.com"

// gemini is a Gemini API upstream.
type gemini struct {
	client *http.Client
	clock  tollgate.Clock
}

func (gm *gemini) header(d *deployment) http.Header {
	h := http.Header{}
	if d.provider.APIKey != "" {
		h.Set("x-goog-api-key", d.provider.APIKey)
	}
	return h
}

// geminiURL is the method's URL for the deployment's model.
func geminiURL(d *deployment, stream bool) string {
	base := d.provider.BaseURL
	if base == "" {
		base = DefaultGeminiBaseURL
	}
	u := joinURL(base, "/v1beta/models/"+url.PathEscape(d.cfg.Model))
	if stream {
		return u + ":streamGenerateContent?alt=sse"
	}
	return u + ":generateContent"
}

// gemPart is one part of a Content: exactly one of its data members is set.
type gemPart struct {
	Text             string           `json:"text,omitempty"`
	Thought          bool             `json:"thought,omitempty"`
	ThoughtSignature string           `json:"thoughtSignature,omitempty"`
	InlineData       *gemBlob         `json:"inlineData,omitempty"`
	FileData         *gemFileData     `json:"fileData,omitempty"`
	FunctionCall     *gemFunctionCall `json:"functionCall,omitempty"`
	FunctionResponse *gemFunctionResp `json:"functionResponse,omitempty"`
}

type gemBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"` // base64
}

type gemFileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type gemFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type gemFunctionResp struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// gemContent is a turn: role "user" or "model" (none for systemInstruction).
type gemContent struct {
	Role  string    `json:"role,omitempty"`
	Parts []gemPart `json:"parts"`
}

type gemGenerationConfig struct {
	MaxOutputTokens  int64    `json:"maxOutputTokens,omitempty"`
	Temperature      *float64 `json:"temperature,omitempty"`
	TopP             *float64 `json:"topP,omitempty"`
	StopSequences    []string `json:"stopSequences,omitempty"`
	CandidateCount   int64    `json:"candidateCount,omitempty"`
	Seed             *int64   `json:"seed,omitempty"`
	ResponseMimeType string   `json:"responseMimeType,omitempty"`
}

type gemFunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type gemTool struct {
	FunctionDeclarations []gemFunctionDecl `json:"functionDeclarations,omitempty"`
}

type gemToolConfig struct {
	FunctionCallingConfig gemFunctionCallingConfig `json:"functionCallingConfig"`
}

type gemFunctionCallingConfig struct {
	Mode                 string   `json:"mode"` // AUTO, ANY, NONE
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// gemRequest is a generateContent request body.
type gemRequest struct {
	Contents          []gemContent         `json:"contents"`
	SystemInstruction *gemContent          `json:"systemInstruction,omitempty"`
	GenerationConfig  *gemGenerationConfig `json:"generationConfig,omitempty"`
	Tools             []gemTool            `json:"tools,omitempty"`
	ToolConfig        *gemToolConfig       `json:"toolConfig,omitempty"`
}

// badRequest is the 400 of a request the translation cannot express.
func badRequest(format string, args ...any) error {
	return &upstreamError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// toGemini translates a chat request for the deployment d.
func toGemini(d *deployment, req *chatRequest) (*gemRequest, error) {
	out := &gemRequest{GenerationConfig: &gemGenerationConfig{MaxOutputTokens: d.maxOut(req.MaxTokens)}}
	if req.N > 1 {
		out.GenerationConfig.CandidateCount = req.N
	}
	names := map[string]string{} // tool call id -> function name, for the responses
	var system []gemPart
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			text, err := textOnly(m.Content)
			if err != nil {
				return nil, badRequest("messages[%d]: %v", i, err)
			}
			if text != "" {
				system = append(system, gemPart{Text: text})
			}
		case "user":
			parts, err := gemParts(m.Content)
			if err != nil {
				return nil, badRequest("messages[%d]: %v", i, err)
			}
			out.add("user", parts...)
		case "assistant":
			parts, err := gemParts(m.Content)
			if err != nil {
				return nil, badRequest("messages[%d]: %v", i, err)
			}
			for _, tc := range m.ToolCalls {
				args := json.RawMessage(tc.Function.Arguments)
				if strings.TrimSpace(tc.Function.Arguments) == "" {
					args = json.RawMessage("{}")
				} else if !json.Valid(args) || strings.TrimSpace(tc.Function.Arguments)[0] != '{' {
					return nil, badRequest("messages[%d]: tool call arguments are not a JSON object", i)
				}
				names[tc.ID] = tc.Function.Name
				parts = append(parts, gemPart{FunctionCall: &gemFunctionCall{Name: tc.Function.Name, Args: args}})
			}
			out.add("model", parts...)
		case "tool", "function":
			name := m.Name
			if n, ok := names[m.ToolCallID]; ok {
				name = n
			}
			if name == "" {
				return nil, badRequest("messages[%d]: tool_call_id %q answers no earlier tool call", i, m.ToolCallID)
			}
			out.add("user", gemPart{FunctionResponse: &gemFunctionResp{Name: name, Response: toolResponse(contentText(m.Content))}})
		}
	}
	if len(system) > 0 {
		out.SystemInstruction = &gemContent{Parts: system}
	}
	if len(out.Contents) == 0 {
		return nil, badRequest("messages: a Gemini model needs at least one user or assistant message")
	}
	if err := gemOptions(out, req.raw); err != nil {
		return nil, err
	}
	return out, nil
}

// add appends parts to the conversation, merging consecutive turns of one
// role (Gemini alternates user and model turns).
func (r *gemRequest) add(role string, parts ...gemPart) {
	if len(parts) == 0 {
		return
	}
	if n := len(r.Contents); n > 0 && r.Contents[n-1].Role == role {
		r.Contents[n-1].Parts = append(r.Contents[n-1].Parts, parts...)
		return
	}
	r.Contents = append(r.Contents, gemContent{Role: role, Parts: parts})
}

// toolResponse is a tool result as functionResponse.response, which must
// be an object: a result that is a JSON object as it is, any other text
// as {"content": text}.
func toolResponse(text string) json.RawMessage {
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	b, _ := json.Marshal(map[string]string{"content": text})
	return b
}

// textOnly is the text of a content that may only hold text.
func textOnly(raw json.RawMessage) (string, error) {
	parts, err := gemParts(raw)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Text == "" {
			return "", fmt.Errorf("a system message may only hold text")
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// gemParts translates chat message content (a string or content parts):
// text, and images as inline data (a data: URL) or file data (any other URL).
func gemParts(raw json.RawMessage) ([]gemPart, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []gemPart{{Text: s}}, nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of parts")
	}
	var out []gemPart
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, gemPart{Text: p.Text})
			}
		case "image_url":
			part, err := gemImage(p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			out = append(out, part)
		default:
			return nil, fmt.Errorf("content part type %q is not supported by this model", p.Type)
		}
	}
	return out, nil
}

// gemImage is an image_url as a part: a base64 data: URL becomes inline
// data, an http(s) URL file data with the type its extension names.
func gemImage(u string) (gemPart, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mime, b64 := strings.CutSuffix(meta, ";base64")
		if !ok || !b64 || mime == "" || data == "" {
			return gemPart{}, fmt.Errorf("an image data URL must be data:<type>;base64,<data>")
		}
		return gemPart{InlineData: &gemBlob{MimeType: mime, Data: data}}, nil
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "gs://") {
		return gemPart{}, fmt.Errorf("image_url.url must be a data: URL or an http(s) URL")
	}
	return gemPart{FileData: &gemFileData{MimeType: imageType(u), FileURI: u}}, nil
}

// imageType guesses an image URL's media type from its extension.
func imageType(u string) string {
	path := u
	if p, err := url.Parse(u); err == nil {
		path = p.Path
	}
	switch ext := strings.ToLower(path[strings.LastIndexByte(path, '.')+1:]); ext {
	case "png", "webp", "heic", "heif", "gif":
		return "image/" + ext
	}
	return "image/jpeg"
}

// gemOptions translates sampling options, stop sequences, the JSON
// response format, tools and tool_choice.
func gemOptions(out *gemRequest, raw map[string]json.RawMessage) error {
	bad := func(field string) error { return badRequest("%s has a form this model does not accept", field) }
	cfg := out.GenerationConfig
	for _, f := range []struct {
		name string
		dst  **float64
	}{{"temperature", &cfg.Temperature}, {"top_p", &cfg.TopP}} {
		if v, ok := raw[f.name]; ok && string(v) != "null" {
			var x float64
			if json.Unmarshal(v, &x) != nil {
				return bad(f.name)
			}
			*f.dst = &x
		}
	}
	if v, ok := raw["seed"]; ok && string(v) != "null" {
		var seed int64
		if json.Unmarshal(v, &seed) != nil {
			return bad("seed")
		}
		cfg.Seed = &seed
	}
	if v, ok := raw["stop"]; ok && string(v) != "null" {
		var one string
		if json.Unmarshal(v, &one) == nil {
			cfg.StopSequences = []string{one}
		} else if json.Unmarshal(v, &cfg.StopSequences) != nil {
			return bad("stop")
		}
	}
	if v, ok := raw["response_format"]; ok && string(v) != "null" {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(v, &rf) != nil {
			return bad("response_format")
		}
		switch rf.Type {
		case "json_object", "json_schema":
			cfg.ResponseMimeType = "application/json"
		case "text", "":
		default:
			return bad("response_format")
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
		var decls []gemFunctionDecl
		for _, t := range tools {
			if t.Type != "function" || t.Function.Name == "" {
				return badRequest("tools: only function tools with a name are supported by this model")
			}
			decl := gemFunctionDecl{Name: t.Function.Name, Description: t.Function.Description}
			if p := t.Function.Parameters; len(p) > 0 && string(p) != "null" {
				decl.Parameters = p
			}
			decls = append(decls, decl)
		}
		if len(decls) > 0 {
			out.Tools = []gemTool{{FunctionDeclarations: decls}}
		}
	}
	if v, ok := raw["tool_choice"]; ok && string(v) != "null" {
		var mode string
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		cc := gemFunctionCallingConfig{}
		switch {
		case json.Unmarshal(v, &mode) == nil:
			cc.Mode = map[string]string{"auto": "AUTO", "required": "ANY", "none": "NONE"}[mode]
		case json.Unmarshal(v, &named) == nil && named.Function.Name != "":
			cc.Mode, cc.AllowedFunctionNames = "ANY", []string{named.Function.Name}
		}
		if cc.Mode == "" {
			return bad("tool_choice")
		}
		if len(out.Tools) > 0 {
			out.ToolConfig = &gemToolConfig{FunctionCallingConfig: cc}
		}
	}
	return nil
}

// gemUsage is the Gemini API's UsageMetadata, as counts read from it.
type gemUsage struct {
	Prompt, Cached, Candidates, Thoughts, ToolUsePrompt int64
	// unknown names the counts it carried that tollgate does not know.
	unknown []string
}

// gemUsageCounts are UsageMetadata's counts: promptTokenCount includes the
// cached content (cachedContentTokenCount); toolUsePromptTokenCount (tool
// results given back to the model) and thoughtsTokenCount (a thinking
// model's reasoning) are reported apart from the prompt and the
// candidates, and Google bills them as input and as output.
var gemUsageCounts = []string{"promptTokenCount", "cachedContentTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount"}

// gemUsageOther are UsageMetadata's other members: the total, and the
// per-modality breakdowns of the counts above (lists, not counts).
var gemUsageOther = map[string]bool{
	"totalTokenCount": true, "promptTokensDetails": true, "cacheTokensDetails": true,
	"candidatesTokensDetails": true, "toolUsePromptTokensDetails": true, "trafficType": true,
}

// parseGeminiUsage reads usageMetadata; nil when absent or empty. A
// member that is a number but none of the counts tollgate knows (or a
// known count that is not an integer) is named in unknown: the usage is
// then billed at the hold (docs/DESIGN.md), since tollgate cannot tell
// what it costs.
func parseGeminiUsage(raw json.RawMessage) *gemUsage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	m, err := objectFields(raw)
	if err != nil {
		return &gemUsage{unknown: []string{"usageMetadata"}}
	}
	u := &gemUsage{}
	dst := []*int64{&u.Prompt, &u.Cached, &u.Candidates, &u.Thoughts, &u.ToolUsePrompt}
	for i, name := range gemUsageCounts {
		if !intField(m, name, dst[i]) || *dst[i] < 0 {
			u.unknown = append(u.unknown, name)
		}
	}
	known := func(k string) bool {
		for _, n := range gemUsageCounts {
			if n == k {
				return true
			}
		}
		return gemUsageOther[k]
	}
	for _, k := range sortedKeys(m) {
		if v := strings.TrimSpace(string(m[k])); !known(k) && v != "" && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
			u.unknown = append(u.unknown, k)
		}
	}
	if len(u.unknown) == 0 && u.Prompt == 0 && u.Candidates == 0 && u.Thoughts == 0 && u.ToolUsePrompt == 0 {
		return nil
	}
	return u
}

// normalise converts to OpenAI's convention: the tool-use prompt is
// prompt, cached content is inside it, thoughts are output (and reported
// as completion_tokens_details.reasoning_tokens).
func (u *gemUsage) normalise() *tokenUsage {
	in := u.Prompt + u.ToolUsePrompt
	t := &tokenUsage{Input: in, Cached: min(u.Cached, in), Output: u.Candidates + u.Thoughts, unknown: u.unknown}
	if u.Thoughts > 0 {
		details, _ := json.Marshal(map[string]int64{"reasoning_tokens": u.Thoughts})
		t.raw = map[string]json.RawMessage{"completion_tokens_details": details}
	}
	return t
}

// gemFinishReasons maps Gemini finish reasons to OpenAI ones; a reason
// not listed (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL…) is "stop".
var gemFinishReasons = map[string]string{
	"STOP":                     "stop",
	"MAX_TOKENS":               "length",
	"SAFETY":                   "content_filter",
	"RECITATION":               "content_filter",
	"BLOCKLIST":                "content_filter",
	"PROHIBITED_CONTENT":       "content_filter",
	"SPII":                     "content_filter",
	"IMAGE_SAFETY":             "content_filter",
	"IMAGE_PROHIBITED_CONTENT": "content_filter",
	"IMAGE_RECITATION":         "content_filter",
}

// gemFinish is the chat finish reason of a candidate; calls says it made
// function calls (Gemini says STOP for those).
func gemFinish(reason string, calls bool) string {
	r, ok := gemFinishReasons[reason]
	if !ok {
		r = "stop"
	}
	if r == "stop" && calls {
		return "tool_calls"
	}
	return r
}

type gemCandidate struct {
	Content      gemContent `json:"content"`
	FinishReason string     `json:"finishReason"`
	Index        int        `json:"index"`
}

// gemResponse is a GenerateContentResponse (a whole answer, or one chunk
// of a stream).
type gemResponse struct {
	Candidates     []gemCandidate  `json:"candidates"`
	PromptFeedback json.RawMessage `json:"promptFeedback"`
	UsageMetadata  json.RawMessage `json:"usageMetadata"`
	ModelVersion   string          `json:"modelVersion"`
	ResponseID     string          `json:"responseId"`
	Error          json.RawMessage `json:"error"`
}

// gemCallID is the chat id of a function call Gemini gave none.
func gemCallID(responseID string, choice, n int) string {
	return "call_" + strconv.Itoa(choice) + "_" + strconv.Itoa(n) + "_" + responseID
}

// candidateMessage is a candidate's text (thoughts left out: they are
// billed, not shown) and function calls.
func candidateMessage(responseID string, c gemCandidate) (string, []oaToolCall) {
	var text strings.Builder
	var calls []oaToolCall
	for _, p := range c.Content.Parts {
		switch {
		case p.Thought:
		case p.FunctionCall != nil:
			var tc oaToolCall
			tc.ID, tc.Type, tc.Function.Name = p.FunctionCall.ID, "function", p.FunctionCall.Name
			if tc.ID == "" {
				tc.ID = gemCallID(responseID, c.Index, len(calls))
			}
			tc.Function.Arguments = "{}"
			if len(p.FunctionCall.Args) > 0 && string(p.FunctionCall.Args) != "null" {
				tc.Function.Arguments = string(p.FunctionCall.Args)
			}
			calls = append(calls, tc)
		default:
			text.WriteString(p.Text)
		}
	}
	return text.String(), calls
}

// fromGemini translates a generateContent answer into a chat completion,
// with ids's id and model (the upstream's when ids is nil).
func fromGemini(b []byte, created int64, ids *answerIDs) (*chatResult, error) {
	var g gemResponse
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	if len(g.Candidates) == 0 && len(g.PromptFeedback) == 0 {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with no candidates"}
	}
	var choices []any
	var outputs []string
	for _, c := range g.Candidates {
		text, calls := candidateMessage(g.ResponseID, c)
		msg := map[string]any{"role": "assistant", "content": nil}
		if text != "" || len(calls) == 0 {
			msg["content"] = text
		}
		output := text
		if len(calls) > 0 {
			msg["tool_calls"] = calls
			for _, tc := range calls {
				output += tc.Function.Name + tc.Function.Arguments
			}
		}
		choices = append(choices, map[string]any{"index": c.Index, "message": msg, "logprobs": nil, "finish_reason": gemFinish(c.FinishReason, len(calls) > 0)})
		outputs = append(outputs, output)
	}
	if len(choices) == 0 { // the prompt was blocked (promptFeedback.blockReason)
		choices = []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": ""}, "logprobs": nil, "finish_reason": "content_filter"}}
	}
	body := map[string]json.RawMessage{}
	for k, v := range map[string]any{"id": g.ResponseID, "object": "chat.completion", "created": created, "model": g.ModelVersion, "choices": choices} {
		body[k], _ = json.Marshal(v)
	}
	if ids != nil {
		body["id"], body["model"] = ids.id, ids.model
	}
	res := &chatResult{body: &chunk{fields: body}, outputs: outputs, upstreamID: g.ResponseID}
	if u := parseGeminiUsage(g.UsageMetadata); u != nil {
		res.usage = u.normalise()
	}
	return res, nil
}

func (gm *gemini) send(ctx context.Context, d *deployment, req *chatRequest, stream bool) (*http.Response, error) {
	gr, err := toGemini(d, req)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(gr)
	if err != nil {
		return nil, fmt.Errorf("encode generateContent request: %w", err)
	}
	h := gm.header(d)
	if stream {
		h.Set("Accept", "text/event-stream")
	}
	return post(ctx, gm.client, geminiURL(d, stream), h, body, gm.clock)
}

func (gm *gemini) chat(ctx context.Context, d *deployment, req *chatRequest) (*chatResult, error) {
	resp, err := gm.send(ctx, d, req, false)
	if err != nil {
		return nil, err
	}
	b, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	return fromGemini(b, gm.clock.Now().Unix(), req.ids)
}

func (gm *gemini) chatStream(ctx context.Context, d *deployment, req *chatRequest) (chunkStream, error) {
	resp, err := gm.send(ctx, d, req, true)
	if err != nil {
		return nil, err
	}
	return &gemStream{ctx: ctx, body: resp.Body, sse: newSSEReader(resp.Body), created: gm.clock.Now().Unix(), ids: req.ids, started: map[int]bool{}}, nil
}
