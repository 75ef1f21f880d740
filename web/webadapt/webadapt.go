// Package webadapt adapts tollgate's services (payment.Service,
// ledger.Service, pricing.Pricer, wxpay.OAuthClient) to the web package's
// interfaces, so the server can mount the checkout with a few lines. It
// holds no logic of its own beyond converting types; web itself imports
// none of these packages.
//
// Mounting, in the server (httpapi or cmd/tollgate):
//
//	h := &web.Handler{
//		Secret: sessionSecret, MerchantName: name, Sandbox: sandbox,
//		Orders: webadapt.Orders{Payments: pay}, Refunder: webadapt.Orders{Payments: pay},
//		Accounts: webadapt.Accounts{Ledger: led}, Catalog: webadapt.Catalog{Pricer: pr},
//		OAuth: webadapt.OAuth{Client: oauthClient}, // nil: WeChat's browser gets the QR code
//		ClientIP: func(r *http.Request) string { return httpapi.ClientIP(r, trustedProxyHeader) },
//		Account: func(r *http.Request) (tollgate.AccountID, error) {
//			c, ok := tollgate.CallerFrom(r.Context())
//			switch {
//			case !ok:
//				return "", tollgate.Errorf(tollgate.EUNAUTHORIZED, "an API key is required")
//			case c.Provisional:
//				return "", tollgate.Errorf(tollgate.EFORBIDDEN, "a provisional access token cannot open a checkout")
//			}
//			return c.Account, nil
//		},
//	}
//	if err := h.Check(); err != nil { ... }
//	for _, rt := range h.Routes() {
//		next := rt.Handler
//		if rt.Auth {
//			next = server.WithAuth(next)
//		}
//		mux.Handle(rt.Pattern, httpapi.LimitBody(rt.MaxBody, next))
//	}
package webadapt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/web"
	"tollgate/wxpay"
)

// Orders is web.Orders and web.Refunder over a payment.Service.
type Orders struct {
	Payments *payment.Service
}

var (
	_ web.Orders   = Orders{}
	_ web.Refunder = Orders{}
	_ web.Accounts = Accounts{}
	_ web.Catalog  = Catalog{}
)

// CreateOrder implements web.Orders.
func (o Orders) CreateOrder(ctx context.Context, account tollgate.AccountID, req web.OrderRequest) (web.Order, error) {
	r, err := o.Payments.CreateOrder(ctx, payment.CreateOrderRequest{
		Account: account, IdempotencyKey: req.IdempotencyKey, PackageID: req.PackageID, DeviceFingerprint: req.DeviceFingerprint,
		Method: req.Method, OpenID: req.OpenID, ClientIP: req.ClientIP, Metadata: req.Metadata,
	})
	if err != nil {
		return web.Order{}, err
	}
	return web.Order{
		OutTradeNo: r.OutTradeNo, Status: string(r.Status), Fen: r.AmountFen, Credits: r.Credits,
		PackageID: req.PackageID, ExpiresAt: r.ExpiresAt, Method: r.Method, H5URL: r.H5URL, JSAPI: jsapi(r.JSAPI),
	}, nil
}

// jsapi converts the pay sheet's parameters.
func jsapi(p *wxpay.V3JSAPIParams) *web.JSAPIParams {
	if p == nil {
		return nil
	}
	return &web.JSAPIParams{AppID: p.AppID, TimeStamp: p.TimeStamp, NonceStr: p.NonceStr, Package: p.Package,
		SignType: p.SignType, PaySign: p.PaySign}
}

// GetOrder implements web.Orders.
func (o Orders) GetOrder(ctx context.Context, account tollgate.AccountID, no string) (web.Order, error) {
	p, err := o.Payments.GetOrder(ctx, account, no)
	if err != nil {
		return web.Order{}, err
	}
	w := Order(p)
	// A payable JSAPI order's pay sheet (nil otherwise; payment reuses a
	// sheet signed within the minute, so polls cost no signature).
	// Without it the page still shows the status, which is what a poll
	// is for (payment logs why it could not sign).
	if sheet, err := o.Payments.JSAPIParams(p); err == nil {
		w.JSAPI = jsapi(sheet)
	}
	return w, nil
}

