package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProxyForwards(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-release // the first event must reach the client before this
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
	}))
	defer up.Close()
	defer close(release)
	h, err := newProxy(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(h)
	defer px.Close()

	resp, err := http.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(b), `POST /v1/chat/completions {"a":1}`; resp.StatusCode != 200 || got != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, got, want)
	}

	resp, err = http.Post(px.URL+"/v1/stream", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event was held by the proxy")
	}
}

func TestProxyRefusesBadUpstream(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:80", "ftp://x", "http://"} {
		if _, err := newProxy(u); err == nil {
			t.Errorf("newProxy(%q) accepted", u)
		}
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	base := up.URL
	up.Close() // nothing listens there now
	h, err := newProxy(base)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader("{}")))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", rec.Code)
	}
}

func TestProxyRoundRobin(t *testing.T) {
	upstream := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.Header.Get("Idempotency-Key"))
		}))
	}
	a, b := upstream("a"), upstream("b")
	defer a.Close()
	defer b.Close()
	h, err := newProxy(a.URL, b.URL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/payments/orders", strings.NewReader("{}"))
		r.Header.Set("Idempotency-Key", "k1")
		h.ServeHTTP(rec, r)
		got = append(got, rec.Body.String())
	}
	if strings.Join(got, ",") != "a k1,b k1,a k1,b k1" {
		t.Fatalf("answers %q", got)
	}
	if _, err := newProxy(a.URL, "ftp://x"); err == nil {
		t.Fatal("a bad second upstream accepted")
	}
}
