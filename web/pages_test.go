package web_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/web"
	"tollgate/web/webfake"
)

// external matches any reference the browser would fetch from another
// origin (the SVG namespace is an identifier, never fetched).
var external = regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//|@import|url\(`)

func TestCheckoutPageLanguages(t *testing.T) {
	f := MustFixture(t)
	for _, c := range []struct {
		name, acceptLang string
		want             []string
	}{
		{"EN", "en-US,en;q=0.9", []string{`lang="en"`, "Choose a package", "Pay with WeChat", "Pay with the emulator", "1.4M credits", "gpt-4o-mini", "≈", "中文", "Example AI"}},
		{"ZH", "zh-CN,zh;q=0.9,en;q=0.8", []string{`lang="zh-CN"`, "选择套餐", "微信支付", "用模拟器支付", "140万 额度", "English", "约"}},
		{"ZHPreferredByQuality", "en;q=0.5,zh-TW;q=0.9", []string{`lang="zh-CN"`}},
		{"DefaultEN", "fr-FR", []string{`lang="en"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("GET", "/checkout/"+f.token(), "", "Accept-Language", c.acceptLang)
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			for _, w := range c.want {
				if !strings.Contains(r.Body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			checkPageSafety(t, r)
		})
	}
}

// A model with a per-call fee shows it apart from its tokens, whose count
// is of the token price alone; a model without one shows no fee.
func TestCheckoutPagePerCallFee(t *testing.T) {
	f := MustFixture(t)
	f.flow.Models = []web.ModelPrice{
		{Model: "fee-model", Input: 1_000_000, Output: 1_000_000, PerCall: 2_000},
		{Model: "plain-model", Input: 1_000_000, Output: 1_000_000},
	}
	for lang, want := range map[string]string{"en": "+ 2K credits a call", "zh": "+ 2000 额度/次"} {
		r := f.do("GET", "/checkout/"+f.token()+"?lang="+lang, "")
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if n := strings.Count(r.Body, want); n == 0 {
			t.Errorf("%s: the page lacks %q:\n%s", lang, want, r.Body)
		}
		if strings.Count(r.Body, `class="call"`) != len(webfake.DefaultPackages) {
			t.Errorf("%s: want one fee per package (fee-model only), got %d", lang, strings.Count(r.Body, `class="call"`))
		}
	}
}

// checkPageSafety asserts what every page must be: nothing loaded from
// another origin, no inline script, headers that keep the link private.
func checkPageSafety(t *testing.T, r resp) {
	t.Helper()
	if m := external.FindString(r.Body); m != "" {
		t.Errorf("page loads an external resource: %q", m)
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(strings.ReplaceAll(r.Body, `<script type="application/json" id="config">`, "")) {
		t.Error("page has an inline script")
	}
	if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		r.Header.Get("Referrer-Policy") != "no-referrer" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", r.Header)
	}
}

func TestLanguageSwitch(t *testing.T) {
	f := MustFixture(t)
	tok := f.token()
	r := f.do("GET", "/checkout/"+tok+"?lang=zh", "", "Accept-Language", "en")
	if !strings.Contains(r.Body, "选择套餐") || !strings.Contains(r.Header.Get("Set-Cookie"), "tollgate_lang=zh") {
		t.Fatalf("?lang=zh: %v", r.Header)
	}
	if !strings.Contains(r.Body, `href="/checkout/`+tok+`?lang=en"`) {
		t.Fatal("the switch does not lead to English")
	}
	r = f.do("GET", "/account/"+tok, "", "Accept-Language", "en", "Cookie", "tollgate_lang=zh")
	if !strings.Contains(r.Body, "我的账户") {
		t.Fatal("the cookie did not keep Chinese")
	}
	r = f.do("GET", "/account/"+tok+"?lang=xx", "", "Accept-Language", "zh")
	if !strings.Contains(r.Body, "我的账户") || r.Header.Get("Set-Cookie") != "" {
		t.Fatal("an unknown ?lang= was not ignored")
	}
}

func TestPreselectedPackage(t *testing.T) {
	f := MustFixture(t)
	r := f.do("GET", "/checkout/"+f.token()+"?package=pro", "")
	if !strings.Contains(r.Body, `"selected":"pro"`) || !strings.Contains(r.Body, `card selected" data-package="pro"`) {
		t.Fatalf("pro not preselected:\n%s", r.Body)
	}
	inSession := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(time.Hour), PackageID: "plus"})
	if r := f.do("GET", "/checkout/"+inSession, ""); !strings.Contains(r.Body, `"selected":"plus"`) {
		t.Fatal("the session's package is not preselected")
	}
	if r := f.do("GET", "/checkout/"+f.token()+"?package=%3Cscript%3E", ""); r.Status != 200 || !strings.Contains(r.Body, `"selected":""`) || strings.Contains(r.Body, "<script>") {
		t.Fatalf("an unknown package: %d", r.Status)
	}
	if f.orderCount(t) != 0 {
		t.Fatal("rendering the page created an order")
	}
}

