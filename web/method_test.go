package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tollgate/web"
	"tollgate/web/webfake"
)

// User agents of the browsers the checkout tells apart.
const (
	uaDesktop = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36"
	uaIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36"
	uaWeChat  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN"
	uaWeCom   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh"
)

// config is the page's checkout.js configuration.
func config(tb testing.TB, r resp) map[string]any {
	tb.Helper()
	m := regexp.MustCompile(`<script type="application/json" id="config">(.*?)</script>`).FindStringSubmatch(r.Body)
	if m == nil {
		tb.Fatalf("no config in page (%d):\n%s", r.Status, r.Body)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		tb.Fatal(err)
	}
	return c
}

func cookies(r resp) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestPayMethodByBrowser(t *testing.T) {
	for _, c := range []struct {
		name, ua, query string
		oauth           bool
		status          int
		method          string
		note, qrLink    bool
	}{
		{"Desktop", uaDesktop, "", true, 200, "native", false, false},
		{"IPhone", uaIPhone, "", true, 200, "h5", false, true},
		{"Android", uaAndroid, "", true, 200, "h5", false, true},
		{"WeChatSignsInFirst", uaWeChat, "", true, 302, "", false, false},
		{"WeChatWithoutOAuth", uaWeChat, "", false, 200, "native", true, false},
		{"WeCom", uaWeCom, "", true, 200, "h5", false, true},
		{"IPhoneAsksForQR", uaIPhone, "?method=native", true, 200, "native", false, false},
		{"WeChatAsksForQR", uaWeChat, "?method=native", true, 200, "native", false, false},
		{"WeChatWithoutOAuthAsksForQR", uaWeChat, "?method=native", false, 200, "native", true, false},
		{"UnknownMethodIgnored", uaIPhone, "?method=card", true, 200, "h5", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := MustFixture(t)
			if c.oauth {
				f.h.OAuth = f.flow
			}
			r := f.do("GET", "/checkout/"+f.token()+c.query, "", "User-Agent", c.ua, "Accept-Language", "en")
			if r.Status != c.status {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if c.status != 200 {
				return
			}
			if got := config(t, r)["method"]; got != c.method {
				t.Fatalf("method %v, want %s", got, c.method)
			}
			if got := strings.Contains(r.Body, `id="method-note"`); got != c.note {
				t.Fatalf("note shown %v, want %v", got, c.note)
			}
			if c.note && !strings.Contains(r.Body, "long-press the QR code") {
				t.Fatal("the note does not say how to pay")
			}
			if got := strings.Contains(r.Body, `<a href="/checkout/`+f.token()+`?method=native" id="show-qr">`); got != c.qrLink {
				t.Fatalf("\"Show QR code instead\" shown %v, want %v", got, c.qrLink)
			}
			checkPageSafety(t, r)
			if r.Header.Get("Vary") == "" {
				t.Error("a page that depends on the User-Agent does not say Vary")
			}
		})
	}
	t.Run("NoteInChinese", func(t *testing.T) {
		f := MustFixture(t)
		r := f.do("GET", "/checkout/"+f.token(), "", "User-Agent", uaWeChat, "Accept-Language", "zh-CN")
		if !strings.Contains(r.Body, "识别图中二维码") || !strings.Contains(r.Body, "选择套餐") {
			t.Fatalf("%s", r.Body)
		}
	})
}

