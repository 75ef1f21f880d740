package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate/gateway"
	"tollgate/payment"
)

// withMetrics counts requests by route pattern (never the raw path, whose
// order numbers would explode the label set), method and status.
func withMetrics(reg prometheus.Registerer, next http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_http_requests_total", Help: "HTTP requests by route pattern and status.",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_http_request_duration_seconds", Help: "HTTP request duration by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	reg.MustRegister(requests, duration)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		timer := prometheus.NewTimer(nil)
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		duration.WithLabelValues(route).Observe(timer.ObserveDuration().Seconds())
	})
}

// PaymentMetrics is a payment.Metrics that counts events in Prometheus as
// tollgate_payment_events_total{event,reason}.
type PaymentMetrics struct{ events *prometheus.CounterVec }

var _ payment.Metrics = (*PaymentMetrics)(nil)

// NewPaymentMetrics registers the payment counter with reg.
func NewPaymentMetrics(reg prometheus.Registerer) *PaymentMetrics {
	m := &PaymentMetrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_payment_events_total", Help: "Payment events (orders, notifications, refusals) by event and reason.",
	}, []string{"event", "reason"})}
	reg.MustRegister(m.events)
	return m
}

// Count adds one to (event, reason).
func (m *PaymentMetrics) Count(event, reason string) { m.events.WithLabelValues(event, reason).Inc() }

// GatewayMetrics is a gateway.Observer that counts requests, tokens and
// credits by model, and upstream attempts by provider and status, in
// Prometheus. Labels are bounded: configured models and providers only.
type GatewayMetrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	credits  *prometheus.CounterVec
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

var _ gateway.Observer = (*GatewayMetrics)(nil)

// NewGatewayMetrics registers the gateway's metrics with reg.
func NewGatewayMetrics(reg prometheus.Registerer) *GatewayMetrics {
	m := &GatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_requests_total", Help: "Metered gateway requests by public model and final status.",
		}, []string{"model", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_tokens_total", Help: "Tokens billed by public model and kind (input, cached_input, output).",
		}, []string{"model", "kind"}),
		credits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_credits_total", Help: "Credits charged by public model.",
		}, []string{"model"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_upstream_attempts_total", Help: "Upstream attempts by provider and HTTP status (0: connection error or timeout).",
		}, []string{"provider", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_gateway_upstream_seconds", Help: "Upstream attempt latency by provider.", Buckets: prometheus.DefBuckets,
		}, []string{"provider"}),
	}
	reg.MustRegister(m.requests, m.tokens, m.credits, m.attempts, m.latency)
	return m
}

// Attempt counts one upstream call.
func (m *GatewayMetrics) Attempt(a gateway.Attempt) {
	m.attempts.WithLabelValues(a.Provider, strconv.Itoa(a.Status)).Inc()
	m.latency.WithLabelValues(a.Provider).Observe(a.Latency.Seconds())
}

// Done counts one finished request.
func (m *GatewayMetrics) Done(u gateway.Usage) {
	m.requests.WithLabelValues(u.Model, u.Status).Inc()
	m.tokens.WithLabelValues(u.Model, "input").Add(float64(u.InputTokens - u.CachedInputTokens))
	m.tokens.WithLabelValues(u.Model, "cached_input").Add(float64(u.CachedInputTokens))
	m.tokens.WithLabelValues(u.Model, "output").Add(float64(u.OutputTokens))
	m.credits.WithLabelValues(u.Model).Add(float64(u.Credits))
}
