package webadapt_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/web"
	"tollgate/web/webadapt"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

func TestCatalog(t *testing.T) {
	p, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := webadapt.Catalog{Pricer: p}
	pkgs, err := c.Packages(context.Background())
	if err != nil || len(pkgs) != 3 || !reflect.DeepEqual(pkgs[0], web.Package{ID: "starter", Fen: 1000, Credits: 1_400_000}) {
		t.Fatalf("packages %v, %v", pkgs, err)
	}
	ms, err := c.ModelPrices(context.Background())
	if err != nil || len(ms) != len(p.Models()) {
		t.Fatalf("models %v, %v", ms, err)
	}
	// Base price 1 USD per 1M credits: gpt-4o-mini costs 0.15/0.60 USD.
	if ms[0] != (web.ModelPrice{Model: "gpt-4o-mini", Input: 150_000, Output: 600_000}) || ms[1].Model != "deepseek-chat" {
		t.Fatalf("popular first: %v", ms[:2])
	}
}

// The checkout's prices per 1M tokens are the token price (TokenCost):
// a per-call fee is not added to each 1M but given on its own.
func TestCatalogPerCallFee(t *testing.T) {
	cfg := pricing.DefaultConfig()
	cfg.Models = map[string]pricing.ModelPrice{
		"fee":   {Currency: pricing.USD, Input: pricing.MustDecimal("0.50"), Output: pricing.MustDecimal("1.00"), PerCall: pricing.MustDecimal("0.002")},
		"nofee": {Currency: pricing.USD, Input: pricing.MustDecimal("0.50"), Output: pricing.MustDecimal("1.00")},
	}
	p, err := pricing.New(cfg, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := webadapt.Catalog{Pricer: p, Advertised: func() []string { return []string{"fee", "nofee"} }}.ModelPrices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 1 USD per 1M credits: 0.50 and 1.00 USD per 1M tokens, 0.002 USD a call.
	want := []web.ModelPrice{{Model: "fee", Input: 500_000, Output: 1_000_000, PerCall: 2_000}, {Model: "nofee", Input: 500_000, Output: 1_000_000}}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("model prices %+v, want %+v", ms, want)
	}
}

func TestOrder(t *testing.T) {
	now := time.Now()
	got := webadapt.Order(payment.Order{OutTradeNo: "TG1", Status: payment.StatusPayError, Fen: 5000, Credits: 7, PackageID: "plus", ExpiresAt: now, CreatedAt: now})
	// An order without a method is native, as payment.Order.PayMethod says.
	if got != (web.Order{OutTradeNo: "TG1", Status: web.StatusPayError, Fen: 5000, Credits: 7, PackageID: "plus", ExpiresAt: now, CreatedAt: now,
		Method: web.MethodNative}) {
		t.Fatalf("%+v", got)
	}
}

func TestOAuth(t *testing.T) {
	sim := &wxpaysim.Server{RedirectHosts: []string{"pay.example"}}
	t.Cleanup(func() { sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := sim.Config()
	client := &wxpay.OAuthClient{AuthorizeURL: srv.URL, APIURL: srv.URL, AppID: cfg.AppID, Secret: wxpaysim.DefaultAppSecret}
	o := webadapt.OAuth{Client: client}
	code := func() string {
		u := o.AuthorizeRedirect("https://pay.example/checkout/tok/wechat", "abc123")
		u, _, _ = strings.Cut(u, "#")
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noFollow.Get(u + "&openid=oWebadaptTest0000000000001")
		if err != nil || res.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %v %v", res, err)
		}
		res.Body.Close()
		back, _ := url.Parse(res.Header.Get("Location"))
		if back.Query().Get("state") != "abc123" || !strings.HasPrefix(back.String(), "https://pay.example/checkout/tok/wechat?") {
			t.Fatalf("redirected to %s", back)
		}
		return back.Query().Get("code")
	}
	c := code()
	id, err := o.OpenID(context.Background(), c)
	if err != nil || id != "oWebadaptTest0000000000001" {
		t.Fatalf("openid %q, %v", id, err)
	}
	if _, err := o.OpenID(context.Background(), c); !errors.Is(err, web.ErrOAuthCode) {
		t.Fatalf("a used code: %v, want web.ErrOAuthCode", err)
	}
	if _, err := o.OpenID(context.Background(), "0123456789abcdef0123456789abcdef"); !errors.Is(err, web.ErrOAuthCode) {
		t.Fatalf("an invalid code: %v, want web.ErrOAuthCode", err)
	}
	client.Secret = "not the app secret"
	_, err = o.OpenID(context.Background(), code())
	if err == nil || errors.Is(err, web.ErrOAuthCode) || strings.Contains(err.Error(), "not the app secret") {
		t.Fatalf("a wrong secret: %v, want an error that is not about the code and hides the secret", err)
	}
}