// oauthStart opens the checkout inside WeChat and returns the authorize
// URL it redirected to and the state cookie.
func oauthStart(t *testing.T, f *fixture, tok, query string) (*url.URL, *http.Cookie) {
	t.Helper()
	r := f.do("GET", "/checkout/"+tok+query, "", "User-Agent", uaWeChat)
	if r.Status != http.StatusFound {
		t.Fatalf("checkout in WeChat: %d %s", r.Status, r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Path != "/sandbox/wxpay/connect/oauth2/authorize" {
		t.Fatalf("redirect to %q", r.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("scope") != "snsapi_base" || q.Get("redirect_uri") != "http://example.com/checkout/"+tok+"/wechat"+
		map[bool]string{true: "?package=plus", false: ""}[strings.Contains(query, "plus")] {
		t.Fatalf("authorize query %v", q)
	}
	if st := q.Get("state"); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(st) {
		t.Fatalf("state %q is not what WeChat allows (a-zA-Z0-9, at most 128)", st)
	}
	c := cookies(r)["tollgate_wxstate"]
	if c == nil || c.Path != "/checkout/"+tok || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 {
		t.Fatalf("state cookie %+v", c)
	}
	if r.Header.Get("Referrer-Policy") != "no-referrer" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("redirect headers %v", r.Header)
	}
	return loc, c
}

// oauthStart2 is oauthStart for any PublicURL.
func oauthStart2(t *testing.T, f *fixture, tok string) (*url.URL, *http.Cookie) {
	t.Helper()
	r := f.do("GET", "/checkout/"+tok, "", "User-Agent", uaWeChat)
	loc, err := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusFound || err != nil {
		t.Fatalf("%d %v", r.Status, r.Header)
	}
	return loc, cookies(r)["tollgate_wxstate"]
}

// authorize plays WeChat's authorize page: the callback URL with a code.
func authorize(t *testing.T, f *fixture, loc *url.URL) string {
	t.Helper()
	rec := httptest.NewRecorder()
	http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()).ServeHTTP(rec, httptest.NewRequest("GET", loc.RequestURI(), nil)) // browsers send no #fragment
	if rec.Code != http.StatusFound {
		t.Fatalf("authorize: %d %s", rec.Code, rec.Body)
	}
	back, _ := url.Parse(rec.Header().Get("Location"))
	return back.RequestURI()
}

func TestWeChatOAuth(t *testing.T) {
	f := MustFixture(t)
	f.h.OAuth = f.flow
	tok := f.token()
	loc, stateCookie := oauthStart(t, f, tok, "?package=plus")
	callback := authorize(t, f, loc)

	r := f.do("GET", callback, "", "User-Agent", uaWeChat, "Cookie", "tollgate_wxstate="+stateCookie.Value)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/checkout/"+tok+"?package=plus" {
		t.Fatalf("callback: %d %v %s", r.Status, r.Header, r.Body)
	}
	cs := cookies(r)
	wx := cs["tollgate_wx"]
	if wx == nil || wx.Path != "/checkout/"+tok || !wx.HttpOnly || wx.MaxAge <= 0 || wx.MaxAge > 30*60 {
		t.Fatalf("openid cookie %+v", wx)
	}
	if st := cs["tollgate_wxstate"]; st == nil || st.MaxAge >= 0 {
		t.Fatalf("the state cookie was not cleared: %+v", st)
	}
	if strings.Contains(wx.Value, webfake.DefaultOpenID) {
		t.Fatal("the openid cookie is not encoded") // signed, base64url
	}

	// Back on the checkout: the JSAPI sheet, no more redirects.
	r = f.do("GET", "/checkout/"+tok+"?package=plus", "", "User-Agent", uaWeChat, "Cookie", "tollgate_wx="+wx.Value)
	if c := config(t, r); r.Status != 200 || c["method"] != "jsapi" || c["selected"] != "plus" {
		t.Fatalf("checkout after sign-in: %d %v", r.Status, c)
	}
	if !strings.Contains(r.Body, `id="show-qr"`) || !strings.Contains(r.Body, "Pay in WeChat") {
		t.Fatal("the JSAPI page lacks its state or the QR alternative")
	}
	checkPageSafety(t, r)

	// The order carries the openid the code was for; the page gets the
	// sheet's parameters.
	r = f.do("POST", "/checkout/"+tok+"/orders", `{"package_id":"plus","device_fingerprint":"`+fp+`","method":"jsapi"}`,
		"Idempotency-Key", "key-0000000001", "Cookie", "tollgate_wx="+wx.Value)
	var o struct {
		OutTradeNo string           `json:"out_trade_no"`
		Method     string           `json:"method"`
		QRURL      string           `json:"qr_url"`
		JSAPI      *web.JSAPIParams `json:"jsapi"`
	}
	r.json(t, &o)
	if r.Status != 201 || o.Method != "jsapi" || o.QRURL != "" || o.JSAPI == nil || o.JSAPI.AppID != webfake.AppID ||
		!strings.HasPrefix(o.JSAPI.Package, "prepay_id=") || o.JSAPI.SignType != "RSA" || o.JSAPI.PaySign == "" {
		t.Fatalf("jsapi order: %d %s", r.Status, r.Body)
	}
	if got := f.flow.OpenIDOf(o.OutTradeNo); got != webfake.DefaultOpenID {
		t.Fatalf("order placed for openid %q", got)
	}

	// The sheet pays it; the order then reads paid with the balance.
	sheet := httptest.NewRecorder()
	params, _ := json.Marshal(o.JSAPI)
	http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()).ServeHTTP(sheet,
		httptest.NewRequest("POST", "/sandbox/wxpay/sim/jsapi/pay", strings.NewReader(string(params))))
	if sheet.Code != 200 || !strings.Contains(sheet.Body.String(), "get_brand_wcpay_request:ok") {
		t.Fatalf("sheet: %d %s", sheet.Code, sheet.Body)
	}
	r = f.do("GET", "/checkout/"+tok+"/orders/"+o.OutTradeNo, "")
	if !strings.Contains(r.Body, `"status":"SUCCESS"`) || !strings.Contains(r.Body, `"display":"7,200,000"`) {
		t.Fatalf("after the sheet: %s", r.Body)
	}

	t.Run("SecureCookiesBehindHTTPS", func(t *testing.T) {
		f := MustFixture(t)
		f.h.OAuth, f.h.PublicURL = f.flow, "https://pay.example"
		loc, c := oauthStart2(t, f, f.token())
		if !c.Secure || !strings.Contains(loc.Query().Get("redirect_uri"), "https://pay.example/checkout/") {
			t.Fatalf("cookie %+v, redirect_uri %s", c, loc.Query().Get("redirect_uri"))
		}
	})
	t.Run("ErrReplayedCode", func(t *testing.T) {
		// The same callback again, as if its code were used twice (the
		// state cookie kept): WeChat refuses the code; nothing changes.
		r := f.do("GET", callback, "", "User-Agent", uaWeChat, "Cookie", "tollgate_wxstate="+stateCookie.Value)
		mustOAuthErrorPage(t, f, r, http.StatusBadRequest, "WeChat did not accept the sign-in", 1)
	})
	t.Run("ErrReplayedCallback", func(t *testing.T) {
		// The browser replays the callback: its state cookie is gone.
		r := f.do("GET", callback, "", "User-Agent", uaWeChat)
		mustOAuthErrorPage(t, f, r, http.StatusBadRequest, "This WeChat sign-in is not valid", 1)
	})
	t.Run("ReloadAfterSignIn", func(t *testing.T) {
		// The payer reloads the page WeChat sent them back to (or comes
		// back to it): the code is spent, but the browser holds this
		// session's openid, so it goes on to the checkout, not to an error.
		for name, cookie := range map[string]string{
			"StateCookieCleared": "tollgate_wx=" + wx.Value,
			"StateCookieKept":    "tollgate_wx=" + wx.Value + "; tollgate_wxstate=" + stateCookie.Value, // WeChat refuses the code
		} {
			r := f.do("GET", callback, "", "User-Agent", uaWeChat, "Cookie", cookie)
			if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/checkout/"+tok+"?package=plus" || len(r.Header["Set-Cookie"]) != 0 {
				t.Fatalf("%s: reload: %d %v %s", name, r.Status, r.Header, r.Body)
			}
		}
		if n := f.orderCount(t); n != 1 {
			t.Fatalf("%d orders after the reloads, want 1", n)
		}
	})
	t.Run("ErrReloadWithAnotherSessionsOpenID", func(t *testing.T) {
		// An openid this browser got for another checkout does not sign
		// it in to this one.
		other := web.SignSession(secret, web.Session{Account: "acct_2", ExpiresAt: f.clk.Now().Add(time.Hour)})
		r := f.do("GET", callback, "", "User-Agent", uaWeChat, "Cookie", "tollgate_wx="+signedIn(t, f, other))
		mustOAuthErrorPage(t, f, r, http.StatusBadRequest, "This WeChat sign-in is not valid", 1)
	})
}

