package redisbreaker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/gateway/redisbreaker"
	"tollgate/internal/clocktest"
	"tollgate/internal/testenv"
)

// clock is a settable clock for the breakers' local caches.
// mustClient connects to the test Redis.
func mustClient(t *testing.T) (goredis.UniversalClient, string) {
	t.Helper()
	url, prefix := testenv.MustRedis(t)
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c, prefix
}

// freeMeter reserves anything.
type freeMeter struct{}

func (freeMeter) Reserve(context.Context, gateway.Hold) (string, error) { return "h", nil }
func (freeMeter) Settle(context.Context, string, gateway.Usage) error   { return nil }
func (freeMeter) Release(context.Context, string) error                 { return nil }

// freePricer prices everything at one credit.
type freePricer struct{}

func (freePricer) Cost(string, tollgate.Tokens) (tollgate.Credits, error) { return 1, nil }

// TestTwoGatewaysShareTheBreaker runs two gateways, as two instances, on
// one Redis: failures seen by the first open the breaker for the second,
// which then never calls the failing deployment.
func TestTwoGatewaysShareTheBreaker(t *testing.T) {
	c, prefix := mustClient(t)
	down := &mockllm.Server{Status: 503}
	up := &mockllm.Server{}
	ds, us := httptest.NewServer(down), httptest.NewServer(up)
	t.Cleanup(ds.Close)
	t.Cleanup(us.Close)
	cfg := gateway.DefaultMockProviders(ds.URL)
	cfg.Providers[1].BaseURL = us.URL // mock-gpt: down first, then the Anthropic mock

	instance := func() http.Handler {
		b := redisbreaker.New(c, redisbreaker.Options{Prefix: prefix, Threshold: 2, Cooldown: time.Hour})
		gw, err := gateway.New(cfg, gateway.Options{Meter: freeMeter{}, Pricer: freePricer{}, Breaker: b,
			Retry: gateway.RetryPolicy{BackoffBase: 1, BackoffMax: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return gw.Handler()
	}
	a, b := instance(), instance()
	chat := func(h http.Handler) {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"mock-gpt","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
		r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "a"}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	chat(a)
	chat(a) // the second failure opens the shared breaker
	if n := down.Count("/v1/chat/completions", 503); n != 2 {
		t.Fatalf("the failing deployment got %d calls, want 2", n)
	}
	for range 3 {
		chat(b)
	}
	if n := down.Count("/v1/chat/completions", 503); n != 2 {
		t.Fatalf("the failing deployment got %d calls after it was open, want still 2", n)
	}
}

func TestHalfOpenProbeIsShared(t *testing.T) {
	c, prefix := mustClient(t)
	clk := clocktest.New(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC))
	opts := redisbreaker.Options{Prefix: prefix, Threshold: 1, Cooldown: 100 * time.Millisecond, Sync: time.Second, Clock: clk}
	a, b := redisbreaker.New(c, opts), redisbreaker.New(c, opts)
	const key = "p/m"
	if !a.Allow(key) || !b.Allow(key) || a.State(key) != "closed" {
		t.Fatal("a new breaker is not closed")
	}
	a.Failure(key, 0)
	clk.Advance(2 * time.Second) // b's view of "closed" is stale now
	if b.Allow(key) || b.State(key) != "open" {
		t.Fatalf("b allows after a opened the breaker (state %s)", b.State(key))
	}
	// Wait for Redis to end the cooldown (no assertion on how long it takes).
	deadline := time.Now().Add(10 * time.Second)
	for b.State(key) != "half-open" {
		if time.Now().After(deadline) {
			t.Fatalf("still %s after the cooldown", b.State(key))
		}
		time.Sleep(20 * time.Millisecond)
	}
	clk.Advance(2 * time.Second)
	probeA, probeB := a.Allow(key), b.Allow(key)
	if probeA == probeB {
		t.Fatalf("probes: a %v, b %v; want exactly one", probeA, probeB)
	}
	a.Success(key) // the probe succeeded (whoever sent it, a learns the close)
	clk.Advance(2 * time.Second)
	if !b.Allow(key) || b.State(key) != "closed" {
		t.Fatalf("b refuses after the probe closed the breaker (state %s)", b.State(key))
	}
	if a.Errors()+b.Errors() != 0 {
		t.Fatalf("%d Redis errors", a.Errors()+b.Errors())
	}
}

func TestFallsBackToLocalBreakerWhenRedisIsDown(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	b := redisbreaker.New(c, redisbreaker.Options{Threshold: 2, Cooldown: time.Hour})
	const key = "p/m"
	if !b.Allow(key) {
		t.Fatal("refused with Redis down and no failures")
	}
	b.Failure(key, 0)
	b.Failure(key, 0)
	if b.Allow(key) || b.State(key) != "open" {
		t.Fatalf("the local fallback did not open (state %s)", b.State(key))
	}
	if b.Errors() == 0 {
		t.Fatal("Redis errors not counted")
	}
}
