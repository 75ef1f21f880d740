package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is an httptest server counting the connections it accepted.
type server struct {
	*httptest.Server
	conns atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// failingFallback fails the test when a request reaches it.
type failingFallback struct{ t *testing.T }

func (f failingFallback) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("request to %s went to Fallback", r.URL)
	return nil, errors.New("fallback")
}

func newTransport(t *testing.T) *Transport {
	tr := &Transport{Fallback: failingFallback{t}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func post(t *testing.T, c *http.Client, ctx context.Context, u, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Method", r.Method)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

func TestKeepsConnectionsAlive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"content-length", echo, "POST /x body-%d"},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write([]byte("POST "))
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "%s %s", r.URL.Path, b)
		}, "POST /x body-%d"},
		{"no body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.handler)
			c := &http.Client{Transport: newTransport(t)}
			for i := range 50 {
				_, got, err := post(t, c, context.Background(), s.URL+"/x", fmt.Sprintf("body-%d", i))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				want := tc.want
				if want != "" {
					want = fmt.Sprintf(want, i)
				}
				if got != want {
					t.Fatalf("request %d: body %q, want %q", i, got, want)
				}
			}
			if n := s.conns.Load(); n != 1 {
				t.Errorf("50 requests in turn opened %d connections, want 1", n)
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := newServer(t, echo)
	tr := newTransport(t)
	tr.MaxIdlePerHost = 4
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 40 {
				body := fmt.Sprintf("g%d-%d", g, i)
				_, got, err := post(t, c, context.Background(), s.URL+"/c", body)
				if err != nil || got != "POST /c "+body {
					t.Errorf("%s: %q, %v", body, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	tr.mu.Lock()
	idle := len(tr.idle[s.Listener.Addr().String()])
	tr.mu.Unlock()
	if idle > 4 {
		t.Errorf("%d idle connections kept, MaxIdlePerHost is 4", idle)
	}
}

func TestConnectionCloseIsNotReused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reqClose bool
		handler  http.HandlerFunc
	}{
		{"response says close", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			echo(w, r)
		}},
		{"request says close", true, echo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.handler)
			c := &http.Client{Transport: newTransport(t)}
			for i := range 3 {
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/z", strings.NewReader("b"))
				req.Close = tc.reqClose
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if n := s.conns.Load(); n != 3 {
				t.Errorf("3 requests on closing connections opened %d, want 3", n)
			}
		})
	}
}

// TestResendsOnAClosedIdleConnection: the server closes the kept-alive
// connection while it is idle; the next request is sent on a new one and
// reaches the server once, body and all.
func TestResendsOnAClosedIdleConnection(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Write(b)
	})
	c := &http.Client{Transport: newTransport(t)}
	if _, _, err := post(t, c, context.Background(), s.URL, "first"); err != nil {
		t.Fatal(err)
	}
	s.CloseClientConnections()
	time.Sleep(20 * time.Millisecond) // let the close reach the client's socket
	_, got, err := post(t, c, context.Background(), s.URL, "second")
	if err != nil || got != "second" {
		t.Fatalf("after the idle connection closed: %q, %v", got, err)
	}
	if want := []string{"first", "second"}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("server saw %q, want %q", bodies, want)
	}
}

