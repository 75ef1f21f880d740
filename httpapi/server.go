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
)

// Body limits per route class. Every route has one; a larger body is
// answered 413 before any handler reads it.
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
	// SandboxBody bounds requests to the mounted emulator and mock LLM.
	SandboxBody = 1 << 20
)

// Payments is what the HTTP layer needs of payment.Service.
type Payments interface {
	CreateOrder(ctx context.Context, r payment.CreateOrderRequest) (payment.OrderResult, error)
	GetOrder(ctx context.Context, account tollgate.AccountID, outTradeNo string) (payment.Order, error)
	ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]payment.Order, error)
	QRCodePNG(ctx context.Context, account tollgate.AccountID, outTradeNo string, size int) ([]byte, error)
	Refund(ctx context.Context, account tollgate.AccountID, outTradeNo string) (payment.RefundResult, error)
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
	// Auth puts the route behind API-key authentication (WithAuth).
	Auth bool
	// MaxBody bounds the request body; SmallBody when ≤ 0.
	MaxBody int64
}

// Check is one readiness check (a store or Redis ping).
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
	// Gateway serves /v1/chat/completions, /v1/embeddings, /v1/models and
	// /v1/messages (gateway.Gateway.Handler); nil answers 503.
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
	// Rollout is shown by GET /admin/rollout; nil answers 404.
	Rollout RolloutStatuser
	// Ready are the checks of GET /readyz.
	Ready []Check
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
// recover and log, metrics; each route with its own body limit.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, limit int64, h http.Handler) {
		mux.Handle(pattern, LimitBody(limit, h))
	}
	fn := func(f func(http.ResponseWriter, *http.Request)) http.Handler { return http.HandlerFunc(f) }

	route("GET /healthz", SmallBody, fn(s.healthz))
	route("GET /readyz", SmallBody, fn(s.readyz))
	if s.Gatherer != nil {
		route("GET /metrics", SmallBody, promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	route("POST /admin/accounts", SmallBody, s.withAdmin(fn(s.createAccount)))
	route("POST /admin/accounts/{account_id}/keys", SmallBody, s.withAdmin(fn(s.createKey)))
	route("GET /admin/accounts/{account_id}/keys", SmallBody, s.withAdmin(fn(s.listKeys)))
	route("DELETE /admin/accounts/{account_id}/keys/{key_id}", SmallBody, s.withAdmin(fn(s.revokeKey)))
	route("GET /admin/sandbox", SmallBody, s.withAdmin(fn(s.sandboxInfo)))
	route("GET /admin/reports/revenue", SmallBody, s.withAdmin(fn(s.revenue)))
	route("GET /admin/rollout", SmallBody, s.withAdmin(fn(s.rollout)))

	route("GET /v1/packages", SmallBody, fn(s.packages))
	route("GET /v1/balance", SmallBody, s.WithAuth(fn(s.balance)))
	route("GET /v1/usage", SmallBody, s.WithAuth(fn(s.usage)))

	route("POST /v1/payments/orders", JSONBody, s.WithAuth(s.needPayments(s.createOrder)))
	route("GET /v1/payments/orders", SmallBody, s.WithAuth(s.needPayments(s.listOrders)))
	route("GET /v1/payments/orders/{out_trade_no}", SmallBody, s.WithAuth(s.needPayments(s.getOrder)))
	route("GET /v1/payments/orders/{out_trade_no}/qr.png", SmallBody, s.WithAuth(s.needPayments(s.qrPNG)))
	route("POST /v1/payments/orders/{out_trade_no}/refund", SmallBody, s.WithAuth(s.needPayments(s.refund)))
	route("HEAD /wxpay/notify", SmallBody, fn(func(w http.ResponseWriter, r *http.Request) {}))
	route("POST /wxpay/notify", NotifyBody, s.needPayments(s.notifyV2))
	route("POST /wxpay/notify/v3", NotifyBody, s.needPayments(s.notifyV3))

	gw := s.Gateway
	if gw == nil {
		gw = fn(func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EUNAVAILABLE, "the model gateway is not configured"))
		})
	}
	gw = s.WithAuth(gw)
	route("POST /v1/chat/completions", GatewayBody, gw)
	route("POST /v1/embeddings", GatewayBody, gw)
	route("POST /v1/messages", GatewayBody, gw)
	route("POST /v1/messages/count_tokens", GatewayBody, gw)
	route("GET /v1/models", SmallBody, gw)

	for _, rt := range s.Routes {
		h, limit := rt.Handler, rt.MaxBody
		if rt.Auth {
			h = s.WithAuth(h)
		}
		if limit <= 0 {
			limit = SmallBody
		}
		route(rt.Pattern, limit, h)
	}
	if s.Sandbox != nil {
		route("/sandbox/wxpay/", SandboxBody, http.StripPrefix("/sandbox/wxpay", s.Sandbox))
	}
	if s.MockLLM != nil {
		route("/mockllm/", GatewayBody, http.StripPrefix("/mockllm", s.MockLLM))
	}
	route("/", SmallBody, fn(func(w http.ResponseWriter, r *http.Request) { notFound(mux, w, r) }))

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
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
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

// readyz pings every dependency, each with a short deadline. Failures are
// logged with their cause and shown only as "unavailable".
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status, checks := http.StatusOK, map[string]string{}
	for _, c := range s.Ready {
		if err := c.Ping(ctx); err != nil {
			s.log().WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
			status, checks[c.Name] = http.StatusServiceUnavailable, "unavailable"
			continue
		}
		checks[c.Name] = "ok"
	}
	word := "ok"
	if status != http.StatusOK {
		word = "unavailable"
	}
	WriteJSON(w, status, map[string]any{"status": word, "checks": checks})
}
