package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
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

// PaymentMetrics is a payment.Metrics (and payment.MoneyMetrics) in
// Prometheus: tollgate_payment_events_total{event,reason}, and the
// operator's money, every label low-cardinality:
//
//	tollgate_payments_total{method}               payments credited
//	tollgate_payments_fen_total{method}           what they paid (gross revenue)
//	tollgate_merchant_fees_fen_total{method}      the merchant fees recorded on them
//	tollgate_refunds_total{requested_by}          refunds succeeded (account or admin)
//	tollgate_refunds_fen_total{requested_by}      what they returned
//	tollgate_adjustments_total{direction}         adjustments made (add or remove)
//	tollgate_adjustment_credits_total{direction}  their credits
//
// Net revenue is payments_fen − merchant_fees_fen − refunds_fen.
type PaymentMetrics struct {
	events                       *prometheus.CounterVec
	payments, paidFen, feeFen    *prometheus.CounterVec
	refunds, refundedFen         *prometheus.CounterVec
	adjustments, adjustedCredits *prometheus.CounterVec
}

var (
	_ payment.Metrics      = (*PaymentMetrics)(nil)
	_ payment.MoneyMetrics = (*PaymentMetrics)(nil)
)

// NewPaymentMetrics registers the payment counters with reg.
func NewPaymentMetrics(reg prometheus.Registerer) *PaymentMetrics {
	vec := func(name, help string, label ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, label)
		reg.MustRegister(v)
		return v
	}
	return &PaymentMetrics{
		events:          vec("tollgate_payment_events_total", "Payment events (orders, notifications, refusals) by event and reason.", "event", "reason"),
		payments:        vec("tollgate_payments_total", "Payments credited, by method.", "method"),
		paidFen:         vec("tollgate_payments_fen_total", "Fen paid by the payments credited (gross revenue), by method.", "method"),
		feeFen:          vec("tollgate_merchant_fees_fen_total", "Merchant fees recorded on the payments credited, in fen, by method.", "method"),
		refunds:         vec("tollgate_refunds_total", "Refunds succeeded, by who asked (account or admin).", "requested_by"),
		refundedFen:     vec("tollgate_refunds_fen_total", "Fen returned by the refunds succeeded, by who asked.", "requested_by"),
		adjustments:     vec("tollgate_adjustments_total", "Adjustments of credit by hand, by direction (add or remove).", "direction"),
		adjustedCredits: vec("tollgate_adjustment_credits_total", "Credits added or removed by adjustments, by direction.", "direction"),
	}
}

// Count adds one to (event, reason).
func (m *PaymentMetrics) Count(event, reason string) { m.events.WithLabelValues(event, reason).Inc() }

// Add counts money (payment.MoneyMetrics).
func (m *PaymentMetrics) Add(kind, label string, fen int64) {
	switch kind {
	case payment.MoneyPaid:
		m.payments.WithLabelValues(label).Inc()
		m.paidFen.WithLabelValues(label).Add(float64(fen))
	case payment.MoneyFee:
		m.feeFen.WithLabelValues(label).Add(float64(fen))
	case payment.MoneyRefunded:
		m.refunds.WithLabelValues(label).Inc()
		m.refundedFen.WithLabelValues(label).Add(float64(fen))
	}
}

// Adjustment counts an adjustment made (not a replay).
func (m *PaymentMetrics) Adjustment(credits tollgate.Credits) {
	if m == nil {
		return
	}
	dir, n := "add", credits
	if credits < 0 {
		dir, n = "remove", -credits
	}
	m.adjustments.WithLabelValues(dir).Inc()
	m.adjustedCredits.WithLabelValues(dir).Add(float64(n))
}

// CatalogMetrics counts catalog reloads (SIGHUP and POST
// /admin/catalog/reload) and shows when the catalog in force was loaded:
//
//	tollgate_catalog_reloads_total{result="ok|refused"}
//	tollgate_catalog_loaded_timestamp_seconds  load time of the catalog in force (unix)
//
// An operator alerts on refused reloads, and compares the load times (with
// the digests of GET /admin/catalog) across instances.
type CatalogMetrics struct {
	reloads  *prometheus.CounterVec
	loadedAt prometheus.Gauge
}

// NewCatalogMetrics registers the catalog metrics with reg; both results
// start at 0 so a dashboard sees them before the first reload.
func NewCatalogMetrics(reg prometheus.Registerer) *CatalogMetrics {
	m := &CatalogMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_catalog_reloads_total", Help: "Catalog reloads (SIGHUP, POST /admin/catalog/reload) by result (ok, refused).",
		}, []string{"result"}),
		loadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_catalog_loaded_timestamp_seconds", Help: "When the catalog in force was loaded, in unix seconds.",
		}),
	}
	reg.MustRegister(m.reloads, m.loadedAt)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("refused")
	return m
}

// Loaded records that a catalog loaded at at is in force (at start and
// on every reload that worked).
func (m *CatalogMetrics) Loaded(at time.Time) {
	if m == nil {
		return
	}
	m.loadedAt.Set(float64(at.UnixNano()) / 1e9)
}

// Reload counts a reload: ok, or refused (the catalog in force kept).
func (m *CatalogMetrics) Reload(ok bool) {
	if m == nil {
		return
	}
	result := "refused"
	if ok {
		result = "ok"
	}
	m.reloads.WithLabelValues(result).Inc()
}
