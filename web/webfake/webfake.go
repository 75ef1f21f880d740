// Package webfake is an in-memory order flow behind web's interfaces, for
// tests and demos of the checkout pages: orders, balances, usage, refunds
// and a tiny emulator API (POST /sim/orders/{no}/pay and /fail) that acts
// as the payer the way wxpaysim does. It keeps state like the real
// services (idempotency keys, expiry, one credit per payment) but talks to
// no WeChat Pay. It is not for production.
package webfake

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"tollgate"
	"tollgate/web"
)

// Flow is the fake. Set the exported fields before use; the zero value
// sells DefaultPackages with DefaultModels' prices. Safe for concurrent
// use.
type Flow struct {
	// Offers and Models are what the catalog returns.
	Offers []web.Package
	Models []web.ModelPrice
	// OrderTTL is how long an order stays payable (30 minutes when 0).
	OrderTTL time.Duration
	// Clock is the clock (SystemClock when nil).
	Clock tollgate.Clock

	mu       sync.Mutex
	seq      int
	orders   map[string]*record
	keys     map[string]idem
	balances map[tollgate.AccountID]web.Balance
	usage    map[tollgate.AccountID][]web.Usage
}

type record struct {
	account tollgate.AccountID
	order   web.Order
}

type idem struct {
	account     tollgate.AccountID
	pkg, fp, no string
}

// DefaultPackages are the packages of the zero Flow (as pricing's default
// configuration).
var DefaultPackages = []web.Package{
	{ID: "starter", Fen: 1000, Credits: 1_400_000},
	{ID: "plus", Fen: 5000, Credits: 7_200_000},
	{ID: "pro", Fen: 20000, Credits: 30_000_000},
}

// DefaultModels are the model prices of the zero Flow, in credits per 1M
// tokens at a base price of 1 USD.
var DefaultModels = []web.ModelPrice{
	{Model: "gpt-4o-mini", Input: 150_000, Output: 600_000},
	{Model: "deepseek-chat", Input: 277_778, Output: 416_667},
	{Model: "claude-sonnet-4", Input: 3_000_000, Output: 15_000_000},
}

var (
	_ web.Orders   = (*Flow)(nil)
	_ web.Refunder = (*Flow)(nil)
	_ web.Accounts = (*Flow)(nil)
	_ web.Catalog  = (*Flow)(nil)
)

func (f *Flow) now() time.Time { return tollgate.ClockOr(f.Clock).Now() }

func (f *Flow) initLocked() {
	if f.orders == nil {
		f.orders = map[string]*record{}
		f.keys = map[string]idem{}
		f.balances = map[tollgate.AccountID]web.Balance{}
		f.usage = map[tollgate.AccountID][]web.Usage{}
	}
}

// Packages implements web.Catalog.
func (f *Flow) Packages(context.Context) ([]web.Package, error) {
	if f.Offers != nil {
		return f.Offers, nil
	}
	return DefaultPackages, nil
}

// ModelPrices implements web.Catalog.
func (f *Flow) ModelPrices(context.Context) ([]web.ModelPrice, error) {
	if f.Models != nil {
		return f.Models, nil
	}
	return DefaultModels, nil
}

