package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
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

// TestBrowserCheckoutServe is issue 6's acceptance through the real
// server: SQLite, the payment service and ledger, the in-process WeChat Pay
// emulator and the mock LLM, driven from headless Chromium. A user buys a
// package on the page, pays with the emulator and sees the new balance,
// which GET /v1/balance confirms; spends some of it; sees the paid order
// and the chart on the account page; then a failed payment, a changed and
// an expired link, and the pages in Chinese on a phone.
func TestBrowserCheckoutServe(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	a := mustAccount(c, m.AdminToken)
	pkg := mustBrowserPackage(c)
	var sess struct {
		URL        string    `json:"url"`
		AccountURL string    `json:"account_url"`
		ExpiresAt  time.Time `json:"expires_at"`
	}
	c.must(201, "POST", "/v1/checkout/sessions", a.APIKey, `{}`, &sess)
	if !strings.HasPrefix(sess.URL, m.URL+"/checkout/") || !strings.HasPrefix(sess.AccountURL, m.URL+"/account/") ||
		!sess.ExpiresAt.After(time.Now()) {
		t.Fatalf("session %+v", sess)
	}
	b := mustChromium(t, m.URL)

	// Buy: choose the package, see the QR code, pay with the emulator.
	b.do("desktop", chromedp.EmulateViewport(1280, 800))
	b.do("open checkout", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	if html := b.eval(`document.documentElement.outerHTML`); strings.Contains(html, a.APIKey) {
		t.Fatal("the checkout page holds the API key")
	}
	b.shot("serve-desktop-packages")
	b.do("choose "+pkg.ID, chromedp.Click(chromedp.CSS("#pkg-"+pkg.ID)))
	first := b.mustQR("QR shown", "")
	if got := b.text("amount"); got != pkg.Fen.String() {
		t.Fatalf("amount on the page %q, want %s", got, pkg.Fen)
	}
	b.shot("serve-desktop-qr")
	b.do("pay with the emulator", chromedp.Click(chromedp.CSS("#sim-pay")))
	b.until("success", browserVisible("state-success")+` && document.getElementById("success-title").textContent === "Payment received"`+
		` && document.getElementById("new-balance").textContent !== ""`)
	if got := digits(b.text("new-balance")); got != fmt.Sprint(pkg.Credits) {
		t.Fatalf("new balance on the page %q, want %d", b.text("new-balance"), pkg.Credits)
	}
	b.shot("serve-desktop-success")
	if bal := mustBalance(c, a.APIKey); bal.Credits != int64(pkg.Credits) || bal.Held != 0 || bal.Provisional != 0 || bal.Debt != 0 {
		t.Fatalf("balance after paying %s: %+v, want %d credits", first, bal, pkg.Credits)
	}
	mustOrderStatus(c, a.APIKey, first, "SUCCESS")

	// Spend some, so the chart has data, then open the account page.
	var spent int64
	for i, model := range []string{"mock-gpt", "mock-claude", "mock-gpt"} {
		var chat struct {
			Usage struct {
				CostCredits int64 `json:"cost_credits"`
			}
		}
		c.must(200, "POST", "/v1/chat/completions", a.APIKey,
			fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello %d"}],"max_tokens":32}`, model, i), &chat)
		if chat.Usage.CostCredits <= 0 {
			t.Fatalf("chat %d cost %d credits", i, chat.Usage.CostCredits)
		}
		spent += chat.Usage.CostCredits
	}
	left := int64(pkg.Credits) - spent
	if bal := mustBalance(c, a.APIKey); bal.Credits != left {
		t.Fatalf("balance after spending %d: %+v, want %d", spent, bal, left)
	}
	b.do("account page", chromedp.Navigate(sess.AccountURL), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	b.until("order listed as paid", browserOrderRow(first, "SUCCESS", "Paid"))
	b.until("chart drawn", `document.querySelectorAll("#usage-chart svg rect").length >= 2 && document.querySelectorAll("#chart-legend li").length === 2`)
	if legend := b.eval(`document.getElementById("chart-legend").textContent`); !strings.Contains(legend, "mock-gpt") || !strings.Contains(legend, "mock-claude") {
		t.Fatalf("chart legend %q", legend)
	}
	if got := digits(b.text("bal-credits")); got != fmt.Sprint(left) {
		t.Fatalf("account page balance %q, want %d", b.text("bal-credits"), left)
	}
	b.shot("serve-desktop-account")

	// A failed payment says so, charges nothing and offers a retry, which
	// places a new order.
	b.do("open checkout again", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	b.do("choose "+pkg.ID+" again", chromedp.Click(chromedp.CSS("#pkg-"+pkg.ID)))
	failing := b.mustQR("QR for the failing order", first)
	b.do("fail with the emulator", chromedp.Click(chromedp.CSS("#sim-fail")))
	b.until("failed message", browserVisible("state-failed")+` && document.getElementById("failed-message").textContent === "The payment failed. Nothing was charged."`)
	b.until("retry offered", browserVisible("try-again"))
	b.shot("serve-desktop-payment-failed")
	mustOrderStatus(c, a.APIKey, failing, "PAYERROR")
	if bal := mustBalance(c, a.APIKey); bal.Credits != left || bal.Held != 0 {
		t.Fatalf("balance after a failed payment %+v, want %d", bal, left)
	}
	b.do("try again", chromedp.Click(chromedp.CSS("#try-again")))
	retry := b.mustQR("QR for the retry", failing)
	if retry == first {
		t.Fatalf("the retry reused the paid order %s", first)
	}

	// A changed link and an expired one show clear pages, not error codes.
	// serve has no flag for the link lifetime, so the expired link is
	// signed with the key serve derives from the admin token.
	tok := strings.TrimPrefix(sess.URL, m.URL+"/checkout/")
	// The first character carries six payload bits (the signature's last
	// carries unused ones, so changing it may change nothing).
	tampered := map[bool]string{true: "B", false: "A"}[strings.HasPrefix(tok, "A")] + tok[1:]
	b.mustErrorPage("changed link", m.URL+"/checkout/"+tampered, http.StatusNotFound, "This link is not valid")
	b.shot("serve-desktop-link-invalid")
	expired := web.SignSession(web.SecretFrom(m.AdminToken),
		web.Session{Account: tollgate.AccountID(a.AccountID), ExpiresAt: time.Now().Add(-time.Minute)})
	b.mustErrorPage("expired link", m.URL+"/checkout/"+expired, http.StatusGone, "This link has expired")
	b.shot("serve-desktop-link-expired")
	b.mustErrorPage("expired account link", m.URL+"/account/"+expired, http.StatusGone, "This link has expired")
	b.check("404", "410", "Not Found", "Gone")

	// On a phone whose browser asks for Chinese: the same link, in Chinese.
	p := b.tab()
	p.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if _, err := chromedp.Call(p.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9"}}); err != nil {
		t.Fatalf("Accept-Language zh-CN: %v", err)
	}
	p.do("open checkout", chromedp.Navigate(sess.URL), chromedp.WaitVisible(chromedp.CSS("#packages")))
	p.until("Chinese", `document.documentElement.lang === "zh-CN" && document.querySelector("#packages h1").textContent === "选择套餐"`)
	p.shot("serve-phone-packages-zh")
	p.do("choose "+pkg.ID, chromedp.Click(chromedp.CSS("#pkg-"+pkg.ID)))
	phone := p.mustQR("QR on the phone", retry)
	if got := p.text("status-text"); got != "等待支付…" {
		t.Fatalf("status text %q", got)
	}
	p.shot("serve-phone-qr-zh")
	p.do("pay on the phone", chromedp.Click(chromedp.CSS("#sim-pay")))
	p.until("success", browserVisible("state-success")+` && document.getElementById("success-title").textContent === "支付成功"`)
	left += int64(pkg.Credits)
	if got := digits(p.text("new-balance")); got != fmt.Sprint(left) {
		t.Fatalf("new balance on the phone %q, want %d", p.text("new-balance"), left)
	}
	p.shot("serve-phone-success-zh")
	if bal := mustBalance(c, a.APIKey); bal.Credits != left {
		t.Fatalf("balance after the phone paid %s: %+v, want %d", phone, bal, left)
	}
	p.do("account page", chromedp.Navigate(sess.AccountURL), chromedp.WaitVisible(chromedp.CSS("#usage-chart")))
	p.until("orders in Chinese", browserOrderRow(first, "SUCCESS", "已支付")+" && "+browserOrderRow(phone, "SUCCESS", "已支付")+
		" && "+browserOrderRow(failing, "PAYERROR", "支付失败"))
	p.until("chart drawn", `document.querySelectorAll("#usage-chart svg rect").length >= 2`)
	p.shot("serve-phone-account-zh")
	p.check()
}

// browserPackage is a package of GET /v1/packages.
type browserPackage struct {
	ID      string           `json:"id"`
	Fen     tollgate.Fen     `json:"fen"`
	Credits tollgate.Credits `json:"credits"`
}

// mustBrowserPackage returns the first package on sale.
func mustBrowserPackage(c client) browserPackage {
	c.tb.Helper()
	var pk struct{ Data []browserPackage }
	c.must(200, "GET", "/v1/packages", "", "", &pk)
	if len(pk.Data) == 0 || pk.Data[0].ID == "" || pk.Data[0].Credits <= 0 {
		c.tb.Fatalf("packages %+v", pk)
	}
	return pk.Data[0]
}

// mustOrderStatus checks an order's status through the API; the page may
// show a state before the order row has it, so it polls.
func mustOrderStatus(c client, key, no, status string) {
	c.tb.Helper()
	var got struct{ Status string }
	eventually(c.tb, "order "+no+" reads "+status, func() bool {
		c.must(200, "GET", "/v1/payments/orders/"+no, key, "", &got)
		return got.Status == status
	})
}

// digits drops the thousands separators of a number as a page shows it.
func digits(s string) string { return strings.NewReplacer(",", "", " ", "", "\u00a0", "").Replace(s) }

// chromiumTab is a headless Chromium tab against a running server. It
// records every request and response and every console error.
type chromiumTab struct {
	t    *testing.T
	ctx  context.Context
	base string
	out  string

	mu        sync.Mutex // guards the fields below
	urls      []string
	sent      []network.Headers            // the headers of each request in urls
	responses map[string]*network.Response // by URL, the last one
	errors    []string
}

// mustChromium starts Chromium with a fresh profile and no background
// networking, or skips the test when there is none (unless
// TOLLGATE_REQUIRE_SERVICES=1). Screenshots go to $TOLLGATE_TEST_OUT, else
// a temporary directory.
func mustChromium(t *testing.T, base string) *chromiumTab {
	t.Helper()
	ctx, out := testenv.MustChromium(t)
	b := &chromiumTab{t: t, ctx: ctx, base: base, out: out}
	b.watch()
	return b
}

// tab opens another tab in the same browser.
func (b *chromiumTab) tab() *chromiumTab {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	nb := &chromiumTab{t: b.t, ctx: ctx, base: b.base, out: b.out}
	nb.watch()
	return nb
}

func (b *chromiumTab) watch() {
	b.t.Helper()
	b.responses = map[string]*network.Response{}
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		b.t.Fatalf("start Chromium: %v", err)
	}
	err := chromedp.Listen(b.ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
			b.sent = append(b.sent, e.Request.Headers)
		case *network.EventResponseReceived:
			b.responses[e.Response.URL] = e.Response
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

// check fails on any request outside the server and on console errors
// other than those the test caused on purpose (allowed).
func (b *chromiumTab) check(allowed ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.urls {
		if !strings.HasPrefix(u, b.base+"/") && !strings.HasPrefix(u, "data:") {
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
func (b *chromiumTab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

// until polls a JavaScript predicate until it is true (30 s bound).
func (b *chromiumTab) until(step, js string) {
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

// eval returns a string-valued JavaScript expression.
func (b *chromiumTab) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// text returns the trimmed text of the element with id.
func (b *chromiumTab) text(id string) string {
	b.t.Helper()
	return strings.TrimSpace(b.eval(`document.getElementById(` + fmt.Sprintf("%q", id) + `).textContent`))
}

// mustQR waits for the QR code of an order other than prev and checks the
// image is a PNG the server sent with status 200; it returns the order's
// out_trade_no.
func (b *chromiumTab) mustQR(step, prev string) string {
	b.t.Helper()
	b.until(step, `(() => { const i = document.getElementById("qr"); const no = document.getElementById("order-no").textContent;
		return !!i && i.complete && i.naturalWidth > 0 && !document.getElementById("state-qr").hidden && no !== "" && no !== `+fmt.Sprintf("%q", prev)+`; })()`)
	src := b.eval(`document.getElementById("qr").currentSrc`)
	no := b.text("order-no")
	if !strings.Contains(src, "/orders/"+no+"/qr.png") {
		b.t.Fatalf("%s: QR image %s is not order %s's", step, src, no)
	}
	var res *network.Response
	eventually(b.t, step+": the QR response is recorded", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		res = b.responses[src]
		return res != nil
	})
	if res.Status != http.StatusOK || res.MimeType != "image/png" {
		b.t.Fatalf("%s: QR image answered %d %s", step, res.Status, res.MimeType)
	}
	// The same bytes, read outside the browser, are a PNG.
	st, body, _ := client{b.t, b.base}.call("GET", strings.TrimPrefix(src, b.base), "", "", nil)
	if st != http.StatusOK || !bytes.HasPrefix(body, []byte("\x89PNG\r\n\x1a\n")) {
		b.t.Fatalf("%s: GET %s: %d, %d bytes not a PNG", step, src, st, len(body))
	}
	return no
}

// mustErrorPage opens url and checks the answer is status with the clear
// page whose text has want.
func (b *chromiumTab) mustErrorPage(step, url string, status int64, want string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	if res.Status != status {
		b.t.Fatalf("%s: status %d, want %d", step, res.Status, status)
	}
	b.do(step, chromedp.WaitVisible(chromedp.CSS("#error-page")))
	if got := b.text("error-page"); !strings.Contains(got, want) {
		b.t.Fatalf("%s: page says %q, want %q", step, got, want)
	}
}

// shot saves a screenshot of the viewport as name.png and logs its path.
func (b *chromiumTab) shot(name string) {
	b.t.Helper()
	b.until("paint "+name, `document.fonts.status === "loaded"`)
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// navigatedAway reports whether err is a poll cut short by a navigation.
func navigatedAway(err error) bool {
	m := err.Error()
	return strings.Contains(m, "Cannot find context with specified id") || strings.Contains(m, "Execution context was destroyed") ||
		strings.Contains(m, "Inspected target navigated or closed")
}

// browserVisible is a JavaScript test that the element with id shows.
func browserVisible(id string) string {
	return fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && !e.hidden && e.offsetParent !== null; })()`, id)
}

// browserOrderRow is a JavaScript test that the account page lists order
// no with status, shown as text.
func browserOrderRow(no, status, text string) string {
	return fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-order="%s"]'); const s = r && r.querySelector(".pill.st-%s");
		return !!s && s.textContent === %q; })()`, no, status, text)
}