// rawServer accepts connections and hands each to serve.
func rawServer(t testing.TB, serve func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(n, c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, string, error) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(r.Body)
	return r, string(b), err
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestNoResponseAtAll: a server that takes the request and closes without
// a word. On a new connection that is an error. On a kept-alive one a
// request whose body was written is not sent again (the server may have
// started a paid generation): the caller gets the error and the server
// saw it once. A GET is sent again on a new connection.
func TestNoResponseAtAll(t *testing.T) {
	t.Run("new connection", func(t *testing.T) {
		var seen atomic.Int64
		u := rawServer(t, func(_ int, c net.Conn) {
			if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
				seen.Add(1)
			}
		})
		c := &http.Client{Transport: newTransport(t)}
		_, _, err := post(t, c, context.Background(), u, "x")
		var nb *nothingBackError
		if !errors.As(err, &nb) {
			t.Fatalf("error %v, want a no-response error", err)
		}
		if n := seen.Load(); n != 1 {
			t.Errorf("server saw %d requests, want 1 (no resend on a new connection)", n)
		}
	})
	// silentSecond answers every request but the second on the first
	// connection, after which it closes that connection.
	silentSecond := func(seen *atomic.Int64) func(n int, c net.Conn) {
		return func(n int, c net.Conn) {
			br := bufio.NewReader(c)
			for i := 0; ; i++ {
				if _, _, err := readRequest(br); err != nil {
					return
				}
				seen.Add(1)
				if n == 0 && i == 1 {
					return // the second request on the first connection: no answer
				}
				io.WriteString(c, okResponse)
			}
		}
	}
	t.Run("kept-alive connection, POST", func(t *testing.T) {
		var seen atomic.Int64
		u := rawServer(t, silentSecond(&seen))
		c := &http.Client{Transport: newTransport(t)}
		if code, got, err := post(t, c, context.Background(), u, "x"); err != nil || code != 200 || got != "ok" {
			t.Fatalf("first request: %d %q %v", code, got, err)
		}
		_, _, err := post(t, c, context.Background(), u, "x")
		var nb *nothingBackError
		if !errors.As(err, &nb) {
			t.Fatalf("second request: error %v, want a no-response error", err)
		}
		if n := seen.Load(); n != 2 {
			t.Errorf("server saw %d requests, want 2 (the POST sent once)", n)
		}
	})
	t.Run("kept-alive connection, GET", func(t *testing.T) {
		var seen atomic.Int64
		u := rawServer(t, silentSecond(&seen))
		c := &http.Client{Transport: newTransport(t)}
		for i := range 2 {
			resp, err := c.Get(u)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
			}
		}
		if n := seen.Load(); n != 3 {
			t.Errorf("server saw %d requests, want 3 (the GET sent again)", n)
		}
	})
}

func TestSkipsInformationalResponses(t *testing.T) {
	u := rawServer(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+okResponse)
		}
	})
	c := &http.Client{Transport: newTransport(t)}
	for i := range 2 {
		if code, got, err := post(t, c, context.Background(), u, "x"); err != nil || code != 200 || got != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, got, err)
		}
	}
}

func TestRefusesOversizedHeader(t *testing.T) {
	var conns atomic.Int64
	u := rawServer(t, func(_ int, c net.Conn) {
		conns.Add(1)
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 4096)+"\r\n\r\n")
	})
	tr := newTransport(t)
	tr.MaxResponseHeaderBytes = 1024
	_, _, err := post(t, &http.Client{Transport: tr}, context.Background(), u, "x")
	if !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("error %v, want %v", err, errHeaderTooLarge)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no resend after a partial answer)", n)
	}
}

func TestUpstreamDiesMidBody(t *testing.T) {
	u := rawServer(t, func(_ int, c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
	})
	_, got, err := post(t, &http.Client{Transport: newTransport(t)}, context.Background(), u, "x")
	if !errors.Is(err, io.ErrUnexpectedEOF) || got != "only part" {
		t.Fatalf("got %q, %v; want the part and %v", got, err, io.ErrUnexpectedEOF)
	}
}

