package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"tollgate"
)

// TestOpenAIChunk: a stream event is relayed as its own bytes less its
// usage member, wherever that member stands, and refused like
// objectFields refuses a request.
func TestOpenAIChunk(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		raw      string // relayed bytes; "" when relayed from members
		usage    string
		errVal   string
		err      error
	}{
		{"NoUsage", `{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}`, `{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}`, "", "", nil},
		{"UsageLast", `{"id":"c","choices":[],"usage":null}`, `{"id":"c","choices":[]}`, "", "", nil},
		{"UsageMiddle", `{"id":"c", "usage" : {"prompt_tokens":1} ,"choices":[]}`, `{"id":"c" ,"choices":[]}`, `{"prompt_tokens":1}`, "", nil},
		{"UsageFirst", `{ "usage":null , "id":"c","choices":[]}`, `{ "id":"c","choices":[]}`, "", "", nil},
		{"UsageOnly", `{"usage":{"total_tokens":3}}`, `{}`, `{"total_tokens":3}`, "", nil},
		{"UsageEscapedKey", `{"id":"c","us\u0061ge":null}`, `{"id":"c"}`, "", "", nil},
		{"LeadingSpace", " \t{\"id\":\"c\"}", `{"id":"c"}`, "", "", nil},
		{"HTMLKeptAsSent", `{"choices":[{"delta":{"content":"a<b&c>d"}}]}`, `{"choices":[{"delta":{"content":"a<b&c>d"}}]}`, "", "", nil},
		{"LineBreakRelayedFromMembers", "{\"id\":\"c\",\n\"n\":1}", "", "", "", nil},
		{"LineBreakCutWithUsage", "{\"id\":\"c\",\n\"usage\":null}", `{"id":"c"}`, "", "", nil},
		{"Error", `{"error":{"message":"boom"}}`, `{"error":{"message":"boom"}}`, "", `{"message":"boom"}`, nil},
		{"Duplicate", `{"usage":null,"usage":{"total_tokens":9}}`, "", "", "", duplicateKeyError{"usage"}},
		{"KeyNotUTF8", "{\"\xf4\":0}", "", "", "", errKeyNotUTF8},
		{"NotObject", `[{"id":"c"}]`, "", "", "", errNotObject},
		{"Truncated", `{"id":"c"`, "", "", "", errNotJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, usage, errVal, err := openAIChunk([]byte(tc.in), nil, nil)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if string(c.raw) != tc.raw || string(usage) != tc.usage || string(errVal) != tc.errVal {
				t.Fatalf("raw %q usage %q error %q, want %q %q %q", c.raw, usage, errVal, tc.raw, tc.usage, tc.errVal)
			}
			if c.raw == nil {
				if _, ok := c.fields["usage"]; ok || c.fields == nil {
					t.Fatalf("members %v: want the chunk's, without usage", c.fields)
				}
			}
		})
	}
}

// TestChunkWith: a member added to a chunk as sent goes at its end, the
// rest kept byte for byte; the chunk it came from is unchanged.
func TestChunkWith(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":"c","choices":[]}`, `{"id":"c","choices":[],"usage":{"n":1}}`},
		{`{"id":"c" , "choices":[] }`, `{"id":"c" , "choices":[],"usage":{"n":1}}`},
		{`{ }`, `{"usage":{"n":1}}`},
		{`{"id":"c","usage":null}`, `{"id":"c","usage":{"n":1}}`}, // cut, then put at the end
	} {
		c, _, _, err := openAIChunk([]byte(tc.in), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := string(c.raw)
		got := c.with("usage", json.RawMessage(`{"n":1}`))
		if string(got.raw) != tc.want {
			t.Errorf("%s: with usage = %s, want %s", tc.in, got.raw, tc.want)
		}
		if string(c.raw) != before {
			t.Errorf("%s: the original chunk changed to %s", tc.in, c.raw)
		}
	}
	// A key the chunk has already is replaced through its members.
	c, _, _, _ := openAIChunk([]byte(`{"id":"c","choices":[]}`), nil, nil)
	got := c.with("id", json.RawMessage(`"d"`))
	if got.raw != nil || string(got.fields["id"]) != `"d"` || string(got.fields["choices"]) != `[]` {
		t.Fatalf("replacing id: raw %q fields %v", got.raw, got.fields)
	}
}

