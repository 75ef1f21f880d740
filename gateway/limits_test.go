package gateway_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/internal/testenv"
	"tollgate/kv"
	"tollgate/kv/kvtest"
	kvredis "tollgate/kv/redis"
)

// fakeClock is a settable clock for limits and key expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// limitsEnv is a gateway over mockllm admitting through lim.
func limitsEnv(t *testing.T, lim *gateway.Limits, limits tollgate.KeyLimits) *env {
	t.Helper()
	e := newMockEnvWith(t, 1<<40, &mockllm.Server{OutputTokens: 4}, &mockllm.Server{OutputTokens: 4}, func(o *gateway.Options) { o.Admitter = lim })
	e.caller.Limits = limits
	return e
}

const limitedChat = `{"model":"mock-gpt","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`

func TestLimitsRequestsPerMinute(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	lim := gateway.NewLimits(kv.NewMemory(kv.MemoryOptions{Clock: tollgate.ClockFunc(clock.Now)}), reg)
	e := limitsEnv(t, lim, tollgate.KeyLimits{RequestsPerMinute: 2})
	var retry int
	for i, want := range []int{200, 200, 429} {
		resp, body := e.chat(limitedChat)
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, want, body)
		}
		if want == 429 {
			// Both requests of this minute count until it has passed.
			retry, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
			if retry < 60 || retry > 61 {
				t.Fatalf("Retry-After %q, want 60..61 s (when this minute's requests stop counting)", resp.Header.Get("Retry-After"))
			}
			if code := path(mustJSON(t, body), "error", "code"); code != "rate_limit_exceeded" {
				t.Fatalf("error code %v", code)
			}
		}
	}
	// Half a minute later the key has still sent its 2 in this minute.
	clock.Add(30 * time.Second)
	if resp, body := e.chat(limitedChat); resp.StatusCode != 429 {
		t.Fatalf("30 s later: status %d, want 429: %s", resp.StatusCode, body)
	}
	clock.Add(time.Duration(retry)*time.Second - 30*time.Second)
	for i := range 2 {
		if resp, body := e.chat(limitedChat); resp.StatusCode != 200 {
			t.Fatalf("after Retry-After, request %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	if got := gathered(t, reg, "tollgate_gateway_limit_refusals_total", map[string]string{"limit": "rpm"}); got != 2 {
		t.Fatalf("rpm refusals %v, want 2", got)
	}
	if n := e.meter.reserves.Load(); n != 4 {
		t.Fatalf("%d holds made, want 4: a refused request must not reach the meter", n)
	}
}

// TestLimitsKeepTheKeyRateInEverySlidingMinute: a client that idles until
// its key's budget is full and then sends as fast as the limits let it
// (waiting each Retry-After) gets at most rpm requests, and holds covering
// at most tpm tokens, into any 60 seconds. (Issue 17: buckets of a
// minute's worth let almost twice through.)
func TestLimitsKeepTheKeyRateInEverySlidingMinute(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		limits tollgate.KeyLimits
		budget int64
		take   func(lim *gateway.Limits, c tollgate.Caller, tokens int64) error
	}{
		{"RPM", tollgate.KeyLimits{RequestsPerMinute: 60}, 60, func(lim *gateway.Limits, c tollgate.Caller, _ int64) error {
			return lim.Admit(ctx, c, "m")
		}},
		{"TPM", tollgate.KeyLimits{TokensPerMinute: 10000}, 10000, func(lim *gateway.Limits, c tollgate.Caller, tokens int64) error {
			return lim.AdmitTokens(ctx, c, "m", tokens)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := kvtest.NewFakeClock()
			lim := gateway.NewLimits(kv.NewMemory(kv.MemoryOptions{Clock: clock}), nil)
			lim.Clock = clock
			c := tollgate.Caller{Account: "a", KeyID: "k", Limits: tc.limits}
			rng := rand.New(rand.NewPCG(17, 1))
			events := kvtest.Drive(t, clock, time.Minute, 2*time.Minute, 3*time.Minute, func() (kv.Result, int64, error) {
				n := int64(1)
				if tc.name == "TPM" {
					n = 1 + rng.Int64N(4000) // up to 40 % of the minute in one request
				}
				err := tc.take(lim, c, n)
				var se *gateway.StatusError
				switch {
				case err == nil:
					return kv.Result{Allowed: true}, n, nil
				case errors.As(err, &se) && se.RetryAfter > 0:
					return kv.Result{RetryAfter: se.RetryAfter}, n, nil
				}
				return kv.Result{}, n, err
			})
			if got := kvtest.MaxInWindow(events, time.Minute); got > tc.budget {
				t.Fatalf("the busiest sliding minute admitted %d, over the key's %d", got, tc.budget)
			}
		})
	}
}

