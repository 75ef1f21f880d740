//go:build unix

package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
)

// smallBuffers keeps the kernel's socket buffers at a few KiB on both ends
// of a test connection (loopback autotuning would otherwise buffer MiBs),
// so a client that stops reading blocks the server's writes at once.
const smallBuffers = 4 << 10

// smallListener sets a small send buffer on every connection it accepts.
type smallListener struct{ net.Listener }

func (l smallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(smallBuffers)
	}
	return c, err
}

// dialSmall connects to addr with a small receive buffer.
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, smallBuffers)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestStreamToAClientThatStopsReading: a stream whose client stops
// reading is cut off once a write has waited StreamWriteTimeout, and the
// request is settled on what was sent, its hold gone; without the bound
// the handler waited in its write (and kept the hold) for as long as the
// client kept the connection open.
func TestStreamToAClientThatStopsReading(t *testing.T) {
	for _, tc := range []struct{ name, kind, path string }{
		{"Chat", gateway.KindOpenAI, "/v1/chat/completions"},
		{"Messages", gateway.KindAnthropic, "/v1/messages"},
	} {
		t.Run(tc.name, func(t *testing.T) { testStreamToAClientThatStopsReading(t, tc.kind, tc.path) })
	}
}

func testStreamToAClientThatStopsReading(t *testing.T, kind, path string) {
	words := make([]string, 5000)
	for i := range words {
		words[i] = " word"
	}
	const timeout = 200 * time.Millisecond
	e := newEnvWith(t, 1_000_000, func(o *gateway.Options) { o.StreamWriteTimeout = timeout },
		deploymentSpec{up: &upstream{Words: words}, kind: kind, noCap: true})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	srv.Listener = smallListener{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	conn := dialSmall(t, srv.Listener.Addr().String()) // closed before srv: cleanups run last first

	body := `{"model":"m","stream":true,"max_tokens":10000,"messages":[{"role":"user","content":"Say it all"}]}`
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream answered %v, %v", resp, err)
	}
	// The client reads no further.
	start := time.Now()
	for {
		_, holds, usages, released := e.meter.state()
		if holds == 0 {
			if len(usages) != 1 || released != 0 || usages[0].Status != "client_canceled" || usages[0].OutputTokens == 0 || usages[0].OutputTokens >= int64(len(words)) {
				t.Fatalf("the cut stream was not settled on what was sent: usages %+v, %d released", usages, released)
			}
			break
		}
		if time.Since(start) > 10*timeout {
			t.Fatalf("the stream still holds its credits %v after its client stopped reading (write timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < timeout/2 {
		t.Fatalf("cut off after %v, before its write timeout of %v", elapsed, timeout)
	}
}
