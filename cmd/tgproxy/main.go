// Command tgproxy is a reverse proxy that only forwards, on net/http
// like tollgate serve: no authentication, no billing, no parsing. It is
// the floor in the gateway benchmark (cmd/tgload/bench.sh): what a second
// HTTP hop on loopback adds by itself, so that the gateway's own cost is
// the difference between it and tgproxy in the same run.
//
// With several upstreams (comma-separated) it is the front door of a
// cluster: each request goes to the next upstream in turn (round robin),
// as in the payment benchmark's PostgreSQL + Redis run
// (cmd/tgload/paybench.sh), two serve instances behind one address.
//
//	tgproxy -addr 127.0.0.1:18093 -upstream http://127.0.0.1:18090
//	tgproxy -addr 127.0.0.1:18097 -upstream http://127.0.0.1:18098,http://127.0.0.1:18099
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18093", "address to listen on")
	upstream := flag.String("upstream", "", "base URL every request is forwarded to (required); several, comma-separated: each request to the next in turn")
	flag.Parse()
	h, err := newProxy(strings.Split(*upstream, ",")...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tgproxy:", err)
		os.Exit(2)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// bufs holds the buffers answers are copied through.
var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// newProxy forwards every request to an upstream, each request to the
// next one in turn: method, path, query, body, Content-Type,
// Authorization, Accept and Idempotency-Key; then the answer's status,
// Content-Type and body, flushed after each read so that a stream's events
// pass as they come. The least a Go proxy on net/http does per request.
func newProxy(upstreams ...string) (http.Handler, error) {
	var bases []string
	for _, up := range upstreams {
		u, err := url.Parse(up)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-upstream %q: want an http(s) base URL", up)
		}
		bases = append(bases, strings.TrimRight(u.String(), "/"))
	}
	if len(bases) == 0 {
		return nil, errors.New("-upstream: want at least one http(s) base URL")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	client := &http.Client{Transport: t}
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := bases[(next.Add(1)-1)%uint64(len(bases))]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, k := range []string{"Content-Type", "Authorization", "Accept", "Idempotency-Key"} {
			if v := r.Header.Get(k); v != "" {
				req.Header.Set(k, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		rc := http.NewResponseController(w)
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		buf := *bp
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				_ = rc.Flush()
			}
			if err != nil {
				if err != io.EOF {
					panic(http.ErrAbortHandler) // a cut upstream: cut the answer too
				}
				return
			}
		}
	}), nil
}