// ListOrders implements web.Orders.
func (o Orders) ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]web.Order, error) {
	ps, err := o.Payments.ListOrders(ctx, account, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.Order, len(ps))
	for i, p := range ps {
		out[i] = Order(p)
	}
	return out, nil
}

// QRCodePNG implements web.Orders.
func (o Orders) QRCodePNG(ctx context.Context, account tollgate.AccountID, no string, size int) ([]byte, error) {
	return o.Payments.QRCodePNG(ctx, account, no, size)
}

// Refund implements web.Refunder.
func (o Orders) Refund(ctx context.Context, account tollgate.AccountID, no string) (web.Refund, error) {
	r, err := o.Payments.Refund(ctx, account, no)
	if err != nil {
		return web.Refund{}, err
	}
	return web.Refund{Fen: r.RefundFen, Credits: r.Credits, Status: string(r.Status)}, nil
}

// Order converts a payment order to what the page shows.
func Order(p payment.Order) web.Order {
	return web.Order{
		OutTradeNo: p.OutTradeNo, Status: string(p.Status), Fen: p.Fen, Credits: p.Credits,
		PackageID: p.PackageID, ExpiresAt: p.ExpiresAt, CreatedAt: p.CreatedAt, Method: p.PayMethod(), H5URL: p.H5URL,
	}
}

// OAuth is web.OpenIDs over WeChat's OAuth client: a code WeChat refused
// (wxpay.ErrOAuthCode: invalid, expired or used) is also web.ErrOAuthCode,
// which the checkout answers with "sign in again" rather than "WeChat is
// unreachable".
type OAuth struct {
	Client *wxpay.OAuthClient
}

var _ web.OpenIDs = OAuth{}

// AuthorizeRedirect implements web.OpenIDs.
func (o OAuth) AuthorizeRedirect(redirectURI, state string) string {
	return o.Client.AuthorizeRedirect(redirectURI, state)
}

// OpenID implements web.OpenIDs.
func (o OAuth) OpenID(ctx context.Context, code string) (string, error) {
	id, err := o.Client.OpenID(ctx, code)
	if errors.Is(err, wxpay.ErrOAuthCode) {
		return "", fmt.Errorf("%w: %w", web.ErrOAuthCode, err)
	}
	return id, err
}

// DefaultUsageLimit bounds the usage records read for the chart.
const DefaultUsageLimit = 20000

// Accounts is web.Accounts over a ledger.Service.
type Accounts struct {
	Ledger *ledger.Service
	// UsageLimit bounds the records read for the 30-day chart
	// (DefaultUsageLimit when 0); an account busier than that sees its
	// oldest days undercounted.
	UsageLimit int
}

// Balance implements web.Accounts.
func (a Accounts) Balance(ctx context.Context, account tollgate.AccountID) (web.Balance, error) {
	b, err := a.Ledger.Balance(ctx, account)
	if err != nil {
		return web.Balance{}, err
	}
	return web.Balance{Credits: b.Credits, Held: b.Held, Provisional: b.Provisional, Debt: b.Debt}, nil
}

// ListUsage implements web.Accounts with ledger.ListUsage (newest first),
// stopping at the first record older than since.
func (a Accounts) ListUsage(ctx context.Context, account tollgate.AccountID, since time.Time) ([]web.Usage, error) {
	limit := a.UsageLimit
	if limit <= 0 {
		limit = DefaultUsageLimit
	}
	us, err := a.Ledger.ListUsage(ctx, account, limit)
	if err != nil {
		return nil, err
	}
	var out []web.Usage
	for _, u := range us {
		if u.CreatedAt.Before(since) {
			break
		}
		out = append(out, web.Usage{Model: u.Model, Credits: u.Credits, CreatedAt: u.CreatedAt})
	}
	return out, nil
}

