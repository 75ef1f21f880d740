package gateway

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/tidwall/gjson"
)

// chunk is one chat.completion.chunk of a stream.
type chunk struct {
	// raw is the chunk's bytes, one JSON object on one line, which the
	// relay writes as they are: for an upstream's chunk, as sent less its
	// usage member; for one the gateway wrote (a translated Anthropic
	// event, a member added by with), as written. Nil for a chunk that
	// is only fields, written from its members.
	raw []byte
	// fields are the members by name, values as sent; for a raw chunk
	// built only when asked for (members).
	fields map[string]json.RawMessage
	// cs are the choices as the gateway reads them.
	cs []streamChoice
	// usageCut says raw has no usage member (cutUsage took it out), so
	// with can add one without reading raw's members.
	usageCut bool
	// priority says the upstream served it at the priority tier
	// (service_tier "priority"), which is billed above the standard one.
	priority bool
}

// members returns the chunk's members by name.
func (c *chunk) members() map[string]json.RawMessage {
	if c.fields == nil && c.raw != nil {
		c.fields, _ = objectFields(c.raw) // valid: checked by openAIChunk, or the gateway's own
	}
	return c.fields
}

// with returns a copy of the chunk with the member key set to v. A new
// member of a chunk as sent goes at its end, keeping the upstream's order.
func (c *chunk) with(key string, v json.RawMessage) *chunk {
	if c.raw != nil && c.lacks(key) && plainKey(key) && verbatim(v) {
		end := bytes.LastIndexByte(c.raw, '}')
		raw := slices.Clip(bytes.TrimRight(c.raw[:end], " \t\r\n"))
		if raw[len(raw)-1] != '{' { // a member before: raw is a valid object
			raw = append(raw, ',')
		}
		raw = append(append(append(append(raw, '"'), key...), '"', ':'), v...)
		return &chunk{raw: append(raw, '}'), cs: c.cs}
	}
	fields := maps.Clone(c.members())
	if fields == nil {
		fields = map[string]json.RawMessage{}
	}
	fields[key] = v
	return &chunk{fields: fields, cs: c.cs}
}

// lacks reports whether the chunk has no member key.
func (c *chunk) lacks(key string) bool {
	if key == "usage" && c.usageCut {
		return true
	}
	_, ok := c.members()[key]
	return !ok
}

// answerIDs are what every answer of one request says for its id and
// model, as JSON strings: the request id (Hold.RequestID: the
// X-Request-Id, and the usage record's id) and the model the client asked
// for, whatever the upstream called its answer and its model.
type answerIDs struct {
	id, model []byte
	// unknown is why the upstream's usage was in fields tollgate does not
	// know for its provider (set by the upstream's reader, read by the
	// settle: such a request is billed at its hold).
	unknown atomic.Pointer[string]
}

func newAnswerIDs(requestID, model string) *answerIDs {
	if plainKey(requestID) && plainKey(model) { // the usual case: one allocation, no encoder
		b := make([]byte, 0, len(requestID)+len(model)+4)
		b = append(append(append(b, '"'), requestID...), '"')
		n := len(b)
		b = append(append(append(b, '"'), model...), '"')
		return &answerIDs{id: b[:n:n], model: b[n:]}
	}
	id, _ := json.Marshal(requestID) // a string always encodes
	m, _ := json.Marshal(model)
	return &answerIDs{id: id, model: m}
}

// openAIChunk reads one event of an OpenAI stream. It returns the chunk
// without its usage member (the relay puts usage on the last chunk only)
// and with ids's id and model when ids is not nil, the usage member's
// value, and the value of an "error" member; and when *up is "", it sets
// it to the upstream's id of the chunk (the stream's first says it). data
// is the chunk's own buffer: it is rewritten in place (in its spare
// capacity, when the ids grow it; see sseSlack).
func openAIChunk(data []byte, ids *answerIDs, up *string) (c *chunk, usage, errVal json.RawMessage, err error) {
	o, err := cutUsage(data, ids, up)
	if err != nil {
		return nil, nil, nil, err
	}
	c = &chunk{raw: o.raw, cs: choicesOf(o.choices), usageCut: true, priority: o.priority}
	if bytes.IndexByte(o.raw, '\n') >= 0 || bytes.IndexByte(o.raw, '\r') >= 0 { // not ContainsAny: a byte-set scan, 5× slower
		// Whitespace between tokens, but a line break in an SSE data line:
		// relayed from its members instead (encoded on one line).
		c.fields, c.raw = c.members(), nil
	}
	return c, o.usage, o.errVal, nil
}

