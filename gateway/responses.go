package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate"
)

// Responses serves POST /v1/responses (OpenAI's Responses API), streaming
// (its typed events) or not, metered like chat, with failover across all
// the model's deployments. Deployments of kind openai get the request as
// sent (model renamed, max_output_tokens capped at the hold, store false);
// the others get it translated to a chat request, and their answer (or
// chunks) translated back. usage.cost_credits is added to the response,
// and in a stream to the response of response.completed (or incomplete,
// or failed). tollgate keeps no responses: see statelessFields.
func (g *Gateway) Responses(w http.ResponseWriter, r *http.Request) {
	c, body, err := g.begin(w, r)
	var rr *responsesRequest
	if err == nil {
		rr, err = g.parseResponses(c, body)
	}
	if err == nil {
		err = g.admit(r, c, rr.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	var ceiling int64
	if rr.uncounted {
		ceiling = promptCeiling(rr.deps)
	}
	m, err := g.reserve(r, c, rr.Model, rr.promptTokens(g.opts.Counter), ceiling, maxOut(rr.deps, rr.MaxOutput))
	if err != nil {
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	ids := m.ids()
	if rr.chat != nil {
		rr.chat.ids = ids
	}
	var (
		native map[string]json.RawMessage // a complete answer from an openai deployment
		lead   *leadEvents                // an openai deployment's stream, read to its first output
		upBody io.Closer                  // lead's response body
		res    *chatResult                // a translated answer
		st     chunkStream                // a translated stream
		first  []*chunk
		att    *attempt
	)
	d, err := g.failover(m.ctx, m.hold.RequestID, rr.Model, rr.deps, func(a *attempt, d *deployment) error {
		var err error
		att = a
		switch {
		case d.provider.Kind == KindOpenAI && rr.Stream:
			var resp *http.Response
			if resp, err = postResponses(a, d, rr); err == nil {
				if lead, err = readResponsesLead(a, resp); err != nil {
					resp.Body.Close()
				}
				upBody = resp.Body
			}
		case d.provider.Kind == KindOpenAI:
			native, err = nativeResponse(a, d, rr)
		case rr.Stream:
			st, first, err = openStream(a, d, rr.chat)
		default:
			res, err = d.up.chat(a.ctx, d, rr.chat)
		}
		return err
	})
	if err != nil {
		m.release(r.Context())
		g.logInternal(r, err)
		writeError(w, err)
		return
	}
	defer att.done()
	switch {
	case lead != nil:
		defer upBody.Close()
		g.responsesStream(w, r, m, d, lead, att)
	case native != nil:
		u, estimated := parseResponsesUsage(native["usage"]), false
		if u == nil {
			e := m.estimate(responseOutputText(native["output"]))
			u, estimated = &e, true
		}
		_ = json.Unmarshal(native["id"], &m.upstreamID)
		native["id"], native["model"], native["store"] = ids.id, ids.model, json.RawMessage("false")
		m.answered(w, d)
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		native["usage"] = responsesUsage(*u, credits)
		writeJSON(w, http.StatusOK, native)
	case st != nil:
		defer st.Close()
		g.responsesFromChunks(w, r, m, d, rr, st, first, att)
	default:
		u, estimated := res.usage, false
		if u == nil {
			e := m.estimate(res.outputs...)
			u, estimated = &e, true
		}
		m.upstreamID = res.upstreamID
		m.answered(w, d)
		credits := m.settle(r.Context(), d, *u, estimated, "ok")
		rw := newResponseWriter(rr, ids, m.start.Unix())
		rw.fromCompletion(res.body.members())
		writeJSON(w, http.StatusOK, rw.response(*u, credits))
	}
}

// ResponseByID serves GET and DELETE /v1/responses/{id} (and the
// response's input_items and cancel): tollgate keeps no responses, so
// there is none to find, 404 in OpenAI's shape, after authentication.
func (g *Gateway) ResponseByID(w http.ResponseWriter, r *http.Request) {
	if _, ok := tollgate.CallerFrom(r.Context()); !ok {
		writeError(w, tollgate.Errorf(tollgate.EUNAUTHORIZED, "missing or invalid API key"))
		return
	}
	writeError(w, &StatusError{Code: "response_not_found", Err: tollgate.Errorf(tollgate.ENOTFOUND,
		"tollgate keeps no responses, so the response %q cannot be retrieved, deleted or cancelled; send the whole conversation as input instead", r.PathValue("id"))})
}

// responsesRequest is a client's Responses API request, checked and routed.
type responsesRequest struct {
	raw       map[string]json.RawMessage
	Model     string
	Stream    bool
	MaxOutput int64 // max_output_tokens, capped by the key's limit; 0 when absent
	// uncounted says the input has an image or a file, whose tokens only
	// the upstream can count.
	uncounted bool
	deps      []*deployment
	chat      *chatRequest // the request translated for the deployments not of kind openai
}

// promptTokens estimates the prompt: instructions, input and tools.
func (rr *responsesRequest) promptTokens(c Counter) int64 {
	n := int64(primingTokens)
	var instr string
	if json.Unmarshal(rr.raw["instructions"], &instr) == nil {
		n += c.Count(instr)
	}
	var s string
	if in := rr.raw["input"]; json.Unmarshal(in, &s) == nil {
		n += c.Count(s)
	} else {
		n += c.Count(string(in))
	}
	if t, ok := rr.raw["tools"]; ok {
		n += c.Count(string(t))
	}
	return n
}

// parseResponses decodes and checks a Responses request, finds the
// model's deployments and applies the key's output limit. Nothing is held
// for a request it refuses.
func (g *Gateway) parseResponses(c tollgate.Caller, body []byte) (*responsesRequest, error) {
	rr := &responsesRequest{}
	var err error
	if rr.raw, err = objectFields(body); err != nil {
		var dup duplicateKeyError
		if errors.As(err, &dup) {
			return nil, invalid("request body has the key %q twice", dup.key)
		}
		return nil, invalid("request body must be a Responses API JSON object")
	}
	present := func(name string) bool {
		v, ok := rr.raw[name]
		return ok && string(v) != "null"
	}
	if json.Unmarshal(rr.raw["model"], &rr.Model) != nil || rr.Model == "" {
		return nil, invalid("model is required and must be a string")
	}
	if present("stream") && json.Unmarshal(rr.raw["stream"], &rr.Stream) != nil {
		return nil, invalid("stream must be a boolean")
	}
	if present("max_output_tokens") {
		if json.Unmarshal(rr.raw["max_output_tokens"], &rr.MaxOutput) != nil || rr.MaxOutput < 1 {
			return nil, invalid("max_output_tokens must be a positive integer")
		}
	}
	if present("instructions") {
		var s string
		if json.Unmarshal(rr.raw["instructions"], &s) != nil {
			return nil, invalid("instructions must be a string")
		}
	}
	if err := statelessFields(rr.raw); err != nil {
		return nil, err
	}
	if present("service_tier") {
		if err := billableTier(rr.raw["service_tier"]); err != nil {
			return nil, err
		}
	}
	if present("prompt") {
		return nil, invalid("prompt: prompt templates are stored at the provider, so tollgate cannot count them before the call to hold for them; send instructions and input instead")
	}
	if present("metadata") {
		if _, err := objectFields(rr.raw["metadata"]); err != nil {
			return nil, invalid("metadata must be an object of strings")
		}
	}
	if rr.uncounted, err = checkInput(rr.raw["input"]); err != nil {
		return nil, err
	}
	tools, err := parseResponsesTools(rr.raw["tools"])
	if err != nil {
		return nil, err
	}
	if err := unbilledTools(tools); err != nil {
		return nil, err
	}
	if err := checkToolChoice(rr.raw["tool_choice"]); err != nil {
		return nil, err
	}
	if rr.deps, err = g.lookup(c, rr.Model); err != nil {
		return nil, err
	}
	if lim := c.Limits.MaxOutputTokens; lim > 0 && (rr.MaxOutput == 0 || rr.MaxOutput > lim) {
		rr.MaxOutput = lim
	}
	if err := rr.route(); err != nil {
		return nil, err
	}
	return rr, nil
}

// statelessFields refuses what needs responses stored: tollgate keeps
// none (a follow-up could not be routed to the upstream that stored the
// first, and the operator would pay for storage nobody bills). Every
// request goes upstream with store false; the client sends the whole
// conversation as input, as with chat.
func statelessFields(raw map[string]json.RawMessage) error {
	const why = "tollgate keeps no responses; send the whole conversation as input (with store false)"
	for _, name := range []string{"previous_response_id", "conversation"} {
		if v, ok := raw[name]; ok && string(v) != "null" {
			return invalid("%s: %s", name, why)
		}
	}
	if v, ok := raw["background"]; ok && string(v) != "null" {
		var bg bool
		if json.Unmarshal(v, &bg) != nil {
			return invalid("background must be a boolean")
		}
		if bg {
			return invalid("background: a background response is stored to be fetched later, and %s", why)
		}
	}
	if v, ok := raw["store"]; ok && string(v) != "null" {
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return invalid("store must be a boolean")
		}
	}
	return nil
}

// billableTier refuses a service tier billed above the model's price:
// priority processing.
func billableTier(raw json.RawMessage) error {
	var tier string
	if json.Unmarshal(raw, &tier) != nil {
		return invalid("service_tier must be a string")
	}
	switch tier {
	case "auto", "default", "flex":
		return nil
	}
	return invalid("service_tier %q is billed above the model's price, which is what tollgate charges; use \"auto\", \"default\" or \"flex\"", tier)
}

// responsesTool is a tool of a Responses request.
type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// parseResponsesTools reads and checks the tools list.
func parseResponsesTools(raw json.RawMessage) ([]responsesTool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var tools []responsesTool
	if json.Unmarshal(raw, &tools) != nil {
		return nil, invalid("tools must be an array of tool objects")
	}
	for i, t := range tools {
		if t.Type != "function" {
			continue // unbilledTools says why it is refused
		}
		if !validFunctionName(t.Name) {
			return nil, invalid("tools[%d].name must be 1 to 64 letters, digits, underscores or dashes", i)
		}
		if p := bytes.TrimSpace(t.Parameters); len(p) > 0 && string(p) != "null" {
			if _, err := objectFields(p); err != nil {
				return nil, invalid("tools[%d].parameters must be a JSON Schema object", i)
			}
		}
	}
	return tools, nil
}

func validFunctionName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// builtinTools are the tools OpenAI runs itself, each with fees per call
// (or per container, per image…) that token usage does not report.
var builtinTools = []string{"web_search", "file_search", "code_interpreter", "computer_use", "image_generation", "mcp", "local_shell", "shell", "apply_patch"}

// unbilledTools refuses a tools list with a tool tollgate cannot bill:
// every type but function. It is the one place to let a built-in tool
// through once it is priced.
func unbilledTools(tools []responsesTool) error {
	for i, t := range tools {
		switch {
		case t.Type == "function":
		case slices.ContainsFunc(builtinTools, func(b string) bool { return strings.HasPrefix(t.Type, b) }):
			return invalid("tools[%d]: %q is a built-in tool with fees per use, which tollgate cannot bill; use function tools", i, t.Type)
		default:
			return invalid("tools[%d].type %q is not supported; use function tools", i, t.Type)
		}
	}
	return nil
}

// checkToolChoice checks tool_choice: "auto", "none", "required", a
// function by name, or allowed_tools (served by openai deployments only).
func checkToolChoice(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto", "none", "required":
			return nil
		}
		return invalid("tool_choice %q is not valid; use \"auto\", \"none\" or \"required\"", s)
	}
	var tc struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &tc) != nil {
		return invalid("tool_choice must be a string or an object")
	}
	switch tc.Type {
	case "function":
		if tc.Name == "" {
			return invalid("tool_choice.name is required for a function")
		}
		return nil
	case "allowed_tools":
		return nil
	}
	return unbilledTools([]responsesTool{{Type: tc.Type}})
}