var validFingerprint = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// CreateOrder implements web.Orders like payment.Service: a bad
// fingerprint is EINVALID, an unknown package ENOTFOUND, the same key with
// other arguments ECONFLICT, and the same key with the same arguments the
// same order.
func (f *Flow) CreateOrder(ctx context.Context, account tollgate.AccountID, packageID, fp, key string) (web.Order, error) {
	if !validFingerprint.MatchString(fp) {
		return web.Order{}, tollgate.Errorf(tollgate.EINVALID, "device_fingerprint is malformed")
	}
	pkgs, _ := f.Packages(ctx)
	var pkg *web.Package
	for i := range pkgs {
		if pkgs[i].ID == packageID {
			pkg = &pkgs[i]
		}
	}
	if pkg == nil {
		return web.Order{}, tollgate.Errorf(tollgate.ENOTFOUND, "no package %q", packageID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	k := string(account) + "\x00" + key
	if prev, ok := f.keys[k]; ok {
		if prev.pkg != packageID || prev.fp != fp {
			return web.Order{}, tollgate.Errorf(tollgate.ECONFLICT, "Idempotency-Key reused with another request")
		}
		return f.orderLocked(prev.no), nil
	}
	f.seq++
	now := f.now()
	ttl := f.OrderTTL
	if ttl <= 0 {
		ttl = 30 * time.Minute
	}
	no := fmt.Sprintf("TG%s%04d", now.UTC().Format("20060102"), f.seq)
	f.orders[no] = &record{account: account, order: web.Order{
		OutTradeNo: no, Status: web.StatusNotPay, Fen: pkg.Fen, Credits: pkg.Credits,
		PackageID: pkg.ID, ExpiresAt: now.Add(ttl), CreatedAt: now,
	}}
	f.keys[k] = idem{account: account, pkg: packageID, fp: fp, no: no}
	return f.orderLocked(no), nil
}

// orderLocked returns an order, closing it first if it expired unpaid (as
// the real poller does).
func (f *Flow) orderLocked(no string) web.Order {
	r := f.orders[no]
	if pending(r.order.Status) && !f.now().Before(r.order.ExpiresAt) {
		r.order.Status = web.StatusClosed
	}
	return r.order
}

func pending(s string) bool { return s == web.StatusNotPay || s == web.StatusUserPaying }

// GetOrder implements web.Orders.
func (f *Flow) GetOrder(_ context.Context, account tollgate.AccountID, no string) (web.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	r, ok := f.orders[no]
	if !ok || r.account != account {
		return web.Order{}, tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	return f.orderLocked(no), nil
}

// ListOrders implements web.Orders.
func (f *Flow) ListOrders(_ context.Context, account tollgate.AccountID, limit int) ([]web.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	var out []web.Order
	for no, r := range f.orders {
		if r.account == account {
			out = append(out, f.orderLocked(no))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OutTradeNo > out[j].OutTradeNo })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// QRCodePNG implements web.Orders with a real QR code of a weixin:// URL.
func (f *Flow) QRCodePNG(ctx context.Context, account tollgate.AccountID, no string, size int) ([]byte, error) {
	o, err := f.GetOrder(ctx, account, no)
	if err != nil {
		return nil, err
	}
	return qrcode.Encode("weixin://wxpay/bizpayurl?pr=fake"+o.OutTradeNo, qrcode.Medium, size)
}

// Pay acts as the payer: a pending order turns SUCCESS and its credits are
// added once. Errors: ENOTFOUND, ECONFLICT (closed, failed or expired).
func (f *Flow) Pay(no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finishLocked(no, web.StatusSuccess)
}

// Fail makes a pending order's payment fail (PAYERROR).
func (f *Flow) Fail(no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finishLocked(no, web.StatusPayError)
}

func (f *Flow) finishLocked(no, status string) error {
	f.initLocked()
	r, ok := f.orders[no]
	if !ok {
		return tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	if o := f.orderLocked(no); !pending(o.Status) {
		return tollgate.Errorf(tollgate.ECONFLICT, "order is %s", o.Status)
	}
	r.order.Status = status
	if status == web.StatusSuccess {
		b := f.balances[r.account]
		b.Credits += r.order.Credits
		f.balances[r.account] = b
	}
	return nil
}

// Expire makes an order's payment window end now.
func (f *Flow) Expire(no string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	if r, ok := f.orders[no]; ok {
		r.order.ExpiresAt = f.now()
	}
}

// Refund implements web.Refunder: the unused part of a paid order,
// floor(fen × left / granted), where left is what the balance still holds.
func (f *Flow) Refund(_ context.Context, account tollgate.AccountID, no string) (web.Refund, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	r, ok := f.orders[no]
	if !ok || r.account != account {
		return web.Refund{}, tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	if r.order.Status != web.StatusSuccess {
		return web.Refund{}, tollgate.Errorf(tollgate.ECONFLICT, "order is not paid")
	}
	b := f.balances[account]
	left := min(b.Credits, r.order.Credits)
	if left <= 0 {
		return web.Refund{}, tollgate.Errorf(tollgate.ECONFLICT, "nothing left to refund")
	}
	fen := tollgate.Fen(int64(r.order.Fen) * int64(left) / int64(r.order.Credits))
	b.Credits -= left
	f.balances[account] = b
	r.order.Status = web.StatusRefund
	return web.Refund{Fen: fen, Credits: left, Status: "succeeded"}, nil
}

// Balance implements web.Accounts.
func (f *Flow) Balance(_ context.Context, account tollgate.AccountID) (web.Balance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	return f.balances[account], nil
}

// SetBalance replaces an account's balance.
func (f *Flow) SetBalance(account tollgate.AccountID, b web.Balance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	f.balances[account] = b
}

// AddUsage records usage and spends its credits.
func (f *Flow) AddUsage(account tollgate.AccountID, u ...web.Usage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	f.usage[account] = append(f.usage[account], u...)
	b := f.balances[account]
	for _, x := range u {
		b.Credits -= x.Credits
	}
	f.balances[account] = b
}

// ListUsage implements web.Accounts.
func (f *Flow) ListUsage(_ context.Context, account tollgate.AccountID, since time.Time) ([]web.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	var out []web.Usage
	for _, u := range f.usage[account] {
		if !u.CreatedAt.Before(since) {
			out = append(out, u)
		}
	}
	return out, nil
}

// SimHandler serves the emulator's payer API as wxpaysim does:
// POST /sim/orders/{no}/pay and POST /sim/orders/{no}/fail answer 200, or
// 404/409 with the reason. Mount it under the sandbox path with
// http.StripPrefix.
func (f *Flow) SimHandler() http.Handler {
	m := http.NewServeMux()
	act := func(do func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			err := do(r.PathValue("no"))
			switch tollgate.ErrorCode(err) {
			case "":
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"ok":true}`))
			case tollgate.ENOTFOUND:
				http.Error(w, err.Error(), http.StatusNotFound)
			default:
				http.Error(w, err.Error(), http.StatusConflict)
			}
		}
	}
	m.Handle("POST /sim/orders/{no}/pay", act(f.Pay))
	m.Handle("POST /sim/orders/{no}/fail", act(f.Fail))
	return m
}
