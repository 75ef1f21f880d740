package gateway

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HoldObserver is the optional capability of an Observer to see every hold
// the gateway makes, once the Meter accepted it.
type HoldObserver interface {
	Held(h Hold)
}

// StreamObserver is the optional capability of an Observer to see a
// stream's time to first token: from the hold to the first output relayed
// to the client (failover before the first output included).
type StreamObserver interface {
	FirstToken(model, deployment string, ttft time.Duration)
}

// UsageObserver is the optional capability of an Observer to count the
// answers whose usage was in fields tollgate does not know for their
// provider (billed at the request's estimate).
type UsageObserver interface {
	UnknownUsage(deployment string)
}

// unknownUsage logs and counts an upstream's usage in unknown fields and
// marks the request's answer ids so that its settle bills the hold: the
// provider's real usage may be above any estimate of ours (a cache write
// in a field we do not read), and the hold is the most the caller agreed
// to. The usage record keeps the estimate's counts, marked estimated.
func (g *Gateway) unknownUsage(d *deployment, ids *answerIDs, why string) {
	var reqID string
	if ids != nil {
		_ = json.Unmarshal(ids.id, &reqID)
	}
	if ids != nil {
		ids.unknown.Store(&why) // the settle bills the hold
	}
	g.opts.Logger.Warn("upstream usage in fields tollgate does not know",
		"request_id", reqID, "deployment", d.id, "kind", d.provider.Kind, "reason", why)
	if o, ok := g.opts.Observer.(UsageObserver); ok {
		o.UnknownUsage(d.id)
	}
}

// observeHeld tells the Observer about a hold, when it wants to know.
func (g *Gateway) observeHeld(h Hold) {
	if o, ok := g.opts.Observer.(HoldObserver); ok {
		o.Held(h)
	}
}

// observeFirstToken tells the Observer a stream's first output was sent.
func (g *Gateway) observeFirstToken(m *metered, d *deployment) {
	if o, ok := g.opts.Observer.(StreamObserver); ok {
		o.FirstToken(m.hold.Model, d.id, g.opts.Clock.Now().Sub(m.start))
	}
}

// Metrics is an Observer exporting the gateway's events to Prometheus:
//
//	tollgate_gateway_requests_total{model,status}           metered requests by outcome (Usage.Status)
//	tollgate_gateway_request_duration_seconds{model}        hold to settle or release
//	tollgate_gateway_time_to_first_token_seconds{model}     streams: hold to first output sent
//	tollgate_gateway_upstream_attempts_total{deployment,code} every upstream call by status ("0": no answer)
//	tollgate_gateway_upstream_errors_total{deployment,code}   the failed ones
//	tollgate_gateway_failovers_total{deployment}            a request left this deployment for another
//	tollgate_gateway_breaker_state{deployment}              0 closed, 1 half-open, 2 open (see Track)
//	tollgate_gateway_credits_held_total{model}              credits reserved by holds
//	tollgate_gateway_credits_settled_total{model}           credits charged
//	tollgate_gateway_usage_unknown_total{deployment}        answers whose usage was in fields tollgate does not know (billed at the hold)
//
// Requests refused before a hold (bad input, 402, a rate limit) are not
// metered, so they appear only in the HTTP layer's counters and in Limits'.
// Labels are bounded by the configuration: public model names and
// deployment ids, never request data. Methods are safe for concurrent use
// and never block.
type Metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ttft      *prometheus.HistogramVec
	attempts  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	failovers *prometheus.CounterVec
	held      *prometheus.CounterVec
	settled   *prometheus.CounterVec
	unknown   *prometheus.CounterVec
	breaker   *prometheus.Desc

	gw atomic.Pointer[Gateway] // for the breaker gauge, set by Track

	// failed maps a request id to the deployment its last attempt failed
	// on, so that the next attempt of the same request counts a failover.
	// Entries live from a failed attempt to the request's Done.
	failed  sync.Map
	pending atomic.Int64 // entries in failed, to skip the map when none

	// upstream counts attempts and errors per deployment id
	// (*upstreamCount), for Health: bounded by the configuration's
	// deployments, like the counters' labels.
	upstream sync.Map
}

type upstreamCount struct{ attempts, errors atomic.Int64 }

var (
	_ Observer       = (*Metrics)(nil)
	_ HoldObserver   = (*Metrics)(nil)
	_ StreamObserver = (*Metrics)(nil)
	_ UsageObserver  = (*Metrics)(nil)
)

