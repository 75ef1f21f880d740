package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"tollgate"
)

// This file serves the Gemini API's own endpoints, for clients built on
// Google's SDKs: POST /v1beta/models/{model}:generateContent,
// :streamGenerateContent?alt=sse and :countTokens. A request is
// translated to a chat request and served like one (any deployment kind,
// failover, hold, settle, release); the chat answer is translated back to
// Gemini's shapes, with usageMetadata (and its costCredits).

// Gemini serves POST /v1beta/models/{model}:{method} (and the same
// under /v1/models/, the API version Google's Go SDK uses unless told
// otherwise: both versions take these requests alike). The Go 1.22 mux
// cannot match "{model}:generateContent", so the route is
// "/v1beta/models/{rest}" and rest is split at its last ':'. Errors use
// Google's shape, {"error":{"code","message","status"}}.
func (g *Gateway) Gemini(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		writeGeminiError(w, tollgate.Errorf(tollgate.ENOTFOUND, "unknown method: want /v1beta/models/{model}:generateContent, :streamGenerateContent or :countTokens"))
		return
	}
	model, method := rest[:i], rest[i+1:]
	switch method {
	case "generateContent":
		g.geminiGenerate(w, r, model, false)
	case "streamGenerateContent":
		if alt := r.URL.Query().Get("alt"); alt != "sse" {
			writeGeminiError(w, invalid("streamGenerateContent is served as server-sent events only: add ?alt=sse"))
			return
		}
		g.geminiGenerate(w, r, model, true)
	case "countTokens":
		g.geminiCountTokens(w, r, model)
	default:
		writeGeminiError(w, tollgate.Errorf(tollgate.ENOTFOUND, "method %q is not served: use generateContent, streamGenerateContent or countTokens", method))
	}
}

// geminiStatus is Google's status name for an HTTP status.
func geminiStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusPaymentRequired:
		return "FAILED_PRECONDITION"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return "DEADLINE_EXCEEDED"
	case StatusClientClosed:
		return "CANCELLED"
	}
	return "INTERNAL"
}

// geminiErrorBody is err in Google's error shape, with its HTTP status.
func geminiErrorBody(err error) (int, map[string]any) {
	status, _, _, _, msg := shownError(err)
	return status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": geminiStatus(status)}}
}

// writeGeminiError writes err in Google's error shape, with the status
// (and Retry-After) the OpenAI endpoints would use.
func writeGeminiError(w http.ResponseWriter, err error) {
	status, retry, _, _, _ := shownError(err)
	if retry > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
	}
	_, body := geminiErrorBody(err)
	writeJSON(w, status, body)
}

// gemClientRequest is a generateContent request as a client sends it.
type gemClientRequest struct {
	Contents          []gemClientContent           `json:"contents"`
	SystemInstruction *gemClientContent            `json:"systemInstruction"`
	GenerationConfig  map[string]json.RawMessage   `json:"generationConfig"`
	Tools             []map[string]json.RawMessage `json:"tools"`
	ToolConfig        *struct {
		FunctionCallingConfig *gemFunctionCallingConfig `json:"functionCallingConfig"`
	} `json:"toolConfig"`
}

type gemClientContent struct {
	Role  string                       `json:"role"`
	Parts []map[string]json.RawMessage `json:"parts"`
}

// geminiTopLevel are the request members served; safetySettings is
// accepted and left to the provider's defaults.
var geminiTopLevel = map[string]bool{
	"contents": true, "systemInstruction": true, "generationConfig": true,
	"tools": true, "toolConfig": true, "safetySettings": true, "model": true,
}

// geminiConfigServed are the generationConfig members served: the ones
// translated, and the ones left to the provider (topK, thinkingConfig:
// thoughts are billed as output like any output token).
var geminiConfigServed = map[string]bool{
	"maxOutputTokens": true, "temperature": true, "topP": true, "stopSequences": true,
	"candidateCount": true, "seed": true, "responseMimeType": true, "presencePenalty": true,
	"frequencyPenalty": true, "topK": true, "thinkingConfig": true, "responseModalities": true,
}

