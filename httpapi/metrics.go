package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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
