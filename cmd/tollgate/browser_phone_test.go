package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

var updateDocs = flag.Bool("update-docs", false, "copy the phone checkout screenshots to docs/")

// User agents of WeChat's browser on an iPhone and of Safari on an iPhone.
const (
	uaWeChatIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// phone makes the tab an iPhone-sized screen whose browser says ua.
func (b *chromiumTab) phone(ua string) {
	b.t.Helper()
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1.5), chromedp.EmulateMobile))
	if _, err := chromedp.Call(b.ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		b.t.Fatalf("user agent: %v", err)
	}
}

// weixinJSBridge gives every page the tab opens the WeixinJSBridge that
// WeChat's browser provides: the emulator's bridge.js, evaluated before
// the page's own scripts. The payment sheet stays open (the call to
// getBrandWCPayRequest waits) until the test confirms it with
// confirmSheet, as a user would.
func (b *chromiumTab) weixinJSBridge() {
	b.t.Helper()
	res, err := http.Get(b.base + "/sandbox/wxpay/sim/jsapi/bridge.js")
	if err != nil || res.StatusCode != http.StatusOK {
		b.t.Fatalf("GET bridge.js: %v %v", res, err)
	}
	src, _ := io.ReadAll(res.Body)
	res.Body.Close()
	hold := `
(function () {
  var invoke = window.WeixinJSBridge.invoke, held = null;
  window.WeixinJSBridge.invoke = function (name, params, cb) { held = function () { invoke(name, params, cb); }; };
  window.confirmSheet = function () { if (!held) { return false; } var h = held; held = null; h(); return true; };
})();`
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: string(src) + hold}); err != nil {
		b.t.Fatalf("inject WeixinJSBridge: %v", err)
	}
}

// requestHeaders returns the headers of the first request the tab sent to
// a URL starting with prefix.
func (b *chromiumTab) requestHeaders(prefix string) (network.Headers, bool) {
	var h network.Headers
	found := false
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, u := range b.urls {
		if strings.HasPrefix(u, prefix) && i < len(b.sent) {
			h, found = b.sent[i], true
			break
		}
	}
	return h, found
}

// shotTo saves a screenshot and, with -update-docs, copies it to docs/.
func (b *chromiumTab) shotTo(name, doc string) {
	b.t.Helper()
	b.shot(name)
	if *updateDocs && doc != "" {
		src, err := os.ReadFile(filepath.Join(b.out, name+".png"))
		if err == nil {
			err = os.WriteFile(filepath.Join("..", "..", "docs", doc), src, 0o644)
		}
		if err != nil {
			b.t.Fatal(err)
		}
	}
}

