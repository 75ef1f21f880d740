// Package web is tollgate's hosted checkout: signed checkout links
// (POST /v1/checkout/sessions), the checkout page where a user picks a
// package and pays — a QR code on a desktop, WeChat Pay's H5 page in a
// phone's browser, the JSAPI payment sheet inside WeChat (after WeChat's
// OAuth gives the payer's openid) — and the account page with the
// balance, orders, refunds and a usage chart. It talks to the rest of
// tollgate only through the small interfaces below, so it imports no
// service package; it is not the API server and does not authenticate API
// keys (the server does, and tells it the account).
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"tollgate"
)

// Order is an order as the checkout page shows it.
type Order struct {
	OutTradeNo string
	// Status is WeChat Pay's trade_state: NOTPAY, USERPAYING, SUCCESS,
	// CLOSED, REFUND or PAYERROR.
	Status    string
	Fen       tollgate.Fen
	Credits   tollgate.Credits
	PackageID string
	ExpiresAt time.Time
	CreatedAt time.Time
	// Method is how the order is paid: MethodNative (a QR code; "" is
	// read as native), MethodH5 or MethodJSAPI.
	Method string
	// H5URL is WeChat Pay's h5_url of an H5 order (the page adds its
	// redirect_url), "" otherwise.
	H5URL string
	// JSAPI is what WeixinJSBridge's getBrandWCPayRequest takes for a JSAPI
	// order, nil otherwise.
	JSAPI *JSAPIParams
}

// Payment methods, spelled as POST /v1/payments/orders spells them.
const (
	MethodNative = "native" // a QR code scanned with WeChat
	MethodH5     = "h5"     // a mobile browser sent to WeChat Pay's h5_url
	MethodJSAPI  = "jsapi"  // the payment sheet inside WeChat
)

// JSAPIParams are the arguments of WeixinJSBridge.invoke(
// 'getBrandWCPayRequest', …), signed by the merchant (wxpay.V3JSAPIParams).
type JSAPIParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// OrderRequest is what the checkout asks Orders.CreateOrder for.
type OrderRequest struct {
	PackageID         string
	DeviceFingerprint string
	IdempotencyKey    string
	// Method is MethodNative, MethodH5 or MethodJSAPI.
	Method string
	// OpenID is the payer's openid under the merchant's appid (JSAPI
	// only), from WeChat's OAuth.
	OpenID string
	// ClientIP is the payer's IP address (required for H5).
	ClientIP string
	// Metadata is the session's metadata, stored on the order.
	Metadata json.RawMessage
}

// Order statuses, spelled as WeChat Pay's trade_state.
const (
	StatusNotPay     = "NOTPAY"
	StatusUserPaying = "USERPAYING"
	StatusSuccess    = "SUCCESS"
	StatusClosed     = "CLOSED"
	StatusRefund     = "REFUND"
	StatusPayError   = "PAYERROR"
)

// Package is a fixed offer on sale.
type Package struct {
	ID      string
	Fen     tollgate.Fen
	Credits tollgate.Credits
	// Labels are the package's name per language ("zh", "en"); none
	// shows just the price and credits.
	Labels map[string]string
}

// Branding is what the pages show of the merchant (a catalog's branding).
type Branding struct {
	Name string
	// Accent is the pages' accent colour, "#rrggbb" or "#rgb" (already
	// checked); "" keeps the default green.
	Accent string
	// Support says how to reach the merchant; Footer is a line of text
	// at the foot of every page.
	Support, Footer string
	// Logo is an image shown beside the name, of type LogoType.
	Logo     []byte
	LogoType string
}

// ModelPrice is what 1M tokens of a model cost in credits (the tokens
// alone), and PerCall the fee every call of it costs besides (0: none).
type ModelPrice struct {
	Model   string
	Input   tollgate.Credits
	Output  tollgate.Credits
	PerCall tollgate.Credits
}

// Balance is an account's balance (see ledger.Balance).
type Balance struct {
	Credits     tollgate.Credits
	Held        tollgate.Credits
	Provisional tollgate.Credits
	Debt        tollgate.Credits
}

// Usage is one metered request, as much as the chart needs.
type Usage struct {
	Model     string
	Credits   tollgate.Credits
	CreatedAt time.Time
}

// Adjustment is credit the operator added (Credits > 0) or removed
// (Credits < 0) by hand (ledger.Adjustment).
type Adjustment struct {
	Credits   tollgate.Credits
	CreatedAt time.Time
}

// Refund is what asking for a refund returned.
type Refund struct {
	Fen     tollgate.Fen
	Credits tollgate.Credits
	// Status is pending, succeeded or failed.
	Status string
}

