package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/httpapi"
)

// TestEveryRouteLimitsItsBody sends each route a body one byte over its
// limit: the answer is 413 before any handler (or authentication) runs,
// which is why a Server without services can answer it.
func TestEveryRouteLimitsItsBody(t *testing.T) {
	h := (&httpapi.Server{Sandbox: http.NotFoundHandler(), MockLLM: http.NotFoundHandler()}).Handler()
	for _, tc := range []struct {
		method, path string
		limit        int64
	}{
		{"GET", "/healthz", httpapi.SmallBody},
		{"GET", "/readyz", httpapi.SmallBody},
		{"POST", "/admin/accounts", httpapi.JSONBody},
		{"PATCH", "/admin/accounts/acct_x", httpapi.JSONBody},
		{"GET", "/admin/sandbox", httpapi.SmallBody},
		{"GET", "/v1/packages", httpapi.SmallBody},
		{"GET", "/v1/balance", httpapi.SmallBody},
		{"GET", "/v1/usage", httpapi.SmallBody},
		{"POST", "/v1/payments/orders", httpapi.JSONBody},
		{"GET", "/v1/payments/orders/abcdef123", httpapi.SmallBody},
		{"GET", "/v1/payments/orders/abcdef123/qr.png", httpapi.SmallBody},
		{"POST", "/v1/payments/orders/abcdef123/refund", httpapi.SmallBody},
		{"HEAD", "/wxpay/notify", httpapi.SmallBody},
		{"POST", "/wxpay/notify", httpapi.NotifyBody},
		{"POST", "/wxpay/notify/v3", httpapi.NotifyBody},
		{"POST", "/v1/chat/completions", httpapi.GatewayBody},
		{"POST", "/v1/embeddings", httpapi.GatewayBody},
		{"POST", "/v1/messages", httpapi.GatewayBody},
		{"POST", "/v1beta/models/m:generateContent", httpapi.GatewayBody},
		{"POST", "/v1/models/m:streamGenerateContent", httpapi.GatewayBody},
		{"GET", "/v1/models", httpapi.SmallBody},
		{"POST", "/sandbox/wxpay/pay/unifiedorder", httpapi.SandboxBody},
		{"POST", "/mockllm/v1/chat/completions", httpapi.GatewayBody},
		{"GET", "/nowhere", httpapi.SmallBody},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(strings.Repeat("x", int(tc.limit)+1)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with %d bytes: status %d, want 413", tc.method, tc.path, tc.limit+1, rec.Code)
		}
	}
}

func TestReadyzReportsAFailedCheck(t *testing.T) {
	s := &httpapi.Server{Mode: "production", Ready: []httpapi.Check{
		{Name: "store", Ping: func(context.Context) error { return nil }},
		{Name: "redis", Ping: func(context.Context) error { return errors.New("dial tcp 10.0.0.1:6379: password=hunter2") }},
		{Name: "meter", Ping: func(context.Context) error {
			return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Message: "usage cannot be recorded", Err: errors.New("disk I/O error at /secret/path")}
		}},
	}}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{`"redis":"unavailable"`, `"store":"ok"`, `"meter":"usage cannot be recorded"`, `"status":"unavailable"`, `"mode":"production"`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "/secret/path") {
		t.Fatalf("a cause leaked: %s", body)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	h := (&httpapi.Server{}).Handler()
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"DELETE", "/v1/balance", 405, "GET, HEAD"},
		{"PUT", "/admin/accounts", 405, "GET, HEAD, POST"},
		{"PUT", "/admin/accounts/acct_x", 405, "GET, HEAD, PATCH"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d Allow=%q %s", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
}

func TestMetricsLabelRequestsByPattern(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := (&httpapi.Server{Gatherer: reg, Registerer: reg}).Handler()
	for _, p := range []string{"/healthz", "/v1/payments/orders/abcdef123456", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`tollgate_http_requests_total{code="200",route="GET /healthz"} 1`,
		`tollgate_http_requests_total{code="401",route="GET /v1/payments/orders/{out_trade_no}"} 1`,
		`tollgate_http_requests_total{code="404",route="/"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "abcdef123456") {
		t.Error("a raw path leaked into a label")
	}
}