// fromGeminiRequest translates a generateContent request body into a chat
// request for model. Every member it cannot serve is a 400 naming it.
func fromGeminiRequest(model string, body []byte, stream bool) (*chatRequest, error) {
	top, err := objectFields(body)
	if err != nil {
		return nil, invalid("request body must be a JSON object")
	}
	for _, k := range sortedKeys(top) {
		if !geminiTopLevel[k] {
			return nil, invalid("%s is not supported by this server", k)
		}
	}
	var req gemClientRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalid("request body does not have the generateContent shape: %s", jsonProblem(err))
	}
	if len(req.Contents) == 0 {
		return nil, invalid("contents must be a non-empty array of contents")
	}
	var msgs []map[string]any
	if sys := req.SystemInstruction; sys != nil {
		var text strings.Builder
		for j, p := range sys.Parts {
			t, ok := p["text"]
			var s string
			if !ok || len(p) != 1 || json.Unmarshal(t, &s) != nil {
				return nil, invalid("systemInstruction.parts[%d]: only text parts are accepted", j)
			}
			text.WriteString(s)
		}
		msgs = append(msgs, map[string]any{"role": "system", "content": text.String()})
	}
	calls := &gemCallIDs{}
	for i, c := range req.Contents {
		m, err := gemTurn(i, c, calls)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
	}
	out := map[string]any{"model": model, "messages": msgs}
	if stream {
		out["stream"] = true
	}
	if err := gemConfig(req.GenerationConfig, out); err != nil {
		return nil, err
	}
	if err := gemClientTools(&req, out); err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode translated request: %w", err)
	}
	return parseChatRequest(b)
}

// jsonProblem describes a decoding error without Go's type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field + " has the wrong type"
	}
	return "not valid JSON of that shape"
}

// gemCallIDs gives the function calls of a conversation ids, so that each
// functionResponse answers the call it names.
type gemCallIDs struct {
	open []struct{ id, name string } // calls not yet answered
	n    int
}

func (c *gemCallIDs) call(id, name string) string {
	c.n++
	if id == "" {
		id = "call_" + strconv.Itoa(c.n)
	}
	c.open = append(c.open, struct{ id, name string }{id, name})
	return id
}

// answer returns the id of the call a response answers: its own id, else
// the first open call of that name.
func (c *gemCallIDs) answer(id, name string) (string, bool) {
	for k, o := range c.open {
		if (id != "" && o.id == id) || (id == "" && o.name == name) {
			c.open = append(c.open[:k], c.open[k+1:]...)
			return o.id, true
		}
	}
	return "", false
}