// FuzzOpenAIChunk: openAIChunk accepts and refuses what objectFields
// does, and what it relays is the same object less usage, on one line.
func FuzzOpenAIChunk(f *testing.F) {
	for _, s := range []string{`{"id":"c","usage":null,"choices":[]}`, `{"usage":{"a":1},"x":[1,{"usage":2}]}`,
		` {"a" : 1 , "usage" : null }`, "{\"a\":1,\r\n\"usage\":0}", `{"usage":1,"usage":2}`, `{"error":"x"}`, `{}`, `[1]`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, rewrite bool) {
		want, wantErr := objectFields(bytes.Clone(b))
		var ids *answerIDs
		if rewrite {
			ids = newAnswerIDs("req_1", "asked")
		}
		c, usage, errVal, err := openAIChunk(bytes.Clone(b), ids, nil)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("openAIChunk err %v, objectFields err %v, for %q", err, wantErr, b)
		}
		if err != nil {
			return
		}
		if u, ok := want["usage"]; ok && string(u) != "null" && !bytes.Equal(u, usage) {
			t.Fatalf("usage %q, want %q", usage, u)
		}
		if e := want["error"]; !bytes.Equal(e, errVal) {
			t.Fatalf("error %q, want %q", errVal, e)
		}
		delete(want, "usage")
		if rewrite {
			want["id"] = ids.id
			if _, ok := want["model"]; ok {
				want["model"] = ids.model
			}
		}
		got := c.fields
		if c.raw != nil {
			if bytes.ContainsAny(c.raw, "\r\n") {
				t.Fatalf("relayed bytes span lines: %q", c.raw)
			}
			if got, err = objectFields(c.raw); err != nil {
				t.Fatalf("relayed %q, not an object: %v (from %q)", c.raw, err, b)
			}
		}
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("relayed members %v, want %v (from %q)", got, want, b)
		}
	})
}

