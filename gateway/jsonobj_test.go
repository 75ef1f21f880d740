package gateway

import (
	"encoding/json"
	"errors"
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
