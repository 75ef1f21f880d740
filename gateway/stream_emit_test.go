package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAppendChunkMatchesMarshal checks the relay's fast chunk encoder
// against json.Marshal: the same bytes when it copies, and a refusal
// (so that json.Marshal is used) when copying would differ or break SSE.
func TestAppendChunkMatchesMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		fast bool
	}{
		{"Chunk", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello, 世界 — “quoted” \"x\" \\ \u00e9"},"finish_reason":null}]}`, true},
		{"Nested", `{"z":{"b":[1,2,{"c":null}],"a":true},"a":-1.5e3}`, true},
		{"HTML", `{"choices":[{"delta":{"content":"a < b && c > d"}}]}`, false},
		{"LineSeparator", "{\"c\":\"a\u2028b\"}", false},
		{"Newline", "{\"c\":[1,\n2]}", false},
		{"OddKey", `{"a\"b":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chunk map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.data), &chunk); err != nil {
				t.Fatal(err)
			}
			var buf []byte
			ok := appendChunk(&buf, chunk)
			if ok != tc.fast {
				t.Fatalf("appendChunk copied: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			want, _ := json.Marshal(chunk)
			if !bytes.Equal(buf, want) {
				t.Fatalf("appendChunk\n got %s\nwant %s", buf, want)
			}
		})
	}
}
