package gateway_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// BenchmarkChat measures the gateway's own overhead per request (parse,
// hold, route, relay, settle) against an in-process mockllm.
func BenchmarkChat(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"NonStreaming", `{"model":"mock-gpt","max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}`},
		{"Streaming", `{"model":"mock-gpt","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}`},
		{"AnthropicStreaming", `{"model":"mock-claude","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mock := httptest.NewServer(&mockllm.Server{})
			defer mock.Close()
			meter := newFakeMeter(b, 1<<62)
			gw, err := gateway.New(gateway.DefaultMockProviders(mock.URL), gateway.Options{Meter: meter, Pricer: fakePricer{}, Counter: mockCounter{}})
			if err != nil {
				b.Fatal(err)
			}
			h := gw.Handler()
			body := []byte(bc.body)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
				r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "a"}))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
