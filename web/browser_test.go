package web_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/web"
)

var updateDocs = flag.Bool("update-docs", false, "copy the checkout screenshots to ../docs")

// browser is a headless Chromium tab against a test server.
type browser struct {
	t       *testing.T
	ctx     context.Context
	srv     *httptest.Server
	out     string
	mu      sync.Mutex
	urls    []string
	headers []network.Headers // of each request in urls
	errors  []string
}

// MustBrowser starts Chromium with a fresh profile and no background
// networking, or skips the test when there is none (unless
// TOLLGATE_REQUIRE_SERVICES=1).
func MustBrowser(t *testing.T, srv *httptest.Server) *browser {
	t.Helper()
	ctx, out := testenv.MustChromium(t)
	b := &browser{t: t, ctx: ctx, srv: srv, out: out}
	b.watch()
	return b
}

// tab opens another tab in the same browser.
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	nb := &browser{t: b.t, ctx: ctx, srv: b.srv, out: b.out}
	nb.watch()
	return nb
}

// watch records every request the page makes and every console error or
// uncaught exception, so the test can prove nothing left the origin.
func (b *browser) watch() {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		b.t.Fatalf("start Chromium: %v", err)
	}
	err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.urls = append(b.urls, e.Request.URL)
			b.headers = append(b.headers, e.Request.Headers)
			b.mu.Unlock()
		}
	})
	if err != nil {
		b.t.Fatal(err)
	}
	msgs := chromedp.Console(b.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
}

// check fails on any request outside the test server and on console
// errors other than the ones the test caused on purpose (allowed).
func (b *browser) check(allowed ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.urls {
		if !strings.HasPrefix(u, b.srv.URL+"/") && !strings.HasPrefix(u, "data:") {
			b.t.Errorf("the page requested %s, outside its origin", u)
		}
	}
next:
	for _, e := range b.errors {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		b.t.Errorf("console: %s", e)
	}
}

// do runs actions, failing the test with step on error.
func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

// until polls a JavaScript predicate until it is true (30 s deadline).
func (b *browser) until(step, js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	var err error
	for {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond)))
		// A navigation (a redirect, a page that goes on by itself)
		// destroys the context the poll ran in: poll the new page.
		if err == nil || ctx.Err() != nil || !navigatedAway(err) {
			break
		}
	}
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%s: waiting for %s: %v\npage text:\n%s", step, js, err, text)
	}
}

// navigatedAway reports whether err is a poll cut short by a navigation.
func navigatedAway(err error) bool {
	m := err.Error()
	return strings.Contains(m, "Cannot find context with specified id") || strings.Contains(m, "Execution context was destroyed") ||
		strings.Contains(m, "Inspected target navigated or closed")
}