// mustOAuthErrorPage checks a failed OAuth callback: the clear page with
// both ways on, no cookie given, no order made beyond orders.
func mustOAuthErrorPage(t *testing.T, f *fixture, r resp, status int, heading string, orders int) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Body, `id="error-page"`) || !strings.Contains(r.Body, heading) {
		t.Fatalf("%d, want %d with %q:\n%s", r.Status, status, heading, r.Body)
	}
	if !strings.Contains(r.Body, `id="retry-checkout"`) || !regexp.MustCompile(`id="show-qr" href="/checkout/[^"]+\?method=native"`).MatchString(r.Body) {
		t.Fatalf("the page offers no way on:\n%s", r.Body)
	}
	if c := cookies(r); c["tollgate_wx"] != nil || c["tollgate_wxstate"] != nil {
		t.Fatalf("a failed sign-in set cookies %v", r.Header["Set-Cookie"])
	}
	if n := f.orderCount(t); n != orders {
		t.Fatalf("%d orders, want %d", n, orders)
	}
	checkPageSafety(t, r)
}

func TestWeChatOAuthBadInput(t *testing.T) {
	// Each case gets a fresh sign-in: the state WeChat would send back, its
	// cookie and a valid code; then spoils one thing.
	type signin struct {
		tok, state, nonce, code string
	}
	start := func(t *testing.T, f *fixture) signin {
		tok := f.token()
		loc, c := oauthStart(t, f, tok, "")
		back, _ := url.Parse(authorize(t, f, loc))
		return signin{tok, back.Query().Get("state"), c.Value, back.Query().Get("code")}
	}
	call := func(f *fixture, s signin) resp {
		q := url.Values{}
		if s.state != "" {
			q.Set("state", s.state)
		}
		if s.code != "" {
			q.Set("code", s.code)
		}
		h := []string{"User-Agent", uaWeChat, "Accept-Language", "en"}
		if s.nonce != "" {
			h = append(h, "Cookie", "tollgate_wxstate="+s.nonce)
		}
		return f.do("GET", "/checkout/"+s.tok+"/wechat?"+q.Encode(), "", h...)
	}
	for name, c := range map[string]struct {
		spoil   func(*fixture, *signin)
		status  int
		heading string
	}{
		"ErrNoState":       {func(_ *fixture, s *signin) { s.state = "" }, 400, "This WeChat sign-in is not valid"},
		"ErrTamperedState": {func(_ *fixture, s *signin) { s.state = s.state[:63] + flipHex(s.state[63:]) }, 400, "This WeChat sign-in is not valid"},
		"ErrShortState":    {func(_ *fixture, s *signin) { s.state = s.state[:40] }, 400, "This WeChat sign-in is not valid"},
		"ErrNotHexState":   {func(_ *fixture, s *signin) { s.state = s.state[:62] + "zz" }, 400, "This WeChat sign-in is not valid"},
		"ErrNoStateCookie": {func(_ *fixture, s *signin) { s.nonce = "" }, 400, "This WeChat sign-in is not valid"},
		"ErrOtherBrowser":  {func(_ *fixture, s *signin) { s.nonce = strings.Repeat("0", 24) }, 400, "This WeChat sign-in is not valid"},
		"ErrOtherSession": {func(f *fixture, s *signin) {
			s.tok = web.SignSession(secret, web.Session{Account: "acct_2", ExpiresAt: f.clk.Now().Add(time.Hour)})
		}, 400, "This WeChat sign-in is not valid"},
		"ErrStateExpired":   {func(f *fixture, _ *signin) { f.clk.Advance(11 * time.Minute) }, 400, "This WeChat sign-in is not valid"},
		"ErrNoCode":         {func(_ *fixture, s *signin) { s.code = "" }, 400, "WeChat did not accept the sign-in"},
		"ErrMalformedCode":  {func(_ *fixture, s *signin) { s.code = "a b<c>" }, 400, "WeChat did not accept the sign-in"},
		"ErrUnknownCode":    {func(_ *fixture, s *signin) { s.code = "0123456789abcdef0123456789abcdef" }, 400, "WeChat did not accept the sign-in"},
		"ErrCodeExpired":    {func(f *fixture, _ *signin) { f.clk.Advance(6 * time.Minute) }, 400, "WeChat did not accept the sign-in"},
		"ErrWeChatDown":     {func(f *fixture, _ *signin) { f.flow.OAuthErr = errors.New("dial tcp: connection refused") }, 502, "WeChat could not be reached"},
		"ErrOAuthOff":       {func(f *fixture, _ *signin) { f.h.OAuth = nil }, 404, "Paying inside WeChat is not set up"},
		"ErrSessionInvalid": {func(_ *fixture, s *signin) { s.tok = flip(s.tok) }, 404, "This link is not valid"},
		"ErrSessionExpired": {func(f *fixture, _ *signin) { f.clk.Advance(31 * time.Minute) }, 410, "This link has expired"},
	} {
		t.Run(name, func(t *testing.T) {
			f := MustFixture(t)
			f.h.OAuth = f.flow
			s := start(t, f)
			c.spoil(f, &s)
			r := call(f, s)
			if c.status == 404 && strings.Contains(c.heading, "link") || c.status == 410 {
				if r.Status != c.status || !strings.Contains(r.Body, c.heading) || cookies(r)["tollgate_wx"] != nil {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				return
			}
			mustOAuthErrorPage(t, f, r, c.status, c.heading, 0)
		})
	}
	t.Run("ErrSecondUseOfCode", func(t *testing.T) {
		// The same code twice with a state still valid (two tabs racing):
		// the first signs in, WeChat refuses the second.
		f := MustFixture(t)
		f.h.OAuth = f.flow
		s := start(t, f)
		if r := call(f, s); r.Status != http.StatusSeeOther {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		mustOAuthErrorPage(t, f, call(f, s), 400, "WeChat did not accept the sign-in", 0)
	})
}

func flipHex(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

// signedIn runs the OAuth round trip and returns the openid cookie.
func signedIn(t *testing.T, f *fixture, tok string) string {
	t.Helper()
	loc, c := oauthStart(t, f, tok, "")
	r := f.do("GET", authorize(t, f, loc), "", "User-Agent", uaWeChat, "Cookie", "tollgate_wxstate="+c.Value)
	wx := cookies(r)["tollgate_wx"]
	if r.Status != http.StatusSeeOther || wx == nil {
		t.Fatalf("sign-in: %d %s", r.Status, r.Body)
	}
	return wx.Value
}

func TestOrderMethodsBadInput(t *testing.T) {
	body := func(method string) string {
		return `{"package_id":"plus","device_fingerprint":"` + fp + `","method":"` + method + `"}`
	}
	for name, c := range map[string]struct {
		setup  func(*testing.T, *fixture) (tok string, headers []string)
		method string
		code   string
	}{
		"ErrJSAPIWithoutOpenID": {func(t *testing.T, f *fixture) (string, []string) { return f.token(), nil }, "jsapi", "PARAM_ERROR"},
		"ErrJSAPIOtherSessionsOpenID": {func(t *testing.T, f *fixture) (string, []string) {
			other := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(20 * time.Minute)})
			return f.token(), []string{"Cookie", "tollgate_wx=" + signedIn(t, f, other)}
		}, "jsapi", "PARAM_ERROR"},
		"ErrJSAPIForgedOpenID": {func(t *testing.T, f *fixture) (string, []string) {
			tok := f.token()
			_, sig, _ := strings.Cut(signedIn(t, f, tok), ".")
			forged := base64.RawURLEncoding.EncodeToString([]byte(`{"o":"oATTACKER","e":9999999999}`))
			return tok, []string{"Cookie", "tollgate_wx=" + forged + "." + sig}
		}, "jsapi", "PARAM_ERROR"},
		"ErrJSAPISessionExpired": {func(t *testing.T, f *fixture) (string, []string) {
			tok := web.SignSession(secret, web.Session{Account: account, ExpiresAt: f.clk.Now().Add(5 * time.Minute)})
			v := signedIn(t, f, tok)
			f.clk.Advance(5 * time.Minute)
			return tok, []string{"Cookie", "tollgate_wx=" + v}
		}, "jsapi", "session_expired"},
		"ErrJSAPIOAuthOff": {func(t *testing.T, f *fixture) (string, []string) {
			tok := f.token()
			v := signedIn(t, f, tok)
			f.h.OAuth = nil
			return tok, []string{"Cookie", "tollgate_wx=" + v}
		}, "jsapi", "PARAM_ERROR"},
		"ErrH5WithoutClientIP": {func(t *testing.T, f *fixture) (string, []string) {
			f.h.ClientIP = func(*http.Request) string { return "" }
			return f.token(), nil
		}, "h5", "PARAM_ERROR"},
		"ErrH5MalformedClientIP": {func(t *testing.T, f *fixture) (string, []string) {
			f.h.ClientIP = func(*http.Request) string { return "not-an-ip" }
			return f.token(), nil
		}, "h5", "PARAM_ERROR"},
		"ErrUnknownMethod": {func(t *testing.T, f *fixture) (string, []string) { return f.token(), nil }, "card", "PARAM_ERROR"},
		"ErrMethodCase":    {func(t *testing.T, f *fixture) (string, []string) { return f.token(), nil }, "JSAPI", "PARAM_ERROR"},
	} {
		t.Run(name, func(t *testing.T) {
			f := MustFixture(t)
			f.h.OAuth = f.flow
			tok, h := c.setup(t, f)
			r := f.do("POST", "/checkout/"+tok+"/orders", body(c.method), append([]string{"Idempotency-Key", "key-0000000001"}, h...)...)
			if r.Status/100 != 4 || r.code(t) != c.code {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			if n := f.orderCount(t); n != 0 {
				t.Fatalf("%d orders created by a refused request", n)
			}
		})
	}
}

func TestH5Order(t *testing.T) {
	f := MustFixture(t)
	tok := f.token()
	post := func(key, method string, headers ...string) resp {
		return f.do("POST", "/checkout/"+tok+"/orders", `{"package_id":"plus","device_fingerprint":"`+fp+`","method":"`+method+`"}`,
			append([]string{"Idempotency-Key", key}, headers...)...)
	}
	r := post("key-0000000001", "h5")
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
		Method     string `json:"method"`
		QRURL      string `json:"qr_url"`
		H5URL      string `json:"h5_url"`
	}
	r.json(t, &o)
	back := "http://example.com/checkout/" + tok + "?order=" + o.OutTradeNo
	if r.Status != 201 || o.Method != "h5" || o.QRURL != "" ||
		!strings.HasPrefix(o.H5URL, "/sandbox/wxpay/sim/h5/pay?prepay_id=") || !strings.HasSuffix(o.H5URL, "&redirect_url="+url.QueryEscape(back)) {
		t.Fatalf("h5 order: %d %s", r.Status, r.Body)
	}
	// A retry answers the same order and URL; the same key for a QR code
	// is another request.
	var again struct {
		OutTradeNo string `json:"out_trade_no"`
		H5URL      string `json:"h5_url"`
	}
	post("key-0000000001", "h5").json(t, &again)
	if again != struct {
		OutTradeNo string `json:"out_trade_no"`
		H5URL      string `json:"h5_url"`
	}{o.OutTradeNo, o.H5URL} {
		t.Fatalf("retry: %+v, want %+v", again, o)
	}
	if r := post("key-0000000001", "native"); r.Status != 409 || f.orderCount(t) != 1 {
		t.Fatalf("same key, other method: %d %s", r.Status, r.Body)
	}

	// The client IP comes from Handler.ClientIP; the link back from
	// PublicURL.
	var seen string
	f.h.ClientIP = func(r *http.Request) string { seen = r.Header.Get("X-Real-IP"); return seen }
	f.h.PublicURL = "https://pay.example"
	r = post("key-0000000002", "h5", "X-Real-IP", "203.0.113.9")
	r.json(t, &o)
	if r.Status != 201 || seen != "203.0.113.9" || !strings.HasSuffix(o.H5URL, url.QueryEscape("https://pay.example/checkout/"+tok+"?order="+o.OutTradeNo)) {
		t.Fatalf("%d %s (client IP seen %q)", r.Status, r.Body, seen)
	}

	// WeChat Pay's page pays and sends the browser back to the checkout,
	// which shows that order.
	h5 := httptest.NewRecorder()
	u, _ := url.Parse(o.H5URL)
	http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()).ServeHTTP(h5, httptest.NewRequest("POST", u.RequestURI(), nil))
	if h5.Code != http.StatusFound || h5.Header().Get("Location") != "https://pay.example/checkout/"+tok+"?order="+o.OutTradeNo {
		t.Fatalf("H5 page: %d %v", h5.Code, h5.Header())
	}
	page := f.do("GET", "/checkout/"+tok+"?order="+o.OutTradeNo, "", "User-Agent", uaIPhone, "Accept-Language", "zh")
	if c := config(t, page); page.Status != 200 || c["order"] != o.OutTradeNo || c["method"] != "h5" || c["selected"] != "" {
		t.Fatalf("return page: %d %v", page.Status, c)
	}
	if !strings.Contains(page.Body, "lang=en&amp;order="+o.OutTradeNo) {
		t.Fatal("the language switch forgets the order")
	}
	checkPageSafety(t, page)
	if r := f.do("GET", "/checkout/"+tok+"/orders/"+o.OutTradeNo, ""); !strings.Contains(r.Body, `"status":"SUCCESS"`) ||
		strings.Contains(r.Body, `"h5_url"`) {
		t.Fatalf("after paying: %s", r.Body)
	}
	if c := config(t, f.do("GET", "/checkout/"+tok+"?order=a%20b", "", "User-Agent", uaIPhone)); c["order"] != nil {
		t.Fatalf("a malformed ?order= reached the script: %v", c)
	}
}

