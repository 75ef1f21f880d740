package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/auth"
	"tollgate/webhook"
)

// The webhook handlers serve two scopes with the same JSON: the operator
// (/admin/webhooks, the admin token), who sees and manages every endpoint,
// and a platform (/v1/webhooks, its platform key), who sees and manages
// only its own: another's endpoint, or the operator's, is 404 to it, as
// if it did not exist.

type platformScopeKey struct{}

// webhookScope is the platform whose key authenticated r (withPlatform),
// or "" for the operator.
func webhookScope(r *http.Request) string {
	p, _ := r.Context().Value(platformScopeKey{}).(string)
	return p
}

var errPlatformKeyRequired = codedError{tollgate.Errorf(tollgate.EUNAUTHORIZED,
	"a platform key (Authorization: Bearer "+auth.PlatformKeyPrefix+"…) is required"), "invalid_platform_key"}

// withPlatform lets only a valid platform key through, and scopes the
// request to its platform.
func (s *Server) withPlatform(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if s.Auth == nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "accounts are not configured on this server"))
			return
		}
		if !strings.HasPrefix(tok, auth.PlatformKeyPrefix) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
			WriteError(w, r, s.log(), errPlatformKeyRequired)
			return
		}
		p, err := s.Auth.AuthenticatePlatform(r.Context(), tok)
		if err != nil {
			if tollgate.ErrorCode(err) == tollgate.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
				err = errInvalidPlatformKey
			}
			WriteError(w, r, s.log(), err)
			return
		}
		// What the platform does is logged as its own, not the admin's.
		ctx := withActor(context.WithValue(r.Context(), platformScopeKey{}, p.ID), "platform:"+p.ID)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

var errNoEndpoint = tollgate.Errorf(tollgate.ENOTFOUND, "no such webhook endpoint")

// scopedEndpoint returns the endpoint id of r's path when r's scope may
// manage it: the operator any, a platform only its own (ENOTFOUND
// otherwise, the store's answer for an endpoint that does not exist). An
// endpoint's platform never changes, so the check holds for what follows.
func (s *Server) scopedEndpoint(r *http.Request) (string, error) {
	id, plat := r.PathValue("id"), webhookScope(r)
	if plat == "" {
		return id, nil
	}
	e, err := s.Webhooks.GetEndpoint(r.Context(), id)
	if err != nil {
		return "", err
	}
	if e.PlatformID != plat {
		return "", errNoEndpoint
	}
	return id, nil
}

// WebhookView is a webhook endpoint as the admin API (and a platform, for
// its own) shows it: never its secret (shown once, by create and
// rotate-secret).
type WebhookView struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	// Platform is the platform the endpoint belongs to (it receives only
	// the events of that platform's accounts); null for the operator's
	// own, which receives every account's.
	Platform    *string   `json:"platform"`
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

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func webhookView(e webhook.Endpoint, now time.Time) WebhookView {
	v := WebhookView{ID: e.ID, Object: "webhook_endpoint", Platform: optString(e.PlatformID), URL: e.URL, Events: e.Events, Description: e.Description,
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

// createWebhookBody is the body of POST /admin/webhooks and POST
// /v1/webhooks.
type createWebhookBody struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	// Platform, from the admin, makes the endpoint the platform's
	// (absent or null: the operator's own). A platform's key may leave it
	// out or name its own platform.
	Platform *string `json:"platform"`
}

// endpointPlatform is the platform a new endpoint belongs to: the
// caller's when a platform asks; the body's, which must exist and not be
// revoked, when the admin names one. Errors: EINVALID, ENOTFOUND.
func (s *Server) endpointPlatform(r *http.Request, asked *string) (string, error) {
	if scope := webhookScope(r); scope != "" {
		if asked != nil && *asked != scope {
			return "", tollgate.Errorf(tollgate.EINVALID, "platform: a platform key registers endpoints of its own platform (%s) only", scope)
		}
		return scope, nil
	}
	if asked == nil {
		return "", nil
	}
	if *asked == "" {
		return "", tollgate.Errorf(tollgate.EINVALID, "platform is a platform id (plat_…), or null for the operator's own endpoint")
	}
	if s.Auth == nil {
		return "", tollgate.Errorf(tollgate.EUNAVAILABLE, "accounts are not configured on this server")
	}
	p, err := s.Auth.Platform(r.Context(), *asked)
	if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
		return "", tollgate.Errorf(tollgate.ENOTFOUND, "no such platform %q", *asked)
	}
	if err != nil {
		return "", err
	}
	if !p.RevokedAt.IsZero() {
		return "", tollgate.Errorf(tollgate.EINVALID, "platform %s is revoked: its endpoints would receive its users' events after its key stopped working", p.ID)
	}
	return p.ID, nil
}

// createWebhook registers an endpoint and answers its secret, once.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var b createWebhookBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	now := s.now()
	plat, err := s.endpointPlatform(r, b.Platform)
	var e webhook.Endpoint
	if err == nil {
		e, err = webhook.NewEndpoint(plat, b.URL, b.Events, b.Description, s.WebhookPolicy, now)
	}
	if err == nil {
		err = s.Webhooks.CreateEndpoint(r.Context(), e)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook endpoint created", "endpoint", e.ID, "platform", e.PlatformID, "origin", webhook.Origin(e.URL), "events", e.Events, "actor", actorOf(r))
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
	q := webhook.EndpointQuery{Platform: webhookScope(r), Limit: limit}
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

// getWebhook answers GET /admin/webhooks/{id} (and a platform's GET
// /v1/webhooks/{id}): one endpoint, without its
// secret.
func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := s.scopedEndpoint(r)
	var e webhook.Endpoint
	if err == nil {
		e, err = s.Webhooks.GetEndpoint(r.Context(), id)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, webhookView(e, s.now()))
}

// deleteWebhook removes an endpoint and its deliveries.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := s.scopedEndpoint(r)
	if err == nil {
		err = s.Webhooks.DeleteEndpoint(r.Context(), id)
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().Info("webhook endpoint deleted", "endpoint", id, "platform", webhookScope(r), "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
}

// rotateWebhookSecret gives an endpoint a new secret, answered once; the
// old one keeps signing for 24 hours.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	id, err := s.scopedEndpoint(r)
	var e webhook.Endpoint
	if err == nil {
		e, err = webhook.Rotate(r.Context(), s.Webhooks, id, now)
	}
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
	id, err := s.scopedEndpoint(r)
	var e webhook.Endpoint
	if err == nil {
		e, err = s.Webhooks.SetEndpointDisabled(r.Context(), id, time.Time{}, "")
	}
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
	id, err := s.scopedEndpoint(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := webhook.DeliveryQuery{Endpoint: id, Status: r.URL.Query().Get("status"), Limit: limit}
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
	id, err := s.scopedEndpoint(r)
	var d webhook.Delivery
	if err == nil {
		d, err = s.Webhooks.RetryDelivery(r.Context(), id, r.PathValue("delivery"), s.now())
	}
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if s.WebhookWake != nil {
		s.WebhookWake()
	}
	s.log().Info("webhook delivery retried", "delivery", d.ID, "endpoint", d.EndpointID, "platform", webhookScope(r), "actor", actorOf(r))
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
			Help: "Webhook delivery attempts by result: delivered, retry (failed, tried again later), failed (given up), lost (the lease ran out first), released (cut by shutdown or given back unsent: due again at once, not a failure)."},
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
