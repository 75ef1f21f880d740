package gateway

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
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

// openAIChunk reads one event of an OpenAI stream. It returns the chunk
// without its usage member (the relay puts usage on the last chunk only),
// that member's value, and the value of an "error" member. data is the
// chunk's own buffer: the usage member is cut out of it in place.
func openAIChunk(data []byte) (c *chunk, usage, errVal json.RawMessage, err error) {
	o, err := cutUsage(data)
	if err != nil {
		return nil, nil, nil, err
	}
	c = &chunk{raw: o.raw, cs: choicesOf(o.choices), usageCut: true}
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
}

// cutUsage reads an OpenAI-shaped object (a stream's chunk, an answer) to
// be relayed as sent but for its usage, which the gateway rewrites. It
// refuses what objectFields refuses (walkObject), but builds no map. data
// is the object's own buffer: the usage member is cut out of it in place;
// choices shares the result's memory.
func cutUsage(data []byte) (cutObject, error) {
	data = bytes.TrimLeft(data, " \t\r\n") // gjson's offsets start at the '{'
	var o cutObject
	var (
		prevEnd                = -1 // end of the previous member's value
		cutFrom, cutTo         = -1, -1
		cutToNextKey           bool // usage is the first member: cut up to the next key
		choicesFrom, choicesTo = -1, -1
	)
	// A view of data, not a copy: nothing read from it outlives the
	// walk, which ends before data is changed.
	err := walkObject(unsafe.String(unsafe.SliceData(data), len(data)), func(k, v gjson.Result) {
		if cutToNextKey {
			cutTo, cutToNextKey = k.Index, false
		}
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
		}
		prevEnd = end
	})
	if err != nil {
		return cutObject{}, err
	}
	if cutFrom >= 0 {
		n := cutTo - cutFrom
		data = append(data[:cutFrom], data[cutTo:]...)
		if choicesFrom > cutFrom {
			choicesFrom, choicesTo = choicesFrom-n, choicesTo-n
		}
	}
	o.raw = data
	if choicesFrom >= 0 {
		o.choices = data[choicesFrom:choicesTo:choicesTo]
	}
	return o, nil
}
