package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/webhook"
	"tollgate/wxpay"
)

// Body limits per route class. Every route has one; a larger body is
// answered 413 before any handler reads it. Each class also has a
// deadline for its body to arrive (Timeouts).
const (
	// SmallBody bounds GET/HEAD requests and tiny JSON bodies.
	SmallBody = 4 << 10
	// JSONBody bounds the service's own JSON requests.
	JSONBody = 16 << 10
	// NotifyBody bounds WeChat Pay notifications (as wxpay reads them).
	NotifyBody = 64 << 10
	// GatewayBody bounds OpenAI-compatible requests (prompts can be long);
	// the gateway applies its own limit too.
	GatewayBody = 8 << 20
	// AudioBody bounds a transcription upload: a 25 MiB file (the
	// gateway's DefaultMaxAudioBytes, as OpenAI's) and its other fields;
	// it has three times ModelBody to arrive.
	AudioBody = 26 << 20
	// SandboxBody bounds requests to the mounted emulator and mock LLM.
	SandboxBody = 1 << 20
)

// bodyClass is a route's bound on its request body: at most limit bytes,
// arriving within deadline (Timeouts).
type bodyClass struct {
	limit    int64
	deadline time.Duration
}

// Payments is what the HTTP layer needs of payment.Service.
type Payments interface {
	CreateOrder(ctx context.Context, r payment.CreateOrderRequest) (payment.OrderResult, error)
	GetOrder(ctx context.Context, account tollgate.AccountID, outTradeNo string) (payment.Order, error)
	// JSAPIParams returns a payable JSAPI order's signed pay-sheet
	// parameters (nil for other orders).
	JSAPIParams(o payment.Order) (*wxpay.V3JSAPIParams, error)
	ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]payment.Order, error)
	QRCodePNG(ctx context.Context, account tollgate.AccountID, outTradeNo string, size int) ([]byte, error)
	Refund(ctx context.Context, account tollgate.AccountID, outTradeNo string) (payment.RefundResult, error)
	// The admin API's: every account's orders and refunds, an order with
	// WeChat Pay's side, and the operator's refund.
	OrdersPage(ctx context.Context, q payment.OrderQuery) ([]payment.Order, error)
	RefundsPage(ctx context.Context, q payment.RefundQuery) ([]payment.RefundRecord, error)
	AdminOrderOf(ctx context.Context, outTradeNo string) (payment.AdminOrder, error)
	// OrdersOf is an account's orders among some out_trade_nos, in one
	// query (the payments of the account detail's lots).
	OrdersOf(ctx context.Context, account tollgate.AccountID, outTradeNos []string) ([]payment.Order, error)
	AdminRefund(ctx context.Context, ask payment.RefundAsk) (payment.RefundResult, error)
	HandleV2Notification(ctx context.Context, body []byte) (int, []byte)
	HandleV3Notification(ctx context.Context, h http.Header, body []byte) (int, []byte)
	AuthenticateAccessToken(ctx context.Context, token string) (tollgate.AccountID, string, error)
}

var _ Payments = (*payment.Service)(nil)

// Route is one extra route mounted by Handler.
type Route struct {
	// Pattern is a ServeMux pattern with a method, e.g. "GET /checkout/{session}".
	Pattern string
	Handler http.Handler
	// Auth puts the route behind API-key authentication (WithAuth), or
	// lets an app through instead: a platform key or the admin token
	// (WithAppOrAuth).
	Auth bool
	// MaxBody bounds the request body; SmallBody when ≤ 0.
	MaxBody int64
}