// gemTurn translates one content: a user turn (text, images, function
// responses) or a model turn (text, function calls).
func gemTurn(i int, c gemClientContent, calls *gemCallIDs) ([]map[string]any, error) {
	at := func(j int) string { return fmt.Sprintf("contents[%d].parts[%d]", i, j) }
	role := c.Role
	switch role {
	case "", "user":
		role = "user"
	case "model":
	default:
		return nil, invalid("contents[%d].role must be \"user\" or \"model\", not %q", i, c.Role)
	}
	if len(c.Parts) == 0 {
		return nil, invalid("contents[%d].parts must be a non-empty array of parts", i)
	}
	var parts, toolCalls []map[string]any
	var results []map[string]any
	var text strings.Builder
	for j, p := range c.Parts {
		kind := ""
		for k := range p {
			switch k {
			case "thought", "thoughtSignature", "videoMetadata", "partMetadata":
				continue
			}
			if kind != "" {
				return nil, invalid("%s has both %s and %s: a part holds one kind of data", at(j), kind, k)
			}
			kind = k
		}
		var thought bool
		_ = json.Unmarshal(p["thought"], &thought)
		switch kind {
		case "text":
			var s string
			if json.Unmarshal(p["text"], &s) != nil {
				return nil, invalid("%s.text must be a string", at(j))
			}
			if thought {
				continue // a model's thoughts: not replayed
			}
			parts = append(parts, map[string]any{"type": "text", "text": s})
			text.WriteString(s)
		case "inlineData", "fileData":
			var d struct {
				MimeType string `json:"mimeType"`
				Data     string `json:"data"`
				FileURI  string `json:"fileUri"`
			}
			if json.Unmarshal(p[kind], &d) != nil {
				return nil, invalid("%s.%s must be an object", at(j), kind)
			}
			if !strings.HasPrefix(d.MimeType, "image/") {
				return nil, invalid("%s.%s: only images are accepted (mimeType image/...), not %q; audio, video and documents are priced apart", at(j), kind, d.MimeType)
			}
			url := d.FileURI
			if kind == "inlineData" {
				if d.Data == "" {
					return nil, invalid("%s.inlineData.data is required", at(j))
				}
				url = "data:" + d.MimeType + ";base64," + d.Data
			} else if url == "" {
				return nil, invalid("%s.fileData.fileUri is required", at(j))
			}
			if role == "model" {
				return nil, invalid("%s: a model turn may not hold images", at(j))
			}
			parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": url}})
		case "functionCall":
			if role != "model" {
				return nil, invalid("%s: functionCall belongs in a model turn", at(j))
			}
			var fc gemFunctionCall
			if json.Unmarshal(p[kind], &fc) != nil || fc.Name == "" {
				return nil, invalid("%s.functionCall needs a name and object args", at(j))
			}
			args := "{}"
			if a := strings.TrimSpace(string(fc.Args)); a != "" && a != "null" {
				if a[0] != '{' {
					return nil, invalid("%s.functionCall.args must be an object", at(j))
				}
				args = a
			}
			id := calls.call(fc.ID, fc.Name)
			toolCalls = append(toolCalls, map[string]any{"id": id, "type": "function", "function": map[string]string{"name": fc.Name, "arguments": args}})
		case "functionResponse":
			if role != "user" {
				return nil, invalid("%s: functionResponse belongs in a user turn", at(j))
			}
			var fr gemFunctionResp
			if json.Unmarshal(p[kind], &fr) != nil || fr.Name == "" {
				return nil, invalid("%s.functionResponse needs a name and an object response", at(j))
			}
			id, ok := calls.answer(fr.ID, fr.Name)
			if !ok {
				return nil, invalid("%s.functionResponse answers no earlier functionCall named %q", at(j), fr.Name)
			}
			content := string(fr.Response)
			if content == "" {
				content = "{}"
			}
			results = append(results, map[string]any{"role": "tool", "tool_call_id": id, "content": content})
		case "":
			return nil, invalid("%s has no data: want text, inlineData, fileData, functionCall or functionResponse", at(j))
		default:
			return nil, invalid("%s: %s parts are not supported by this server", at(j), kind)
		}
	}
	var out []map[string]any
	out = append(out, results...)
	switch {
	case role == "model" && (text.Len() > 0 || len(toolCalls) > 0):
		m := map[string]any{"role": "assistant", "content": text.String()}
		if len(toolCalls) > 0 {
			m["tool_calls"] = toolCalls
		}
		out = append(out, m)
	case role == "user" && len(parts) > 0:
		out = append(out, map[string]any{"role": "user", "content": parts})
	}
	return out, nil
}

