package mockllm_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
)

// BenchmarkChatCompletion measures the mock over a real loopback HTTP
// server with parallel keep-alive clients, the way the gateway's load
// benchmark will use it. Client and server share the machine, so req/s is
// a floor for the mock alone.
func BenchmarkChatCompletion(b *testing.B) {
	for _, bc := range []struct {
		name, body string
	}{
		{"NonStream", chatBody},
		{"Stream", chatStreamBody},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := httptest.NewServer(&mockllm.Server{})
			defer ts.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
			url := ts.URL + "/v1/chat/completions"
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(url, "application/json", strings.NewReader(bc.body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkServeHTTP measures the handler alone, without the network.
func BenchmarkServeHTTP(b *testing.B) {
	s := &mockllm.Server{}
	for _, bc := range []struct {
		name, body string
	}{
		{"NonStream", chatBody},
		{"Stream", chatStreamBody},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(bc.body))
				s.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