func TestAccountPage(t *testing.T) {
	f := MustFixture(t)
	paid := f.createOrder(t, "plus", "key-0000000001")["out_trade_no"].(string)
	failed := f.createOrder(t, "starter", "key-0000000002")["out_trade_no"].(string)
	if err := f.flow.Pay(paid); err != nil {
		t.Fatal(err)
	}
	if err := f.flow.Fail(failed); err != nil {
		t.Fatal(err)
	}
	now := f.clk.Now()
	models := []string{"gpt-4o-mini", "deepseek-chat", "claude-sonnet-4", "qwen-plus", "mistral-small", "mock", "gpt-4o"}
	for d := 0; d < 40; d++ {
		for i, m := range models {
			f.flow.AddUsage(account, web.Usage{Model: m, Credits: tollgate.Credits(1000 * (i + 1)), CreatedAt: now.AddDate(0, 0, -d)})
		}
	}
	for _, c := range []struct {
		lang string
		want []string
	}{
		{"en", []string{"Your account", "Available", "Held", "Provisional", "Debt", paid, "Paid", "Failed", ">Refund<", "Credits spent per day", "<svg", "<rect", "other", "gpt-4o"}},
		{"zh", []string{"我的账户", "可用", "冻结", "临时额度", "欠款", "已支付", "支付失败", ">退款<", "每日消耗额度", "其他"}},
	} {
		t.Run(c.lang, func(t *testing.T) {
			r := f.do("GET", "/account/"+f.token(), "", "Accept-Language", c.lang)
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			for _, w := range c.want {
				if !strings.Contains(r.Body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if n := strings.Count(r.Body, `class="btn small ghost refund"`); n != 1 {
				t.Errorf("%d refund buttons, want 1 (the paid order)", n)
			}
			// 30 days × 6 series (5 models + other).
			if n := strings.Count(r.Body, "<rect x="); n != 30*6 {
				t.Errorf("%d bars, want %d", n, 30*6)
			}
			checkPageSafety(t, r)
		})
	}
	t.Run("Empty", func(t *testing.T) {
		f := MustFixture(t)
		r := f.do("GET", "/account/"+f.token(), "", "Accept-Language", "en")
		if !strings.Contains(r.Body, "No usage in the last 30 days.") || !strings.Contains(r.Body, "No orders yet.") {
			t.Fatalf("%s", r.Body)
		}
	})
}

// brokenCatalog fails like a pricing service whose rate feed is down.
type brokenCatalog struct{}

func (brokenCatalog) Packages(context.Context) ([]web.Package, error) {
	return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "feed down")
}

func (brokenCatalog) ModelPrices(context.Context) ([]web.ModelPrice, error) { return nil, nil }

func TestPagesFailClearly(t *testing.T) {
	f := MustFixture(t)
	f.h.Catalog = brokenCatalog{}
	r := f.do("GET", "/checkout/"+f.token(), "", "Accept-Language", "zh")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "出错了") || strings.Contains(r.Body, "feed down") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}
