// Package webfake is an in-memory order flow behind web's interfaces, for
// tests and demos of the checkout pages: orders (native, H5 and JSAPI),
// balances, usage, refunds, WeChat's OAuth (web.OpenIDs) and a tiny
// emulator (SimHandler) that acts as the payer the way wxpaysim does: POST
// /sim/orders/{no}/pay and /fail, the H5 pay page, the JSAPI sheet with
// its bridge.js, and the OAuth authorize redirect. It keeps state like the
// real services (idempotency keys, expiry, one credit per payment, single
// use OAuth codes) but talks to no WeChat Pay. It is not for production.
package webfake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
	// OAuthErr, when set, is what OpenID returns (WeChat unreachable).
	OAuthErr error
	// SimPath is where SimHandler is mounted, for the URLs it hands out
	// (h5_url, the OAuth authorize page, bridge.js's endpoint);
	// "/sandbox/wxpay" when empty.
	SimPath string

	mu       sync.Mutex
	seq      int
	orders   map[string]*record
	keys     map[string]idem
	balances map[tollgate.AccountID]web.Balance
	usage    map[tollgate.AccountID][]web.Usage
	adjusts  map[tollgate.AccountID][]web.Adjustment // oldest first
	codes    map[string]oauthCode
	prepays  map[string]string // prepay id -> order number
}

type record struct {
	account tollgate.AccountID
	order   web.Order
	openid  string
}

type idem struct {
	account tollgate.AccountID
	req     web.OrderRequest
	no      string
}

type oauthCode struct {
	openid string
	used   bool
	exp    time.Time
}

// AppID is the appid of the fake's JSAPI parameters.
const AppID = "wxfakeappid000000"

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
	_ web.OpenIDs  = (*Flow)(nil)
)

func (f *Flow) now() time.Time { return tollgate.ClockOr(f.Clock).Now() }

func (f *Flow) initLocked() {
	if f.orders == nil {
		f.orders = map[string]*record{}
		f.keys = map[string]idem{}
		f.balances = map[tollgate.AccountID]web.Balance{}
		f.usage = map[tollgate.AccountID][]web.Usage{}
		f.adjusts = map[tollgate.AccountID][]web.Adjustment{}
		f.codes = map[string]oauthCode{}
		f.prepays = map[string]string{}
	}
}

