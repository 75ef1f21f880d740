package pricing_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/pricing"
)

func TestParseRates(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantCNY string // per USD, as a fraction; "" means an error
		wantEUR string
	}{
		{"Strings", `{"base":"USD","rates":{"CNY":"7.1234","EUR":"0.92"}}`, "35617/5000", "23/25"},
		{"Numbers", `{"base":"USD","rates":{"CNY":7.1234,"EUR":0.92}}`, "35617/5000", "23/25"},
		{"Exponent", `{"base":"USD","rates":{"CNY":7.1234e0,"EUR":"9.2e-1"}}`, "35617/5000", "23/25"},
		{"OtherBase", `{"base":"CNY","rates":{"USD":"0.125","EUR":"0.1"}}`, "8/1", "4/5"},
		{"ExtraCurrencyIgnored", `{"base":"USD","rates":{"CNY":"7.2","JPY":"150"}}`, "36/5", "-"},
		{"NotJSON", `<html>`, "", ""},
		{"BadBase", `{"base":"usd","rates":{"CNY":"7.2"}}`, "", ""},
		{"NoUSD", `{"base":"EUR","rates":{"CNY":"7.8"}}`, "", ""},
		{"Negative", `{"base":"USD","rates":{"CNY":-7.2}}`, "", ""},
		{"Zero", `{"base":"USD","rates":{"CNY":"0"}}`, "", ""},
		{"Comma", `{"base":"USD","rates":{"CNY":"7,2"}}`, "", ""},
		{"HugeExponent", `{"base":"USD","rates":{"CNY":1e999}}`, "", ""},
		{"Null", `{"base":"USD","rates":{"CNY":null}}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pricing.ParseRates([]byte(tt.body))
			if tt.wantCNY == "" {
				if err == nil {
					t.Fatalf("ParseRates = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[pricing.USD].String() != "1/1" || got[pricing.CNY].String() != tt.wantCNY {
				t.Fatalf("USD %v CNY %v, want 1/1 and %s", got[pricing.USD], got[pricing.CNY], tt.wantCNY)
			}
			if tt.wantEUR != "-" && got[pricing.EUR].String() != tt.wantEUR {
				t.Fatalf("EUR %v, want %s", got[pricing.EUR], tt.wantEUR)
			}
		})
	}
}

func TestHTTPSource(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"base":"USD","rates":{"CNY":"7.25"}}`)
	})
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"base":"USD","rates":{"CNY":"7.25"},"pad":"%s"}`, strings.Repeat("x", 2000))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ok := &pricing.HTTPSource{URL: srv.URL + "/ok", Client: srv.Client()}
	r, err := ok.FetchRates(ctx)
	if err != nil || r[pricing.CNY].String() != "29/4" {
		t.Fatalf("FetchRates = %v, %v; want CNY 29/4", r, err)
	}
	for _, path := range []string{"/500", "/big", "/missing"} {
		s := &pricing.HTTPSource{URL: srv.URL + path, Client: srv.Client(), MaxBody: 1024}
		if _, err := s.FetchRates(ctx); err == nil {
			t.Errorf("FetchRates(%s) succeeded, want an error", path)
		}
	}
}

// TestFeedTimeout checks that a hanging feed is cut off by the Feed's own
// timeout and reported as EUNAVAILABLE when nothing is cached.
func TestFeedTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	f := pricing.NewFeed(&pricing.HTTPSource{URL: srv.URL, Client: srv.Client()}, pricing.FeedOptions{Timeout: 50 * time.Millisecond})
	_, err := f.Get(ctx)
	mustCode(t, err, tollgate.EUNAVAILABLE)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want it to wrap the deadline", err)
	}
}

// blockingSource counts fetches and blocks each until released.
type blockingSource struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
}

func (s *blockingSource) FetchRates(context.Context) (pricing.PerUSD, error) {
	s.calls.Add(1)
	s.started <- struct{}{}
	<-s.release
	return pricing.PerUSD{pricing.USD: big.NewRat(1, 1), pricing.CNY: big.NewRat(72, 10)}, nil
}

func TestFeedSharesOneFetch(t *testing.T) {
	src := &blockingSource{started: make(chan struct{}, 10), release: make(chan struct{})}
	f := pricing.NewFeed(src, pricing.FeedOptions{Clock: newClock()})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r, err := f.Get(ctx)
			if err != nil || r.PerUSD[pricing.CNY] == nil {
				t.Errorf("Get = %v, %v", r, err)
			}
		})
	}
	<-src.started
	close(src.release)
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d fetches for 20 concurrent callers, want 1", n)
	}
}

func TestFeedCallerGivesUp(t *testing.T) {
	src := &blockingSource{started: make(chan struct{}, 10), release: make(chan struct{})}
	f := pricing.NewFeed(src, pricing.FeedOptions{Clock: newClock()})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		_, err := f.Get(cctx)
		done <- err
	}()
	<-src.started
	cancel()
	mustCode(t, <-done, tollgate.EUNAVAILABLE)
	close(src.release) // the shared fetch still completes for later callers
	if _, err := f.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestFeedTTLAndBackoff(t *testing.T) {
	clock := newClock()
	src := &fakeSource{}
	src.set("7.20", nil)
	f := pricing.NewFeed(src, pricing.FeedOptions{Clock: clock, TTL: 5 * time.Minute, RetryEvery: 30 * time.Second})
	get := func() pricing.Rates {
		t.Helper()
		r, err := f.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	get()
	clock.Advance(5*time.Minute - 1)
	get()
	if src.calls != 1 {
		t.Fatalf("%d fetches within the TTL, want 1", src.calls)
	}
	src.set("7.30", errors.New("down"))
	clock.Advance(1)
	if r := get(); r.PerUSD[pricing.CNY].String() != "36/5" {
		t.Fatalf("after a failure got CNY %v, want the cached 36/5", r.PerUSD[pricing.CNY])
	}
	get() // within the back-off: no new fetch
	if src.calls != 2 {
		t.Fatalf("%d fetches, want 2 (no retry before the back-off)", src.calls)
	}
	src.set("7.30", nil)
	clock.Advance(30 * time.Second)
	if r := get(); r.PerUSD[pricing.CNY].String() != "73/10" || !r.FetchedAt.Equal(clock.Now()) {
		t.Fatalf("after recovery got %v at %v, want 73/10 now", r.PerUSD[pricing.CNY], r.FetchedAt)
	}
}

// FuzzParseRates checks that no feed body panics or yields a non-positive
// rate, and that huge exponents are refused rather than expanded.
func FuzzParseRates(f *testing.F) {
	for _, s := range []string{
		`{"base":"USD","rates":{"CNY":"7.1234","EUR":0.92}}`,
		`{"base":"CNY","rates":{"USD":"0.125"}}`,
		`{"base":"USD","rates":{"CNY":1e99}}`,
		`{"base":"USD","rates":{"CNY":"7.2","X":"1"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rates, err := pricing.ParseRates(body)
		if err != nil {
			return
		}
		for c, r := range rates {
			if r.Sign() <= 0 {
				t.Fatalf("rate %s = %v, want positive", c, r)
			}
		}
	})
}

