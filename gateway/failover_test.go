package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/internal/clocktest"
)

func TestFailoverToSecondDeployment(t *testing.T) {
	down := func() *upstream {
		u := (&upstream{}).start(t, "openai")
		u.srv.Close() // connection refused
		return u
	}
	for _, tc := range []struct {
		name    string
		first   *upstream
		timeout time.Duration
		stream  bool
	}{
		{"Down", down(), 0, false},
		{"500", &upstream{Status: 500}, 0, false},
		{"BadKey401", &upstream{Status: 401}, 0, false},
		{"UnknownUpstreamModel404", &upstream{Status: 404}, 0, true},
		{"503", &upstream{Status: 503}, 0, true},
		{"429RetryAfter", &upstream{Status: 429, RetryAfter: "7"}, 0, false},
		{"SlowBeyondTimeout", &upstream{Hang: true}, 50 * time.Millisecond, false},
		{"SlowStreamBeyondTimeout", &upstream{Hang: true}, 50 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := &upstream{Words: []string{"from", " second"}}
			e := newEnv(t, 10_000, deploymentSpec{up: tc.first, timeout: tc.timeout}, deploymentSpec{up: second})
			body := simpleChat
			if tc.stream {
				body = `{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"Say hello"}]}`
			}
			resp, got := e.chat(body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if second.calls.Load() != 1 {
				t.Fatalf("second deployment called %d times", second.calls.Load())
			}
			_, _, usages, _ := e.meter.state()
			if len(usages) != 1 || usages[0].Deployment != "p1/up-1" {
				t.Fatalf("usages %+v", usages)
			}
			if tc.name == "429RetryAfter" && e.breaker.State("p0/up-0") != "open" {
				t.Fatalf("Retry-After did not open the breaker: %s", e.breaker.State("p0/up-0"))
			}
			e.checkNoHolds()
		})
	}
}

func TestAllDeploymentsFail(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ups        []*upstream
		status     int
		retryAfter string
	}{
		{"AllDown503", []*upstream{{Status: 503}, {Status: 503}}, 503, "1"},
		{"All500", []*upstream{{Status: 500}, {Status: 502}}, 502, ""},
		{"AllRateLimited", []*upstream{{Status: 429, RetryAfter: "9"}, {Status: 429, RetryAfter: "4"}}, 429, "4"},
		{"LastTimedOut", []*upstream{{Status: 500}, {Hang: true}}, 504, ""},
		{"ClientMistakeNotRetried", []*upstream{{Status: 400}, {}}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var deps []deploymentSpec
			for _, u := range tc.ups {
				d := deploymentSpec{up: u}
				if u.Hang {
					d.timeout = 50 * time.Millisecond // only a hanging upstream may time out
				}
				deps = append(deps, d)
			}
			e := newEnv(t, 10_000, deps...)
			resp, body := e.chat(simpleChat)
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Fatalf("status %d Retry-After %q, want %d %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), tc.status, tc.retryAfter, body)
			}
			if path(mustJSON(t, body), "error", "message") == nil {
				t.Fatalf("not an OpenAI error: %s", body)
			}
			balance, holds, usages, released := e.meter.state()
			if balance != 10_000 || holds != 0 || len(usages) != 0 || released != 1 {
				t.Fatalf("charged: balance %d holds %d usages %d released %d", balance, holds, len(usages), released)
			}
			if tc.name == "ClientMistakeNotRetried" && tc.ups[1].calls.Load() != 0 {
				t.Fatal("a 400 was retried on another deployment")
			}
		})
	}
}

func TestNeverRetriesAFailedDeployment(t *testing.T) {
	a, b := &upstream{Status: 500}, &upstream{Status: 500}
	e := newEnv(t, 10_000, deploymentSpec{up: a, priority: -1}, deploymentSpec{up: b, priority: -1})
	resp, _ := e.chat(simpleChat)
	if resp.StatusCode != 502 || a.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("status %d calls %d/%d", resp.StatusCode, a.calls.Load(), b.calls.Load())
	}
}