// Check is one readiness check of GET /readyz, e.g. that the store can
// write. Ping returns nil when ready; otherwise /readyz shows, under Name,
// the message of the *tollgate.Error it returns (safe to show: "the
// database file is read-only"), or just "unavailable" for any other error.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Server is tollgate's HTTP surface (docs/DESIGN.md §4). Set the fields, then
// call Handler once. Required: Ledger, Auth, Pricer. Optional pieces that
// are nil answer 503 (Payments, Gateway) or 404 (Sandbox, MockLLM).
type Server struct {
	Ledger *ledger.Service
	Auth   *auth.Service
	Pricer *pricing.Pricer
	// Payments runs orders and notifications; nil answers 503.
	Payments Payments
	// Gateway serves /v1/chat/completions, /v1/embeddings, /v1/models,
	// /v1/models/{id}, /v1/messages, /v1/responses, /v1/moderations,
	// /v1/completions, /v1/images/generations, /v1/audio/speech,
	// /v1/audio/transcriptions and the Gemini routes
	// (gateway.Gateway.Handler); nil answers 503.
	Gateway http.Handler
	// AdminToken guards /admin/*. Empty refuses every admin request.
	AdminToken string
	// Sandbox is the WeChat Pay emulator, mounted under /sandbox/wxpay/;
	// SandboxInfo is what GET /admin/sandbox shows (merchant test keys).
	Sandbox     http.Handler
	SandboxInfo any
	// MockLLM is the in-process mock upstream, mounted under /mockllm/.
	MockLLM http.Handler
	// Routes are more routes to mount (the web checkout), each with its
	// own body limit and, when Auth is set, behind WithAuth.
	Routes []Route
	// Revenue builds GET /admin/reports/revenue; nil answers 503.
	Revenue RevenueReporter
	// Catalogs is shown by GET /admin/catalog and reloaded by POST
	// /admin/catalog/reload; nil answers 404.
	Catalogs Catalogs
	// Rollout is shown by GET /admin/rollout; nil answers 404.
	Rollout RolloutStatuser
	// Webhooks keeps webhook endpoints and deliveries (/admin/webhooks);
	// nil answers 503. WebhookPolicy is what an endpoint URL may be
	// (https only in production; private hosts only with
	// --webhook-allow-private). WebhookWake, when set, is called after an
	// admin retry so the dispatcher sends it at once.
	Webhooks      webhook.Store
	WebhookPolicy webhook.URLPolicy
	WebhookWake   func()
	// Ready are the checks of GET /readyz.
	Ready []Check
	// Mode is serve's mode ("dev" or "production"), shown by GET /readyz
	// when set.
	Mode string
	// TrustedProxyHeader, when set, names the header the reverse proxy in
	// front puts the client's address in (X-Forwarded-For: its right-most
	// entry; any other header: its whole value); order requests take the
	// payer's IP from it, never from the peer (ClientIP). "" uses the peer.
	TrustedProxyHeader string
	// Timeouts bound slow and idle clients: each route's body deadline
	// follows its size class (Handler), the rest is HTTPServer's.
	Timeouts Timeouts
	// Money counts adjustments (and, given to payment as its Metrics,
	// payments and refunds); nil counts nothing here.
	Money *PaymentMetrics
	// Clock tells the time of defaults (the usage report's period);
	// default tollgate.SystemClock.
	Clock tollgate.Clock
	// Gatherer serves GET /metrics; Registerer receives the HTTP metrics.
	// Both may be the same *prometheus.Registry; nil disables them.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Handler returns the routes behind the middleware chain: request id,
// recover and log, metrics; each route with its own body limit and body
// deadline.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Each body class has its size limit and its deadline to arrive.
	t := s.Timeouts.orDefault()
	small, jsonReq, notify := bodyClass{SmallBody, t.Body}, bodyClass{JSONBody, t.Body}, bodyClass{NotifyBody, t.NotifyBody}
	model, sandbox := bodyClass{GatewayBody, t.ModelBody}, bodyClass{SandboxBody, t.ModelBody}
	audio := bodyClass{AudioBody, 3 * t.ModelBody}
	route := func(pattern string, c bodyClass, h http.Handler) {
		mux.Handle(pattern, WithBodyDeadline(c.deadline, LimitBody(c.limit, h)))
	}
	fn := func(f func(http.ResponseWriter, *http.Request)) http.Handler { return http.HandlerFunc(f) }

	route("GET /healthz", small, fn(s.healthz))
	route("GET /readyz", small, fn(s.readyz))
	if s.Gatherer != nil {
		route("GET /metrics", small, promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	route("POST /admin/accounts", jsonReq, s.withAdmin(fn(s.createAccount)))
	route("GET /admin/accounts", small, s.withAdmin(fn(s.listAccounts)))
	route("PATCH /admin/accounts/{account_id}", jsonReq, s.withAdmin(fn(s.patchAccount)))
	route("GET /admin/accounts/{account_id}", small, s.withAdmin(fn(s.getAccount)))
	route("POST /admin/accounts/{account_id}/adjustments", jsonReq, s.withAdmin(fn(s.adjust)))
	route("GET /admin/usage", small, s.withAdmin(fn(s.adminUsage)))
	route("GET /admin/orders", small, s.withAdmin(s.needPayments(s.adminOrders)))
	route("GET /admin/orders/{out_trade_no}", small, s.withAdmin(s.needPayments(s.adminOrder)))
	route("POST /admin/orders/{out_trade_no}/refund", jsonReq, s.withAdmin(s.needPayments(s.adminRefund)))
	route("GET /admin/refunds", small, s.withAdmin(s.needPayments(s.adminRefunds)))
	route("POST /admin/accounts/{account_id}/keys", small, s.withAdmin(fn(s.createKey)))
	route("GET /admin/accounts/{account_id}/keys", small, s.withAdmin(fn(s.listKeys)))
	route("DELETE /admin/accounts/{account_id}/keys/{key_id}", small, s.withAdmin(fn(s.revokeKey)))
	route("GET /admin/sandbox", small, s.withAdmin(fn(s.sandboxInfo)))
	route("GET /admin/reports/revenue", small, s.withAdmin(fn(s.revenue)))
	route("GET /admin/rollout", small, s.withAdmin(fn(s.rollout)))
	route("GET /admin/catalog", small, s.withAdmin(fn(s.catalogShow)))
	route("POST /admin/catalog/reload", small, s.withAdmin(fn(s.catalogReload)))
	route("POST /admin/platforms", jsonReq, s.withAdmin(s.needAuth(s.createPlatform)))
	route("GET /admin/platforms", small, s.withAdmin(s.needAuth(s.listPlatforms)))
	route("DELETE /admin/platforms/{id}", small, s.withAdmin(s.needAuth(s.revokePlatform)))
	route("POST /admin/webhooks", jsonReq, s.withAdmin(s.needWebhooks(s.createWebhook)))
	route("GET /admin/webhooks", small, s.withAdmin(s.needWebhooks(s.listWebhooks)))
	route("GET /admin/webhooks/{id}", small, s.withAdmin(s.needWebhooks(s.getWebhook)))
	route("DELETE /admin/webhooks/{id}", small, s.withAdmin(s.needWebhooks(s.deleteWebhook)))
	route("POST /admin/webhooks/{id}/rotate-secret", small, s.withAdmin(s.needWebhooks(s.rotateWebhookSecret)))
	route("POST /admin/webhooks/{id}/enable", small, s.withAdmin(s.needWebhooks(s.enableWebhook)))
	route("GET /admin/webhooks/{id}/deliveries", small, s.withAdmin(s.needWebhooks(s.listDeliveries)))
	route("POST /admin/webhooks/{id}/deliveries/{delivery}/retry", small, s.withAdmin(s.needWebhooks(s.retryDelivery)))
	// The same, for a platform's own endpoints, with its platform key.
	route("POST /v1/webhooks", jsonReq, s.withPlatform(s.needWebhooks(s.createWebhook)))
	route("GET /v1/webhooks", small, s.withPlatform(s.needWebhooks(s.listWebhooks)))
	route("GET /v1/webhooks/{id}", small, s.withPlatform(s.needWebhooks(s.getWebhook)))
	route("DELETE /v1/webhooks/{id}", small, s.withPlatform(s.needWebhooks(s.deleteWebhook)))
	route("POST /v1/webhooks/{id}/rotate-secret", small, s.withPlatform(s.needWebhooks(s.rotateWebhookSecret)))
	route("POST /v1/webhooks/{id}/enable", small, s.withPlatform(s.needWebhooks(s.enableWebhook)))
	route("GET /v1/webhooks/{id}/deliveries", small, s.withPlatform(s.needWebhooks(s.listDeliveries)))
	route("POST /v1/webhooks/{id}/deliveries/{delivery}/retry", small, s.withPlatform(s.needWebhooks(s.retryDelivery)))

	route("GET /v1/packages", small, fn(s.packages))
	route("GET /v1/balance", small, s.WithAuth(fn(s.balance)))
	route("GET /v1/usage", small, s.WithAuth(fn(s.usage)))
	route("GET /v1/usage/{id}", small, s.WithAuth(fn(s.usageOne)))
	route("POST /v1/account/keys", jsonReq, s.WithAppOrAuth(s.needAuth(s.createAppUserKey)))

	route("POST /v1/payments/orders", jsonReq, s.WithAuth(s.needPayments(s.createOrder)))
	route("GET /v1/payments/orders", small, s.WithAuth(s.needPayments(s.listOrders)))
	route("GET /v1/payments/orders/{out_trade_no}", small, s.WithAuth(s.needPayments(s.getOrder)))
	route("GET /v1/payments/orders/{out_trade_no}/qr.png", small, s.WithAuth(s.needPayments(s.qrPNG)))
	route("POST /v1/payments/orders/{out_trade_no}/refund", small, s.WithAuth(s.needPayments(s.refund)))
	route("HEAD /wxpay/notify", small, fn(func(w http.ResponseWriter, r *http.Request) {}))
	route("POST /wxpay/notify", notify, s.needPayments(s.notifyV2))
	route("POST /wxpay/notify/v3", notify, s.needPayments(s.notifyV3))

	gw := s.Gateway
	if gw == nil {
		gw = fn(func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "the model gateway is not configured"))
		})
	}
	gw = s.WithAuth(gw)
	route("POST /v1/chat/completions", model, gw)
	route("POST /v1/embeddings", model, gw)
	route("POST /v1/messages", model, gw)
	route("POST /v1/messages/count_tokens", model, gw)
	route("POST /v1/responses", model, gw)
	// tollgate keeps no responses: these answer 404 (gateway.Gateway.ResponseByID).
	route("GET /v1/responses/{id}", small, gw)
	route("DELETE /v1/responses/{id}", small, gw)
	route("GET /v1/responses/{id}/input_items", small, gw)
	route("POST /v1/responses/{id}/cancel", small, gw)
	for _, p := range GeminiRoutes {
		route("POST "+p, model, gw)
	}
	route("GET /v1/models", small, gw)
	route("GET /v1/models/{id...}", small, gw)
	route("POST /v1/moderations", model, gw)
	route("POST /v1/completions", model, gw)
	route("POST /v1/images/generations", model, gw)
	route("POST /v1/audio/speech", model, gw)
	route("POST /v1/audio/transcriptions", audio, gw)

	for _, rt := range s.Routes {
		h, c := rt.Handler, bodyClass{rt.MaxBody, t.Body}
		if rt.Auth {
			h = s.WithAppOrAuth(h)
		}
		if c.limit <= 0 {
			c.limit = SmallBody
		}
		route(rt.Pattern, c, h)
	}
	if s.Sandbox != nil {
		route("/sandbox/wxpay/", sandbox, http.StripPrefix("/sandbox/wxpay", s.Sandbox))
	}
	if s.MockLLM != nil {
		route("/mockllm/", model, http.StripPrefix("/mockllm", s.MockLLM))
	}
	route("/", small, fn(func(w http.ResponseWriter, r *http.Request) { notFound(mux, w, r) }))

	var h http.Handler = mux
	if s.Registerer != nil {
		h = withMetrics(s.Registerer, h)
	}
	return WithRequestID(WithRecoverAndLog(s.log(), h))
}

