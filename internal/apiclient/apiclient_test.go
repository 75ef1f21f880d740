package apiclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/internal/apiclient"
)

// echo answers with what it received: method, headers that matter, body.
func echo(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+"|"+r.Header.Get("Authorization")+"|"+r.Header.Get("Content-Type")+"|"+r.Header.Get("Idempotency-Key"))
		switch r.URL.Path {
		case "/refuse":
			w.WriteHeader(http.StatusPaymentRequired)
			io.WriteString(w, `{"error":{"message":"not enough credits","code":"insufficient_quota"}}`)
		case "/sim":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such order"}`)
		default:
			w.Write(b)
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestDoSendsBodiesAndHeaders(t *testing.T) {
	ts := echo(t)
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		req       apiclient.Request
		seen, got string
	}{
		{"json", apiclient.Request{Method: "POST", URL: ts.URL, Bearer: "k", Body: map[string]int{"a": 1}, Header: map[string]string{"Idempotency-Key": "i"}},
			"POST|Bearer k|application/json|i", `{"a":1}`},
		{"raw with its own type", apiclient.Request{Method: "POST", URL: ts.URL, Body: []byte("<xml/>"), Header: map[string]string{"Content-Type": "text/xml"}},
			"POST||text/xml|", "<xml/>"},
		{"string", apiclient.Request{Method: "PUT", URL: ts.URL, Body: "x"}, "PUT||application/json|", "x"},
		{"no body", apiclient.Request{Method: "GET", URL: ts.URL}, "GET|||", ""},
	} {
		r, err := apiclient.Do(ctx, nil, c.req, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !r.OK() || r.Header.Get("X-Seen") != c.seen || string(r.Body) != c.got {
			t.Errorf("%s: status %d, seen %q, body %q; want %q, %q", c.name, r.Status, r.Header.Get("X-Seen"), r.Body, c.seen, c.got)
		}
	}
	r, err := apiclient.Do(ctx, nil, apiclient.Request{Method: "POST", URL: ts.URL, Body: strings.Repeat("x", 100)}, 10)
	if err != nil || len(r.Body) != 10 {
		t.Errorf("limit 10: %d bytes, %v", len(r.Body), err)
	}
}

func TestParseError(t *testing.T) {
	ts := echo(t)
	ctx := context.Background()
	r, err := apiclient.Do(ctx, nil, apiclient.Request{Method: "POST", URL: ts.URL + "/refuse"}, 0)
	if err != nil || r.OK() {
		t.Fatalf("%+v %v", r, err)
	}
	e := apiclient.ParseError("POST", "/refuse", r.Status, r.Body)
	if want := "POST /refuse: 402 Payment Required: not enough credits (insufficient_quota)"; e.Error() != want {
		t.Errorf("%q, want %q", e.Error(), want)
	}
	r, _ = apiclient.Do(ctx, nil, apiclient.Request{Method: "GET", URL: ts.URL + "/sim"}, 0)
	if e := apiclient.ParseError("GET", "/sim", r.Status, r.Body); e.Message != "no such order" || e.Code != "" {
		t.Errorf("emulator error %+v", e)
	}
	if e := apiclient.ParseError("GET", "/x", 502, []byte(" bad gateway \n")); e.Message != "bad gateway" {
		t.Errorf("plain body %+v", e)
	}
	var target *apiclient.Error
	if !errors.As(error(e), &target) {
		t.Error("not an *Error")
	}
}

func TestDoTransportError(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	if _, err := apiclient.Do(context.Background(), nil, apiclient.Request{Method: "GET", URL: url}, 0); err == nil {
		t.Error("no error from a closed server")
	}
}