// text returns the text of the element with id.
func (b *browser) text(id string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById(`+fmt.Sprintf("%q", id)+`).textContent`))
	if err != nil {
		b.t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// eval returns a string-valued JavaScript expression.
func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// shot saves a screenshot of the viewport as name.png in the output folder.
func (b *browser) shot(name string) string {
	b.t.Helper()
	// Let the fonts and the QR image settle a frame before capturing.
	b.until("paint "+name, `document.fonts.status === "loaded"`)
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

const visible = `(id) => { const e = document.getElementById(id); return !!e && !e.hidden && e.offsetParent !== null; }`

func isVisible(id string) string { return "(" + visible + ")(" + fmt.Sprintf("%q", id) + ")" }

const qrLoaded = `(() => { const i = document.getElementById("qr"); return !!i && i.complete && i.naturalWidth > 0 && !document.getElementById("state-qr").hidden; })()`

// TestBrowserCheckout drives the whole checkout in Chromium against the
// web handlers over a fake order flow: choose, scan, pay with the emulator,
// see the balance and the account page; then an expired link, an expired
// order and a failed payment, on a desktop and on a phone.
func TestBrowserCheckout(t *testing.T) {
	f := MustFixture(t)
	f.h.Clock, f.flow.Clock = nil, nil // the page's countdown runs on real time
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()))
	mux.Handle("/", f.h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := MustBrowser(t, srv)

	// The app asks for a link with its API key; the user only sees the link.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/checkout/sessions", nil)
	req.Header.Set("Authorization", "Bearer good")
	res, err := srv.Client().Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create session: %v %v", res, err)
	}
	var sess struct {
		URL        string `json:"url"`
		AccountURL string `json:"account_url"`
	}
	mustDecode(t, res, &sess)

	b.do("desktop", chromedp.EmulateViewport(1280, 800))
	b.do("open checkout", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	b.shot("desktop-packages")

	b.do("choose plus", chromedp.Click(chromedp.CSS("#pkg-plus")))
	b.until("QR shown", qrLoaded)
	if got := b.text("amount"); got != "50.00" {
		t.Fatalf("amount %q", got)
	}
	desktop := b.shot("checkout-desktop")

	b.do("pay with the emulator", chromedp.Click(chromedp.CSS("#sim-pay")))
	b.until("success", isVisible("state-success")+` && document.getElementById("new-balance").textContent === "7,200,000"`)
	b.shot("desktop-success")

	// Spend some credits over the last days, then open the account page.
	now := time.Now()
	for d := 0; d < 30; d++ {
		for i, m := range []string{"gpt-4o-mini", "deepseek-chat", "claude-sonnet-4", "qwen-plus"} {
			if (d+i)%3 != 0 {
				f.flow.AddUsage(account, web.Usage{Model: m, Credits: tollgate.Credits(2000 * (1 + (d*7+i*13)%9) * (4 - i)), CreatedAt: now.AddDate(0, 0, -d)})
			}
		}
	}
	paid := firstOrder(t, f)
	b.do("account page", chromedp.Click(chromedp.CSS("#success-account")), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	b.until("order listed as paid", `(() => { const r = document.querySelector('tr[data-order="`+paid+`"]'); return !!r && r.textContent.includes("Paid") && !!r.querySelector("button.refund"); })()`)
	b.until("chart drawn", `document.querySelectorAll("#usage-chart rect").length > 50 && document.querySelectorAll("#chart-legend li").length === 4`)
	b.shot("account-desktop")

	// Refund the unused part of the paid order (the confirm dialog is
	// answered yes).
	b.do("accept confirm", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true; undefined`))
	b.do("refund", chromedp.Click(chromedp.CSS(`button.refund[data-order="`+paid+`"]`)))
	b.until("refund requested", isVisible("refund-status")+` && document.getElementById("refund-status").textContent.includes("Refund requested: ¥")`)
	b.do("account page after refund", chromedp.Navigate(sess.AccountURL), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	b.until("order refunded", `(() => { const r = document.querySelector('tr[data-order="`+paid+`"]'); return !!r && r.textContent.includes("Refunded") && !r.querySelector("button.refund"); })()`)
	if got := b.text("bal-credits"); got != "0" {
		t.Fatalf("balance after refunding everything left: %q", got)
	}

	// An order that expires before it is paid.
	b.do("open checkout again", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	b.do("choose starter", chromedp.Click(chromedp.CSS("#pkg-starter")))
	b.until("QR shown", qrLoaded)
	expiring := b.text("order-no")
	f.flow.Expire(expiring)
	b.until("expired message", isVisible("state-failed")+` && document.getElementById("failed-message").textContent.includes("expired")`)
	b.shot("desktop-order-expired")

	// Try again makes a new order; this time the payment fails.
	b.do("try again", chromedp.Click(chromedp.CSS("#try-again")))
	b.until("new QR", qrLoaded+` && document.getElementById("order-no").textContent !== "`+expiring+`"`)
	b.do("fail with the emulator", chromedp.Click(chromedp.CSS("#sim-fail")))
	b.until("failed message", isVisible("state-failed")+` && document.getElementById("failed-message").textContent.includes("payment failed")`)
	b.until("try again offered", isVisible("try-again"))
	b.shot("desktop-payment-failed")

	// An expired link shows a clear page, not an error code.
	expired := web.SignSession(secret, web.Session{Account: account, ExpiresAt: time.Now().Add(-time.Minute)})
	b.do("expired link", chromedp.Navigate(srv.URL+"/checkout/"+expired), chromedp.WaitVisible(chromedp.CSS("#error-page")))
	if got := b.text("error-page"); !strings.Contains(got, "This link has expired") {
		t.Fatalf("expired link page: %q", got)
	}
	b.shot("desktop-link-expired")
	b.check("410", "Gone")

	// On a phone, in Chinese, with the package chosen in the link: the QR
	// shows at once.
	p := b.tab()
	p.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	p.do("open preselected", chromedp.Navigate(sess.URL+"?package=pro&lang=zh"))
	p.until("QR shown at once", qrLoaded)
	if got := p.text("status-text"); got != "等待支付…" {
		t.Fatalf("status text %q", got)
	}
	phone := p.shot("checkout-phone")
	p.do("pay on the phone", chromedp.Click(chromedp.CSS("#sim-pay")))
	p.until("success", isVisible("state-success")+` && document.getElementById("success-title").textContent === "支付成功"`)
	p.shot("phone-success")
	p.do("switch to English", chromedp.Navigate(sess.AccountURL), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	p.do("language switch", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	p.until("English", `document.documentElement.lang === "en" && document.body.textContent.includes("Your account")`)
	p.shot("account-phone")
	p.check()

	if *updateDocs {
		for src, dst := range map[string]string{desktop: "../docs/checkout-desktop.png", phone: "../docs/checkout-phone.png"} {
			b, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(dst, b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func firstOrder(t *testing.T, f *fixture) string {
	t.Helper()
	os, err := f.flow.ListOrders(context.Background(), account, 1)
	if err != nil || len(os) != 1 {
		t.Fatalf("orders: %v %v", os, err)
	}
	return os[0].OutTradeNo
}