func (f *Flow) simPath() string {
	if f.SimPath != "" {
		return f.SimPath
	}
	return "/sandbox/wxpay"
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
// fingerprint, an unknown method, a JSAPI order without openid and an H5
// order without client IP are EINVALID, an unknown package ENOTFOUND, the
// same key with another request ECONFLICT, and the same key with the same
// request the same order.
func (f *Flow) CreateOrder(ctx context.Context, account tollgate.AccountID, req web.OrderRequest) (web.Order, error) {
	packageID, key := req.PackageID, req.IdempotencyKey
	if req.Method == "" {
		req.Method = web.MethodNative
	}
	switch {
	case !validFingerprint.MatchString(req.DeviceFingerprint):
		return web.Order{}, tollgate.Errorf(tollgate.EINVALID, "device_fingerprint is malformed")
	case req.Method != web.MethodNative && req.Method != web.MethodH5 && req.Method != web.MethodJSAPI:
		return web.Order{}, tollgate.Errorf(tollgate.EINVALID, "method must be native, h5 or jsapi")
	case req.Method == web.MethodJSAPI && req.OpenID == "":
		return web.Order{}, tollgate.Errorf(tollgate.EINVALID, "openid is required for a jsapi order")
	case req.Method == web.MethodH5 && req.ClientIP == "":
		return web.Order{}, tollgate.Errorf(tollgate.EINVALID, "the client IP is required for an h5 order")
	}
	if req.Method != web.MethodJSAPI {
		req.OpenID = ""
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
	idemReq := req
	idemReq.ClientIP = "" // the payer's address may change between retries
	if prev, ok := f.keys[k]; ok {
		if !reflect.DeepEqual(prev.req, idemReq) {
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
	o := web.Order{
		OutTradeNo: no, Status: web.StatusNotPay, Fen: pkg.Fen, Credits: pkg.Credits,
		PackageID: pkg.ID, ExpiresAt: now.Add(ttl), CreatedAt: now, Method: req.Method,
	}
	prepay := fmt.Sprintf("wx%s%08d", now.UTC().Format("20060102150405"), f.seq)
	switch req.Method {
	case web.MethodH5:
		o.H5URL = f.simPath() + "/sim/h5/pay?prepay_id=" + prepay
		f.prepays[prepay] = no
	case web.MethodJSAPI:
		p := web.JSAPIParams{AppID: AppID, TimeStamp: fmt.Sprint(now.Unix()), NonceStr: fmt.Sprintf("n%015d", f.seq),
			Package: "prepay_id=" + prepay, SignType: "RSA"}
		p.PaySign = paySign(p)
		o.JSAPI = &p
		f.prepays[prepay] = no
	}
	f.orders[no] = &record{account: account, order: o, openid: req.OpenID}
	f.keys[k] = idem{account: account, req: idemReq, no: no}
	return f.orderLocked(no), nil
}

// paySign stands in for the merchant's RSA signature: a hash of what
// WeChat Pay signs, so a changed parameter fails as it would.
func paySign(p web.JSAPIParams) string {
	h := sha256.Sum256([]byte("webfake\n" + p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// OpenIDOf returns the openid a JSAPI order was placed for.
func (f *Flow) OpenIDOf(no string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	if r, ok := f.orders[no]; ok {
		return r.openid
	}
	return ""
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

// Adjust records an operator's adjustment of an account's credit.
func (f *Flow) Adjust(account tollgate.AccountID, a web.Adjustment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	f.adjusts[account] = append(f.adjusts[account], a)
	b := f.balances[account]
	b.Credits += a.Credits
	f.balances[account] = b
}

// ListAdjustments implements web.Accounts.
func (f *Flow) ListAdjustments(_ context.Context, account tollgate.AccountID, limit int) ([]web.Adjustment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	var out []web.Adjustment
	for i := len(f.adjusts[account]) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, f.adjusts[account][i])
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
	m.HandleFunc("GET /connect/oauth2/authorize", f.authorize)
	m.HandleFunc("GET /sim/h5/pay", f.h5Page)
	m.HandleFunc("POST /sim/h5/pay", f.h5Pay)
	m.HandleFunc("POST /sim/jsapi/pay", f.jsapiPay)
	m.HandleFunc("GET /sim/jsapi/bridge.js", f.bridgeJS)
	return m
}

// DefaultOpenID is the openid the fake's authorize page gives a browser
// that names none (?openid= or the webfake_openid cookie).
const DefaultOpenID = "oFAKE_openid_0000000000000001"

// AuthorizeRedirect implements web.OpenIDs: the fake's authorize page
// under SimPath, which sends the browser back at once with a code.
func (f *Flow) AuthorizeRedirect(redirectURI, state string) string {
	q := url.Values{"appid": {AppID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {state}}
	return f.simPath() + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect"
}

// IssueCode returns a fresh OAuth code for openid, valid once within five
// minutes, as WeChat's.
func (f *Flow) IssueCode(openid string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	code := hex.EncodeToString(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	f.codes[code] = oauthCode{openid: openid, exp: f.now().Add(5 * time.Minute)}
	return code
}

// OpenID implements web.OpenIDs: an unknown, expired or used code is an
// error wrapping web.ErrOAuthCode (WeChat's 40029 and 40163); OAuthErr,
// when set, is returned instead (WeChat unreachable).
func (f *Flow) OpenID(_ context.Context, code string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	if f.OAuthErr != nil {
		return "", f.OAuthErr
	}
	c, ok := f.codes[code]
	switch {
	case !ok || !f.now().Before(c.exp):
		return "", fmt.Errorf("webfake: errcode 40029 invalid code: %w", web.ErrOAuthCode)
	case c.used:
		return "", fmt.Errorf("webfake: errcode 40163 code been used: %w", web.ErrOAuthCode)
	}
	c.used = true
	f.codes[code] = c
	return c.openid, nil
}

// authorize is WeChat's authorize page: straight back to redirect_uri
// with a code and the state (snsapi_base asks the user nothing).
func (f *Flow) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("redirect_uri") == "" || q.Get("scope") != "snsapi_base" || q.Get("appid") != AppID {
		http.Error(w, "webfake: bad authorize request (redirect_uri, scope snsapi_base and appid required)", http.StatusBadRequest)
		return
	}
	openid := q.Get("openid")
	if c, err := r.Cookie("webfake_openid"); openid == "" && err == nil {
		openid = c.Value
	}
	if openid == "" {
		openid = DefaultOpenID
	}
	bq := back.Query()
	bq.Set("code", f.IssueCode(openid))
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// prepayOrder returns the pending order of a prepay id.
func (f *Flow) prepayOrder(prepay string) (web.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initLocked()
	no, ok := f.prepays[prepay]
	if !ok {
		return web.Order{}, tollgate.Errorf(tollgate.ENOTFOUND, "no order with prepay_id %q", prepay)
	}
	return f.orderLocked(no), nil
}

var h5Page = template.Must(template.New("h5").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>WeChat Pay (webfake)</title><link rel="icon" href="data:,"></head>
<body style="font-family: sans-serif; text-align: center; padding: 40px 16px">
<p>webfake WeChat Pay</p>
<h1 id="wx-amount">¥{{.Amount}}</h1>
<p id="wx-order">{{.No}}</p>
<form method="post"><button type="submit" id="wx-pay" style="font-size: 18px; padding: 12px 40px">Pay</button></form>
{{if .Back}}<p><a id="wx-cancel" href="{{.Back}}">Cancel</a></p>{{end}}
</body></html>`))

// h5Page is WeChat Pay's H5 page: the amount and a Pay button.
func (f *Flow) h5Page(w http.ResponseWriter, r *http.Request) {
	o, err := f.prepayOrder(r.URL.Query().Get("prepay_id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = h5Page.Execute(w, struct{ Amount, No, Back string }{o.Fen.String(), o.OutTradeNo, r.URL.Query().Get("redirect_url")})
}

// h5Pay pays the order and sends the browser to redirect_url.
func (f *Flow) h5Pay(w http.ResponseWriter, r *http.Request) {
	o, err := f.prepayOrder(r.URL.Query().Get("prepay_id"))
	if err == nil {
		err = f.Pay(o.OutTradeNo)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if back := r.URL.Query().Get("redirect_url"); back != "" {
		http.Redirect(w, r, back, http.StatusFound)
		return
	}
	_, _ = w.Write([]byte("paid"))
}

// jsapiPay is the JSAPI payment sheet: it checks the parameters as WeChat
// Pay does and pays.
func (f *Flow) jsapiPay(w http.ResponseWriter, r *http.Request) {
	var p web.JSAPIParams
	err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&p)
	prepay, _ := strings.CutPrefix(p.Package, "prepay_id=")
	var o web.Order
	switch {
	case err != nil:
		err = fmt.Errorf("body is not JSAPI parameters: %v", err)
	case p.AppID != AppID:
		err = fmt.Errorf("appId %q is not the merchant's", p.AppID)
	case p.SignType != "RSA":
		err = fmt.Errorf("signType must be RSA")
	case p.PaySign != paySign(p):
		err = fmt.Errorf("paySign does not verify")
	default:
		if o, err = f.prepayOrder(prepay); err == nil {
			err = f.Pay(o.OutTradeNo)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"err_msg": "get_brand_wcpay_request:fail", "reason": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"err_msg": "get_brand_wcpay_request:ok"})
}

// bridgeJS defines window.WeixinJSBridge the way WeChat's browser does,
// paying through POST /sim/jsapi/pay. ?delay=MS defines it that much later
// and fires WeixinJSBridgeReady (as WeChat does when the page's script
// runs first); ?answer=cancel makes the sheet answer as if the user
// closed it.
func (f *Flow) bridgeJS(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	delay, _ := strconv.Atoi(r.URL.Query().Get("delay"))
	endpoint, _ := json.Marshal(scheme + "://" + r.Host + f.simPath() + "/sim/jsapi/pay")
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	fmt.Fprintf(w, `(function () {
  var endpoint = %s, cancel = %t, delay = %d;
  function invoke(name, params, cb) {
    if (name !== "getBrandWCPayRequest") { cb({ err_msg: name + ":fail", reason: "unsupported" }); return; }
    if (cancel) { setTimeout(function () { cb({ err_msg: "get_brand_wcpay_request:cancel" }); }, 50); return; }
    fetch(endpoint, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(params) })
      .then(function (r) { return r.json(); })
      .then(function (j) { cb(j); }, function (e) { cb({ err_msg: "get_brand_wcpay_request:fail", reason: String(e) }); });
  }
  function define() {
    window.WeixinJSBridge = { invoke: invoke };
    document.dispatchEvent(new Event("WeixinJSBridgeReady"));
  }
  if (delay > 0) { setTimeout(define, delay); } else { window.WeixinJSBridge = { invoke: invoke };
    document.addEventListener("DOMContentLoaded", function () { document.dispatchEvent(new Event("WeixinJSBridgeReady")); }); }
})();
`, endpoint, r.URL.Query().Get("answer") == "cancel", delay)
}
