package gateway_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"tollgate"
	"tollgate/gateway"
)

// FuzzChatCompletions sends arbitrary bodies: the gateway must answer with
// a known status, never panic, and never leave a hold open.
func FuzzChatCompletions(f *testing.F) {
	for _, seed := range []string{
		simpleChat,
		`{"model":"m","stream":true,"n":2,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		`{"model":"m","max_completion_tokens":-1,"messages":[]}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{"}}]}]}`,
		`{"model":"m","service_tier":"flex","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}},{"type":"input_audio"}]}]}`,
		`[]`, `null`, `{"model":1}`,
	} {
		f.Add([]byte(seed))
	}
	up := &upstream{}
	e := newEnv(f, 1_000_000, deploymentSpec{up: up}, deploymentSpec{up: &upstream{}, kind: gateway.KindAnthropic})
	ok := map[int]bool{200: true, 400: true, 402: true, 404: true, 413: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
		r = r.WithContext(tollgate.WithCaller(r.Context(), e.caller))
		rec := httptest.NewRecorder()
		e.gw.Handler().ServeHTTP(rec, r)
		if !ok[rec.Code] {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK && !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
			t.Fatalf("error without an error body: %s", rec.Body)
		}
		if _, holds, _, _ := e.meter.state(); holds != 0 {
			t.Fatalf("%d holds left open after %q", holds, body)
		}
	})
}