func BenchmarkCost(b *testing.B) {
	p, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := p.Cost(ctx, "deepseek-chat", tollgate.Tokens{Input: 1000, CachedInput: 200, Output: 300}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFeedLatestDoesNotWait checks that Latest serves the cached rates at
// once while a refresh is in flight, and that the refresh then serves Get.
func TestFeedLatestDoesNotWait(t *testing.T) {
	clock := newClock()
	src := &blockingSource{started: make(chan struct{}, 10), release: make(chan struct{}, 10)}
	f := pricing.NewFeed(src, pricing.FeedOptions{Clock: clock, TTL: 5 * time.Minute})
	src.release <- struct{}{}
	first, err := f.Latest(ctx) // nothing cached: waits for the first fetch
	if err != nil {
		t.Fatal(err)
	}
	<-src.started
	clock.Advance(5 * time.Minute)
	r, err := f.Latest(ctx) // stale: returns at once, refresh starts
	if err != nil || !r.FetchedAt.Equal(first.FetchedAt) {
		t.Fatalf("Latest = %v, %v; want the cached rates", r.FetchedAt, err)
	}
	<-src.started // the background fetch is running and blocked
	if r, _ := f.Latest(ctx); !r.FetchedAt.Equal(first.FetchedAt) {
		t.Fatal("Latest waited for the refresh")
	}
	src.release <- struct{}{}
	r, err = f.Get(ctx) // joins the in-flight refresh
	if err != nil || !r.FetchedAt.Equal(clock.Now()) {
		t.Fatalf("Get = %v, %v; want rates fetched now", r.FetchedAt, err)
	}
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}
