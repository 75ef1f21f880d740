package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
)

// respEvent is one event of a Responses stream, decoded.
type respEvent struct {
	Type     string         `json:"type"`
	Seq      int64          `json:"sequence_number"`
	Delta    string         `json:"delta"`
	Response map[string]any `json:"response"`
	Item     map[string]any `json:"item"`
}

// respEvents decodes a Responses stream's events and checks each has the
// event name of its type and the next sequence number.
func respEvents(t *testing.T, body string) []respEvent {
	t.Helper()
	var out []respEvent
	var name string
	for _, line := range strings.Split(body, "\n") {
		if n, ok := strings.CutPrefix(line, "event: "); ok {
			name = n
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev respEvent
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		if ev.Type != name {
			t.Errorf("event %q carries type %q", name, ev.Type)
		}
		if ev.Seq != int64(len(out)) {
			t.Errorf("event %d (%s) has sequence_number %d", len(out), ev.Type, ev.Seq)
		}
		out = append(out, ev)
	}
	return out
}

// streamed is what a client reads from a Responses stream: the event
// types, the text and arguments deltas, and the final response.
type streamed struct {
	types  []string
	deltas []string
	final  map[string]any
}

func readStream(t *testing.T, body string) streamed {
	t.Helper()
	var s streamed
	for _, ev := range respEvents(t, body) {
		s.types = append(s.types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta", "response.function_call_arguments.delta":
			s.deltas = append(s.deltas, ev.Delta)
		case "response.completed", "response.incomplete", "response.failed":
			s.final = ev.Response
		}
	}
	return s
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

const respAsk = `"instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"tell me four words"}]}],"max_output_tokens":50`

// TestResponses: a Responses request through the gateway, to an openai
// deployment (passed through) and to an Anthropic one (translated), streamed
// and not: the text and usage are the mock's, usage.cost_credits is what
// the balance moved, the usage record names the deployment, no hold stays.
func TestResponses(t *testing.T) {
	for _, tc := range []struct {
		name, model, deployment string
		stream                  bool
		openai                  *mockllm.Server
		in, cached, out         int64
	}{
		{name: "OpenAI", model: "mock-gpt", deployment: "mock-openai/gpt-4o-mini", in: 6, cached: 2, out: 8},
		{name: "OpenAIStream", model: "mock-gpt", deployment: "mock-openai/gpt-4o-mini", stream: true, in: 6, cached: 2, out: 8},
		{name: "Anthropic", model: "mock-claude", deployment: "mock-anthropic/claude-sonnet-4-5", in: 6, out: 8},
		{name: "AnthropicStream", model: "mock-claude", deployment: "mock-anthropic/claude-sonnet-4-5", stream: true, in: 6, out: 8},
		{name: "FailoverToAnthropic", model: "mock-gpt", deployment: "mock-anthropic/claude-haiku-4-5", openai: &mockllm.Server{Status: 503}, in: 6, out: 8},
		{name: "FailoverToAnthropicStream", model: "mock-gpt", deployment: "mock-anthropic/claude-haiku-4-5", stream: true, openai: &mockllm.Server{FailAfter: 2}, in: 6, out: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.openai == nil {
				tc.openai = &mockllm.Server{OutputTokens: 8, CachedTokens: 2}
			}
			e, _, _ := mockEnv(t, 100_000, tc.openai, &mockllm.Server{OutputTokens: 8})
			body := `{"model":"` + tc.model + `",` + respAsk + `}`
			if tc.stream {
				body = `{"model":"` + tc.model + `","stream":true,` + respAsk + `}`
			}
			resp, got := e.do(context.Background(), "/v1/responses", body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			var r map[string]any
			var text string
			if tc.stream {
				s := readStream(t, got)
				want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
				if len(s.types) < 9 || strings.Join(s.types[:4], ",") != strings.Join(want, ",") ||
					strings.Join(s.types[len(s.types)-4:], ",") != "response.output_text.done,response.content_part.done,response.output_item.done,response.completed" {
					t.Fatalf("events %v", s.types)
				}
				if int64(len(s.deltas)) != tc.out {
					t.Errorf("%d deltas, want %d", len(s.deltas), tc.out)
				}
				r, text = s.final, strings.Join(s.deltas, "")
			} else {
				r = mustJSON(t, got)
			}
			if r["object"] != "response" || r["status"] != "completed" || r["model"] != tc.model || r["id"] != resp.Header.Get("X-Request-Id") || r["store"] != false {
				t.Fatalf("response %v", r)
			}
			if final := path(r, "output", 0, "content", 0, "text"); final == nil || (tc.stream && final != text) || mockllm.CountTokens(final.(string)) != int(tc.out) {
				t.Fatalf("output %v, streamed %q", path(r, "output"), text)
			}
			usage := r["usage"]
			if num(path(usage, "input_tokens")) != tc.in || num(path(usage, "input_tokens_details", "cached_tokens")) != tc.cached ||
				num(path(usage, "output_tokens")) != tc.out || num(path(usage, "total_tokens")) != tc.in+tc.out {
				t.Errorf("usage %v", usage)
			}
			balance, holds, usages, _ := e.meter.state()
			cost := num(path(usage, "cost_credits"))
			if holds != 0 || len(usages) != 1 || cost <= 0 || 100_000-balance != cost || int64(usages[0].Credits) != cost {
				t.Fatalf("cost_credits %d, balance %d, holds %d, usages %+v", cost, balance, holds, usages)
			}
			if u := usages[0]; u.Deployment != tc.deployment || u.InputTokens != tc.in || u.CachedInputTokens != tc.cached || u.OutputTokens != tc.out || u.Estimated || u.Status != "ok" {
				t.Errorf("usage record %+v", u)
			}
		})
	}
}

const weatherTool = `"tools":[{"type":"function","name":"get_weather","description":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`

// TestResponsesFunctionCallRoundTrip: a function call answered, then its
// output sent back as input items (the call and its output) gets a
// message; both calls billed, to an openai deployment and translated.
func TestResponsesFunctionCallRoundTrip(t *testing.T) {
	for _, model := range []string{"mock-gpt", "mock-claude"} {
		for _, stream := range []bool{false, true} {
			name := model
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				e, _, _ := mockEnv(t, 100_000, &mockllm.Server{OutputTokens: 5}, &mockllm.Server{OutputTokens: 5})
				st := ""
				if stream {
					st = `"stream":true,`
				}
				resp, got := e.do(context.Background(), "/v1/responses", `{"model":"`+model+`",`+st+weatherTool+`,"tool_choice":"required","input":"weather in Paris?"}`)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, got)
				}
				var r map[string]any
				var args string
				if stream {
					s := readStream(t, got)
					r, args = s.final, strings.Join(s.deltas, "")
					if !strings.Contains(strings.Join(s.types, ","), "response.function_call_arguments.done,response.output_item.done,response.completed") {
						t.Fatalf("events %v", s.types)
					}
				} else {
					r = mustJSON(t, got)
					args, _ = path(r, "output", 0, "arguments").(string)
				}
				call, _ := path(r, "output", 0).(map[string]any)
				if call["type"] != "function_call" || call["name"] != "get_weather" || call["arguments"] != args || !json.Valid([]byte(args)) || call["call_id"] == "" {
					t.Fatalf("output %v (streamed arguments %q)", path(r, "output"), args)
				}
				first := num(path(r, "usage", "cost_credits"))
				if num(path(r, "usage", "output_tokens")) < 2 || first <= 0 {
					t.Fatalf("usage %v", r["usage"])
				}
				items, _ := json.Marshal([]any{
					map[string]any{"role": "user", "content": "weather in Paris?"},
					map[string]any{"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": args},
					map[string]any{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny and warm"},
				})
				resp, got = e.do(context.Background(), "/v1/responses", `{"model":"`+model+`",`+weatherTool+`,"input":`+string(items)+`}`)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, got)
				}
				r = mustJSON(t, got)
				if path(r, "output", 0, "type") != "message" || mockllm.CountTokens(path(r, "output", 0, "content", 0, "text").(string)) != 5 {
					t.Fatalf("answer to the function output: %s", got)
				}
				// The function's output is prompt: "sunny and warm" and the question.
				if in := num(path(r, "usage", "input_tokens")); in != 6 {
					t.Errorf("input_tokens %d, want 6", in)
				}
				second := num(path(r, "usage", "cost_credits"))
				balance, holds, usages, _ := e.meter.state()
				if holds != 0 || len(usages) != 2 || 100_000-balance != first+second {
					t.Fatalf("costs %d + %d, balance %d, holds %d, %d usages", first, second, balance, holds, len(usages))
				}
			})
		}
	}
}