// stream is a handler sending a line every 5 ms until the client leaves.
func stream(w http.ResponseWriter, r *http.Request) {
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestClosingABodyEarly: closing a stream's body before its end returns at
// once, frees the connection rather than reusing it, and the next request
// works.
func TestClosingABodyEarly(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", stream)
	mux.HandleFunc("/echo", echo)
	s := newServer(t, mux.ServeHTTP)
	tr := newTransport(t)
	c := &http.Client{Transport: tr}
	resp, err := c.Post(s.URL+"/stream", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "line 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	resp.Body.Close()
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Errorf("read after close: %d, %v", n, err)
	}
	if _, got, err := post(t, c, context.Background(), s.URL+"/echo", "next"); err != nil || got != "POST /echo next" {
		t.Fatalf("next request: %q, %v", got, err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the closed stream's is not reused)", n)
	}
}

var errGone = errors.New("client went away")

// TestCancellation: cancelling the request's context ends a wait for the
// header and a blocked body read at once, with the context's cause.
func TestCancellation(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/stuck", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/stream", stream)
	s := newServer(t, mux.ServeHTTP)
	t.Cleanup(func() { close(release) }) // before the server's Close waits for the handler
	c := &http.Client{Transport: newTransport(t)}

	t.Run("waiting for the header", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(20*time.Millisecond, func() { cancel(errGone) })
		_, _, err := post(t, c, ctx, s.URL+"/stuck", "x")
		if !errors.Is(err, errGone) {
			t.Fatalf("error %v, want %v", err, errGone)
		}
	})
	t.Run("reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/stream", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.AfterFunc(20*time.Millisecond, func() { cancel(errGone) })
		_, err = io.Copy(io.Discard, resp.Body)
		if !errors.Is(err, errGone) {
			t.Fatalf("error %v, want %v", err, errGone)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errGone)
		if _, _, err := post(t, c, ctx, s.URL+"/stuck", "x"); !errors.Is(err, errGone) {
			t.Fatalf("error %v, want %v", err, errGone)
		}
	})
}

// TestEarlyAnswerToALargeBody: a server that answers 413 without reading
// a large body; the caller gets the 413, not a write error.
func TestEarlyAnswerToALargeBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	big := bytes.Repeat([]byte("a"), 32<<20)
	req, _ := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader(big))
	resp, err := (&http.Client{Transport: newTransport(t)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

// recordingFallback answers every request itself and remembers the URLs.
type recordingFallback struct {
	mu   sync.Mutex
	urls []string
}

func (f *recordingFallback) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.urls = append(f.urls, r.URL.String())
	f.mu.Unlock()
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: r}, nil
}

