package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// newMockEnvWith is a gateway over the default mock providers, the OpenAI
// deployment on openai and the Anthropic ones on anth, with a hook to
// change its options.
func newMockEnvWith(t *testing.T, balance int64, openai, anth *mockllm.Server, mod func(*gateway.Options)) *env {
	t.Helper()
	oa, an := httptest.NewServer(openai), httptest.NewServer(anth)
	t.Cleanup(oa.Close)
	t.Cleanup(an.Close)
	cfg := gateway.DefaultMockProviders(oa.URL)
	cfg.Providers[1].BaseURL = an.URL
	e := &env{t: t, meter: newFakeMeter(t, balance), caller: tollgate.Caller{Account: "acct-1", KeyID: "key-1"}}
	opts := gateway.Options{Meter: e.meter, Pricer: fakePricer{}, Seed: 1, Counter: mockCounter{},
		Retry: gateway.RetryPolicy{BackoffBase: 1, BackoffMax: 1}}
	if mod != nil {
		mod(&opts)
	}
	gw, err := gateway.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), e.caller)))
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// gathered returns the value of the series name{labels} in reg: a
// counter's or gauge's value, a histogram's sample count; -1 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func TestMetricsAgainstMockLLM(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := gateway.NewMetrics(reg)
	// The OpenAI mock fails every call, so mock-gpt fails over to its
	// Anthropic deployment and the first failure opens the breaker.
	e := newMockEnvWith(t, 1_000_000, &mockllm.Server{Status: 503}, &mockllm.Server{OutputTokens: 5}, func(o *gateway.Options) {
		o.Observer = metrics
		o.Breaker = gateway.NewBreaker(1, time.Hour, nil)
	})
	metrics.Track(e.gw)

	const ask = `"max_tokens":20,"messages":[{"role":"user","content":"four words please"}]}`
	for _, body := range []string{
		`{"model":"mock-gpt",` + ask,
		`{"model":"mock-gpt","stream":true,` + ask,
		`{"model":"mock-claude","stream":true,` + ask,
	} {
		if resp, b := e.chat(body); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", body, resp.StatusCode, b)
		}
	}

	_, _, usages, _ := e.meter.state()
	var settled float64
	for _, u := range usages {
		settled += float64(u.Credits)
	}
	bad := "mock-openai/gpt-4o-mini"
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tollgate_gateway_requests_total", map[string]string{"model": "mock-gpt", "status": "ok"}, 2},
		{"tollgate_gateway_requests_total", map[string]string{"model": "mock-claude", "status": "ok"}, 1},
		{"tollgate_gateway_request_duration_seconds", map[string]string{"model": "mock-gpt"}, 2},
		{"tollgate_gateway_time_to_first_token_seconds", map[string]string{"model": "mock-gpt"}, 1},
		{"tollgate_gateway_time_to_first_token_seconds", map[string]string{"model": "mock-claude"}, 1},
		// The breaker opened on the first failure: the stream skipped the deployment.
		{"tollgate_gateway_upstream_errors_total", map[string]string{"deployment": bad, "code": "503"}, 1},
		{"tollgate_gateway_upstream_attempts_total", map[string]string{"deployment": "mock-anthropic/claude-haiku-4-5", "code": "200"}, 2},
		{"tollgate_gateway_failovers_total", map[string]string{"deployment": bad}, 1},
		{"tollgate_gateway_breaker_state", map[string]string{"deployment": bad}, 2},
		{"tollgate_gateway_breaker_state", map[string]string{"deployment": "mock-anthropic/claude-haiku-4-5"}, 0},
		{"tollgate_gateway_credits_settled_total", map[string]string{"model": "mock-gpt"}, settled - float64(usages[2].Credits)},
	} {
		if got := gathered(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if held := gathered(t, reg, "tollgate_gateway_credits_held_total", map[string]string{"model": "mock-gpt"}); held < settled-float64(usages[2].Credits) || held <= 0 {
		t.Errorf("credits held %v, below the %v settled", held, settled)
	}
	e.checkNoHolds()
}

func TestMetricsCountErrorsAndReleases(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := gateway.NewMetrics(reg)
	e := newMockEnvWith(t, 1_000_000, &mockllm.Server{Status: 500}, &mockllm.Server{Status: 500}, func(o *gateway.Options) { o.Observer = metrics })
	if resp, _ := e.chat(`{"model":"mock-gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if got := gathered(t, reg, "tollgate_gateway_requests_total", map[string]string{"model": "mock-gpt", "status": "error"}); got != 1 {
		t.Errorf("error requests %v, want 1", got)
	}
	if got := gathered(t, reg, "tollgate_gateway_failovers_total", map[string]string{"deployment": "mock-openai/gpt-4o-mini"}); got != 1 {
		t.Errorf("failovers %v, want 1", got)
	}
	// The last deployment failed too: no failover from it.
	if got := gathered(t, reg, "tollgate_gateway_failovers_total", map[string]string{"deployment": "mock-anthropic/claude-haiku-4-5"}); got != -1 {
		t.Errorf("failovers from the last deployment %v, want none", got)
	}
	if got := gathered(t, reg, "tollgate_gateway_credits_settled_total", nil); got != -1 {
		t.Errorf("settled %v after a released hold, want none", got)
	}
	// Without Track the breaker gauge is absent, not zero.
	if got := gathered(t, reg, "tollgate_gateway_breaker_state", nil); got != -1 {
		t.Errorf("breaker gauge %v without Track", got)
	}
	if h := metrics.Health(); h != nil {
		t.Errorf("Health before Track = %+v, want nil", h)
	}
	// The console's provider health: each deployment once, its breaker
	// and the calls that failed.
	metrics.Track(e.gw)
	want := map[string]gateway.DeploymentHealth{
		"mock-anthropic/claude-sonnet-4-5":   {Provider: "mock-anthropic", Breaker: "closed"},
		"mock-openai/text-embedding-3-small": {Provider: "mock-openai", Breaker: "closed"},
		"mock-openai/gpt-4o-mini":            {Provider: "mock-openai", Breaker: "closed", Attempts: 1, Errors: 1},
		"mock-anthropic/claude-haiku-4-5":    {Provider: "mock-anthropic", Breaker: "closed", Attempts: 1, Errors: 1},
		"mock-gemini/gemini-2.5-flash":       {Provider: "mock-gemini", Breaker: "closed"},
		"mock-openai/dall-e-3":               {Provider: "mock-openai", Breaker: "closed"},
		"mock-openai/tts-1":                  {Provider: "mock-openai", Breaker: "closed"},
		"mock-openai/whisper-1":              {Provider: "mock-openai", Breaker: "closed"},
	}
	h := metrics.Health()
	for _, d := range h {
		w := want[d.Deployment]
		w.Deployment = d.Deployment
		if d != w {
			t.Errorf("Health: %+v, want %+v", d, w)
		}
	}
	if len(h) != len(want) {
		t.Errorf("Health = %+v; want each deployment once", h)
	}
	e.checkNoHolds()
}

// BenchmarkMetrics is the Observer's cost per request: one successful
// attempt, the hold and the outcome.
func BenchmarkMetrics(b *testing.B) {
	m := gateway.NewMetrics(prometheus.NewRegistry())
	a := gateway.Attempt{RequestID: "req-1", Model: "mock-gpt", Deployment: "mock-openai/gpt-4o-mini", Provider: "mock-openai", Status: 200, Latency: time.Millisecond}
	h := gateway.Hold{RequestID: "req-1", Model: "mock-gpt", Credits: 100}
	u := gateway.Usage{RequestID: "req-1", Model: "mock-gpt", Credits: 38, Latency: 2 * time.Millisecond, Status: "ok"}
	b.ReportAllocs()
	for b.Loop() {
		m.Held(h)
		m.Attempt(a)
		m.Done(u)
	}
}