func TestSimSheetRefusesBadParams(t *testing.T) {
	f := MustFixture(t)
	f.h.OAuth = f.flow
	tok := f.token()
	wx := signedIn(t, f, tok)
	r := f.do("POST", "/checkout/"+tok+"/orders", `{"package_id":"starter","device_fingerprint":"`+fp+`","method":"jsapi"}`,
		"Idempotency-Key", "key-0000000001", "Cookie", "tollgate_wx="+wx)
	var o struct {
		OutTradeNo string          `json:"out_trade_no"`
		JSAPI      web.JSAPIParams `json:"jsapi"`
	}
	r.json(t, &o)
	p := o.JSAPI
	p.Package = "prepay_id=wx_other"
	b, _ := json.Marshal(p)
	rec := httptest.NewRecorder()
	http.StripPrefix("/sandbox/wxpay", f.flow.SimHandler()).ServeHTTP(rec, httptest.NewRequest("POST", "/sandbox/wxpay/sim/jsapi/pay", strings.NewReader(string(b))))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "paySign does not verify") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got, _ := f.flow.GetOrder(context.Background(), account, o.OutTradeNo); got.Status != web.StatusNotPay {
		t.Fatalf("a refused sheet paid: %s", got.Status)
	}
	if bal, _ := f.flow.Balance(context.Background(), account); bal.Credits != 0 {
		t.Fatalf("balance %d", bal.Credits)
	}
}
