package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/httpapi"
)

// mustServe serves s.HTTPServer() on a free port until the test ends and
// returns its address.
func mustServe(t *testing.T, s *httpapi.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.HTTPServer()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mustDial connects to addr; the connection is closed when the test ends.
func mustDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// mustReadResponse reads one response (and its body) from r within 5 s.
func mustReadResponse(t *testing.T, c net.Conn, r *bufio.Reader) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// TestBodyDeadlineEndsWithTheBody: a body sent in time lifts its route's
// deadline, so a handler that works on past it keeps its request (net/http
// reads the connection in the background after the body, and a deadline
// passing there would cancel the request's context; net/http lifts it
// then, and this guards that WithBodyDeadline relies on it rightly).
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	const d = 100 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("read body: %v", err)
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "request cancelled", http.StatusInternalServerError)
		case <-time.After(4 * d):
			io.WriteString(w, "done")
		}
	})
	addr := mustServe(t, &httpapi.Server{Timeouts: httpapi.Timeouts{Body: d},
		Routes: []httpapi.Route{{Pattern: "POST /work", Handler: slow, MaxBody: httpapi.JSONBody}}})
	c, r := mustDial(t, addr)
	fmt.Fprintf(c, "POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	if st, body := mustReadResponse(t, c, r); st != 200 || body != "done" {
		t.Fatalf("a request whose body came in time: %d %s", st, body)
	}
}

// TestStreamWriteDeadlineEndsWithTheResponse: a write deadline a stream
// set (gateway.Options.StreamWriteTimeout) does not outlive its response:
// the next request on the kept-alive connection is answered (net/http
// lifts it; this guards that the stream relies on it rightly).
func TestStreamWriteDeadlineEndsWithTheResponse(t *testing.T) {
	const d = 50 * time.Millisecond
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		io.WriteString(w, "data: [DONE]\n\n")
	})
	addr := mustServe(t, &httpapi.Server{Routes: []httpapi.Route{{Pattern: "GET /stream", Handler: stream}}})
	c, r := mustDial(t, addr)
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	if st, body := mustReadResponse(t, c, r); st != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("stream: %d %s", st, body)
	}
	time.Sleep(3 * d) // past the stream's write deadline
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the next request on the connection: %v, %v", resp, err)
	}
}