func TestLeavesTheRestToFallback(t *testing.T) {
	s := newServer(t, echo)
	proxy, _ := url.Parse("http://proxy.invalid:3128")
	for _, tc := range []struct {
		name     string
		method   string
		url      string
		upgrade  bool
		proxy    bool
		fallback bool
	}{
		{"http", http.MethodPost, s.URL, false, false, false},
		{"https", http.MethodPost, "https://example.invalid/v1", false, false, true},
		{"proxied", http.MethodPost, s.URL, false, true, true},
		{"upgrade", http.MethodGet, s.URL, true, false, true},
		{"connect", http.MethodConnect, s.URL, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := &recordingFallback{}
			tr := &Transport{Fallback: fb}
			if tc.proxy {
				tr.Proxy = http.ProxyURL(proxy)
			}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			if tc.upgrade {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := len(fb.urls) == 1; got != tc.fallback {
				t.Errorf("went to Fallback: %v, want %v (status %d)", got, tc.fallback, resp.StatusCode)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	s := newServer(t, echo)
	tr := newTransport(t)
	tr.IdleTimeout = 30 * time.Millisecond
	c := &http.Client{Transport: tr}
	for i := range 2 {
		if _, _, err := post(t, c, context.Background(), s.URL, "x"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			time.Sleep(60 * time.Millisecond)
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the first expired while idle)", n)
	}
}

func TestDialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, _, err := post(t, &http.Client{Transport: newTransport(t)}, context.Background(), "http://"+addr, "x")
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("error %v, want a dial error", err)
	}
}

// TestAgreesWithNetHTTP sends the same requests through this transport and
// net/http's to a server answering with raw bytes, and compares what a
// caller sees: status, header, body, and whether the read ended in error.
func TestAgreesWithNetHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, method, raw string
	}{
		{"content-length", "POST", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}"},
		{"chunked", "POST", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"},
		{"chunked with trailer", "POST", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nhi\r\n0\r\nX-T: v\r\n\r\n"},
		{"until close", "POST", "HTTP/1.1 200 OK\r\n\r\nall of it"},
		{"HTTP/1.0", "POST", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"error status", "POST", "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nslow"},
		{"no content", "POST", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"},
		{"short body", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"},
		{"bad chunk", "POST", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"},
		{"bad status line", "POST", "HTTP/1.1 two hundred\r\n\r\n"},
		{"duplicate length", "POST", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		{"status below 100", "POST", "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"},
		{"switching protocols unasked", "POST", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := rawServer(t, func(_ int, c net.Conn) {
				if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, tc.raw)
				}
			})
			if got, want := bothSee(t, tc.method, u+"/v1/x"); got != want {
				t.Errorf("h1 saw\n  %s\nnet/http saw\n  %s", got, want)
			}
		})
	}
}

// bothSee sends the same request through this transport and through
// net/http's, and returns what a caller sees of each answer: status,
// header, body, trailer, and whether reading it ended in error.
func bothSee(t *testing.T, method, url string) (h1, nethttp string) {
	see := func(rt http.RoundTripper) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return "error"
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resp.Header.Del("Date")
		return fmt.Sprintf("%d %v close=%v len=%d body=%q err=%v trailer=%v",
			resp.StatusCode, resp.Header, resp.Close, resp.ContentLength, b, err != nil, resp.Trailer)
	}
	std := &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	tr := &Transport{Fallback: failingFallback{t}}
	defer tr.CloseIdleConnections()
	nethttp = see(std)
	return see(tr), nethttp
}

// FuzzAgreesWithNetHTTP answers one request with arbitrary bytes, then
// closes: what a caller of this transport sees must be what a caller of
// net/http's sees.
func FuzzAgreesWithNetHTTP(f *testing.F) {
	for _, s := range []string{
		okResponse,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nhi\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
		"HTTP/1.0 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 301 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
		"garbage\r\n\r\n",
	} {
		f.Add(s)
	}
	var answer atomic.Value
	u := rawServer(f, func(_ int, c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, answer.Load().(string))
		}
	})
	f.Fuzz(func(t *testing.T, raw string) {
		answer.Store(raw)
		if got, want := bothSee(t, http.MethodPost, u+"/v1/x"); got != want {
			t.Errorf("answer %q\nh1 saw       %s\nnet/http saw %s", raw, got, want)
		}
	})
}

// TestRefusesAnswersNobodyAskedFor: bytes an upstream sends beyond its
// answer, at once or while the connection sits idle, are never read as
// the next request's answer: that connection is closed and the next
// request goes on a new one.
func TestRefusesAnswersNobodyAskedFor(t *testing.T) {
	const forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	for _, tc := range []struct {
		name  string
		later bool // the stray answer comes after a pause, not with the answer
	}{
		{"with the answer", false},
		{"while idle", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			u := rawServer(t, func(_ int, c net.Conn) {
				conns.Add(1)
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					if _, _, err := readRequest(br); err != nil {
						return
					}
					switch {
					case i > 0:
						io.WriteString(c, okResponse)
					case tc.later:
						io.WriteString(c, okResponse)
						time.Sleep(20 * time.Millisecond)
						io.WriteString(c, forged)
					default:
						io.WriteString(c, okResponse+forged)
					}
				}
			})
			c := &http.Client{Transport: newTransport(t)}
			for i := range 2 {
				if i == 1 {
					time.Sleep(60 * time.Millisecond) // the stray bytes have arrived
				}
				if code, got, err := post(t, c, context.Background(), u, "x"); err != nil || code != 200 || got != "ok" {
					t.Fatalf("request %d: %d %q %v", i, code, got, err)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2 (the one with stray bytes closed)", n)
			}
		})
	}
}