// cutObject is an upstream's JSON object with its usage member cut out.
type cutObject struct {
	raw                    []byte          // the object as sent, less usage
	usage, errVal, choices json.RawMessage // the values of usage, error and choices, nil when absent
	priority               bool            // service_tier is "priority"
}

// span is a part of an object replaced by repl: a member's value, a
// member cut out (repl nil), or a member put in (from == to).
type span struct {
	from, to int
	repl     []byte
}

// cutUsage reads an OpenAI-shaped object (a stream's chunk, an answer) to
// be relayed as sent but for its usage, which the gateway rewrites, and,
// when ids is not nil, its id and model, which become ids's (an id is put
// first when the object has none: an embeddings answer). It refuses what
// objectFields refuses (walkObject), but builds no map: the members
// changed are spliced in place, the rest of the bytes left as they are.
// data is the object's own buffer, changed in place (slices.Replace: a new
// one only when the ids need more than its spare capacity); choices
// shares the result's memory. When up is not nil and *up is "", *up is
// set to the object's id as the upstream sent it (a string; a copy).
func cutUsage(data []byte, ids *answerIDs, up *string) (cutObject, error) {
	data = bytes.TrimLeft(data, " \t\r\n") // gjson's offsets start at the '{'
	var o cutObject
	var (
		prevEnd                = -1 // end of the previous member's value
		cutFrom, cutTo         = -1, -1
		cutToNextKey           bool // usage is the first member: cut up to the next key
		choicesFrom, choicesTo = -1, -1
		idFrom, idTo           = -1, -1
		modelFrom, modelTo     = -1, -1
		members                int
	)
	// A view of data, not a copy: nothing read from it outlives the
	// walk (the upstream id is cloned), which ends before data is changed.
	err := walkObject(unsafe.String(unsafe.SliceData(data), len(data)), func(k, v gjson.Result) {
		if cutToNextKey {
			cutTo, cutToNextKey = k.Index, false
		}
		members++
		end := v.Index + len(v.Raw)
		switch k.Str {
		case "usage":
			if v.Type != gjson.Null {
				o.usage = bytes.Clone(data[v.Index:end])
			}
			if prevEnd >= 0 {
				cutFrom, cutTo = prevEnd, end // ,"usage":…
			} else {
				cutFrom, cutTo, cutToNextKey = k.Index, end, true // "usage":…,
			}
		case "error":
			o.errVal = bytes.Clone(data[v.Index:end])
		case "choices":
			choicesFrom, choicesTo = v.Index, end
		case "id":
			idFrom, idTo = v.Index, end
			if up != nil && *up == "" && v.Type == gjson.String {
				*up = strings.Clone(v.Str)
			}
		case "model":
			modelFrom, modelTo = v.Index, end
		case "service_tier":
			o.priority = v.Type == gjson.String && v.Str == "priority"
		}
		prevEnd = end
	})
	if err != nil {
		return cutObject{}, err
	}
	// The spans, last first, so that each leaves the offsets of those
	// before it as they were.
	var arr [4]span
	spans := arr[:0]
	if ids != nil && modelFrom >= 0 && !bytes.Equal(data[modelFrom:modelTo], ids.model) {
		spans = append(spans, span{modelFrom, modelTo, ids.model})
	}
	if ids != nil && idFrom >= 0 && !bytes.Equal(data[idFrom:idTo], ids.id) {
		spans = append(spans, span{idFrom, idTo, ids.id})
	}
	if cutFrom >= 0 {
		spans = append(spans, span{cutFrom, cutTo, nil})
		members--
	}
	if ids != nil && idFrom < 0 {
		member := append(append([]byte(`"id":`), ids.id...), ',')
		if members == 0 {
			member = member[:len(member)-1]
		}
		spans = append(spans, span{1, 1, member}) // after the '{'
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.from != b.from {
			return b.from - a.from
		}
		return b.to - a.to // a member put in where one is cut out: after the cut
	})
	for _, sp := range spans {
		data = slices.Replace(data, sp.from, sp.to, sp.repl...)
		if sp.to <= choicesFrom {
			n := len(sp.repl) - (sp.to - sp.from)
			choicesFrom, choicesTo = choicesFrom+n, choicesTo+n
		}
	}
	o.raw = data
	if choicesFrom >= 0 {
		o.choices = data[choicesFrom:choicesTo:choicesTo]
	}
	return o, nil
}
