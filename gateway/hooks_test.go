package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/internal/clocktest"
)

// recordingObserver keeps every event.
type recordingObserver struct {
	mu       sync.Mutex
	attempts []gateway.Attempt
	done     []gateway.Usage
}

func (o *recordingObserver) Attempt(a gateway.Attempt) {
	o.mu.Lock()
	o.attempts = append(o.attempts, a)
	o.mu.Unlock()
}
func (o *recordingObserver) Done(u gateway.Usage) {
	o.mu.Lock()
	o.done = append(o.done, u)
	o.mu.Unlock()
}

// admitFunc is an Admitter made of a function.
type admitFunc func(ctx context.Context, c tollgate.Caller, model string) error

func (f admitFunc) Admit(ctx context.Context, c tollgate.Caller, model string) error {
	return f(ctx, c, model)
}

func TestObserverSeesAttemptsAndOutcome(t *testing.T) {
	obs := &recordingObserver{}
	e := newEnvWith(t, 10_000, func(o *gateway.Options) { o.Observer = obs }, deploymentSpec{up: &upstream{Status: 500}}, deploymentSpec{up: &upstream{}})
	if resp, _ := e.chat(simpleChat); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(obs.attempts) != 2 || obs.attempts[0].Status != 500 || obs.attempts[1].Status != 200 || obs.attempts[1].Deployment != "p1/up-1" {
		t.Fatalf("attempts %+v", obs.attempts)
	}
	if len(obs.done) != 1 || obs.done[0].Status != "ok" {
		t.Fatalf("done %+v", obs.done)
	}
}

func TestAdmitterRefusesWithRetryAfter(t *testing.T) {
	up := &upstream{}
	e := newEnvWith(t, 10_000, func(o *gateway.Options) {
		o.Admitter = admitFunc(func(ctx context.Context, c tollgate.Caller, model string) error {
			if c.KeyID == "key-1" {
				return &gateway.StatusError{Status: 429, RetryAfter: 3 * time.Second, Err: tollgate.Errorf(tollgate.ERATELIMITED, "slow down")}
			}
			return nil
		})
	}, deploymentSpec{up: up})
	resp, body := e.chat(simpleChat)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || path(mustJSON(t, body), "error", "type") != "rate_limit_error" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if up.calls.Load() != 0 || e.meter.reserves.Load() != 0 {
		t.Fatal("a refused request reached the meter or the upstream")
	}
}

func TestPerKeyLimits(t *testing.T) {
	up := &upstream{}
	e := newEnv(t, 10_000, deploymentSpec{up: up})
	e.caller.Limits = tollgate.KeyLimits{MaxOutputTokens: 7}
	if resp, body := e.chat(simpleChat); resp.StatusCode != 200 || up.lastBody(t)["max_tokens"] != 7.0 {
		t.Fatalf("status %d, upstream max_tokens %v: %s", resp.StatusCode, up.lastBody(t)["max_tokens"], body)
	}
	if resp, body := e.chat(`{"model":"m","messages":[{"role":"user","content":"x"}]}`); resp.StatusCode != 200 || up.lastBody(t)["max_tokens"] != 7.0 {
		t.Fatalf("status %d, upstream max_tokens %v without a client limit: %s", resp.StatusCode, up.lastBody(t)["max_tokens"], body)
	}
	e.caller.Limits = tollgate.KeyLimits{MaxCreditsPerRequest: 5}
	if resp, body := e.chat(simpleChat); resp.StatusCode != http.StatusForbidden ||
		!strings.Contains(body, `"code":"max_credits_per_request_exceeded"`) || !strings.Contains(body, "limit of 5 credits per request") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e.checkNoHolds()
}

func TestRetryBudget(t *testing.T) {
	first, second := &upstream{Status: 500}, &upstream{}
	e := newEnvWith(t, 10_000, func(o *gateway.Options) { o.Retry.MaxAttempts = 1 }, deploymentSpec{up: first}, deploymentSpec{up: second})
	if resp, _ := e.chat(simpleChat); resp.StatusCode != 502 || second.calls.Load() != 0 {
		t.Fatalf("status %d, second called %d times", resp.StatusCode, second.calls.Load())
	}
}

func TestBreakerRecoversThroughHalfOpenInGateway(t *testing.T) {
	clock := clocktest.New(time.Unix(0, 0))
	first, second := &upstream{Status: 503}, &upstream{}
	e := newEnvWith(t, 1_000_000, func(o *gateway.Options) { o.Clock = clock }, deploymentSpec{up: first}, deploymentSpec{up: second})
	for range 3 {
		e.chat(simpleChat)
	}
	if e.breaker.State("p0/up-0") != "open" {
		t.Fatalf("state %s", e.breaker.State("p0/up-0"))
	}
	first.Status = 0 // the deployment recovers...
	e.chat(simpleChat)
	if first.calls.Load() != 3 {
		t.Fatal("open breaker let a call through")
	}
	clock.Advance(time.Minute) // ...and after the cooldown one probe goes through
	e.chat(simpleChat)
	if first.calls.Load() != 4 || e.breaker.State("p0/up-0") != "closed" {
		t.Fatalf("calls %d state %s", first.calls.Load(), e.breaker.State("p0/up-0"))
	}
}