// TestResponsesStreamCut: a stream the upstream cuts after some output
// is billed on what was delivered (never more than held), and the client
// reads response.failed carrying that bill; no hold stays.
func TestResponsesStreamCut(t *testing.T) {
	for _, tc := range []struct {
		name, model string
		openai      *mockllm.Server
		anth        *mockllm.Server
		delivered   int
	}{
		// created, in_progress, output_item.added, content_part.added, then 2 deltas.
		{name: "OpenAI", model: "mock-gpt", openai: &mockllm.Server{OutputTokens: 8, FailAfter: 6}, delivered: 2},
		// message_start, content_block_start, ping, then 2 deltas.
		{name: "Anthropic", model: "mock-claude", anth: &mockllm.Server{OutputTokens: 8, FailAfter: 5}, delivered: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.openai == nil {
				tc.openai = &mockllm.Server{}
			}
			if tc.anth == nil {
				tc.anth = &mockllm.Server{}
			}
			e, _, _ := mockEnv(t, 100_000, tc.openai, tc.anth)
			resp, got := e.do(context.Background(), "/v1/responses", `{"model":"`+tc.model+`","stream":true,`+respAsk+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			s := readStream(t, got)
			if len(s.deltas) != tc.delivered || s.types[len(s.types)-1] != "response.failed" {
				t.Fatalf("%d deltas, events %v", len(s.deltas), s.types)
			}
			if s.final["status"] != "failed" || path(s.final, "error", "code") != "server_error" {
				t.Errorf("final %v", s.final)
			}
			cost := num(path(s.final, "usage", "cost_credits"))
			balance, holds, usages, _ := e.meter.state()
			if holds != 0 || len(usages) != 1 || 100_000-balance != cost || cost <= 0 {
				t.Fatalf("cost_credits %d, balance %d, holds %d, usages %+v", cost, balance, holds, usages)
			}
			if u := usages[0]; u.Status != "interrupted" || u.OutputTokens != int64(tc.delivered) || num(path(s.final, "usage", "output_tokens")) != u.OutputTokens {
				t.Errorf("usage record %+v, final usage %v", u, s.final["usage"])
			}
		})
	}
}