func TestLimitsTokensPerMinuteCountTheHold(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
	lim := gateway.NewLimits(kv.NewMemory(kv.MemoryOptions{Clock: tollgate.ClockFunc(clock.Now)}), nil)
	// One request holds its prompt estimate plus 100 output tokens, so a
	// budget of 200 tokens a minute admits one and refuses the next.
	e := limitsEnv(t, lim, tollgate.KeyLimits{TokensPerMinute: 200})
	if resp, body := e.chat(limitedChat); resp.StatusCode != 200 {
		t.Fatalf("first: status %d: %s", resp.StatusCode, body)
	}
	if resp, _ := e.chat(limitedChat); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A request above the whole budget could never pass: even on an idle
	// key it is refused at once, without Retry-After, telling the client
	// to lower max_tokens; a request within the budget then passes (61 s
	// on: the first hold counts for the minute after the second it was
	// made in).
	clock.Add(61 * time.Second)
	resp, body := e.chat(`{"model":"mock-gpt","max_tokens":1000,"messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" || !strings.Contains(body, "lower max_tokens") {
		t.Fatalf("request above the whole minute: status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := e.chat(limitedChat); resp.StatusCode != 200 {
		t.Fatalf("after the refusal: status %d: %s", resp.StatusCode, body)
	}
	if n := e.meter.reserves.Load(); n != 2 {
		t.Fatalf("%d holds, want 2: the refused request must not reach the meter", n)
	}
}

func TestLimitsExpiryAndModels(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	lim := &gateway.Limits{Limiter: kv.NewMemory(kv.MemoryOptions{}), Clock: tollgate.ClockFunc(func() time.Time { return now })}
	for _, tc := range []struct {
		name  string
		c     tollgate.Caller
		model string
		code  string
	}{
		{"OK", tollgate.Caller{KeyID: "k", Limits: tollgate.KeyLimits{ExpiresAt: now.Add(time.Second)}}, "m", ""},
		{"Expired", tollgate.Caller{KeyID: "k", Limits: tollgate.KeyLimits{ExpiresAt: now}}, "m", tollgate.EUNAUTHORIZED},
		{"ModelAllowed", tollgate.Caller{KeyID: "k", Limits: tollgate.KeyLimits{Models: []string{"m"}}}, "m", ""},
		{"ModelRefused", tollgate.Caller{KeyID: "k", Limits: tollgate.KeyLimits{Models: []string{"other"}}}, "m", tollgate.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tollgate.ErrorCode(lim.Admit(context.Background(), tc.c, tc.model)); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
		})
	}
	e := limitsEnv(t, lim, tollgate.KeyLimits{ExpiresAt: now.Add(-time.Hour)})
	if resp, _ := e.chat(limitedChat); resp.StatusCode != 401 {
		t.Fatalf("expired key: status %d, want 401", resp.StatusCode)
	}
}

// downLimiter is a kv.Limiter whose store is unreachable.
type downLimiter struct{}

func (downLimiter) Allow(ctx context.Context, key string, l kv.Limit) (kv.Result, error) {
	return downLimiter{}.AllowN(ctx, key, l, 1)
}
func (downLimiter) AllowN(context.Context, string, kv.Limit, int) (kv.Result, error) {
	return kv.Result{}, tollgate.Errorf(tollgate.EUNAVAILABLE, "redis is down")
}
func (downLimiter) AllowWindow(context.Context, string, kv.Window, int) (kv.Result, error) {
	return kv.Result{}, tollgate.Errorf(tollgate.EUNAVAILABLE, "redis is down")
}

func TestLimitsFailOpenWhenTheLimiterIsDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	lim := gateway.NewLimits(downLimiter{}, reg)
	// A working limiter would refuse the second request on both limits.
	e := limitsEnv(t, lim, tollgate.KeyLimits{RequestsPerMinute: 1, TokensPerMinute: 200})
	for i := range 3 {
		if resp, body := e.chat(limitedChat); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	if got := gathered(t, reg, "tollgate_gateway_limiter_errors_total", nil); got != 6 {
		t.Fatalf("limiter errors %v, want 6 (rpm and tpm for 3 requests)", got)
	}
}

// TestLimitsSharedThroughRedis runs two gateways, as two instances would,
// on one Redis: they draw on one budget per key.
func TestLimitsSharedThroughRedis(t *testing.T) {
	url, prefix := testenv.MustRedis(t)
	open := func() *env {
		st, err := kvredis.Open(context.Background(), url, kvredis.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return limitsEnv(t, gateway.NewLimits(st, nil), tollgate.KeyLimits{RequestsPerMinute: 3})
	}
	a, b := open(), open()
	for i, step := range []struct {
		e    *env
		want int
	}{{a, 200}, {b, 200}, {a, 200}, {b, 429}, {a, 429}} {
		if resp, body := step.e.chat(limitedChat); resp.StatusCode != step.want {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, step.want, body)
		}
	}
}