// Orders creates and reads WeChat Pay orders (payment.Service). Methods are
// safe for concurrent use.
type Orders interface {
	// CreateOrder places an order for a package, paid by req.Method. The
	// same IdempotencyKey with the same request returns the same order.
	// Errors: EINVALID (bad fingerprint, a JSAPI order without openid, an
	// H5 order without client IP, a method the configuration cannot take;
	// nothing is sent to WeChat Pay), ENOTFOUND (package), ECONFLICT (key
	// reused with another request), EUNAVAILABLE, EUPSTREAM.
	CreateOrder(ctx context.Context, account tollgate.AccountID, req OrderRequest) (Order, error)
	// GetOrder returns an order of account. Errors: ENOTFOUND (no such
	// order, or another account's).
	GetOrder(ctx context.Context, account tollgate.AccountID, outTradeNo string) (Order, error)
	// ListOrders returns up to limit orders of account, newest first.
	ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]Order, error)
	// QRCodePNG returns the order's code_url as a PNG of about size
	// pixels. Errors: ENOTFOUND, ECONFLICT (no code_url yet).
	QRCodePNG(ctx context.Context, account tollgate.AccountID, outTradeNo string, size int) ([]byte, error)
}

// Refunder refunds the unused part of a paid order (payment.Service.Refund).
// Errors: ENOTFOUND, ECONFLICT (not paid or nothing left), EUPSTREAM,
// EUNAVAILABLE.
type Refunder interface {
	Refund(ctx context.Context, account tollgate.AccountID, outTradeNo string) (Refund, error)
}

// Accounts reads balances and usage (ledger.Service).
type Accounts interface {
	// Balance returns account's balance. An unknown account may be
	// ENOTFOUND or a zero balance.
	Balance(ctx context.Context, account tollgate.AccountID) (Balance, error)
	// ListUsage returns account's usage records created at or after
	// since, in any order.
	ListUsage(ctx context.Context, account tollgate.AccountID, since time.Time) ([]Usage, error)
	// ListAdjustments returns up to limit of account's adjustments,
	// newest first.
	ListAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]Adjustment, error)
}

// OpenIDs is WeChat's web OAuth with scope snsapi_base (*wxpay.OAuthClient;
// webadapt.OAuth also marks refused codes with ErrOAuthCode): the page
// sends a browser inside WeChat to AuthorizeRedirect, WeChat sends it back
// to redirectURI with a code and the state, and OpenID exchanges the code.
type OpenIDs interface {
	// AuthorizeRedirect returns the URL of WeChat's authorize page that
	// sends the browser back to redirectURI with ?code=…&state=state.
	AuthorizeRedirect(redirectURI, state string) string
	// OpenID exchanges a code (single use, minutes) for the user's openid.
	// An invalid, expired or used code is an error wrapping ErrOAuthCode;
	// any other error means WeChat could not answer.
	OpenID(ctx context.Context, code string) (string, error)
}

// ErrOAuthCode is an OAuth code WeChat refused: invalid, expired or
// already used. OpenIDs implementations wrap it.
var ErrOAuthCode = errors.New("web: WeChat refused the OAuth code (invalid or already used)")

// Catalog is what is on sale and what models cost (pricing.Pricer).
type Catalog interface {
	// Packages returns the packages in display order.
	Packages(ctx context.Context) ([]Package, error)
	// ModelPrices returns the models to show "about N tokens" for, most
	// popular first; the page shows the first few.
	ModelPrices(ctx context.Context) ([]ModelPrice, error)
}

// Handler serves the checkout and account pages and their JSON calls. Set
// the fields, then use Routes (to mount each route with its own auth and
// body limit) or ServeHTTP. Required: Secret, Orders, Accounts, Catalog,
// Account.
type Handler struct {
	// Secret signs checkout links (HMAC-SHA256, at least MinSecretLen
	// bytes). Every instance must share it; rotating it voids open links.
	Secret []byte
	// SessionTTL is how long a link is valid (DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// PublicURL is the scheme and host links start with, e.g.
	// "https://pay.example.com"; empty means the request's own host.
	PublicURL string
	// MerchantName is shown on the page, e.g. "Example AI".
	MerchantName string
	// Branding, when set, is asked on every page for the merchant's
	// name, colour, logo, support contact and footer (it wins over
	// MerchantName), so a catalog reload shows at once.
	Branding func() Branding
	// Sandbox shows the "Pay with the emulator" buttons, which call the
	// emulator mounted at SandboxPath ("/sandbox/wxpay" when empty).
	Sandbox     bool
	SandboxPath string

	// OAuth gets the openid of a browser inside WeChat, which then pays
	// with the JSAPI payment sheet. Nil (no app secret configured): such a
	// browser is shown the QR code, with a note.
	OAuth OpenIDs
	// ClientIP returns the payer's IP address, which H5 orders need
	// (honouring the server's trusted proxy header); nil means the host
	// of RemoteAddr.
	ClientIP func(r *http.Request) string

	Orders   Orders
	Refunder Refunder // nil hides refund buttons

	// RefundByOperator (the server's --refund-policy admin): users cannot
	// refund their own payments, so the account page shows no refund
	// button but a line saying the operator makes refunds and how to
	// reach them (Branding's Support, when set). Otherwise RefundWindow,
	// when positive, is how long after an order a refund button shows
	// (the server's --refund-window; 0: always).
	RefundByOperator bool
	RefundWindow     time.Duration
	Accounts         Accounts
	Catalog          Catalog

	// Account returns the account of an authenticated POST
	// /v1/checkout/sessions request (the server's API-key middleware put
	// it in the context). It must refuse provisional access tokens: a
	// session may create orders and refunds. Errors: EUNAUTHORIZED,
	// EFORBIDDEN.
	Account func(r *http.Request) (tollgate.AccountID, error)

	// Users finds or creates the account of an app's user, for a request
	// the server let through as an app (tollgate.AppFrom: a platform key
	// or the admin token). Nil: external_id is refused.
	Users AppUsers
	// DevMode allows http:// return URLs to any host (a development
	// server); otherwise only https://, or http:// to a loopback host.
	DevMode bool

	// Clock is the clock (SystemClock when nil). Logger logs internal
	// errors (never tokens); nil discards.
	Clock  tollgate.Clock
	Logger *slog.Logger

	muxOnce sync.Once
	mux     *http.ServeMux
}