// TestOpenAIAnswerRelayedAsSent: a non-streaming answer goes to the client
// as the upstream wrote it, line breaks and key order included, with its
// usage member replaced by the gateway's, at the end.
func TestOpenAIAnswerRelayedAsSent(t *testing.T) {
	const ours = `{"prompt_tokens":3,"cost_credits":9}`
	for _, tc := range []struct {
		name, in, want string
		usage          bool // the upstream reported usage
		choices        bool
	}{
		{"usage last", `{"id":"a","choices":[],"usage":{"prompt_tokens":3}}`,
			`{"id":"a","choices":[],"usage":` + ours + `}`, true, true},
		{"usage first", `{"usage":{"prompt_tokens":3},"id":"a","choices":[]}`,
			`{"id":"a","choices":[],"usage":` + ours + `}`, true, true},
		{"no usage", `{"id":"a","choices":[]}`, `{"id":"a","choices":[],"usage":` + ours + `}`, false, true},
		{"null usage", `{"id":"a","usage":null,"choices":[]}`, `{"id":"a","choices":[],"usage":` + ours + `}`, false, true},
		{"pretty", "{\n  \"id\": \"a\",\n  \"usage\": {\"prompt_tokens\": 3},\n  \"choices\": []\n}\n",
			"{\n  \"id\": \"a\",\n  \"choices\": [],\"usage\":" + ours + "}", true, true},
		{"no choices", `{"error":{"message":"busy"}}`, `{"error":{"message":"busy"},"usage":` + ours + `}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, choices, err := openAIResult([]byte(tc.in), nil)
			if err != nil {
				t.Fatal(err)
			}
			if (res.usage != nil) != tc.usage || (choices != nil) != tc.choices {
				t.Errorf("usage %v, choices %q", res.usage, choices)
			}
			got, err := appendJSON(nil, res.body.with("usage", json.RawMessage(ours)))
			if err != nil || string(got) != tc.want {
				t.Fatalf("sent %q, %v\nwant %q", got, err, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("sent invalid JSON %q", got)
			}
		})
	}
	for _, bad := range []string{`{"id":"a","id":"b"}`, `{"id":`, `[1]`} {
		if _, _, err := openAIResult([]byte(bad), nil); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestAnswerIDs: with the request's ids, a chunk or an answer says the
// request id and the model asked for, spliced where the upstream's stood
// (the rest byte for byte), an id put first where there was none; the
// upstream's id is returned; the buffer is changed in place when its
// capacity allows.
func TestAnswerIDs(t *testing.T) {
	ids := newAnswerIDs("req_0123", "asked")
	for _, tc := range []struct{ name, in, want, up string }{
		{"Chunk", `{"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-up","choices":[{"delta":{"content":"x"}}]}`,
			`{"id":"req_0123","object":"chat.completion.chunk","model":"asked","choices":[{"delta":{"content":"x"}}]}`, "chatcmpl-9"},
		{"UsageCutToo", `{"model":"m-long-upstream-name","usage":{"prompt_tokens":1},"id":"c","choices":[]}`,
			`{"model":"asked","id":"req_0123","choices":[]}`, "c"},
		{"UsageFirst", `{"usage":null,"choices":[],"model":"m","id":"x"}`, `{"choices":[],"model":"asked","id":"req_0123"}`, "x"},
		{"NoID", `{"object":"list","data":[],"model":"text-embedding-up"}`, `{"id":"req_0123","object":"list","data":[],"model":"asked"}`, ""},
		{"NoIDUsageOnly", `{"usage":{"prompt_tokens":1}}`, `{"id":"req_0123"}`, ""},
		{"Empty", `{}`, `{"id":"req_0123"}`, ""},
		{"IDNotString", `{"id":7,"model":null}`, `{"id":"req_0123","model":"asked"}`, ""},
		{"Same", `{"id":"req_0123","model":"asked"}`, `{"id":"req_0123","model":"asked"}`, "req_0123"},
		{"Spaces", `{ "id" : "c" , "model" : "m" }`, `{ "id" : "req_0123" , "model" : "asked" }`, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := append(make([]byte, 0, len(tc.in)+sseSlack), tc.in...)
			var up string
			c, _, _, err := openAIChunk(buf, ids, &up)
			if err != nil {
				t.Fatal(err)
			}
			if string(c.raw) != tc.want || up != tc.up {
				t.Fatalf("raw %s upstream id %q\nwant %s %q", c.raw, up, tc.want, tc.up)
			}
			if &c.raw[0] != &buf[0] {
				t.Errorf("a new buffer: the spare capacity was enough")
			}
			res, _, err := openAIResult([]byte(tc.in), ids) // an exact buffer: grown when needed
			if err != nil || string(res.body.raw) != tc.want || res.upstreamID != tc.up {
				t.Fatalf("answer %s %q, %v; want %s", res.body.raw, res.upstreamID, err, tc.want)
			}
		})
	}
	// The choices read are those of the rewritten bytes.
	c, _, _, _ := openAIChunk([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"hello"}}],"model":"m"}`), ids, nil)
	if len(c.cs) != 1 || c.cs[0].text() != "hello" {
		t.Fatalf("choices %+v", c.cs)
	}
}

// TestAnswerIDsEncoded: a model name JSON must escape is encoded as
// json.Marshal does.
func TestAnswerIDsEncoded(t *testing.T) {
	for _, m := range []string{"plain-model", `a"b`, "<x>&", "模型"} {
		ids := newAnswerIDs("req_1", m)
		want, _ := json.Marshal(m)
		if string(ids.model) != string(want) || string(ids.id) != `"req_1"` {
			t.Errorf("%q: id %s model %s, want %s", m, ids.id, ids.model, want)
		}
	}
}

// TestMessageStartIDs: a message_start event gets the request's id and
// model in place of the upstream's, the rest as sent.
func TestMessageStartIDs(t *testing.T) {
	ids := newAnswerIDs("req_0123", "asked")
	in := `{"type":"message_start","message":{"id":"msg_01X","type":"message","role":"assistant","model":"claude-up","content":[],"usage":{"input_tokens":3}}}`
	want := `{"type":"message_start","message":{"id":"req_0123","type":"message","role":"assistant","model":"asked","content":[],"usage":{"input_tokens":3}}}`
	if got := withMessageIDs([]byte(in), ids); string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := withMessageIDs([]byte(`{"type":"message_start"}`), ids); string(got) != `{"type":"message_start"}` {
		t.Fatalf("no message: %s", got)
	}
}

// BenchmarkOpenAIChunk reads a typical content chunk of a stream.
func BenchmarkOpenAIChunk(b *testing.B) {
	const event = `{"id":"chatcmpl-49d3f5470a8c68af87a93e4e","object":"chat.completion.chunk","created":1795791440,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":" harbor"},"logprobs":null,"finish_reason":null}],"usage":null}`
	buf := make([]byte, len(event)+sseSlack) // as sseReader allocates it
	ids := newAnswerIDs(tollgate.NewRequestID(time.Unix(1795791440, 0)), "gpt-4o-mini")
	up := "chatcmpl-49d3f5470a8c68af87a93e4e" // known from the stream's first chunk
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, event)
		if _, _, _, err := openAIChunk(buf[:len(event)], ids, &up); err != nil {
			b.Fatal(err)
		}
	}
}