// TestResponsesRefused: what tollgate cannot serve or bill is a clear 400
// (404 for a stored response) in OpenAI's shape, and nothing is held.
func TestResponsesRefused(t *testing.T) {
	const in = `"input":"hi"`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		says                     string
	}{
		{"PreviousResponse", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"previous_response_id":"resp_1"}`, 400, "tollgate keeps no responses"},
		{"Conversation", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"conversation":"conv_1"}`, 400, "tollgate keeps no responses"},
		{"Background", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"background":true}`, 400, "tollgate keeps no responses"},
		{"ItemReference", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"type":"item_reference","id":"msg_1"}]}`, 400, "tollgate keeps no responses"},
		{"WebSearch", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"web_search"}]}`, 400, "which tollgate cannot bill"},
		{"FileSearch", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"file_search","vector_store_ids":["vs"]}]}`, 400, "which tollgate cannot bill"},
		{"CodeInterpreter", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}`, 400, "which tollgate cannot bill"},
		{"ComputerUse", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"computer_use_preview"}]}`, 400, "which tollgate cannot bill"},
		{"ImageGeneration", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"image_generation"}]}`, 400, "which tollgate cannot bill"},
		{"MCP", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"mcp","server_label":"x"}]}`, 400, "which tollgate cannot bill"},
		{"BuiltinToolChoice", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tool_choice":{"type":"web_search_preview"}}`, 400, "which tollgate cannot bill"},
		{"PriorityTier", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"service_tier":"priority"}`, 400, "billed above the model's price"},
		{"AudioInput", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, 400, "which tollgate cannot bill"},
		{"BuiltinCallItem", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"type":"web_search_call","id":"ws_1"}]}`, 400, "which tollgate cannot bill"},
		{"UnknownItem", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"type":"telepathy"}]}`, 400, `input[0]: item type "telepathy" is not supported`},
		{"UnknownPart", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"role":"user","content":[{"type":"input_smell"}]}]}`, 400, `content[0].type "input_smell" is not supported`},
		{"BadRole", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"role":"god","content":"hi"}]}`, 400, `role "god" is not valid`},
		{"ItemNotObject", "POST", "/v1/responses", `{"model":"mock-gpt","input":["hi"]}`, 400, "an item must be a JSON object"},
		{"CallWithoutID", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, 400, "needs call_id, name and arguments"},
		{"OutputWithoutID", "POST", "/v1/responses", `{"model":"mock-gpt","input":[{"type":"function_call_output","output":"x"}]}`, 400, "needs call_id and output"},
		{"EmptyInput", "POST", "/v1/responses", `{"model":"mock-gpt","input":[]}`, 400, "input must not be an empty array"},
		{"NoInput", "POST", "/v1/responses", `{"model":"mock-gpt"}`, 400, "input is required"},
		{"NoModel", "POST", "/v1/responses", `{` + in + `}`, 400, "model is required"},
		{"NotJSON", "POST", "/v1/responses", `{"model":`, 400, "must be a Responses API JSON object"},
		{"DuplicateKey", "POST", "/v1/responses", `{"model":"mock-gpt","input":"a","input":"b"}`, 400, `the key "input" twice`},
		{"BadMaxOutput", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"max_output_tokens":0}`, 400, "max_output_tokens must be a positive integer"},
		{"BadToolName", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"function","name":"no spaces allowed"}]}`, 400, "tools[0].name"},
		{"BadToolParameters", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":[{"type":"function","name":"f","parameters":[1]}]}`, 400, "tools[0].parameters must be a JSON Schema object"},
		{"ToolsNotArray", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tools":{"type":"function"}}`, 400, "tools must be an array"},
		{"BadToolChoice", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"tool_choice":"always"}`, 400, `tool_choice "always" is not valid`},
		{"PromptTemplate", "POST", "/v1/responses", `{"model":"mock-gpt",` + in + `,"prompt":{"id":"pmpt_1"}}`, 400, "prompt templates"},
		{"UnknownModel", "POST", "/v1/responses", `{"model":"nope",` + in + `}`, 404, `the model "nope" does not exist`},
		{"AllowedToolsTranslated", "POST", "/v1/responses", `{"model":"mock-claude",` + in + `,"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}}`, 400, "served by OpenAI deployments only"},
		{"Get", "GET", "/v1/responses/resp_123", "", 404, `tollgate keeps no responses, so the response "resp_123" cannot be retrieved`},
		{"Delete", "DELETE", "/v1/responses/resp_123", "", 404, "tollgate keeps no responses"},
		{"Cancel", "POST", "/v1/responses/resp_123/cancel", "", 404, "tollgate keeps no responses"},
		{"InputItems", "GET", "/v1/responses/resp_123/input_items", "", 404, "tollgate keeps no responses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &mockllm.Server{}
			e, _, _ := mockEnv(t, 100_000, up, &mockllm.Server{})
			req, err := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != tc.status || !strings.Contains(path(mustJSON(t, body), "error", "message").(string), tc.says) {
				t.Fatalf("status %d %s, want %d saying %q", resp.StatusCode, body, tc.status, tc.says)
			}
			if path(mustJSON(t, body), "error", "type") == nil {
				t.Errorf("not OpenAI's error shape: %s", body)
			}
			if n := e.meter.reserves.Load(); n != 0 {
				t.Errorf("%d holds made for a refused request", n)
			}
			if n := up.Count("/v1/responses", 200); n != 0 {
				t.Errorf("the upstream was called %d times", n)
			}
		})
	}
}