func TestWeightedChoiceWithinTier(t *testing.T) {
	heavy, light, backup := &upstream{}, &upstream{}, &upstream{}
	e := newEnv(t, 1_000_000, deploymentSpec{up: heavy, priority: -1, weight: 9}, deploymentSpec{up: light, priority: -1, weight: 1}, deploymentSpec{up: backup, priority: 5})
	for range 200 {
		if resp, body := e.chat(simpleChat); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	h, l := heavy.calls.Load(), light.calls.Load()
	if backup.calls.Load() != 0 || h+l != 200 || h < 150 || l < 5 {
		t.Fatalf("heavy %d light %d backup %d", h, l, backup.calls.Load())
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	advance := clock.Advance
	b := gateway.NewBreaker(3, 30*time.Second, clock)
	const k = "p/m"
	steps := []struct {
		do    func()
		state string
		allow bool
	}{
		{func() {}, "closed", true},
		{func() { b.Failure(k, 0); b.Failure(k, 0) }, "closed", true},
		{func() { b.Failure(k, 0) }, "open", false},
		{func() { advance(29 * time.Second) }, "open", false},
		{func() { advance(time.Second) }, "half-open", true}, // the single probe
		{func() {}, "half-open", false},                      // a second caller waits
		{func() { b.Failure(k, 0) }, "open", false},          // the probe failed
		{func() { advance(30 * time.Second) }, "half-open", true},
		{func() { b.Success(k) }, "closed", true},
		{func() { b.Failure(k, 10*time.Second) }, "open", false}, // Retry-After opens at once
		{func() { advance(10 * time.Second) }, "half-open", true},
	}
	for i, s := range steps {
		s.do()
		if got := b.State(k); got != s.state {
			t.Fatalf("step %d: state %s, want %s", i, got, s.state)
		}
		if got := b.Allow(k); got != s.allow {
			t.Fatalf("step %d: Allow %v, want %v", i, got, s.allow)
		}
	}
}

func TestBreakerSkipsOpenDeploymentThenProbes(t *testing.T) {
	first, second := &upstream{Status: 500}, &upstream{}
	e := newEnv(t, 1_000_000, deploymentSpec{up: first}, deploymentSpec{up: second})
	for range 3 {
		if resp, _ := e.chat(simpleChat); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if e.breaker.State("p0/up-0") != "open" {
		t.Fatalf("breaker %s after 3 failures", e.breaker.State("p0/up-0"))
	}
	e.chat(simpleChat)
	if first.calls.Load() != 3 {
		t.Fatalf("open deployment was called: %d calls", first.calls.Load())
	}
	st := e.gw.Status()
	if len(st) != 2 || st[0].Deployment != "p0/up-0" || st[0].Breaker != "open" || st[1].Breaker != "closed" || st[1].Kind != "openai" {
		t.Fatalf("status %+v", st)
	}
}

func TestConcurrentRequestsNeverOverspend(t *testing.T) {
	// Find one request's hold with a rich meter first.
	probe := newEnv(t, 1_000_000, deploymentSpec{up: &upstream{}})
	probe.chat(simpleChat)
	hold := probe.meter.lastHold.Load()

	gate := make(chan struct{})
	up := &upstream{Gate: gate}
	e := newEnv(t, 50*hold, deploymentSpec{up: up})
	const n = 200
	go func() { // release the upstream once every request has reserved or been refused
		waitFor(t, func() bool { return e.meter.reserves.Load() == n })
		close(gate)
	}()
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.do(context.Background(), "/v1/chat/completions", simpleChat)
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] > 50 || count[200] == 0 || count[200]+count[http.StatusPaymentRequired] != n {
		t.Fatalf("statuses %v", count)
	}
	balance, holds, usages2, _ := e.meter.state()
	if balance < 0 || holds != 0 || len(usages2) != count[200] {
		t.Fatalf("balance %d holds %d usages %d", balance, holds, len(usages2))
	}
}

func TestRetryAfterHonouredOnSameProvider(t *testing.T) {
	limited := (&upstream{Status: 429, RetryAfter: "2"}).start(t, "openai")
	other := (&upstream{}).start(t, "openai")
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{
			{Name: "acct", Kind: gateway.KindOpenAI, BaseURL: limited.srv.URL + "/v1"},
			{Name: "other", Kind: gateway.KindOpenAI, BaseURL: other.srv.URL + "/v1"},
		},
		Models: map[string][]gateway.DeploymentConfig{"m": {
			{Provider: "acct", Model: "a"}, {Provider: "acct", Model: "b", Priority: 1}, {Provider: "other", Model: "c", Priority: 2},
		}},
	}
	var waits []time.Duration
	gw, err := gateway.New(cfg, gateway.Options{Meter: newFakeMeter(t, 10_000), Pricer: fakePricer{},
		Retry: gateway.RetryPolicy{BackoffBase: time.Millisecond, BackoffMax: time.Millisecond},
		Sleep: func(_ <-chan struct{}, d time.Duration) { waits = append(waits, d) }})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(simpleChat))
	r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "a"}))
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, r)
	if rec.Code != 200 || limited.calls.Load() != 2 || other.calls.Load() != 1 {
		t.Fatalf("status %d calls %d/%d", rec.Code, limited.calls.Load(), other.calls.Load())
	}
	if len(waits) != 2 || waits[0] != 2*time.Second || waits[1] > time.Millisecond {
		t.Fatalf("waits %v: want Retry-After before the same provider, backoff before another", waits)
	}
}
