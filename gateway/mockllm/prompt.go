package mockllm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// prompt accumulates what the answer depends on: the token count, a hash
// seeding the completion, and the text of the last user message (where the
// "call <tool>" convention is looked for).
type prompt struct {
	tokens   int
	hash     uint64
	lastUser string
}

func newPrompt(model string) prompt { return prompt{hash: hashString(fnvOffset, model)} }

func (p *prompt) add(role, text string) {
	p.tokens += CountTokens(text)
	p.hash = hashString(hashString(p.hash, role), text)
	if role == "user" {
		p.lastUser = text
	}
}

// choiceSeed is the generation seed of choice i.
func (p *prompt) choiceSeed(i int) uint64 { return p.hash ^ uint64(i+1)*0x9e3779b97f4a7c15 }

// part is one block of a content array, in any of the three APIs: text
// parts carry Text; Anthropic tool_result blocks carry nested Content;
// Responses function_call_output items carry Output.
type part struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"`
	Output  json.RawMessage `json:"output"`
}

// contentText returns the text of a content field: a string, null, or an
// array of parts whose texts are joined with newlines. Images and other
// non-text parts count for nothing.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 && len(raw) >= 2 {
			return string(raw[1 : len(raw)-1]), nil // already validated by the body parse
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("content: %w", err)
		}
		return s, nil
	}
	var parts []part
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("content must be a string or an array of parts: %w", err)
	}
	var b strings.Builder
	for _, p := range parts {
		t := p.Text
		if t == "" && len(p.Content) > 0 {
			nested, err := contentText(p.Content)
			if err != nil {
				return "", err
			}
			t = nested
		}
		if t == "" && len(p.Output) > 0 {
			nested, err := contentText(p.Output)
			if err != nil {
				return "", err
			}
			t = nested
		}
		if t == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(t)
	}
	return b.String(), nil
}

// parseStop reads OpenAI's "stop": null, a string or an array of strings.
func parseStop(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("stop: %w", err)
		}
		return []string{s}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, fmt.Errorf("stop must be a string or an array of strings: %w", err)
	}
	return ss, nil
}

// tool is a function the client offered.
type tool struct {
	name   string
	params json.RawMessage
}

// pickTool decides whether to answer with a call and to which tool:
// forced names the tool the tool_choice forces ("" when none), any says
// the tool_choice requires some call ("required" / Anthropic "any"), none
// forbids calls. Otherwise the last user message containing
// "call <name>" for an offered tool picks it.
func pickTool(tools []tool, forced string, any, none bool, lastUser string) (*tool, error) {
	if len(tools) == 0 || none {
		return nil, nil
	}
	if forced != "" {
		for i := range tools {
			if tools[i].name == forced {
				return &tools[i], nil
			}
		}
		return nil, fmt.Errorf("tool_choice names %q, which is not among the tools", forced)
	}
	for i := range tools {
		if tools[i].name != "" && strings.Contains(lastUser, "call "+tools[i].name) {
			return &tools[i], nil
		}
	}
	if any {
		return &tools[0], nil
	}
	return nil, nil
}

// errBadSchema reports tool parameters that are not a JSON object.
var errBadSchema = errors.New("tool parameters must be a JSON Schema object")

// toolArguments makes deterministic arguments for a tool from its JSON
// Schema: every property in name order, a vocabulary word for strings, a
// number below 100 for numbers and integers, true for booleans, [] for
// arrays, {} for objects, null otherwise.
func toolArguments(seed uint64, params json.RawMessage) (string, error) {
	var schema struct {
		Properties map[string]struct {
			Type json.RawMessage `json:"type"`
			Enum []json.RawMessage
		} `json:"properties"`
	}
	if p := bytes.TrimSpace(params); len(p) > 0 && string(p) != "null" {
		if err := json.Unmarshal(p, &schema); err != nil {
			return "", fmt.Errorf("%w: %w", errBadSchema, err)
		}
	}
	names := make([]string, 0, len(schema.Properties))
	for n := range schema.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	state := seed
	buf := []byte{'{'}
	for i, n := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, n)
		buf = append(buf, ':')
		prop := schema.Properties[n]
		x := splitmix64(&state)
		if len(prop.Enum) > 0 {
			buf = append(buf, prop.Enum[x%uint64(len(prop.Enum))]...)
			continue
		}
		switch t := string(prop.Type); {
		case strings.Contains(t, `"string"`):
			buf = appendString(buf, vocab[x&63])
		case strings.Contains(t, `"integer"`), strings.Contains(t, `"number"`):
			buf = appendInt(buf, int64(x%100))
		case strings.Contains(t, `"boolean"`):
			buf = append(buf, "true"...)
		case strings.Contains(t, `"array"`):
			buf = append(buf, "[]"...)
		case strings.Contains(t, `"object"`):
			buf = append(buf, "{}"...)
		default:
			buf = append(buf, "null"...)
		}
	}
	buf = append(buf, '}')
	return string(buf), nil
}

// argFragmentBytes is the size of the argument fragments a tool call is
// streamed in. A tool call costs one token for its name plus one per
// fragment.
const argFragmentBytes = 8

// toolCall is a generated call: its arguments in stream fragments.
type toolCall struct {
	name  string
	args  string
	frags []string
}

// tokens is the call's completion token count.
func (c *toolCall) tokens() int { return 1 + len(c.frags) }

// makeToolCall generates a call to t, cut to limit tokens (limit < 0: no
// limit); cut reports whether the limit cut it.
func makeToolCall(seed uint64, t *tool, limit int) (c toolCall, cut bool, err error) {
	args, err := toolArguments(seed, t.params)
	if err != nil {
		return c, false, err
	}
	frags := fragments(args, argFragmentBytes)
	if limit >= 1 && 1+len(frags) > limit {
		frags = frags[:limit-1]
		args = strings.Join(frags, "")
		cut = true
	}
	return toolCall{name: t.name, args: args, frags: frags}, cut, nil
}
