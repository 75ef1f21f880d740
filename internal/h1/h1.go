// Package h1 is an http.RoundTripper for plain-HTTP upstreams that makes
// each request in the goroutine that asks for it: net/http's own request
// writer (Request.Write) and response reader (http.ReadResponse) over a
// pool of kept-alive connections.
//
// net/http's Transport runs a reader and a writer goroutine per
// connection and hands every request and response between them and the
// caller. On loopback, where a gateway meets a model server beside it,
// those hand-offs cost more than the exchange itself: each wakes a
// thread on another core (docs/BENCHMARKS.md measures it). What this
// transport does not do, it leaves to Fallback: https (and with it
// HTTP/2), requests that go through a proxy, CONNECT and upgrades.
//
// An idle connection is checked when it is taken from the pool (a
// non-blocking peek, on unix): one the server closed, or one with bytes
// nobody asked for — which would otherwise be read as the next request's
// answer, perhaps another user's — is closed, not used. net/http's
// Transport learns the same by reading every idle connection in its own
// goroutine.
//
// When the server closes a kept-alive connection just as a request goes
// out on it, the request is sent again on another connection only if not
// one byte of it was written, or it is a GET, HEAD, OPTIONS or TRACE
// without a body. A request whose body was written — a POST to a model
// provider, which may have started a paid generation — is never sent
// twice: the caller gets the error. (net/http's Transport resends a
// non-idempotent request only when nothing was written, too.)
//
// Responses are not transparently decompressed (no Accept-Encoding is
// added).
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults of Transport's settings.
const (
	DefaultMaxIdlePerHost         = 64
	DefaultIdleTimeout            = 90 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// Transport is an http.RoundTripper for http:// URLs. Its zero value is
// not usable: Fallback is required. It is safe for concurrent use.
type Transport struct {
	// Fallback serves every request this transport does not: https, a
	// request Proxy sends through a proxy, CONNECT, upgrades.
	Fallback http.RoundTripper
	// Proxy, when set, names the proxy for a request (for instance
	// http.ProxyFromEnvironment); a request it names one for goes to
	// Fallback.
	Proxy func(*http.Request) (*url.URL, error)
	// DialContext opens connections; nil means a net.Dialer with a 30 s
	// timeout and TCP keep-alive.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost bounds the idle connections kept per host (default
	// 64); IdleTimeout closes one idle longer than this (default 90 s).
	MaxIdlePerHost int
	IdleTimeout    time.Duration
	// MaxResponseHeaderBytes bounds a response's status line and header
	// (default 1 MiB).
	MaxResponseHeaderBytes int64

	mu   sync.Mutex
	idle map[string][]*conn // by host:port, the most recently used last
}

var defaultDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.serves(req) {
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := hostPort(req.URL)
	for {
		c, reused, err := t.conn(ctx, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		var nothing *nothingBackError
		if !reused || !errors.As(err, &nothing) || ctx.Err() != nil || (nothing.sent && !resendable(req)) {
			closeBody(req)
			return nil, err
		}
		// A kept-alive connection the server had closed: nothing came
		// back, so the server did not answer this request, and either
		// none of it went out or sending it twice is harmless. Send it
		// again on another one, from the start of its body.
		if req, err = rewind(req); err != nil {
			return nil, fmt.Errorf("h1: resend to %s after a closed idle connection: %w", addr, err)
		}
	}
}

// resendable reports whether req may reach the server twice: a request
// without a body whose method changes nothing.
func resendable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req.Body == nil || req.Body == http.NoBody
	}
	return false
}

// serves reports whether t makes req itself rather than Fallback.
func (t *Transport) serves(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Method == http.MethodConnect ||
		req.Header.Get("Upgrade") != "" {
		return false
	}
	if t.Proxy != nil {
		if p, err := t.Proxy(req); err != nil || p != nil {
			return false // Fallback reports a bad proxy setting
		}
	}
	return true
}

// CloseIdleConnections closes the connections kept idle, here and in
// Fallback.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// conn returns an idle connection to addr, or a new one.
func (t *Transport) conn(ctx context.Context, addr string) (c *conn, reused bool, err error) {
	for {
		c := t.takeIdle(addr)
		if c == nil {
			break
		}
		if !readable(c.nc) {
			return c, true, nil
		}
		c.nc.Close() // closed by the server, or bytes nobody asked for
	}
	if err := ctx.Err(); err != nil {
		return nil, false, context.Cause(ctx)
	}
	dial := t.DialContext
	if dial == nil {
		dial = defaultDialer.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		return nil, false, err
	}
	c = &conn{nc: nc, addr: addr}
	c.br = bufio.NewReaderSize(c, 16<<10)
	c.bw = bufio.NewWriterSize(connWriter{c}, 4<<10)
	return c, false, nil
}