// inputItem is one item of a Responses input, as the gateway checks it.
type inputItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    *string         `json:"call_id"`
	Name      *string         `json:"name"`
	Arguments *string         `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// inputPart is one content part of a message item.
type inputPart struct {
	Type     string  `json:"type"`
	Text     *string `json:"text"`
	ImageURL string  `json:"image_url"`
	FileID   string  `json:"file_id"`
	FileData string  `json:"file_data"`
	FileURL  string  `json:"file_url"`
	Filename string  `json:"filename"`
	Detail   string  `json:"detail"`
}

// checkInput checks input: a string, or an array of items (messages,
// function calls and their outputs, reasoning). It reports whether a part
// only the upstream can count (an image, a file) is there.
func checkInput(raw json.RawMessage) (uncounted bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return false, invalid("input is required")
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false, invalid("input must be a string or an array of items")
		}
		return false, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return false, invalid("input must be a string or an array of items")
	}
	if len(items) == 0 {
		return false, invalid("input must not be an empty array")
	}
	for i, b := range items {
		it, err := readItem(b)
		if err != nil {
			return false, invalid("input[%d]: %v", i, err)
		}
		u, err := checkItem(it)
		if err != nil {
			return false, invalid("input[%d]: %v", i, err)
		}
		uncounted = uncounted || u
	}
	return uncounted, nil
}

// readItem decodes an input item; an item without a type but with a role
// is a message.
func readItem(b json.RawMessage) (*inputItem, error) {
	if _, err := objectFields(b); err != nil {
		return nil, errors.New("an item must be a JSON object")
	}
	var it inputItem
	if err := json.Unmarshal(b, &it); err != nil {
		return nil, errors.New("an item has a field of the wrong type")
	}
	if it.Type == "" && it.Role != "" {
		it.Type = "message"
	}
	return &it, nil
}

// checkItem checks one input item.
func checkItem(it *inputItem) (uncounted bool, err error) {
	switch it.Type {
	case "message":
		switch it.Role {
		case "user", "system", "developer", "assistant":
		default:
			return false, errorf("role %q is not valid; use user, system, developer or assistant", it.Role)
		}
		return checkContent(it.Content)
	case "function_call":
		if it.CallID == nil || *it.CallID == "" || it.Name == nil || *it.Name == "" || it.Arguments == nil {
			return false, errorf("a function_call item needs call_id, name and arguments (a string)")
		}
	case "function_call_output":
		if it.CallID == nil || *it.CallID == "" || len(it.Output) == 0 {
			return false, errorf("a function_call_output item needs call_id and output")
		}
		var s string
		if json.Unmarshal(it.Output, &s) != nil {
			return checkContent(it.Output)
		}
	case "reasoning":
		// A reasoning model's earlier turn: relayed to openai deployments
		// (with its encrypted content), dropped when translated.
	case "item_reference":
		return false, errorf("item_reference: tollgate keeps no responses or items to refer to; send the item itself")
	case "":
		return false, errorf("an item needs a type (or a role, for a message)")
	default:
		if strings.HasSuffix(it.Type, "_call") || strings.HasSuffix(it.Type, "_call_output") || strings.HasPrefix(it.Type, "mcp_") {
			return false, errorf("item type %q belongs to a built-in tool, which tollgate cannot bill", it.Type)
		}
		return false, errorf("item type %q is not supported", it.Type)
	}
	return false, nil
}

// checkContent checks a message's content: a string or an array of parts.
func checkContent(raw json.RawMessage) (uncounted bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return false, errorf("content is required")
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false, errorf("content must be a string or an array of content parts")
		}
		return false, nil
	}
	var parts []inputPart
	if json.Unmarshal(raw, &parts) != nil {
		return false, errorf("content must be a string or an array of content parts")
	}
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "refusal":
			if p.Type != "refusal" && p.Text == nil {
				return false, errorf("content[%d]: a %s part needs text", j, p.Type)
			}
		case "input_image":
			if p.ImageURL == "" && p.FileID == "" {
				return false, errorf("content[%d]: an input_image part needs image_url or file_id", j)
			}
			uncounted = true
		case "input_file":
			if p.FileID == "" && p.FileData == "" && p.FileURL == "" {
				return false, errorf("content[%d]: an input_file part needs file_id, file_data or file_url", j)
			}
			uncounted = true
		case "input_audio":
			return false, errorf("content[%d]: audio input is priced above text tokens, which tollgate cannot bill", j)
		default:
			return false, errorf("content[%d].type %q is not supported", j, p.Type)
		}
	}
	return uncounted, nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// route keeps the deployments that can serve the request and, for those
// not of kind openai, translates it to chat. A request that cannot be
// translated keeps only the openai deployments.
func (rr *responsesRequest) route() error {
	var native []*deployment
	for _, d := range rr.deps {
		if d.provider.Kind == KindOpenAI {
			native = append(native, d)
		}
	}
	if len(native) == len(rr.deps) {
		return nil
	}
	creq, err := fromResponsesRequest(rr)
	if err == nil {
		rr.chat = creq
		return nil
	}
	if len(native) == 0 {
		return err
	}
	rr.deps = native
	return nil
}

// postResponses sends the request to an openai deployment's /responses:
// the model renamed, max_output_tokens capped at what the hold covers,
// store false (tollgate keeps no responses, and nothing is left stored at
// the provider), stream as asked.
func postResponses(a *attempt, d *deployment, rr *responsesRequest) (*http.Response, error) {
	set := map[string]any{"model": d.cfg.Model, "max_output_tokens": d.maxOut(rr.MaxOutput), "store": false}
	if rr.Stream {
		set["stream"] = true
	} else {
		set["stream"] = nil
	}
	body, err := withFields(rr.raw, set)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if d.provider.APIKey != "" {
		h.Set("Authorization", "Bearer "+d.provider.APIKey)
	}
	if rr.Stream {
		h.Set("Accept", "text/event-stream")
	}
	return post(a.ctx, d.up.(*openAI).client, joinURL(d.provider.BaseURL, "/responses"), h, body, d.up.(*openAI).clock)
}

// nativeResponse makes a non-streaming call to an openai deployment and
// reads its answer. A failed response with no output is an upstream
// failure, failed over like a 5xx.
func nativeResponse(a *attempt, d *deployment, rr *responsesRequest) (map[string]json.RawMessage, error) {
	resp, err := postResponses(a, d, rr)
	if err != nil {
		return nil, err
	}
	b, err := readBody(a.ctx, resp)
	if err != nil {
		return nil, err
	}
	out, err := objectFields(b)
	if err != nil {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: "upstream answered with invalid JSON", Err: err}
	}
	var status string
	_ = json.Unmarshal(out["status"], &status)
	if status == "" || (status == "failed" && responseOutputText(out["output"]) == "") {
		return nil, &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(b)}
	}
	return out, nil
}

// responseOutputText is the generated text of a response's output items:
// message text and refusals, function calls' names and arguments, and
// reasoning summaries, for counting without usage.
func responseOutputText(output json.RawMessage) string {
	var b strings.Builder
	for _, it := range gjson.ParseBytes(output).Array() {
		b.WriteString(it.Get("name").String())
		b.WriteString(it.Get("arguments").String())
		for _, p := range it.Get("content").Array() {
			b.WriteString(p.Get("text").String())
			b.WriteString(p.Get("refusal").String())
		}
		for _, p := range it.Get("summary").Array() {
			b.WriteString(p.Get("text").String())
		}
	}
	return b.String()
}

// parseResponsesUsage reads a Responses usage object (input_tokens with
// input_tokens_details.cached_tokens inside, output_tokens with
// output_tokens_details.reasoning_tokens inside); nil when absent, empty
// or not of that shape.
func parseResponsesUsage(raw json.RawMessage) *tokenUsage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	m, err := objectFields(raw)
	if err != nil {
		return nil
	}
	var u tokenUsage
	if !intField(m, "input_tokens", &u.Input) || !intField(m, "output_tokens", &u.Output) {
		return nil
	}
	if d := m["input_tokens_details"]; len(d) > 0 && string(d) != "null" {
		details, err := objectFields(d)
		if err != nil || !intField(details, "cached_tokens", &u.Cached) {
			return nil
		}
	}
	if u.Input == 0 && u.Output == 0 {
		return nil
	}
	u.Cached = min(u.Cached, u.Input)
	u.raw = m
	return &u
}

// responsesUsage is the Responses usage object for u with cost_credits
// added; fields an openai upstream sent and the gateway does not know are
// kept, and a chat upstream's reasoning tokens are carried over.
func responsesUsage(u tokenUsage, credits tollgate.Credits) json.RawMessage {
	reasoning := gjson.GetBytes(u.raw["output_tokens_details"], "reasoning_tokens").Int()
	if r := gjson.GetBytes(u.raw["completion_tokens_details"], "reasoning_tokens").Int(); r > 0 {
		reasoning = r
	}
	set := map[string]any{
		"input_tokens":          u.Input,
		"input_tokens_details":  map[string]int64{"cached_tokens": u.Cached},
		"output_tokens":         u.Output,
		"output_tokens_details": map[string]int64{"reasoning_tokens": reasoning},
		"total_tokens":          u.Input + u.Output,
		"cost_credits":          int64(credits),
	}
	var keep map[string]json.RawMessage
	if _, ok := u.raw["input_tokens"]; ok {
		keep = u.raw
		delete(set, "input_tokens_details")
		delete(set, "output_tokens_details")
		if u.raw["input_tokens_details"] == nil {
			set["input_tokens_details"] = map[string]int64{"cached_tokens": u.Cached}
		}
		if u.raw["output_tokens_details"] == nil {
			set["output_tokens_details"] = map[string]int64{"reasoning_tokens": 0}
		}
	}
	b, err := withFields(keep, set)
	if err != nil { // only set's values are marshalled: plain numbers
		panic("gateway: encode usage: " + err.Error())
	}
	return b
}

// responsesLeadDone reports whether an event of a Responses stream is
// output (or the end): the stream is committed to once one is read.
func responsesLeadDone(typ string) bool {
	switch typ {
	case "response.created", "response.in_progress", "response.queued", "response.output_item.added", "response.content_part.added":
		return false
	}
	return true
}

// readResponsesLead reads a Responses stream up to its first output, so an
// upstream failing before any (an error event, response.failed) can still
// be failed over.
func readResponsesLead(a *attempt, resp *http.Response) (*leadEvents, error) {
	l := &leadEvents{sse: newSSEReader(resp.Body)}
	for len(l.events) < maxLeadChunks {
		event, data, err := l.sse.next()
		if err != nil {
			return nil, classify(a.ctx, err)
		}
		a.touch()
		typ := gjson.GetBytes(data, "type").String()
		switch typ {
		case "error", "response.failed":
			status := http.StatusBadGateway
			code := gjson.GetBytes(data, "code").String() + gjson.GetBytes(data, "response.error.code").String()
			if strings.Contains(code, "rate_limit") || strings.Contains(code, "overloaded") || strings.Contains(code, "server_is_overloaded") {
				status = http.StatusServiceUnavailable
			}
			msg := gjson.GetBytes(data, "message").String() + gjson.GetBytes(data, "response.error.message").String()
			return nil, &upstreamError{Status: status, Message: truncate(msg, 512)}
		}
		l.events = append(l.events, sseEvent{event, data})
		if responsesLeadDone(typ) {
			return l, nil
		}
	}
	return l, nil
}

// responsesStream relays an openai deployment's Responses stream as sent,
// but for the response's id and model (the request's, in every event that
// carries the response) and cost_credits added to the final usage. A
// stream that breaks before its end is billed on what was delivered and
// ended with response.failed carrying that bill.
func (g *Gateway) responsesStream(w http.ResponseWriter, r *http.Request, m *metered, d *deployment, lead *leadEvents, att *attempt) {
	m.answered(w, d)
	ids := m.ids()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rl := g.newRelay(w, true)
	lead.sse.wait = func() { rl.flush() }
	g.observeFirstToken(m, d)
	var (
		snapshot  json.RawMessage // the response as response.created said it
		final     *tokenUsage
		estimated bool // final is counted, not the upstream's
		seq       int64
		upErr     error
		terminal  string
	)
	for rl.err == nil && terminal == "" && upErr == nil {
		event, data, err := lead.next()
		if err != nil {
			upErr = classify(att.ctx, err)
			break
		}
		att.touch()
		if len(data) == 0 {
			continue
		}
		if !gjson.ValidBytes(data) {
			upErr = &upstreamError{Status: http.StatusBadGateway, Message: "upstream sent an invalid stream event"}
			break
		}
		if bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0 {
			// Whitespace between tokens, but a line break in an SSE data line.
			var b bytes.Buffer
			_ = json.Compact(&b, data)
			data = b.Bytes()
		}
		ev := gjson.ParseBytes(data)
		typ := ev.Get("type").String()
		seq = max(seq, ev.Get("sequence_number").Int())
		switch typ {
		case "error":
			upErr = &upstreamError{Status: http.StatusBadGateway, Message: upstreamMessage(data)} // relayed as is below
		case "response.created", "response.in_progress", "response.queued":
			if m.upstreamID == "" {
				m.upstreamID = ev.Get("response.id").String()
			}
			data = withResponseIDs(data, ids)
			if snapshot == nil {
				snapshot = json.RawMessage(gjson.GetBytes(data, "response").Raw)
			}
		case "response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta",
			"response.reasoning_summary_text.delta", "response.reasoning_text.delta":
			rl.add(0, ev.Get("delta").String())
		case "response.completed", "response.incomplete", "response.failed":
			terminal = typ
			data = withResponseIDs(data, ids)
			final = parseResponsesUsage(json.RawMessage(gjson.GetBytes(data, "response.usage").Raw))
			if final == nil {
				// No usage: the prompt and the output delivered are counted,
				// and the client is told so, with its cost.
				e := m.estimate(rl.outputs(false)...)
				final, estimated = &e, true
			}
			data = withFinalUsage(data, responsesUsage(*final, m.cost(*final)))
		}
		if event == "" {
			event = typ
		}
		rl.write("event: " + event + "\ndata: " + string(data) + "\n\n")
	}
	u := final
	if u == nil {
		e := m.estimate(rl.outputs(false)...)
		u, estimated = &e, true
	}
	fail := func(code, msg string, credits tollgate.Credits) {
		b := failedEvent(snapshot, ids, seq+1, code, msg, responsesUsage(*u, credits))
		rl.write("event: response.failed\ndata: " + string(b) + "\n\n")
	}
	switch {
	case rl.err != nil || r.Context().Err() != nil:
		m.settle(r.Context(), d, *u, estimated, "client_canceled")
	case terminal == "" && m.overtime():
		credits := m.settle(r.Context(), d, *u, estimated, "deadline_exceeded")
		fail("request_timeout", tollgate.ErrorMessage(m.deadlineError()), credits)
	case terminal == "":
		credits := m.settle(r.Context(), d, *u, estimated, "interrupted")
		var ue *upstreamError
		if !errors.As(upErr, &ue) || ue.Status == 0 { // an upstream error event was relayed already
			fail("server_error", "the upstream stream was interrupted; the output so far is billed", credits)
		}
		g.opts.Logger.WarnContext(r.Context(), "upstream stream broke", "request_id", m.hold.RequestID, "deployment", d.id, "err", upErr)
	case terminal == "response.failed":
		m.settle(r.Context(), d, *u, estimated, "interrupted")
	default:
		m.settle(r.Context(), d, *u, estimated, "ok")
	}
	_ = rl.flush()
}

// withResponseIDs gives the response in a stream event the request's id
// and model, and store false (what the upstream was sent).
func withResponseIDs(data []byte, ids *answerIDs) []byte {
	var ev map[string]json.RawMessage
	if json.Unmarshal(data, &ev) != nil {
		return data
	}
	resp, err := objectFields(ev["response"])
	if err != nil {
		return data
	}
	resp["id"], resp["model"], resp["store"] = ids.id, ids.model, json.RawMessage("false")
	if ev["response"], err = json.Marshal(resp); err != nil {
		return data
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return data
	}
	return b
}

// withFinalUsage sets the usage of the response in a terminal event.
func withFinalUsage(data []byte, usage json.RawMessage) []byte {
	var ev map[string]json.RawMessage
	if json.Unmarshal(data, &ev) != nil {
		return data
	}
	resp, err := objectFields(ev["response"])
	if err != nil {
		return data
	}
	resp["usage"] = usage
	if ev["response"], err = json.Marshal(resp); err != nil {
		return data
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return data
	}
	return b
}

// failedEvent is the response.failed event that ends a broken stream:
// the response as it started, failed with code and msg, with the usage
// billed.
func failedEvent(snapshot json.RawMessage, ids *answerIDs, seq int64, code, msg string, usage json.RawMessage) []byte {
	resp, _ := objectFields(snapshot)
	if resp == nil {
		resp = map[string]json.RawMessage{"object": json.RawMessage(`"response"`), "output": json.RawMessage("[]")}
	}
	e, _ := json.Marshal(map[string]string{"code": code, "message": msg})
	resp["id"], resp["model"], resp["status"], resp["error"], resp["usage"] = ids.id, ids.model, json.RawMessage(`"failed"`), e, usage
	b, _ := json.Marshal(map[string]any{"type": "response.failed", "sequence_number": seq, "response": resp})
	return b
}
