// Command tgproxy is a reverse proxy that only forwards, on net/http
// like tollgate serve: no authentication, no billing, no parsing. It is
// the floor in the gateway benchmark (cmd/tgload/bench.sh): what a second
// HTTP hop on loopback adds by itself, so that the gateway's own cost is
// the difference between it and tgproxy in the same run.
//
//	tgproxy -addr 127.0.0.1:18093 -upstream http://127.0.0.1:18090
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
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18093", "address to listen on")
	upstream := flag.String("upstream", "", "base URL every request is forwarded to (required)")
	flag.Parse()
	h, err := newProxy(*upstream)
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

// newProxy forwards every request to upstream: method, path, query, body,
// Content-Type and Authorization; then the answer's status, Content-Type
// and body, flushed after each read so that a stream's events pass as
// they come. The least a Go proxy on net/http does per request.
func newProxy(upstream string) (http.Handler, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-upstream %q: want an http(s) base URL", upstream)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	client := &http.Client{Transport: t}
	base := strings.TrimRight(u.String(), "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, k := range []string{"Content-Type", "Authorization", "Accept"} {
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