// AppUsers finds or creates an app's users' accounts (webadapt.Users over
// auth.Service).
type AppUsers interface {
	// PlatformAccount returns the account of the user externalID of
	// platform ("" for accounts without a platform), made when missing.
	// Errors: EINVALID, ENOTFOUND (no such platform).
	PlatformAccount(ctx context.Context, platform, externalID string) (tollgate.AccountID, error)
	// ReturnURLHosts returns a platform's allowed return hosts (none:
	// any). Errors: ENOTFOUND, EFORBIDDEN (revoked).
	ReturnURLHosts(ctx context.Context, platform string) ([]string, error)
}

// Route is one route of the handler, for a server that mounts each with
// its own middleware.
type Route struct {
	// Pattern is a net/http ServeMux pattern with method, e.g.
	// "GET /checkout/{session}".
	Pattern string
	Handler http.Handler
	// Auth is true when the server must authenticate an API key first
	// (Handler.Account reads the result).
	Auth bool
	// MaxBody bounds the request body.
	MaxBody int64
}

// Body limits of the routes.
const (
	smallBody = 4 << 10
	jsonBody  = 16 << 10
)

// Routes returns every route. Only POST /v1/checkout/sessions needs API-key
// authentication; the others are authorised by the signed session in their
// path.
func (h *Handler) Routes() []Route {
	return []Route{
		{"POST /v1/checkout/sessions", http.HandlerFunc(h.createSession), true, jsonBody},
		{"POST /v1/account/links", http.HandlerFunc(h.createAccountLink), true, jsonBody},
		{"GET /checkout/{session}", http.HandlerFunc(h.checkoutPage), false, smallBody},
		{"GET /checkout/{session}/wechat", http.HandlerFunc(h.wechatCallback), false, smallBody},
		{"POST /checkout/{session}/orders", http.HandlerFunc(h.createOrder), false, jsonBody},
		{"GET /checkout/{session}/orders/{no}", http.HandlerFunc(h.getOrder), false, smallBody},
		{"GET /checkout/{session}/orders/{no}/qr.png", http.HandlerFunc(h.qrPNG), false, smallBody},
		{"POST /checkout/{session}/orders/{no}/refund", http.HandlerFunc(h.refund), false, jsonBody},
		{"GET /account/{session}", http.HandlerFunc(h.accountPage), false, smallBody},
		{"GET /web/assets/{file}", http.HandlerFunc(h.asset), false, smallBody},
		{"GET /web/brand.css", http.HandlerFunc(h.brandCSS), false, smallBody},
		{"GET /web/logo", http.HandlerFunc(h.logo), false, smallBody},
	}
}

// ServeHTTP serves every route on a private mux, each with its body limit.
// POST /v1/checkout/sessions then relies on Account alone to authenticate.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.muxOnce.Do(func() { h.mux = h.newMux() })
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) newMux() *http.ServeMux {
	m := http.NewServeMux()
	for _, rt := range h.Routes() {
		next := rt.Handler
		limit := rt.MaxBody
		m.Handle(rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
		}))
	}
	return m
}

// Check reports the first missing required field, so the server fails at
// start-up rather than on the first request.
func (h *Handler) Check() error {
	switch {
	case len(h.Secret) < MinSecretLen:
		return errors.New("web: Secret must be at least 32 bytes")
	case h.Orders == nil, h.Accounts == nil, h.Catalog == nil:
		return errors.New("web: Orders, Accounts and Catalog are required")
	case h.Account == nil:
		return errors.New("web: Account is required")
	}
	return nil
}

func (h *Handler) now() time.Time { return tollgate.ClockOr(h.Clock).Now() }

func (h *Handler) ttl() time.Duration {
	if h.SessionTTL > 0 {
		return h.SessionTTL
	}
	return DefaultSessionTTL
}

func (h *Handler) sandboxPath() string {
	if h.SandboxPath != "" {
		return h.SandboxPath
	}
	return "/sandbox/wxpay"
}

func (h *Handler) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}
