package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// rawUpstream is a model provider speaking raw HTTP/1.1 on a listener: it
// counts every request it reads in full and lets answer write what it
// likes for the i-th (from 0); answer returns false to close the
// connection after.
func rawUpstream(t *testing.T, answer func(i int64, c net.Conn) bool) (*upstream, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var seen atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, r.Body); err != nil {
						return
					}
					if !answer(seen.Add(1)-1, c) {
						return
					}
				}
			}()
		}
	}()
	return &upstream{srv: &httptest.Server{URL: "http://" + ln.Addr().String()}}, &seen
}

const rawCompletion = `{"id":"c1","object":"chat.completion","model":"up-0","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}`

func rawOK(c net.Conn) {
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(rawCompletion))+"\r\n\r\n"+rawCompletion)
}

// TestUpstreamDropsAPost: a provider reads a chat completion and closes
// the connection without an answer, or with half of one, on a connection
// kept alive from an earlier call. The provider sees that request once —
// the client never sends a paid generation twice — the caller gets an
// upstream error and nothing is charged.
func TestUpstreamDropsAPost(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(c net.Conn)
	}{
		{"no answer", func(net.Conn) {}},
		{"half a header", func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: appl") }},
		{"half a body", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(rawCompletion))+"\r\n\r\n"+rawCompletion[:40])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, seen := rawUpstream(t, func(i int64, c net.Conn) bool {
				if i == 0 {
					rawOK(c)
					return true
				}
				tc.cut(c)
				return false
			})
			e := newEnv(t, 1000, deploymentSpec{up: up}) // the default client
			if resp, body := e.chat(simpleChat); resp.StatusCode != 200 {
				t.Fatalf("first call: %d %s", resp.StatusCode, body)
			}
			balance, _, usages, _ := e.meter.state()
			resp, body := e.chat(simpleChat)
			if n := seen.Load(); n != 2 {
				t.Errorf("the provider saw %d requests, want 2 (the dropped one once)", n)
			}
			typ := path(mustJSON(t, body), "error", "type")
			if resp.StatusCode < 500 || (typ != "upstream_error" && typ != "service_unavailable") ||
				!strings.Contains(path(mustJSON(t, body), "error", "message").(string), "upstream") {
				t.Errorf("dropped call: %d %s, want an upstream error", resp.StatusCode, body)
			}
			after, holds, usagesAfter, released := e.meter.state()
			if after != balance || holds != 0 || len(usagesAfter) != len(usages) || released != 1 {
				t.Errorf("balance %d -> %d, %d holds open, %d -> %d usages, %d released; want nothing charged and the hold released",
					balance, after, holds, len(usages), len(usagesAfter), released)
			}
		})
	}
}
