package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestObjectFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]string // value bytes as sent
		err  error
	}{
		{"Plain", `{"a":1,"b":"x"}`, map[string]string{"a": "1", "b": `"x"`}, nil},
		{"SpacesKept", " \n\t{ \"a\" : [1, 2] ,\"b\":{\"c\" :null} }\n", map[string]string{"a": "[1, 2]", "b": `{"c" :null}`}, nil},
		{"EscapedKey", `{"mod\u0065l":"m","\"q\"":true}`, map[string]string{"model": `"m"`, `"q"`: "true"}, nil},
		{"NestedDuplicatesAreTheValue's", `{"a":{"x":1,"x":2}}`, map[string]string{"a": `{"x":1,"x":2}`}, nil},
		{"Empty", `{}`, map[string]string{}, nil},
		{"Duplicate", `{"a":1,"b":2,"a":3}`, nil, duplicateKeyError{"a"}},
		{"DuplicateThroughEscape", `{"ab":1,"a\u0062":2}`, nil, duplicateKeyError{"ab"}},
		{"Array", `[1]`, nil, errNotObject},
		{"Null", `null`, nil, errNotObject},
		{"Truncated", `{"a":`, nil, errNotJSON},
		{"Trailing", `{"a":1} x`, nil, errNotJSON},
		{"ControlInString", "{\"a\":\"x\x01\"}", nil, errNotJSON},
		{"KeyNotUTF8", "{\"\xf4\":0}", nil, errKeyNotUTF8},
		{"DuplicateAfterManyKeys", manyKeys(40) + `,"k3":0}`, nil, duplicateKeyError{"k3"}},
		{"ManyKeys", manyKeys(40) + "}", manyKeysWant(40), nil},
		{"ValueNotUTF8Kept", "{\"a\":\"\xf4\"}", map[string]string{"a": "\"\xf4\""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := objectFields([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d members %v, want %v", len(got), got, tc.want)
			}
			for k, v := range tc.want {
				if string(got[k]) != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestWithFieldsMatchesMarshal: the fast writer gives json.Marshal's bytes
// for compact input, keys sorted, set members replacing, nil deleting.
func TestWithFieldsMatchesMarshal(t *testing.T) {
	raw, err := objectFields([]byte(`{"z":[1,{"y":2}],"model":"a","k<&>":"v","stream":true,"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]any{"model": "b", "stream": nil, "max_tokens": 16, "opts": map[string]bool{"x": true}}
	got, err := withFields(raw, set)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for k, v := range raw {
		want[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(want, k)
		} else {
			want[k] = v
		}
	}
	wb, _ := json.Marshal(want)
	if string(got) != string(wb) {
		t.Fatalf("withFields = %s\njson.Marshal = %s", got, wb)
	}
}

// FuzzObjectFields: objectFields accepts exactly the bodies encoding/json
// reads as an object without a repeated key, and gives the same members.
func FuzzObjectFields(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` {"a":[1,{"b":"c\u00e9\n"}],"d":null} `, `{"x":-0.5e10,"y":[true,false]}`,
		`[1]`, `"\ud800"`, "{\"a\":\"\xff\"}", `{"a":01}`, `{"a":1.}`, `{"a":1,}`, "{\"a\":\"\x01\"}", `{"a" 1}`,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":"\x"}`, `{"a":"\u12G4"}`, `{"a":1} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := objectFields(b)
		var want map[string]json.RawMessage
		stdErr := json.Unmarshal(b, &want)
		if stdErr != nil || want == nil {
			if err == nil {
				t.Fatalf("objectFields accepted %q, which encoding/json refuses as an object (%v)", b, stdErr)
			}
			return
		}
		var dup duplicateKeyError
		if errors.As(err, &dup) || errors.Is(err, errKeyNotUTF8) {
			return // encoding/json keeps the last of a repeated key; objectFields refuses it
		}
		if err != nil {
			t.Fatalf("objectFields refused %q (%v), which encoding/json reads", b, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, encoding/json %d, for %q", len(got), len(want), b)
		}
		for k, v := range want {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				t.Fatalf("member %q = %q, encoding/json %q", k, got[k], v)
			}
		}
	})
}

// manyKeys is the start of an object with n members k0…k(n-1), past the
// few keys walkObject keeps in a list before it needs a map.
func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

// manyKeysWant is what objectFields reads from manyKeys(n) + "}".
func manyKeysWant(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = fmt.Sprint(i)
	}
	return m
}