// ListAdjustments implements web.Accounts with ledger.AccountAdjustments.
func (a Accounts) ListAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]web.Adjustment, error) {
	adjs, err := a.Ledger.AccountAdjustments(ctx, account, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.Adjustment, 0, len(adjs))
	for _, x := range adjs {
		out = append(out, web.Adjustment{Credits: x.Credits, CreatedAt: x.CreatedAt})
	}
	return out, nil
}

// DefaultPopular are the models the checkout estimates tokens for, in this
// order, when they are priced.
var DefaultPopular = []string{"gpt-4o-mini", "deepseek-chat", "claude-sonnet-4", "qwen-plus", "gpt-4o"}

// Catalog is web.Catalog over a pricing.Pricer.
type Catalog struct {
	Pricer *pricing.Pricer
	// Popular orders the models shown (DefaultPopular when nil); priced
	// models not in it follow, sorted.
	Popular []string
	// Advertised, when set, gives the models shown instead, in order:
	// the catalog's models the checkout advertises.
	Advertised func() []string
}

// Packages implements web.Catalog.
func (c Catalog) Packages(context.Context) ([]web.Package, error) {
	ps := c.Pricer.Packages()
	out := make([]web.Package, len(ps))
	for i, p := range ps {
		out[i] = web.Package{ID: p.ID, Fen: p.Fen, Credits: p.Credits, Labels: p.Labels}
	}
	return out, nil
}

// ModelPrices implements web.Catalog: each model's cost of 1M input and
// 1M output tokens, in credits, and its per-call fee apart. A model whose price cannot be had now (a
// rate never fetched) is left out rather than failing the page.
func (c Catalog) ModelPrices(ctx context.Context) ([]web.ModelPrice, error) {
	popular := c.Popular
	if popular == nil {
		popular = DefaultPopular
	}
	models := c.Pricer.Models()
	var order []string
	for _, m := range popular {
		if slices.Contains(models, m) {
			order = append(order, m)
		}
	}
	for _, m := range models {
		if !slices.Contains(order, m) {
			order = append(order, m)
		}
	}
	if c.Advertised != nil {
		order = c.Advertised()
	}
	var out []web.ModelPrice
	for _, m := range order {
		// The token prices without the per-call fee (TokenCost), which
		// is shown on its own: Cost would add it to each 1M.
		in, err1 := c.Pricer.TokenCost(ctx, m, tollgate.Tokens{Input: 1_000_000})
		outp, err2 := c.Pricer.TokenCost(ctx, m, tollgate.Tokens{Output: 1_000_000})
		call, err3 := c.Pricer.Cost(ctx, m, tollgate.Tokens{})
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, web.ModelPrice{Model: m, Input: in, Output: outp, PerCall: call})
	}
	return out, nil
}

// Users finds or creates an app's users' accounts through the auth
// service (web.AppUsers).
type Users struct{ Auth *auth.Service }

var _ web.AppUsers = Users{}

// PlatformAccount implements web.AppUsers.
func (u Users) PlatformAccount(ctx context.Context, platform, externalID string) (tollgate.AccountID, error) {
	id, _, err := u.Auth.PlatformAccount(ctx, platform, externalID)
	if err != nil {
		return "", err
	}
	// A disabled account is sold nothing: no key of it could spend the
	// credit, so the payment would have to be refunded by hand.
	if err := u.Auth.CheckAccount(ctx, id); err != nil {
		return "", err
	}
	return id, nil
}

// ReturnURLHosts implements web.AppUsers: a revoked platform is refused.
func (u Users) ReturnURLHosts(ctx context.Context, platform string) ([]string, error) {
	p, err := u.Auth.Platform(ctx, platform)
	if err != nil {
		return nil, err
	}
	if !p.RevokedAt.IsZero() {
		return nil, tollgate.Errorf(tollgate.EFORBIDDEN, "platform %s is revoked", platform)
	}
	return p.ReturnURLHosts, nil
}
