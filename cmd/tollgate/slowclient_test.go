package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowDeadline is every client timeout of the serve these tests run: small,
// so a test waits for it in a fraction of a second; the tests allow ten
// times as much before calling a connection held.
const slowDeadline = 200 * time.Millisecond

func mustRunSlowMain(t *testing.T) *Main {
	d := slowDeadline.String()
	return MustRunMain(t, "--read-header-timeout", d, "--body-timeout", d, "--notify-body-timeout", d,
		"--model-body-timeout", d, "--idle-timeout", d)
}

// mustDialServe connects to m; the connection is closed when the test ends.
func mustDialServe(t *testing.T, m *Main) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(m.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle sends the bytes of s one every 20 ms until the connection fails,
// s ends or stop closes.
func trickle(c net.Conn, s string, stop <-chan struct{}) {
	for i := range len(s) {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := io.WriteString(c, s[i:i+1]); err != nil {
			return
		}
	}
}

// wantClosed fails unless the server closes c within ten deadlines.
func wantClosed(t *testing.T, c net.Conn, r *bufio.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * slowDeadline))
	_, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after %v (timeout %v)", what, 10*slowDeadline, slowDeadline)
	}
}

// TestServeCutsSlowBodies: a client trickling a request's body to a
// WeChat Pay notification route, to the model gateway or to the order
// route is answered 408 once its route's deadline passed, and
// disconnected; before, each held its connection for as long as it
// trickled.
func TestServeCutsSlowBodies(t *testing.T) {
	m := mustRunSlowMain(t)
	a := mustAccount(client{t, m.URL}, m.AdminToken)
	for _, tc := range []struct{ name, path, auth string }{
		{"NotifyV2", "/wxpay/notify", ""},
		{"NotifyV3", "/wxpay/notify/v3", ""},
		{"Chat", "/v1/chat/completions", a.APIKey},
		{"Orders", "/v1/payments/orders", a.APIKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDialServe(t, m)
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n", tc.path)
			if tc.auth != "" {
				fmt.Fprintf(c, "Authorization: Bearer %s\r\n", tc.auth)
			}
			io.WriteString(c, "\r\n{")
			stop := make(chan struct{})
			defer close(stop)
			go trickle(c, strings.Repeat(" ", 999), stop)

			start := time.Now()
			c.SetReadDeadline(start.Add(10 * slowDeadline))
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer to a trickled body within %v (deadline %v): %v", 10*slowDeadline, slowDeadline, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "request_timeout") {
				t.Fatalf("trickled body answered %d %s, want 408 request_timeout", resp.StatusCode, b)
			}
			if elapsed := time.Since(start); elapsed < slowDeadline {
				t.Fatalf("answered 408 after %v, before the deadline of %v", elapsed, slowDeadline)
			}
			wantClosed(t, c, r, "after the 408")
		})
	}
}

// TestServeCutsSlowHeaders: a client trickling a request's headers is
// disconnected once the header deadline passed.
func TestServeCutsSlowHeaders(t *testing.T) {
	m := mustRunSlowMain(t)
	c := mustDialServe(t, m)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go trickle(c, "X-Slow: "+strings.Repeat("x", 200), stop)
	wantClosed(t, c, bufio.NewReader(c), "trickled headers")
}

// TestServeClosesIdleConnections: a keep-alive connection with no next
// request is closed once the idle timeout passed; before, it stayed open
// for as long as the client liked.
func TestServeClosesIdleConnections(t *testing.T) {
	m := mustRunSlowMain(t)
	c := mustDialServe(t, m)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: tollgate\r\n\r\n")
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	wantClosed(t, c, r, "an idle keep-alive connection")
}