// latencyBuckets span a fast cached answer to a long generation.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NewMetrics creates the gateway's metrics and registers them with reg
// (never the global default registry). It panics if they are registered
// twice on reg, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_requests_total", Help: "Metered gateway requests by public model and outcome (ok, interrupted, deadline_exceeded, client_canceled, error).",
		}, []string{"model", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_gateway_request_duration_seconds", Help: "Metered gateway requests' duration from hold to settle or release, by public model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_gateway_time_to_first_token_seconds", Help: "Streams' time from hold to the first output sent to the client, by public model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_upstream_attempts_total", Help: "Upstream calls by deployment and HTTP status (0: no answer).",
		}, []string{"deployment", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_upstream_errors_total", Help: "Failed upstream calls by deployment and HTTP status (0: connection error or timeout).",
		}, []string{"deployment", "code"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_failovers_total", Help: "Requests that left this deployment for another after a failed attempt.",
		}, []string{"deployment"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_credits_held_total", Help: "Credits reserved by gateway holds, by public model.",
		}, []string{"model"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_credits_settled_total", Help: "Credits charged by settled gateway requests, by public model.",
		}, []string{"model"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_usage_unknown_total", Help: "Upstream answers whose usage was in fields tollgate does not know for their provider, billed at the request's estimate, by deployment.",
		}, []string{"deployment"}),
		breaker: prometheus.NewDesc("tollgate_gateway_breaker_state",
			"Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.", []string{"deployment"}, nil),
	}
	reg.MustRegister(m.requests, m.latency, m.ttft, m.attempts, m.errors, m.failovers, m.held, m.settled, m.unknown, breakerCollector{m})
	return m
}

// Track makes the breaker gauge report g's deployments, read from
// g.Status at scrape time. Call it once the Gateway is built (the Metrics
// are passed to New before the Gateway exists). Breakers that cannot
// report their state are left out.
func (m *Metrics) Track(g *Gateway) { m.gw.Store(g) }

// DeploymentHealth is one deployment's breaker state with its upstream
// calls and failures since this process started, for the console.
type DeploymentHealth struct {
	Deployment, Provider string
	Breaker              string // "closed", "open", "half-open", or "" when the breaker cannot tell
	Attempts, Errors     int64
}

// Health lists the deployments of the gateway Track was given (each once,
// in routing order) with their breaker state and the upstream calls and
// failures counted since start; nil before Track.
func (m *Metrics) Health() []DeploymentHealth {
	g := m.gw.Load()
	if g == nil {
		return nil
	}
	var out []DeploymentHealth
	seen := map[string]bool{}
	for _, s := range g.Status() {
		if seen[s.Deployment] {
			continue
		}
		seen[s.Deployment] = true
		h := DeploymentHealth{Deployment: s.Deployment, Provider: s.Provider, Breaker: s.Breaker}
		if uc, ok := m.upstream.Load(s.Deployment); ok {
			h.Attempts, h.Errors = uc.(*upstreamCount).attempts.Load(), uc.(*upstreamCount).errors.Load()
		}
		out = append(out, h)
	}
	return out
}

// UnknownUsage implements UsageObserver.
func (m *Metrics) UnknownUsage(deployment string) { m.unknown.WithLabelValues(deployment).Inc() }

// Attempt implements Observer.
func (m *Metrics) Attempt(a Attempt) {
	code := statusLabel(a.Status)
	m.attempts.WithLabelValues(a.Deployment, code).Inc()
	uc, ok := m.upstream.Load(a.Deployment)
	if !ok {
		uc, _ = m.upstream.LoadOrStore(a.Deployment, &upstreamCount{})
	}
	uc.(*upstreamCount).attempts.Add(1)
	if a.Err != nil {
		uc.(*upstreamCount).errors.Add(1)
	}
	if m.pending.Load() > 0 {
		if prev, ok := m.failed.LoadAndDelete(a.RequestID); ok {
			m.pending.Add(-1)
			m.failovers.WithLabelValues(prev.(string)).Inc()
		}
	}
	if a.Err == nil {
		return
	}
	m.errors.WithLabelValues(a.Deployment, code).Inc()
	if _, loaded := m.failed.Swap(a.RequestID, a.Deployment); !loaded {
		m.pending.Add(1)
	}
}

// Done implements Observer.
func (m *Metrics) Done(u Usage) {
	if m.pending.Load() > 0 {
		if _, ok := m.failed.LoadAndDelete(u.RequestID); ok {
			m.pending.Add(-1)
		}
	}
	m.requests.WithLabelValues(u.Model, u.Status).Inc()
	m.latency.WithLabelValues(u.Model).Observe(u.Latency.Seconds())
	if u.Credits > 0 {
		m.settled.WithLabelValues(u.Model).Add(float64(u.Credits))
	}
}

// Held implements HoldObserver.
func (m *Metrics) Held(h Hold) {
	m.held.WithLabelValues(h.Model).Add(float64(h.Credits))
}

// FirstToken implements StreamObserver.
func (m *Metrics) FirstToken(model, deployment string, ttft time.Duration) {
	m.ttft.WithLabelValues(model).Observe(ttft.Seconds())
}

// statusLabel formats an HTTP status without allocating for the usual ones.
func statusLabel(s int) string {
	switch s {
	case 0:
		return "0"
	case 200:
		return "200"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(s)
}

// breakerCollector reads breaker states at scrape time.
type breakerCollector struct{ m *Metrics }

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.breaker }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.m.gw.Load()
	if g == nil {
		return
	}
	seen := map[string]bool{}
	for _, s := range g.Status() {
		if seen[s.Deployment] {
			continue
		}
		seen[s.Deployment] = true
		var v float64
		switch s.Breaker {
		case "closed":
			v = 0
		case "half-open":
			v = 1
		case "open":
			v = 2
		default:
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.m.breaker, prometheus.GaugeValue, v, s.Deployment)
	}
}