// gemConfig translates generationConfig into chat fields.
func gemConfig(cfg map[string]json.RawMessage, out map[string]any) error {
	for _, k := range sortedKeys(cfg) {
		if !geminiConfigServed[k] {
			return invalid("generationConfig.%s is not supported by this server", k)
		}
	}
	num := func(name string, dst string) error {
		if v, ok := cfg[name]; ok && string(v) != "null" {
			var x float64
			if json.Unmarshal(v, &x) != nil {
				return invalid("generationConfig.%s must be a number", name)
			}
			out[dst] = x
		}
		return nil
	}
	for _, f := range [][2]string{{"temperature", "temperature"}, {"topP", "top_p"}, {"presencePenalty", "presence_penalty"}, {"frequencyPenalty", "frequency_penalty"}} {
		if err := num(f[0], f[1]); err != nil {
			return err
		}
	}
	ints := []struct{ name, dst string }{{"maxOutputTokens", "max_tokens"}, {"candidateCount", "n"}, {"seed", "seed"}}
	for _, f := range ints {
		if v, ok := cfg[f.name]; ok && string(v) != "null" {
			var n int64
			if json.Unmarshal(v, &n) != nil || (f.name != "seed" && n < 1) {
				return invalid("generationConfig.%s must be a positive integer", f.name)
			}
			out[f.dst] = n
		}
	}
	if v, ok := cfg["stopSequences"]; ok && string(v) != "null" {
		var stops []string
		if json.Unmarshal(v, &stops) != nil {
			return invalid("generationConfig.stopSequences must be an array of strings")
		}
		out["stop"] = stops
	}
	if v, ok := cfg["responseMimeType"]; ok {
		var mime string
		if json.Unmarshal(v, &mime) != nil {
			return invalid("generationConfig.responseMimeType must be a string")
		}
		switch mime {
		case "application/json":
			out["response_format"] = map[string]string{"type": "json_object"}
		case "", "text/plain":
		default:
			return invalid("generationConfig.responseMimeType %q is not supported: use text/plain or application/json", mime)
		}
	}
	if v, ok := cfg["responseModalities"]; ok && string(v) != "null" {
		var ms []string
		if json.Unmarshal(v, &ms) != nil {
			return invalid("generationConfig.responseModalities must be an array of strings")
		}
		for _, m := range ms {
			if !strings.EqualFold(m, "TEXT") {
				return invalid("generationConfig.responseModalities %q: only TEXT is served; image and audio output are priced apart", m)
			}
		}
	}
	return nil
}

