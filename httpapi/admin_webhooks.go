package httpapi

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/webhook"
)

// WebhookView is a webhook endpoint as the admin API shows it: never its
// secret (shown once, by create and rotate-secret).
type WebhookView struct {
	ID          string    `json:"id"`
	Object      string    `json:"object"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	// Disabled: the dispatcher gave up on the endpoint (DisabledReason
	// says why); POST /admin/webhooks/{id}/enable turns it back on.
	Disabled       bool       `json:"disabled"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason"`
	// ConsecutiveFailures and FailingSince are the current streak of
	// failed attempts; LastSuccessAt the last delivered one.
	ConsecutiveFailures int64      `json:"consecutive_failures"`
	FailingSince        *time.Time `json:"failing_since"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	// PreviousSecretExpiresAt is set while the secret before the last
	// rotate-secret still signs.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// WebhookCreated is the answer of POST /admin/webhooks and of
// rotate-secret: the endpoint and its signing secret, shown this once.
type WebhookCreated struct {
	WebhookView
	Secret string `json:"secret"`
}

// DeliveryView is one event's delivery to one endpoint.
type DeliveryView struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EndpointID string `json:"endpoint_id"`
	// Status is pending, delivered or failed (given up 3 days after the
	// event).
	Status   string `json:"status"`
	Attempts int64  `json:"attempts"`
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// LastHTTPStatus is the receiver's last answer (0: none, e.g. a
	// timeout or a refused connection); LastError what went wrong.
	LastHTTPStatus int        `json:"last_http_status"`
	LastError      string     `json:"last_error"`
	CreatedAt      time.Time  `json:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func webhookView(e webhook.Endpoint, now time.Time) WebhookView {
	v := WebhookView{ID: e.ID, Object: "webhook_endpoint", URL: e.URL, Events: e.Events, Description: e.Description,
		CreatedAt: e.CreatedAt.UTC(), Disabled: e.Disabled(), DisabledAt: optTime(e.DisabledAt), DisabledReason: e.DisabledReason,
		ConsecutiveFailures: e.ConsecutiveFailures, FailingSince: optTime(e.FailingSince), LastSuccessAt: optTime(e.LastSuccessAt)}
	if v.Events == nil {
		v.Events = []string{}
	}
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		v.PreviousSecretExpiresAt = optTime(e.PreviousUntil)
	}
	return v
}

func deliveryView(d webhook.Delivery) DeliveryView {
	v := DeliveryView{ID: d.ID, Object: "webhook_delivery", EventID: d.EventID, EventType: d.EventType, EndpointID: d.EndpointID,
		Status: d.Status, Attempts: d.Attempts, LastHTTPStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt.UTC(), DeliveredAt: optTime(d.DeliveredAt)}
	if d.Status == webhook.StatusPending {
		v.NextAttemptAt = optTime(d.NextAttemptAt)
	}
	return v
}

// needWebhooks answers 503 when the server has no webhook store.
func (s *Server) needWebhooks(f func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Webhooks == nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "webhooks are not configured on this server"))
			return
		}
		f(w, r)
	})
}

func (s *Server) now() time.Time { return tollgate.ClockOr(s.Clock).Now() }

// createWebhookBody is the body of POST /admin/webhooks.
type createWebhookBody struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// createWebhook registers an endpoint and answers its secret, once.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var b createWebhookBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	now := s.now()
	e, err := webhook.NewEndpoint(b.URL, b.Events, b.Description, s.WebhookPolicy, now)
	if err == nil {
		err = s.Webhooks.CreateEndpoint(r.Context(), e)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook endpoint created", "endpoint", e.ID, "url", e.URL, "events", e.Events, "actor", actorOf(r))
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusCreated, WebhookCreated{WebhookView: webhookView(e, now), Secret: e.Secret})
}