// TestResponsesNativeRequest: an openai deployment gets the request as
// sent, but for the model, store false and max_output_tokens capped at
// the hold's.
func TestResponsesNativeRequest(t *testing.T) {
	u := &upstream{}
	e := newEnv(t, 100_000, deploymentSpec{up: u})
	resp, body := e.do(context.Background(), "/v1/responses", `{"model":"m","input":"hi","store":true,"metadata":{"k":"v"},"temperature":0.5,"include":["reasoning.encrypted_content"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	sent := u.lastBody(t)
	if sent["model"] != "up-0" || sent["store"] != false || num(sent["max_output_tokens"]) != 100 || sent["temperature"] != 0.5 ||
		path(sent, "metadata", "k") != "v" || path(sent, "include", 0) != "reasoning.encrypted_content" {
		t.Fatalf("sent %v", sent)
	}
	// The reasoning tokens are billed inside output_tokens (3 words and 2
	// reasoning tokens) at the output price; a usage field tollgate does
	// not know reaches the client.
	r := mustJSON(t, body)
	usage := r["usage"]
	if num(path(usage, "output_tokens")) != 5 || num(path(usage, "output_tokens_details", "reasoning_tokens")) != 2 || num(path(usage, "x_new_field")) != 7 ||
		num(path(usage, "cost_credits")) != 10+2*5 || path(r, "output", 1, "content", 0, "text") != "Hello there friend" || r["model"] != "m" {
		t.Fatalf("answer %s", body)
	}
	if _, _, usages, _ := e.meter.state(); len(usages) != 1 || usages[0].OutputTokens != 5 || usages[0].UpstreamID != "resp_up" || usages[0].Credits != 20 {
		t.Fatalf("usages %+v", usages)
	}
}

// TestResponsesStreamCutMidEvent: an upstream stream ending inside an
// event (half its data line sent) is billed on the deltas delivered; the
// half event is not relayed, and the client reads response.failed with
// that bill.
func TestResponsesStreamCutMidEvent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		resp := `{"id":"resp_up","object":"response","status":"in_progress","model":"up","output":[],"usage":null}`
		for i, ev := range []string{
			`{"type":"response.created","sequence_number":0,"response":` + resp + `}`,
			`{"type":"response.in_progress","sequence_number":1,"response":` + resp + `}`,
			`{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}`,
			`{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello"}`,
			`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" there"}`,
		} {
			typ := []string{"response.created", "response.in_progress", "response.output_item.added", "response.output_text.delta", "response.output_text.delta"}[i]
			io.WriteString(w, "event: "+typ+"\ndata: "+ev+"\n\n")
		}
		io.WriteString(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"del")
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, 100_000, deploymentSpec{up: &upstream{srv: srv}})
	resp, got := e.do(context.Background(), "/v1/responses", `{"model":"m","stream":true,"input":"hi"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	s := readStream(t, got)
	if strings.Join(s.deltas, "") != "Hello there" || s.types[len(s.types)-1] != "response.failed" || len(s.types) != 6 {
		t.Fatalf("deltas %q, events %v", s.deltas, s.types)
	}
	cost := num(path(s.final, "usage", "cost_credits"))
	balance, holds, usages, _ := e.meter.state()
	if holds != 0 || len(usages) != 1 || cost <= 0 || 100_000-balance != cost {
		t.Fatalf("cost_credits %d, balance %d, holds %d, usages %+v", cost, balance, holds, usages)
	}
	if u := usages[0]; u.Status != "interrupted" || !u.Estimated || u.OutputTokens != 2 || u.UpstreamID != "resp_up" || num(path(s.final, "usage", "output_tokens")) != 2 {
		t.Errorf("usage record %+v, final usage %v", u, s.final["usage"])
	}
}

// TestResponsesStreamWithoutUsage: an upstream whose response.completed
// has no usage is billed on the prompt and the output counted, and the
// client still reads the usage and its cost there.
func TestResponsesStreamWithoutUsage(t *testing.T) {
	e, _, _ := mockEnv(t, 100_000, &mockllm.Server{OutputTokens: 8, OmitUsage: true}, &mockllm.Server{})
	resp, got := e.do(context.Background(), "/v1/responses", `{"model":"mock-gpt","stream":true,`+respAsk+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	s := readStream(t, got)
	cost := num(path(s.final, "usage", "cost_credits"))
	balance, holds, usages, _ := e.meter.state()
	if s.final["status"] != "completed" || holds != 0 || len(usages) != 1 || cost <= 0 || 100_000-balance != cost {
		t.Fatalf("final %v, balance %d, holds %d, usages %+v", s.final, balance, holds, usages)
	}
	if u := usages[0]; u.Status != "ok" || !u.Estimated || u.OutputTokens != 8 || num(path(s.final, "usage", "output_tokens")) != 8 {
		t.Errorf("usage record %+v, final usage %v", u, s.final["usage"])
	}
}