func (t *Transport) takeIdle(addr string) *conn {
	t.mu.Lock()
	list := t.idle[addr]
	if len(list) == 0 {
		t.mu.Unlock()
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[addr] = list[:len(list)-1]
	expired := time.Since(c.idleSince) > t.idleTimeout()
	var stale []*conn
	if expired { // the newest is too old, so are all the others
		stale = list[:len(list)-1]
		delete(t.idle, addr)
	}
	t.mu.Unlock()
	if !expired {
		return c
	}
	c.nc.Close()
	for _, s := range stale {
		s.nc.Close()
	}
	return nil
}

// putIdle keeps c for the next request to its host, or closes it when
// the pool is full.
func (t *Transport) putIdle(c *conn) {
	if c.br.Buffered() > 0 { // more than the answer: not for the next request
		c.nc.Close()
		return
	}
	now := time.Now()
	c.idleSince = now
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = DefaultMaxIdlePerHost
	}
	t.mu.Lock()
	if t.idle == nil {
		t.idle = make(map[string][]*conn)
	}
	list := t.idle[c.addr]
	var drop *conn
	if len(list) >= max {
		drop = c
	} else {
		// The oldest waits at the front: let it go when it has waited too
		// long, so a pool that shrank in use does not keep it forever.
		if len(list) > 0 && now.Sub(list[0].idleSince) > t.idleTimeout() {
			drop = list[0]
			list = append(list[:0], list[1:]...)
		}
		t.idle[c.addr] = append(list, c)
	}
	t.mu.Unlock()
	if drop != nil {
		drop.nc.Close()
	}
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return DefaultIdleTimeout
}

// exchange writes req on c and reads the response's header. The returned
// response's body gives c back to t when read to its end.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	// Cancelling the request unblocks whatever c is doing; c is then
	// closed rather than kept.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	start, startWritten := c.nread, c.nwritten
	maxHeader := t.MaxResponseHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxResponseHeaderBytes
	}
	werr := req.Write(c.bw)
	if werr == nil {
		werr = c.bw.Flush()
	}
	// After a failed write the server may still have answered (a 413
	// before reading the whole body) and closed: read what it sent.
	c.limit = c.nread + maxHeader
	resp, err := readResponse(c.br, req)
	c.limit = 0
	switch {
	case err != nil && c.nread == start && c.br.Buffered() == 0:
		if werr != nil {
			err = werr
		}
		return fail(&nothingBackError{addr: c.addr, err: err, sent: c.nwritten > startWritten})
	case err != nil:
		return fail(fmt.Errorf("h1: read response from %s: %w", c.addr, err))
	}
	// After a 101 the connection speaks something else: never reused.
	keep := werr == nil && !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		if stop() && keep {
			t.putIdle(c)
		} else {
			c.nc.Close()
		}
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, c: c, t: t, ctx: ctx, stop: stop, keep: keep}
	return resp, nil
}

// readResponse reads the final response to req, skipping informational
// ones (1xx but 101, which is final, as net/http has it).
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if c := resp.StatusCode; c < 100 || c > 199 || c == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// conn is one kept-alive connection. Only the request using it touches
// it; the pool holds it between requests.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader // reads through conn.Read
	bw        *bufio.Writer
	addr      string
	nread     int64 // bytes read from nc so far
	nwritten  int64 // bytes written to nc so far
	limit     int64 // when > 0, no reading past this many bytes
	idleSince time.Time
}

var errHeaderTooLarge = errors.New("h1: response header too large")

// Read counts what it reads and enforces the header limit.
func (c *conn) Read(p []byte) (int, error) {
	if c.limit > 0 {
		left := c.limit - c.nread
		if left <= 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	return n, err
}

// connWriter writes to c's connection, counting what it wrote.
type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	w.c.nwritten += int64(n)
	return n, err
}

// body is a response body that returns its connection to the pool when
// read to the end, and closes it when closed before.
type body struct {
	rc   io.ReadCloser // http.ReadResponse's body, reading c.br
	c    *conn
	t    *Transport
	ctx  context.Context
	stop func() bool // stops the cancellation watch
	keep bool        // the connection may serve another request after this one

	mu   sync.Mutex
	done bool
	err  error // what Read returns once done
}

var errBodyClosed = errors.New("h1: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	done, derr := b.done, b.err
	b.mu.Unlock()
	if done {
		return 0, derr
	}
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	if err != io.EOF && b.ctx.Err() != nil {
		err = context.Cause(b.ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done { // closed meanwhile; the connection is gone
		return n, err
	}
	b.done, b.err = true, err
	if b.stop() && err == io.EOF && b.keep {
		b.t.putIdle(b.c)
	} else {
		b.c.nc.Close()
	}
	return n, err
}

// Close closes the connection unless the body was read to its end: what
// is left of it (the rest of a stream, say) is not worth waiting for.
// It may be called while a Read is blocked, which then returns an error.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done, b.err = true, errBodyClosed
		b.stop()
		b.c.nc.Close()
	}
	return nil
}

// nothingBackError is a failed exchange in which not one byte came back:
// the server did not answer this request. It may have received it (sent).
type nothingBackError struct {
	addr string
	err  error
	sent bool // some of the request was written to the connection
}

func (e *nothingBackError) Error() string {
	return fmt.Sprintf("h1: no response from %s: %v", e.addr, e.err)
}

func (e *nothingBackError) Unwrap() error { return e.err }

var aLongTimeAgo = time.Unix(1, 0)

// rewind returns req with its body at the start again, to resend it.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the request's body cannot be read again (no GetBody)")
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = b
	return &r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort is u's host with the port, 80 when u has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
