package web_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/web"
)

func TestCheckReturnURL(t *testing.T) {
	hosts := []string{"shop.example"}
	for _, tc := range []struct {
		raw   string
		hosts []string
		dev   bool
		ok    bool
	}{
		{"", hosts, false, true},
		{"https://shop.example/done?x=1", hosts, false, true},
		{"https://SHOP.example:8443/done", hosts, false, true},
		{"https://other.example/", nil, false, true},
		{"https://other.example/", hosts, false, false},
		{"http://shop.example/", hosts, false, false},
		{"http://shop.example/", hosts, true, true},
		{"http://127.0.0.1:3000/back", nil, false, true},
		{"http://localhost:3000/back", nil, false, true},
		{"javascript:alert(1)", nil, true, false},
		{"JavaScript://shop.example/%0aalert(1)", nil, true, false},
		{"data:text/html,<script>", nil, true, false},
		{"ftp://shop.example/", nil, true, false},
		{"//shop.example/", nil, true, false},
		{"/done", nil, true, false},
		{"https://user:pw@shop.example/", nil, false, false},
		{"https://shop.example/a b", nil, false, false},
		{"https://shop.example\\@evil.example/", nil, false, false},
		{"https://" + strings.Repeat("a", 2050) + ".example/", nil, false, false},
	} {
		got, err := web.CheckReturnURL(tc.raw, tc.hosts, tc.dev)
		if (err == nil) != tc.ok {
			t.Errorf("CheckReturnURL(%q, %v, dev %v) = %q, %v; want ok %v", tc.raw, tc.hosts, tc.dev, got, err, tc.ok)
		}
		if err != nil && tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Errorf("CheckReturnURL(%q): code %s", tc.raw, tollgate.ErrorCode(err))
		}
	}
}

func TestCheckMetadata(t *testing.T) {
	many := map[string]int{}
	for i := range 21 {
		many[strings.Repeat("k", i+1)] = i
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"null", "", true},
		{"{}", "", true},
		{` { "a" : 1 , "b":{"c":[1,2]} } `, `{"a":1,"b":{"c":[1,2]}}`, true},
		{`[1]`, "", false},
		{`"x"`, "", false},
		{`{"a":`, "", false},
		{string(manyJSON), "", false},
		{`{"a":"` + strings.Repeat("x", 4100) + `"}`, "", false},
	} {
		got, err := web.CheckMetadata(json.RawMessage(tc.in))
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("CheckMetadata(%.40q) = %s, %v; want %s ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestSessionCarriesAppFields: return URL, locale and metadata survive
// the signed token, and a token as long as the biggest metadata allows
// still verifies.
func TestSessionCarriesAppFields(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	meta := `{"k":"` + strings.Repeat("x", web.MaxMetadata-8) + `"}`
	s := web.Session{Account: "acct_1", ExpiresAt: now.Add(time.Minute), ReturnURL: "https://shop.example/" + strings.Repeat("p", 2000),
		Locale: "en", Metadata: json.RawMessage(meta)}
	got, err := web.VerifySession(secret, web.SignSession(secret, s), now)
	if err != nil || got.ReturnURL != s.ReturnURL || got.Locale != "en" || string(got.Metadata) != meta {
		t.Fatalf("VerifySession = %+v, %v", got, err)
	}
}
