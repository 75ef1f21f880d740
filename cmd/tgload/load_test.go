package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate/gateway/mockllm"
)

func TestLoadAgainstMockLLM(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/v1/responses"} {
		t.Run(path, func(t *testing.T) { loadMock(t, path) })
	}
}

// loadMock loads the mock at path (Chat Completions or Responses),
// streamed and not: every request is answered (a Responses stream ends at
// response.completed).
func loadMock(t *testing.T, path string) {
	srv := httptest.NewServer(&mockllm.Server{OutputTokens: 4})
	defer srv.Close()
	for _, stream := range []bool{false, true} {
		var out, errOut bytes.Buffer
		args := []string{"-url", srv.URL + path, "-c", "2", "-d", "10s", "-n", "20", "-model", "gpt-4o-mini"}
		if stream {
			args = append(args, "-stream")
		}
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("run: %v (%s)", err, errOut.String())
		}
		report := out.String()
		for _, want := range []string{"requests    20 ok of 20", "latency     p50", "errors      none"} {
			if !strings.Contains(report, want) {
				t.Errorf("stream=%v: report lacks %q:\n%s", stream, want, report)
			}
		}
		if stream != strings.Contains(report, "ttft") {
			t.Errorf("stream=%v: ttft line:\n%s", stream, report)
		}
	}
}

func TestLoadCountsErrorsByStatus(t *testing.T) {
	srv := httptest.NewServer(&mockllm.Server{Status: 503})
	defer srv.Close()
	res, err := Load(context.Background(), Config{URL: srv.URL + "/v1/chat/completions", Clients: 1, Duration: 10 * time.Second,
		Requests: 3, Model: "m", MaxTokens: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByStatus[503] != 3 || len(res.Latencies) != 0 {
		t.Fatalf("by status %v, %d ok", res.ByStatus, len(res.Latencies))
	}
}

func TestRefusesNonLoopbackAndUnboundedRuns(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://example.com/v1/chat/completions"},
		{"-url", "http://10.0.0.1:8080/v1/chat/completions"},
		{"-url", "http://127.0.0.1.example.com/v1/chat/completions"},
		{"-url", "ftp://127.0.0.1/x"},
		{"-c", "0"},
		{"-c", "100000"},
		{"-d", "24h"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/x", "http://[::1]:1/x", "http://localhost:1/x", "http://127.0.0.2/x"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestDoesNotFollowRedirects(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("http://example.com/v1/chat/completions", http.StatusTemporaryRedirect))
	defer srv.Close()
	res, err := Load(context.Background(), Config{URL: srv.URL, Clients: 1, Duration: 10 * time.Second, Requests: 2, Model: "m", MaxTokens: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.ByStatus[http.StatusTemporaryRedirect] != 2 {
		t.Fatalf("by status %v, want the two redirects counted as answers", res.ByStatus)
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}} {
		if got := Percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}
