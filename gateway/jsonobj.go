package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

var (
	errNotObject = errors.New("not a JSON object")
	errNotJSON   = errors.New("not valid JSON")
	// errKeyNotUTF8: encoding/json would read such a key as U+FFFD, so
	// two different ones would be the same key to it.
	errKeyNotUTF8 = errors.New("a key is not valid UTF-8")
)

// duplicateKeyError is an object that names one member twice.
type duplicateKeyError struct{ key string }

func (e duplicateKeyError) Error() string { return fmt.Sprintf("the key %q appears twice", e.key) }

// objectFields returns the members of the JSON object b by name, each value
// a slice of b as sent (no copy, no re-encoding). It fails when b is not
// valid JSON, not an object, or names a member twice: read one way here and
// another way by an upstream or a client, a duplicate could bill one model
// and run another. One validation pass and one walk over the top level
// (walkObject): unlike a decode into a map, nested values are not decoded.
func objectFields(b []byte) (map[string]json.RawMessage, error) {
	b = bytes.TrimLeft(b, " \t\r\n") // gjson's offsets start at the '{'
	m := make(map[string]json.RawMessage, 8)
	err := walkObject(string(b), func(k, v gjson.Result) {
		end := v.Index + len(v.Raw)
		m[k.Str] = json.RawMessage(b[v.Index:end:end])
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// walkObject checks that js, from its first byte, is one JSON object whose
// keys are valid UTF-8 and each named once, and calls visit for each
// member in order (k.Index and v.Index are offsets into js). It returns
// errNotJSON, errNotObject, errKeyNotUTF8 or a duplicateKeyError, having
// visited the members before the offending key. gjson's validator accepts
// exactly what encoding/json does (FuzzObjectFields) at a third of the
// time.
func walkObject(js string, visit func(k, v gjson.Result)) error {
	if !gjson.Valid(js) {
		return errNotJSON
	}
	r := gjson.Parse(js)
	if !r.IsObject() {
		return errNotObject
	}
	var (
		few  [16]string // the keys so far, while they are few
		keys = few[:0]
		many map[string]struct{} // then all of them, so a long object stays linear
		err  error
	)
	r.ForEach(func(k, v gjson.Result) bool {
		if !utf8.ValidString(k.Str) {
			err = errKeyNotUTF8
			return false
		}
		var dup bool
		if many != nil {
			_, dup = many[k.Str]
			many[k.Str] = struct{}{}
		} else if dup = slices.Contains(keys, k.Str); !dup {
			if keys = append(keys, k.Str); len(keys) > len(few) {
				many = make(map[string]struct{}, 2*len(keys))
				for _, key := range keys {
					many[key] = struct{}{}
				}
			}
		}
		if dup {
			err = duplicateKeyError{k.Str}
			return false
		}
		visit(k, v)
		return true
	})
	return err
}

// withFields returns the object raw with the members of set put in (a nil
// value deletes the member), its keys sorted. Values of raw are copied as
// they are (objectFields validated them); values of set are marshalled.
func withFields(raw map[string]json.RawMessage, set map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(raw)+len(set))
	size := 2
	for k, v := range raw {
		if _, ok := set[k]; !ok {
			keys = append(keys, k)
			size += len(k) + len(v) + 4
		}
	}
	enc := make(map[string][]byte, len(set))
	for k, v := range set {
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		enc[k] = b
		keys = append(keys, k)
		size += len(k) + len(b) + 4
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendKey(out, k)
		if v, ok := enc[k]; ok {
			out = append(out, v...)
		} else {
			out = append(out, raw[k]...)
		}
	}
	return append(out, '}'), nil
}

// appendKey appends k as a JSON string and a colon.
func appendKey(b []byte, k string) []byte {
	if plainKey(k) {
		b = append(append(append(b, '"'), k...), '"')
	} else {
		q, _ := json.Marshal(k) // a string always encodes
		b = append(b, q...)
	}
	return append(b, ':')
}
