package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserConsole is the console's acceptance through serve, in
// headless Chromium: the operator logs in with the admin token, finds an
// account by its external id, adjusts its credits, refunds its order and
// sees the overview change; the admin API confirms each step and `tollgate
// audit` stays clean. It also edits the account's label and finds the
// refund on the refunds page. Screenshots: console-overview,
// console-account (with -update-docs copied to docs/), console-refunds,
// console-usage and a phone-sized overview.
func TestBrowserConsole(t *testing.T) {
	m := MustRunMain(t)
	c := client{t, m.URL}
	var a adminAccount
	c.must(201, "POST", "/admin/accounts", m.AdminToken, `{"label":"Zhang Wei","external_id":"shop-user-7"}`, &a)
	o := mustPaidOrder(t, c, a.APIKey, "console-order-1")
	c.must(200, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, nil)
	var before adminDetail
	c.must(200, "GET", "/admin/accounts/"+a.AccountID, m.AdminToken, "", &before)
	paid := before.Balance.Credits
	if paid <= 0 {
		t.Fatalf("balance after paying: %+v", before.Balance)
	}

	b := mustChromium(t, m.URL)
	b.do("desktop", chromedp.EmulateViewport(1280, 900))
	// Not logged in: the console sends the browser to the login.
	b.do("open the console", chromedp.Navigate(m.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.do("log in", chromedp.SendKeys(chromedp.CSS("#token"), m.AdminToken), chromedp.Submit(chromedp.CSS("#login")))
	b.until("overview", browserVisible("month"))
	monthText := func() string { return b.text("month") }
	refundedBefore, adjBefore := b.eval(`document.querySelector("#month .refunded").textContent`), b.eval(`document.querySelector("#month .adjustments").textContent`)
	if !strings.Contains(monthText(), "Gross") || !strings.HasPrefix(adjBefore, "0:") {
		t.Fatalf("overview's month before: %q", monthText())
	}

	// Find the account by the app's own user id.
	b.do("accounts", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/accounts"]`)), chromedp.WaitVisible(chromedp.CSS("#q")))
	b.do("search", chromedp.SendKeys(chromedp.CSS("#q"), "shop-user-7"), chromedp.Submit(chromedp.CSS("#search")))
	b.until("the account page", browserVisible("balance")+` && document.getElementById("external-id").textContent === "shop-user-7"`)
	if got := digits(b.text("available")); got != fmt.Sprint(paid) {
		t.Fatalf("available on the page %q, want %d", b.text("available"), paid)
	}

	// Adjust: +2500 credits with a reason.
	b.do("adjust", chromedp.SendKeys(chromedp.CSS("#adjust-credits"), "2500"),
		chromedp.SendKeys(chromedp.CSS("#adjust-reason"), "goodwill: outage on 3 May"), chromedp.Click(chromedp.CSS("#adjust-submit")))
	b.until("adjusted", `!!document.getElementById("flash") && document.getElementById("flash").textContent === "Adjusted."`)
	if got := digits(b.text("available")); got != fmt.Sprint(paid+2500) {
		t.Fatalf("available after the adjustment %q, want %d", b.text("available"), paid+2500)
	}
	if got := b.text("adjustments"); !strings.Contains(got, "goodwill: outage on 3 May") || !strings.Contains(got, "2,500") {
		t.Fatalf("adjustments table %q", got)
	}
	// Edit the label (the external id and metadata as they were).
	b.eval(`document.getElementById("edit-label").value = ""`)
	b.do("edit", chromedp.SendKeys(chromedp.CSS("#edit-label"), "Zhang Wei (VIP)"),
		chromedp.SendKeys(chromedp.CSS("#edit-reason"), "asked by sales"), chromedp.Click(chromedp.CSS("#edit-submit")))
	b.until("edited", `!!document.getElementById("flash") && document.getElementById("flash").textContent === "Saved."`)
	if got, ext := b.text("acct-label"), b.text("external-id"); got != "Zhang Wei (VIP)" || ext != "shop-user-7" {
		t.Fatalf("after the edit: label %q external id %q", got, ext)
	}
	b.shotTo("console-account", "console-account.png")
	var after adminDetail
	c.must(200, "GET", "/admin/accounts/"+a.AccountID, m.AdminToken, "", &after)
	if after.Balance.Credits != paid+2500 || len(after.Adjustments) != 1 || after.Adjustments[0].Reason != "goodwill: outage on 3 May" {
		t.Fatalf("the admin API after the console's adjustment: %+v %+v", after.Balance, after.Adjustments)
	}
	var acct struct {
		Label      string `json:"label"`
		ExternalID string `json:"external_id"`
	}
	c.must(200, "GET", "/admin/accounts/"+a.AccountID, m.AdminToken, "", &struct {
		Account any `json:"account"`
	}{&acct})
	if acct.Label != "Zhang Wei (VIP)" || acct.ExternalID != "shop-user-7" {
		t.Fatalf("the admin API after the console's edit: %+v", acct)
	}

	// Refund the order from its page (reached from the account's lots).
	b.do("order", chromedp.Click(chromedp.CSS(`a[href="/admin/ui/orders/`+o.OutTradeNo+`"]`)), chromedp.WaitVisible(chromedp.CSS("#refund-reason")))
	if got := b.text("wechat"); !strings.Contains(got, "SUCCESS") {
		t.Fatalf("WeChat Pay's view %q, want SUCCESS", got)
	}
	b.do("refund", chromedp.SendKeys(chromedp.CSS("#refund-reason"), "asked by the user by email"), chromedp.Click(chromedp.CSS("#refund-submit")))
	b.until("refunded", `!!document.getElementById("flash") && document.getElementById("refunds") !== null`)
	if got := b.text("refunds"); !strings.Contains(got, "admin") || !strings.Contains(got, "asked by the user by email") {
		t.Fatalf("refunds table %q", got)
	}
	eventually(t, "the order reads REFUND", func() bool {
		var got struct{ Status string }
		c.must(200, "GET", "/admin/orders/"+o.OutTradeNo, m.AdminToken, "", &got)
		return got.Status == "REFUND"
	})
	var refunds struct {
		Data []struct {
			OutRefundNo string `json:"out_refund_no"`
		} `json:"data"`
	}
	c.must(200, "GET", "/admin/refunds?out_trade_no="+o.OutTradeNo, m.AdminToken, "", &refunds)
	if len(refunds.Data) != 1 {
		t.Fatalf("refunds of the order: %+v", refunds)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/refunds/"+refunds.Data[0].OutRefundNo+"/complete", "", "", nil)
	eventually(t, "the refund succeeds (WeChat Pay's refund notification)", func() bool {
		var rep struct {
			RefundedFen int64 `json:"refunded_fen"`
		}
		c.must(200, "GET", "/admin/reports/revenue", m.AdminToken, "", &rep)
		return rep.RefundedFen > 0
	})

	// The refunds page lists it, with who asked and why.
	b.do("refunds", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/refunds"]`)), chromedp.WaitVisible(chromedp.CSS("#refund-filters")))
	if got := b.text("refund-list"); !strings.Contains(got, refunds.Data[0].OutRefundNo) || !strings.Contains(got, "asked by the user by email") ||
		!strings.Contains(got, "succeeded") {
		t.Fatalf("refunds page %q", got)
	}
	b.shot("console-refunds")

	// The overview shows both.
	b.do("overview", chromedp.Navigate(m.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#month")))
	if got := b.eval(`document.querySelector("#month .refunded").textContent`); got == refundedBefore || got == "¥0.00" {
		t.Fatalf("month's refunds %q, was %q", got, refundedBefore)
	}
	if got := b.eval(`document.querySelector("#month .adjustments").textContent`); !strings.HasPrefix(got, "1: +2,500") {
		t.Fatalf("month's adjustments %q, was %q", got, adjBefore)
	}
	b.shotTo("console-overview", "console-overview.png")
	b.do("usage", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/usage"]`)), chromedp.WaitVisible(chromedp.CSS(".filters")))
	if got := b.text("by-model"); !strings.Contains(got, "mock-gpt") || b.eval(`String(document.querySelectorAll(".chart rect").length)`) != "1" {
		t.Fatalf("usage page: by model %q, want mock-gpt and one day's bar", got)
	}
	b.shot("console-usage")
	b.do("catalog", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/catalog"]`)), chromedp.WaitVisible(chromedp.CSS("#digest")))
	if got := b.text("catalog"); !strings.Contains(got, "built-in") || !strings.Contains(b.text("packages"), "starter") {
		t.Fatalf("catalog page: %q, packages %q", got, b.text("packages"))
	}
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(m.URL+"/admin/?lang=zh"),
		chromedp.WaitVisible(chromedp.CSS("#month")))
	if got := b.text("month"); !strings.Contains(got, "本月") {
		t.Fatalf("Chinese overview %q", got)
	}
	if w := b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); w != "true" {
		t.Error("the overview is wider than a phone's screen")
	}
	b.shot("console-overview-phone-zh")
	b.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.check()
	mustAuditClean(t, m)
}