// TestBrowserPhoneCheckoutServe is issue 18's phone payments through the
// real server (API v3, the emulator in-process, SQLite) in Chromium: inside
// WeChat (its user agent, WeixinJSBridge from the emulator's bridge.js) the
// link goes through WeChat's OAuth to the JSAPI sheet, which pays; in
// Safari on an iPhone the page sends the browser to WeChat Pay's H5 page,
// which comes back to the checkout — first without paying, then paid. Each
// walks to a credited balance that GET /v1/balance confirms.
func TestBrowserPhoneCheckoutServe(t *testing.T) {
	m := MustRunMain(t, "--wxpay-api-version", "v3")
	c := client{t, m.URL}
	a := mustAccount(c, m.AdminToken)
	pkg := mustBrowserPackage(c)
	var sess struct {
		URL string `json:"url"`
	}
	c.must(201, "POST", "/v1/checkout/sessions", a.APIKey, `{}`, &sess)
	b := mustChromium(t, m.URL)

	// Inside WeChat: OAuth, then the JSAPI sheet, then the balance.
	w := b.tab()
	w.phone(uaWeChatIPhone)
	w.weixinJSBridge()
	w.do("open in WeChat", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	if !strings.HasPrefix(w.eval(`location.href`), sess.URL) || w.eval(`JSON.parse(document.getElementById("config").textContent).method`) != "jsapi" {
		t.Fatalf("inside WeChat the page is %s, method %s", w.eval(`location.href`), w.eval(`document.getElementById("config").textContent`))
	}
	if h, ok := w.requestHeaders(m.URL + "/sandbox/wxpay/connect/oauth2/authorize"); !ok {
		t.Fatal("the page did not go through WeChat's OAuth")
	} else if strings.Contains(fmt.Sprint(h["Referer"]), "/checkout/") {
		t.Fatalf("WeChat's authorize page got the checkout link as Referer: %v", h["Referer"])
	}
	w.until("QR alternative offered", browserVisible("packages-show-qr"))
	w.shotTo("serve-wechat-packages", "")
	w.do("choose "+pkg.ID, chromedp.Click(chromedp.CSS("#pkg-"+pkg.ID)))
	w.until("the sheet open", browserVisible("state-jsapi")+` && document.getElementById("jsapi-status").textContent === "Confirm the payment in WeChat Pay…"`+
		` && document.getElementById("jsapi-amount").textContent === "`+pkg.Fen.String()+`"`)
	w.shotTo("serve-wechat-jsapi", "checkout-wechat-jsapi.png")
	if w.eval(`String(window.confirmSheet())`) != "true" {
		t.Fatal("the page did not call getBrandWCPayRequest")
	}
	w.until("paid through the sheet", browserVisible("state-success")+` && document.getElementById("new-balance").textContent !== ""`)
	if got := digits(w.text("new-balance")); got != fmt.Sprint(pkg.Credits) {
		t.Fatalf("new balance in WeChat %q, want %d", w.text("new-balance"), pkg.Credits)
	}
	jsapiNo := w.text("jsapi-order-no")
	mustOrderStatus(c, a.APIKey, jsapiNo, "SUCCESS")
	mustOrderMethod(c, a.APIKey, jsapiNo, "jsapi")
	if bal := mustBalance(c, a.APIKey); bal.Credits != int64(pkg.Credits) || bal.Held != 0 {
		t.Fatalf("balance after the JSAPI payment %+v, want %d", bal, pkg.Credits)
	}
	w.shotTo("serve-wechat-success", "")
	w.check()

	// A phone's browser: WeChat Pay's H5 page. Coming back without paying,
	// the page says so and offers to continue (or the QR code).
	p := b.tab()
	p.phone(uaSafariIPhone)
	p.do("open on the iPhone", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	p.do("choose "+pkg.ID, chromedp.Click(chromedp.CSS("#pkg-"+pkg.ID)))
	// (The checkout has a #pay too: the path tells the pages apart.)
	const onH5Page = `location.pathname === "/sandbox/wxpay/sim/h5/pay" && !!document.getElementById("pay")`
	p.until("WeChat Pay's H5 page", onH5Page+` && document.getElementById("amount").textContent === "¥`+pkg.Fen.String()+`"`)
	if h, ok := p.requestHeaders(m.URL + "/sandbox/wxpay/sim/h5/pay"); !ok || fmt.Sprint(h["Referer"]) != m.URL+"/" {
		// WeChat Pay checks the Referer's domain; the link stays home.
		t.Fatalf("WeChat Pay's H5 page got Referer %v (sent %v), want the origin", h["Referer"], ok)
	}
	p.do("come back without paying", chromedp.Click(chromedp.CSS("#cancel")))
	p.until("waiting", browserVisible("state-h5")+` && document.getElementById("h5-status").textContent.includes("No payment received yet")`+
		` && document.getElementById("h5-order-no").textContent !== ""`)
	p.until("continue and QR offered", browserVisible("h5-go")+" && "+browserVisible("show-qr"))
	h5No := p.text("h5-order-no")
	mustOrderStatus(c, a.APIKey, h5No, "NOTPAY")
	if !strings.Contains(p.eval(`location.search`), "order="+h5No) {
		t.Fatalf("WeChat Pay sent the browser back to %s", p.eval(`location.href`))
	}
	p.shotTo("serve-mobile-h5-back", "checkout-mobile-h5.png")
	p.do("continue paying", chromedp.Click(chromedp.CSS("#h5-go")))
	p.until("WeChat Pay's page again", onH5Page+` && document.body.textContent.includes("`+h5No+`")`)
	p.do("pay", chromedp.Click(chromedp.CSS("#pay")))
	p.until("paid", browserVisible("state-success")+` && document.getElementById("new-balance").textContent !== ""`)
	want := 2 * int64(pkg.Credits)
	if got := digits(p.text("new-balance")); got != fmt.Sprint(want) {
		t.Fatalf("new balance on the iPhone %q, want %d", p.text("new-balance"), want)
	}
	mustOrderStatus(c, a.APIKey, h5No, "SUCCESS")
	mustOrderMethod(c, a.APIKey, h5No, "h5")
	if bal := mustBalance(c, a.APIKey); bal.Credits != want {
		t.Fatalf("balance after the H5 payment %+v, want %d", bal, want)
	}
	p.shotTo("serve-mobile-h5-success", "")
	// Every page has its icon (WeChat Pay's emulator page an empty
	// one): nothing the tabs asked for is missing.
	for _, tab := range []*chromiumTab{w, p} {
		tab.mu.Lock()
		for u, r := range tab.responses {
			if r.Status == http.StatusNotFound {
				t.Errorf("404 for %s", u)
			}
		}
		tab.mu.Unlock()
	}
	p.check()
}

// mustOrderMethod checks the method the API reports for an order.
func mustOrderMethod(c client, key, no, method string) {
	c.tb.Helper()
	var got struct{ Method string }
	c.must(200, "GET", "/v1/payments/orders/"+no, key, "", &got)
	if got.Method != method {
		c.tb.Fatalf("order %s method %q, want %s", no, got.Method, method)
	}
}
