package gateway

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// Counter counts tokens in text. The gateway uses it to estimate prompts
// before a call and to bill delivered output when an upstream reports no
// usage. It must be safe for concurrent use.
type Counter interface {
	Count(text string) int64
}

// TiktokenCounter counts with the o200k_base encoding (the BPE tables are
// embedded in the binary). For non-OpenAI models it is an estimate.
//
// Counts are remembered: a chat client sends the whole conversation with
// every turn, so the same system prompt, history and role names come back
// again and again, and the tokenizer (regular expressions, then BPE) costs
// microseconds per message. The memory is bounded (countCacheEntries
// texts, countCacheBytes of text); when full it starts over.
type TiktokenCounter struct {
	once  sync.Once
	codec tokenizer.Codec

	mu     sync.Mutex
	counts map[string]int64
	bytes  int
}

const (
	countCacheEntries = 16384
	countCacheBytes   = 16 << 20
	countCacheMaxText = 256 << 10 // longer texts are counted every time
)

// Count implements Counter. On a tokenizer failure it falls back to one
// token per 3 bytes, so a count is never zero for non-empty text.
func (t *TiktokenCounter) Count(text string) int64 {
	if text == "" {
		return 0
	}
	if len(text) > countCacheMaxText {
		return t.count(text)
	}
	t.mu.Lock()
	n, ok := t.counts[text]
	t.mu.Unlock()
	if ok {
		return n
	}
	n = t.count(text)
	t.mu.Lock()
	if t.counts == nil || len(t.counts) >= countCacheEntries || t.bytes+len(text) > countCacheBytes {
		t.counts, t.bytes = make(map[string]int64), 0
	}
	if _, ok := t.counts[text]; !ok {
		// A copy: text may be a slice of a larger body the map would
		// otherwise keep alive, uncounted by countCacheBytes.
		t.counts[strings.Clone(text)] = n
		t.bytes += len(text)
	}
	t.mu.Unlock()
	return n
}

// count runs the tokenizer.
func (t *TiktokenCounter) count(text string) int64 {
	t.once.Do(func() {
		c, err := tokenizer.Get(tokenizer.O200kBase)
		if err == nil {
			t.codec = c
		}
	})
	if t.codec != nil {
		if n, err := t.codec.Count(text); err == nil && n > 0 {
			return int64(n)
		}
	}
	return int64(len(text)/3 + 1)
}

// perMessageTokens is the chat format's overhead per message (role and
// separators), and primingTokens the reply's priming.
const (
	perMessageTokens = 4
	primingTokens    = 3
)

// promptTokens estimates the prompt of a chat request: the text of every
// message, the tools' JSON and the chat format's overhead.
func promptTokens(c Counter, req *chatRequest) int64 {
	n := int64(primingTokens)
	for _, m := range req.Messages {
		n += perMessageTokens + c.Count(m.Role) + c.Count(m.Name)
		n += c.Count(contentText(m.Content))
		for _, tc := range m.ToolCalls {
			n += c.Count(tc.Function.Name) + c.Count(tc.Function.Arguments)
		}
	}
	if raw, ok := req.raw["tools"]; ok {
		n += c.Count(string(raw))
	}
	if raw, ok := req.raw["functions"]; ok {
		n += c.Count(string(raw))
	}
	return n
}

// contentText returns the text of a message's content: a plain string, or
// the text parts of an array of content parts. Other parts (images, audio)
// are counted by their JSON, a generous estimate.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return string(raw)
	}
	var b strings.Builder
	for _, p := range parts {
		var part struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(p, &part) == nil && part.Type == "text" {
			b.WriteString(part.Text)
		} else {
			b.Write(p)
		}
	}
	return b.String()
}