// listWebhooks answers GET /admin/webhooks?limit=&cursor=.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	cur, err := decodeCursor(r, 1)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := webhook.EndpointQuery{Limit: limit}
	if cur != nil {
		q.After = cur[0]
	}
	es, err := s.Webhooks.ListEndpoints(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	now := s.now()
	out := Page[WebhookView]{Object: "list", Data: make([]WebhookView, 0, len(es))}
	for _, e := range es {
		out.Data = append(out.Data, webhookView(e, now))
	}
	if len(es) == limit {
		out.NextCursor = encodeCursor(es[len(es)-1].ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// getWebhook answers GET /admin/webhooks/{id}: one endpoint, without its
// secret.
func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	e, err := s.Webhooks.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, webhookView(e, s.now()))
}

// deleteWebhook removes an endpoint and its deliveries.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Webhooks.DeleteEndpoint(r.Context(), id); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook endpoint deleted", "endpoint", id, "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
}

// rotateWebhookSecret gives an endpoint a new secret, answered once; the
// old one keeps signing for 24 hours.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	e, err := webhook.Rotate(r.Context(), s.Webhooks, r.PathValue("id"), now)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook secret rotated", "endpoint", e.ID, "previous_valid_until", e.PreviousUntil, "actor", actorOf(r))
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, WebhookCreated{WebhookView: webhookView(e, now), Secret: e.Secret})
}

// enableWebhook turns an endpoint the dispatcher disabled back on (and
// forgets its failure streak); enabling an enabled endpoint changes
// nothing.
func (s *Server) enableWebhook(w http.ResponseWriter, r *http.Request) {
	e, err := s.Webhooks.SetEndpointDisabled(r.Context(), r.PathValue("id"), time.Time{}, "")
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook endpoint enabled", "endpoint", e.ID, "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, webhookView(e, s.now()))
}

// listDeliveries answers GET /admin/webhooks/{id}/deliveries?status=&limit=&cursor=,
// newest first.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := webhook.DeliveryQuery{Endpoint: r.PathValue("id"), Status: r.URL.Query().Get("status"), Limit: limit}
	switch q.Status {
	case "", webhook.StatusPending, webhook.StatusDelivered, webhook.StatusFailed:
	default:
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "status is pending, delivered or failed, not %q", q.Status))
		return
	}
	cur, err := decodeCursor(r, 2)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if cur != nil {
		at, perr := time.Parse(time.RFC3339Nano, cur[0])
		if perr != nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "cursor is not one this server made: pass next_cursor from the previous page unchanged"))
			return
		}
		q.AfterTime, q.AfterID = at, cur[1]
	}
	ds, err := s.Webhooks.ListDeliveries(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[DeliveryView]{Object: "list", Data: make([]DeliveryView, 0, len(ds))}
	for _, d := range ds {
		out.Data = append(out.Data, deliveryView(d))
	}
	if len(ds) == limit {
		last := ds[len(ds)-1]
		out.NextCursor = encodeCursor(last.CreatedAt.UTC().Format(time.RFC3339Nano), last.ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// retryDelivery makes a delivery due now (whatever its status; a
// delivered one is sent again with the same webhook-id).
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := s.Webhooks.RetryDelivery(r.Context(), r.PathValue("id"), r.PathValue("delivery"), s.now())
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if s.WebhookWake != nil {
		s.WebhookWake()
	}
	s.log().Info("webhook delivery retried by the admin", "delivery", d.ID, "endpoint", d.EndpointID, "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, deliveryView(d))
}

// WebhookMetrics counts the dispatcher's attempts by result and the
// endpoints it disabled (webhook.Metrics).
type WebhookMetrics struct {
	attempts *prometheus.CounterVec
	disabled prometheus.Counter
}

var _ webhook.Metrics = (*WebhookMetrics)(nil)

// NewWebhookMetrics registers the webhook counters with reg.
func NewWebhookMetrics(reg prometheus.Registerer) *WebhookMetrics {
	m := &WebhookMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result: delivered, retry (failed, tried again later), failed (given up), lost (the lease ran out first)."},
			[]string{"result"}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_webhook_endpoints_disabled_total",
			Help: "Webhook endpoints disabled because every attempt failed for days."}),
	}
	reg.MustRegister(m.attempts, m.disabled)
	return m
}

// Attempt counts one attempt by result.
func (m *WebhookMetrics) Attempt(result string) { m.attempts.WithLabelValues(result).Inc() }

// EndpointDisabled counts one endpoint disabled.
func (m *WebhookMetrics) EndpointDisabled() { m.disabled.Inc() }