// notFound answers a request no route matched: 405 with Allow when the
// path has routes for other methods, else 404, both as JSON errors.
func notFound(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := mux.Handler(r2); pat != "" && pat != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteJSON(w, http.StatusMethodNotAllowed, APIError{Error: APIErrorBody{
			Message: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")),
			Type:    "invalid_request_error", Code: "method_not_allowed"}})
		return
	}
	WriteError(w, r, nil, tollgate.Errorf(tollgate.ENOTFOUND, "no route %s %s", r.Method, r.URL.Path))
}

func (s *Server) needPayments(f func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Payments == nil {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "payments are not configured on this server"))
			return
		}
		f(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyzTimeout bounds all of /readyz's checks together.
const readyzTimeout = 3 * time.Second

// readyz runs every check (the store's write probe, Redis's), all within
// readyzTimeout. Failures are logged with their cause and shown by their
// reason: the user-safe message of a *tollgate.Error, else "unavailable".
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	status, checks := http.StatusOK, map[string]string{}
	for _, c := range s.Ready {
		if err := c.Ping(ctx); err != nil {
			s.log().WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
			status, checks[c.Name] = http.StatusServiceUnavailable, notReadyReason(ctx, err)
			continue
		}
		checks[c.Name] = "ok"
	}
	word := "ok"
	if status != http.StatusOK {
		word = "unavailable"
	}
	body := map[string]any{"status": word, "checks": checks}
	if s.Mode != "" {
		body["mode"] = s.Mode
	}
	WriteJSON(w, status, body)
}

// notReadyReason is what /readyz shows for a check that failed with err.
func notReadyReason(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return fmt.Sprintf("no answer within %v", readyzTimeout)
	case tollgate.ErrorCode(err) != tollgate.EINTERNAL:
		return tollgate.ErrorMessage(err)
	}
	return "unavailable"
}