// gemClientTools translates function declarations and the function
// calling mode. Google's own tools (search, code execution, URL context)
// are charged per use, which tollgate does not bill: refused.
func gemClientTools(req *gemClientRequest, out map[string]any) error {
	var tools []map[string]any
	for i, t := range req.Tools {
		for _, k := range sortedKeys(t) {
			if k != "functionDeclarations" {
				return invalid("tools[%d].%s: Google's own tools are charged per use, which tollgate cannot bill; declare functions your client runs", i, k)
			}
		}
		var decls []struct {
			Name                 string          `json:"name"`
			Description          string          `json:"description"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		}
		if json.Unmarshal(t["functionDeclarations"], &decls) != nil {
			return invalid("tools[%d].functionDeclarations must be an array of function declarations", i)
		}
		for j, d := range decls {
			if d.Name == "" {
				return invalid("tools[%d].functionDeclarations[%d].name is required", i, j)
			}
			fn := map[string]any{"name": d.Name}
			if d.Description != "" {
				fn["description"] = d.Description
			}
			params := d.Parameters
			if len(params) == 0 || string(params) == "null" {
				params = d.ParametersJSONSchema
			}
			if len(params) > 0 && string(params) != "null" {
				fn["parameters"] = lowerTypes(params)
			}
			tools = append(tools, map[string]any{"type": "function", "function": fn})
		}
	}
	if len(tools) > 0 {
		out["tools"] = tools
	}
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch strings.ToUpper(fc.Mode) {
		case "", "AUTO", "MODE_UNSPECIFIED", "VALIDATED":
			out["tool_choice"] = "auto"
		case "NONE":
			out["tool_choice"] = "none"
		case "ANY":
			out["tool_choice"] = "required"
			if len(fc.AllowedFunctionNames) == 1 {
				out["tool_choice"] = map[string]any{"type": "function", "function": map[string]string{"name": fc.AllowedFunctionNames[0]}}
			}
		default:
			return invalid("toolConfig.functionCallingConfig.mode %q is not valid", fc.Mode)
		}
		if len(tools) == 0 {
			delete(out, "tool_choice")
		}
	}
	return nil
}

// lowerTypes rewrites Gemini's Schema type names ("OBJECT", "STRING")
// into JSON Schema's ("object", "string"), everywhere in a schema.
func lowerTypes(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, e := range t {
				if s, ok := e.(string); ok && k == "type" {
					t[k] = strings.ToLower(s)
				} else {
					t[k] = walk(e)
				}
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		}
		return x
	}
	return walk(v)
}

// geminiCountTokens serves :countTokens: the prompt counted with the
// gateway's tokenizer, as {"totalTokens": N}. Nothing is held or charged.
func (g *Gateway) geminiCountTokens(w http.ResponseWriter, r *http.Request, model string) {
	c, body, err := g.begin(w, r)
	if err != nil {
		writeGeminiError(w, err)
		return
	}
	// countTokens takes the contents directly, or a whole request in
	// generateContentRequest.
	var wrapped struct {
		Req json.RawMessage `json:"generateContentRequest"`
	}
	if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Req) > 0 {
		body = wrapped.Req
	}
	req, err := fromGeminiRequest(model, body, false)
	if err == nil {
		_, err = g.lookup(c, model)
	}
	if err != nil {
		writeGeminiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"totalTokens": promptTokens(g.opts.Counter, req)})
}

// geminiGenerate serves generateContent and streamGenerateContent, metered
// exactly as a chat completion.
func (g *Gateway) geminiGenerate(w http.ResponseWriter, r *http.Request, model string, stream bool) {
	c, body, err := g.begin(w, r)
	var req *chatRequest
	if err == nil {
		req, err = fromGeminiRequest(model, body, stream)
	}
	var deps []*deployment
	if err == nil {
		deps, err = g.lookup(c, model)
	}
	if err == nil {
		err = g.admit(r, c, model)
	}
	if err != nil {
		writeGeminiError(w, err)
		return
	}
	if lim := c.Limits.MaxOutputTokens; lim > 0 && (req.MaxTokens == 0 || req.MaxTokens > lim) {
		req.MaxTokens = lim
	}
	var ceiling int64
	if req.uncounted {
		ceiling = promptCeiling(deps)
	}
	m, err := g.reserve(r, c, model, promptTokens(g.opts.Counter, req), ceiling, maxOut(deps, req.MaxTokens)*req.N)
	if err != nil {
		g.logInternal(r, err)
		writeGeminiError(w, err)
		return
	}
	req.ids = m.ids()
	if stream {
		g.geminiStream(w, r, m, deps, req)
		return
	}
	var res *chatResult
	d, err := g.failover(m.ctx, m.hold.RequestID, model, deps, func(a *attempt, d *deployment) error {
		defer a.done()
		var err error
		res, err = d.up.chat(a.ctx, d, req)
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeGeminiError(w, err)
		return
	}
	u, estimated := res.usage, false
	if u == nil {
		e := m.estimate(res.outputs...)
		u, estimated = &e, true
	}
	m.upstreamID = res.upstreamID
	m.answered(w, d)
	credits := m.settle(r.Context(), d, *u, estimated, "ok")
	writeJSON(w, http.StatusOK, toGeminiResponse(res.body.members(), m.hold.RequestID, model, *u, credits))
}

// gemUsageMetadata is Gemini's usageMetadata for u: thoughts (a
// reasoning model's reasoning_tokens) apart from the candidates, cached
// content inside the prompt, and costCredits, the credits charged.
func gemUsageMetadata(u tokenUsage, credits tollgate.Credits) map[string]int64 {
	var thoughts int64
	if d, ok := u.raw["completion_tokens_details"]; ok {
		var det struct {
			Reasoning int64 `json:"reasoning_tokens"`
		}
		if json.Unmarshal(d, &det) == nil {
			thoughts = min(max(det.Reasoning, 0), u.Output)
		}
	}
	um := map[string]int64{
		"promptTokenCount":     u.Input,
		"candidatesTokenCount": u.Output - thoughts,
		"totalTokenCount":      u.Input + u.Output,
		"costCredits":          int64(credits),
	}
	if u.Cached > 0 {
		um["cachedContentTokenCount"] = u.Cached
	}
	if thoughts > 0 {
		um["thoughtsTokenCount"] = thoughts
	}
	return um
}

// gemFinishOf maps a chat finish reason to Gemini's.
func gemFinishOf(finish string) string {
	switch finish {
	case "length":
		return "MAX_TOKENS"
	case "content_filter":
		return "SAFETY"
	}
	return "STOP"
}

// gemCallPart is a chat tool call as a functionCall part: arguments that
// are not a JSON object (a model's mistake) are given as {"arguments": s}.
func gemCallPart(id, name, args string) map[string]any {
	var a json.RawMessage = []byte(strings.TrimSpace(args))
	if len(a) == 0 {
		a = json.RawMessage("{}")
	} else if a[0] != '{' || !json.Valid(a) {
		a, _ = json.Marshal(map[string]string{"arguments": args})
	}
	return map[string]any{"functionCall": map[string]any{"id": id, "name": name, "args": a}}
}

// toGeminiResponse translates a chat completion into a
// GenerateContentResponse.
func toGeminiResponse(body map[string]json.RawMessage, id, model string, u tokenUsage, credits tollgate.Credits) map[string]any {
	var choices []struct {
		Index        int         `json:"index"`
		Message      chatMessage `json:"message"`
		FinishReason string      `json:"finish_reason"`
	}
	_ = json.Unmarshal(body["choices"], &choices)
	candidates := []any{}
	for _, c := range choices {
		parts := []any{}
		if text := contentText(c.Message.Content); text != "" {
			parts = append(parts, map[string]string{"text": text})
		}
		for _, tc := range c.Message.ToolCalls {
			parts = append(parts, gemCallPart(tc.ID, tc.Function.Name, tc.Function.Arguments))
		}
		candidates = append(candidates, map[string]any{
			"content": map[string]any{"role": "model", "parts": parts}, "finishReason": gemFinishOf(c.FinishReason), "index": c.Index,
		})
	}
	return map[string]any{"candidates": candidates, "usageMetadata": gemUsageMetadata(u, credits), "modelVersion": model, "responseId": id}
}

// gemCall is a streamed tool call being put together.
type gemCall struct{ id, name, args string }

// gemWriter turns chat.completion.chunk objects into
// streamGenerateContent chunks: text as it comes; function calls (which
// Gemini sends whole) and finish reasons at the end of their choice, the
// last chunk carrying usageMetadata.
type gemWriter struct {
	rl      *relay
	id      string
	model   string
	calls   map[int][]*gemCall
	finish  map[int]string
	indexes []int // the choices, in the order they first spoke
}

func (gw *gemWriter) write(v map[string]any) {
	v["modelVersion"], v["responseId"] = gw.model, gw.id
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	gw.rl.write("data: " + string(b) + "\n\n")
}

func (gw *gemWriter) chunk(c *chunk) {
	var choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    *int   `json:"index"`
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
	var texts []any
	for _, ch := range choices {
		if _, seen := gw.finish[ch.Index]; !seen {
			gw.finish[ch.Index] = ""
			gw.indexes = append(gw.indexes, ch.Index)
		}
		if t := ch.Delta.Content; t != nil && *t != "" {
			gw.rl.add(ch.Index, *t)
			texts = append(texts, map[string]any{"content": map[string]any{"role": "model", "parts": []any{map[string]string{"text": *t}}}, "index": ch.Index})
		}
		for _, tc := range ch.Delta.ToolCalls {
			calls := gw.calls[ch.Index]
			k := len(calls) - 1
			switch {
			case tc.Index != nil:
				k = *tc.Index
			case tc.ID != "":
				k = len(calls)
			}
			if k < 0 || k > maxN*64 {
				continue
			}
			for k >= len(calls) {
				calls = append(calls, &gemCall{})
			}
			call := calls[k]
			if tc.ID != "" {
				call.id = tc.ID
			}
			call.name += tc.Function.Name
			call.args += tc.Function.Arguments
			gw.calls[ch.Index] = calls
		}
		if f := ch.FinishReason; f != nil && *f != "" {
			gw.finish[ch.Index] = *f
		}
	}
	if len(texts) > 0 {
		gw.write(map[string]any{"candidates": texts})
	}
}

// end writes the last chunk: each choice's function calls and finish
// reason, and usageMetadata.
func (gw *gemWriter) end(u tokenUsage, credits tollgate.Credits) {
	candidates := []any{}
	for _, i := range gw.indexes {
		parts := []any{}
		for _, c := range gw.calls[i] {
			parts = append(parts, gemCallPart(c.id, c.name, c.args))
			gw.rl.add(i, c.name+c.args)
		}
		cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "finishReason": gemFinishOf(gw.finish[i]), "index": i}
		candidates = append(candidates, cand)
	}
	gw.write(map[string]any{"candidates": candidates, "usageMetadata": gemUsageMetadata(u, credits)})
}

// fail ends a broken stream with an error chunk, as Google's stream
// carries one.
func (gw *gemWriter) fail(err error) {
	_, body := geminiErrorBody(err)
	gw.write(body)
}

// geminiStream serves streamGenerateContent: failover until the first
// output, then each chat chunk relayed as Gemini chunks; billed on what
// was delivered when the upstream breaks or the client leaves.
func (g *Gateway) geminiStream(w http.ResponseWriter, r *http.Request, m *metered, deps []*deployment, req *chatRequest) {
	var (
		st    chunkStream
		first []*chunk
		att   *attempt
	)
	d, err := g.failover(m.ctx, m.hold.RequestID, req.Model, deps, func(a *attempt, d *deployment) error {
		s, chunks, err := openStream(a, d, req)
		st, first, att = s, chunks, a
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeGeminiError(w, err)
		return
	}
	defer att.done()
	defer st.Close()
	m.answered(w, d)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	gw := &gemWriter{rl: g.newRelay(w, false), id: m.hold.RequestID, model: req.Model, calls: map[int][]*gemCall{}, finish: map[int]string{}}
	for _, c := range first {
		gw.chunk(c)
	}
	g.observeFirstToken(m, d)
	var upErr error
	for gw.rl.err == nil {
		c, err := st.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			upErr = err
			break
		}
		att.touch()
		gw.chunk(c)
	}
	m.upstreamID = st.upstreamID()
	gone := gw.rl.err != nil || r.Context().Err() != nil
	u, estimated := st.usage(), false
	if u == nil {
		e := m.estimate(gw.rl.outputs(false)...)
		if upErr == nil && !gone {
			// Complete without usage: the calls written by end are output too.
			var outs []string
			for _, i := range gw.indexes {
				for _, c := range gw.calls[i] {
					outs = append(outs, c.name+c.args)
				}
			}
			e.Output += m.estimate(outs...).Output
		}
		if ir, ok := st.(inputReporter); ok {
			if in := ir.inputUsage(); in != nil {
				e.Input, e.Cached = in.Input, in.Cached
			}
		}
		u, estimated = &e, true
	}
	switch {
	case gone:
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case upErr != nil && m.overtime():
		m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		gw.fail(m.deadlineError())
	case upErr != nil:
		m.settle(r.Context(), d, *u, estimated, "interrupted")
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
		gw.fail(&tollgate.Error{Code: tollgate.EUPSTREAM, Message: "the upstream stream was interrupted", Err: upErr})
	default:
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		gw.end(*u, credits)
	}
}
