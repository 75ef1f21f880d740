package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"tollgate/web"
)

// phone makes the tab a phone whose browser says ua.
func (b *browser) phone(ua string) {
	b.t.Helper()
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if _, err := chromedp.Call(b.ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		b.t.Fatalf("user agent: %v", err)
	}
}

// bridge gives every page the tab opens a WeixinJSBridge, as WeChat's
// browser does: the emulator's bridge.js, run before the page's scripts.
func (b *browser) bridge(url string) {
	b.t.Helper()
	res, err := http.Get(url)
	if err != nil || res.StatusCode != 200 {
		b.t.Fatalf("GET %s: %v %v", url, res, err)
	}
	src, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: string(src)}); err != nil {
		b.t.Fatalf("inject the bridge: %v", err)
	}
}

// referer returns the Referer the tab sent for the first request whose URL
// starts with prefix.
func (b *browser) referer(prefix string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, u := range b.urls {
		if strings.HasPrefix(u, prefix) {
			r, _ := b.headers[i]["Referer"].(string)
			return r, true
		}
	}
	return "", false
}

// TestBrowserPhoneMethods pays on phones in Chromium over the fake flow:
// inside WeChat (its user agent, the bridge injected) through OAuth and
// the JSAPI sheet, once straight to the balance and once cancelled and
// paid with the QR code instead; in Safari on an iPhone through WeChat
// Pay's H5 page, once abandoned and continued, once paid at once.
func TestBrowserPhoneMethods(t *testing.T) {
	f := MustFixture(t)
	f.h.Clock, f.flow.Clock = nil, nil
	f.h.OAuth = f.flow
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()))
	mux.Handle("/", f.h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := MustBrowser(t, srv)
	tok := web.SignSession(secret, web.Session{Account: account, ExpiresAt: time.Now().Add(time.Hour)})
	link := srv.URL + "/checkout/" + tok

	// Inside WeChat: the link with a package goes through OAuth to the
	// sheet, which the bridge (ready late, as it may be) pays.
	w := b.tab()
	w.phone(uaWeChat)
	w.bridge(srv.URL + "/sandbox/wxpay/sim/jsapi/bridge.js?delay=1500")
	w.do("open in WeChat", chromedp.Navigate(link+"?package=plus"))
	w.until("sheet opening", isVisible("state-jsapi")+` && document.getElementById("jsapi-amount").textContent === "50.00"`)
	w.shot("checkout-wechat-jsapi")
	w.until("paid through the sheet", isVisible("state-success")+` && document.getElementById("new-balance").textContent === "7,200,000"`)
	w.shot("checkout-wechat-success")
	jsapiNo := firstOrder(t, f)
	if got := f.flow.OpenIDOf(jsapiNo); got == "" {
		t.Fatalf("order %s has no openid", jsapiNo)
	}
	if r, ok := w.referer(srv.URL + "/sandbox/wxpay/connect/oauth2/authorize"); !ok || strings.Contains(r, tok) {
		t.Fatalf("WeChat's authorize page got Referer %q (seen %v)", r, ok)
	}
	w.check()

	// The user closes the sheet: nothing is paid, the sheet can be opened
	// again, or the QR code shown instead (and long-pressed).
	c := b.tab()
	c.phone(uaWeChat)
	c.bridge(srv.URL + "/sandbox/wxpay/sim/jsapi/bridge.js?answer=cancel")
	c.do("open in WeChat", chromedp.Navigate(link))
	c.do("choose starter", chromedp.WaitVisible(chromedp.CSS("#pkg-starter")), chromedp.Click(chromedp.CSS("#pkg-starter")))
	c.until("cancelled", isVisible("jsapi-retry")+` && document.getElementById("jsapi-status").textContent === "Payment cancelled. Nothing was charged."`)
	c.until("QR offered", isVisible("show-qr"))
	c.shot("checkout-wechat-cancelled")
	c.do("show the QR code", chromedp.Click(chromedp.CSS("#show-qr")))
	c.until("QR shown", qrLoaded+` && document.getElementById("amount").textContent === "10.00"`)
	c.do("pay the QR code", chromedp.Click(chromedp.CSS("#sim-pay")))
	c.until("paid with the QR code", isVisible("state-success")+` && document.getElementById("new-balance").textContent === "8,600,000"`)
	c.check()

	// Safari on an iPhone: WeChat Pay's H5 page. The first time the user
	// comes back without paying: the page says so and offers to continue.
	p := b.tab()
	p.phone(uaIPhone)
	p.do("open on the iPhone", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#packages")))
	p.until("QR alternative offered", isVisible("packages-show-qr"))
	p.do("choose pro", chromedp.Click(chromedp.CSS("#pkg-pro")))
	p.until("WeChat Pay's page", `!!document.getElementById("wx-pay") && document.getElementById("wx-amount").textContent === "¥200.00"`)
	h5No := p.eval(`document.getElementById("wx-order").textContent`)
	if r, ok := p.referer(srv.URL + "/sandbox/wxpay/sim/h5/pay"); !ok || r != srv.URL+"/" {
		// WeChat Pay checks the Referer's domain; the token stays home.
		t.Fatalf("WeChat Pay's page got Referer %q, want the origin %s/", r, srv.URL)
	}
	p.do("come back without paying", chromedp.Click(chromedp.CSS("#wx-cancel")))
	p.until("still waiting", isVisible("state-h5")+` && document.getElementById("h5-title").textContent === "Checking your payment…"`+
		` && document.getElementById("h5-status").textContent.includes("No payment received yet") && document.getElementById("h5-order-no").textContent === "`+h5No+`"`)
	p.until("continue and QR offered", isVisible("h5-go")+" && "+isVisible("show-qr"))
	p.shot("checkout-mobile-h5")
	p.do("continue paying", chromedp.Click(chromedp.CSS("#h5-go")))
	p.until("the same order on WeChat Pay's page", `!!document.getElementById("wx-pay") && document.getElementById("wx-order").textContent === "`+h5No+`"`)
	p.do("pay", chromedp.Click(chromedp.CSS("#wx-pay")))
	p.until("paid", isVisible("state-success")+` && document.getElementById("new-balance").textContent === "38,600,000"`)
	p.shot("checkout-mobile-h5-success")
	if !strings.Contains(p.eval(`location.search`), "order="+h5No) {
		t.Fatalf("the result page is not the order's: %s", p.eval(`location.href`))
	}
	p.check()
}
