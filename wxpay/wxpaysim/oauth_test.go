package wxpaysim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/wxpay/wxpaysim"
)

const testAppSecret = "0123456789abcdef0123456789abcdef"

// authorizeURL is the authorization URL a merchant page redirects to.
func (e *env) authorizeURL(redirectURI, state string, extra url.Values) string {
	q := url.Values{"appid": {e.cfg.AppID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"snsapi_base"}, "state": {state}}
	for k, v := range extra {
		q[k] = v
	}
	return e.base + "/connect/oauth2/authorize?" + q.Encode() + "#wechat_redirect"
}

// mustAuthorize follows the authorization URL with c (which must not
// follow redirects) and returns the URL WeChat redirects to.
func (e *env) mustAuthorize(c *http.Client, u string) *url.URL {
	e.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		e.t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}

// exchange calls /sns/oauth2/access_token and decodes the answer, which is
// always HTTP 200.
func (e *env) exchange(appID, secret, code, grant string) map[string]any {
	e.t.Helper()
	q := url.Values{"appid": {appID}, "secret": {secret}, "code": {code}, "grant_type": {grant}}
	resp, err := http.Get(e.base + "/sns/oauth2/access_token?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("access_token: %d %v", resp.StatusCode, err)
	}
	return m
}

// oauthEnv is an emulator with an AppSecret, a fake clock and a log.
func oauthEnv(t *testing.T) (*env, *clocktest.Clock, func() string) {
	clk := clocktest.New(time.Now())
	var mu sync.Mutex
	var logs strings.Builder
	e := mustEnv(t, func(s *wxpaysim.Server) {
		s.AppSecret, s.Clock = testAppSecret, clk
		s.RedirectHosts = []string{"shop.example"}
		s.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(&logs, format+"\n", args...)
		}
	})
	return e, clk, func() string { mu.Lock(); defer mu.Unlock(); return logs.String() }
}

func TestOAuthCodeGivesTheOpenIDOnce(t *testing.T) {
	e, _, logs := oauthEnv(t)
	loc := e.mustAuthorize(noRedirects, e.authorizeURL("https://shop.example/checkout?order=7", "st8", url.Values{"openid": {"oTestPayer000000000000000001"}}))
	if loc.Host != "shop.example" || loc.Path != "/checkout" || loc.Query().Get("order") != "7" || loc.Query().Get("state") != "st8" {
		t.Fatalf("redirected to %s", loc)
	}
	code := loc.Query().Get("code")
	ans := e.exchange(e.cfg.AppID, testAppSecret, code, "authorization_code")
	if ans["openid"] != "oTestPayer000000000000000001" || ans["scope"] != "snsapi_base" || ans["expires_in"] != float64(7200) ||
		ans["access_token"] == "" || ans["refresh_token"] == "" || ans["errcode"] != nil {
		t.Fatalf("exchange: %v", ans)
	}
	if ans := e.exchange(e.cfg.AppID, testAppSecret, code, "authorization_code"); ans["errcode"] != float64(40163) || ans["errmsg"] != "code been used" || ans["openid"] != nil {
		t.Fatalf("replayed code: %v", ans)
	}
	if strings.Contains(logs(), testAppSecret) {
		t.Fatalf("the AppSecret is in the log:\n%s", logs())
	}
}

func TestOAuthCodeExpiresAfterFiveMinutes(t *testing.T) {
	e, clk, _ := oauthEnv(t)
	u := e.authorizeURL("https://shop.example/cb", "", url.Values{"openid": {"oTestPayer000000000000000002"}})
	early := e.mustAuthorize(noRedirects, u).Query().Get("code")
	late := e.mustAuthorize(noRedirects, u).Query().Get("code")
	clk.Advance(wxpaysim.OAuthCodeTTL - time.Second)
	if ans := e.exchange(e.cfg.AppID, testAppSecret, early, "authorization_code"); ans["openid"] != "oTestPayer000000000000000002" {
		t.Fatalf("code 1 s before its expiry: %v", ans)
	}
	clk.Advance(time.Second)
	if ans := e.exchange(e.cfg.AppID, testAppSecret, late, "authorization_code"); ans["errcode"] != float64(40029) || ans["openid"] != nil {
		t.Fatalf("expired code: %v", ans)
	}
}

func TestOAuthOpenIDIsStablePerBrowser(t *testing.T) {
	e, _, _ := oauthEnv(t)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: noRedirects.CheckRedirect}
	openid := func(c *http.Client) string {
		code := e.mustAuthorize(c, e.authorizeURL("https://shop.example/cb", "s", nil)).Query().Get("code")
		return fmt.Sprint(e.exchange(e.cfg.AppID, testAppSecret, code, "authorization_code")["openid"])
	}
	first := openid(browser)
	if len(first) != 28 || !strings.HasPrefix(first, "o") {
		t.Fatalf("openid %q", first)
	}
	if again := openid(browser); again != first {
		t.Fatalf("same browser, openid %q then %q", first, again)
	}
	jar2, _ := cookiejar.New(nil)
	if other := openid(&http.Client{Jar: jar2, CheckRedirect: noRedirects.CheckRedirect}); other == first {
		t.Fatalf("another browser got the same openid %q", other)
	}
}

func TestOAuthExchangeRefusals(t *testing.T) {
	e, _, logs := oauthEnv(t)
	code := e.mustAuthorize(noRedirects, e.authorizeURL("https://shop.example/cb", "s", url.Values{"openid": {"oTestPayer000000000000000003"}})).Query().Get("code")
	tests := []struct {
		name                      string
		appID, secret, code, kind string
		errcode                   float64
		errmsg                    string
	}{
		{"WrongSecret", e.cfg.AppID, "0123456789abcdef0123456789abcdeX", code, "authorization_code", 40125, "invalid appsecret"},
		{"NoSecret", e.cfg.AppID, "", code, "authorization_code", 40125, "invalid appsecret"},
		{"OtherAppID", "wx0000000000000000", testAppSecret, code, "authorization_code", 40013, "invalid appid"},
		{"WrongGrantType", e.cfg.AppID, testAppSecret, code, "client_credential", 40002, "invalid grant_type"},
		{"NoCode", e.cfg.AppID, testAppSecret, "", "authorization_code", 41008, "missing code"},
		{"UnknownCode", e.cfg.AppID, testAppSecret, "0000000000", "authorization_code", 40029, "invalid code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans := e.exchange(tt.appID, tt.secret, tt.code, tt.kind)
			if ans["errcode"] != tt.errcode || ans["errmsg"] != tt.errmsg || ans["openid"] != nil {
				t.Fatalf("%v, want errcode %v %q", ans, tt.errcode, tt.errmsg)
			}
		})
	}
	// None of the refusals spent the code.
	if ans := e.exchange(e.cfg.AppID, testAppSecret, code, "authorization_code"); ans["openid"] != "oTestPayer000000000000000003" {
		t.Fatalf("the code after refused exchanges: %v", ans)
	}
	if strings.Contains(logs(), testAppSecret) || strings.Contains(logs(), "0123456789abcdef0123456789abcdeX") {
		t.Fatalf("a secret is in the log:\n%s", logs())
	}
}

func TestOAuthAuthorizeRefusals(t *testing.T) {
	e, _, _ := oauthEnv(t)
	good := url.Values{"appid": {e.cfg.AppID}, "redirect_uri": {"https://shop.example/cb"}, "response_type": {"code"}, "scope": {"snsapi_base"}, "state": {"s"}}
	tests := []struct {
		name string
		set  url.Values
		drop string
	}{
		{"NoAppID", nil, "appid"},
		{"OtherAppID", url.Values{"appid": {"wx0000000000000000"}}, ""},
		{"NoRedirectURI", nil, "redirect_uri"},
		{"RelativeRedirectURI", url.Values{"redirect_uri": {"/cb"}}, ""},
		{"UnconfiguredRedirectHost", url.Values{"redirect_uri": {"https://evil.example/cb"}}, ""},
		{"SubdomainRedirectHost", url.Values{"redirect_uri": {"https://pay.shop.example/cb"}}, ""},
		{"ResponseTypeToken", url.Values{"response_type": {"token"}}, ""},
		{"ScopeLogin", url.Values{"scope": {"snsapi_login"}}, ""},
		{"LongState", url.Values{"state": {strings.Repeat("s", 129)}}, ""},
		{"BadOpenID", url.Values{"openid": {"o<script>"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = v
			}
			for k, v := range tt.set {
				q[k] = v
			}
			q.Del(tt.drop)
			resp, err := noRedirects.Get(e.base + "/connect/oauth2/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("%d Location %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// TestRedirectHosts: the browser is sent only to a configured domain, as
// WeChat's web authorization domain and H5 payment domain: by default
// the origin the emulator is served on (and BaseURL's), else exactly
// RedirectHosts. Any other host gets a 400 naming it, and nothing is
// issued or paid.
func TestRedirectHosts(t *testing.T) {
	// authorize returns the status, Location and body of authorizing with
	// redirect_uri back.
	authorize := func(t *testing.T, e *env, back string) (int, string, string, []*http.Cookie) {
		t.Helper()
		resp, err := noRedirects.Get(e.authorizeURL(back, "s", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), b.String(), resp.Cookies()
	}
	t.Run("DefaultIsTheEmulatorsOrigin", func(t *testing.T) {
		e := mustEnv(t, nil)
		self, _ := url.Parse(e.base)
		if st, loc, body, _ := authorize(t, e, "http://"+self.Host+"/checkout/T/wechat"); st != http.StatusFound ||
			!strings.HasPrefix(loc, "http://"+self.Host+"/checkout/T/wechat?code=") {
			t.Fatalf("back to the emulator's origin: %d %q %s", st, loc, body)
		}
		for _, back := range []string{"https://evil.example/cb", "http://" + self.Hostname() + ":1/cb"} {
			bad, _ := url.Parse(back)
			st, loc, body, cookies := authorize(t, e, back)
			if st != http.StatusBadRequest || loc != "" || len(cookies) != 0 ||
				!strings.Contains(body, `"`+bad.Host+`"`) || !strings.Contains(body, "10003") || !strings.Contains(body, self.Host) {
				t.Fatalf("redirect_uri %s: %d Location %q cookies %v\n%s", back, st, loc, cookies, body)
			}
		}

		h5 := e.mustH5Order("T3-H5-HOST", 100)
		prepay := strings.TrimPrefix(h5, e.base+"/sim/h5/pay?prepay_id=")
		if st, _, body := mustPage(t, http.MethodGet, h5+"&redirect_url="+url.QueryEscape("http://"+self.Host+"/checkout/T"), nil); st != 200 ||
			!strings.Contains(body, `id="cancel"`) {
			t.Fatalf("H5 page returning to the emulator's origin: %d\n%s", st, body)
		}
		before := digest(t, e.sim)
		evil := url.Values{"prepay_id": {prepay}, "redirect_url": {"https://evil.example/phish"}}
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			u := e.base + "/sim/h5/pay"
			if m == http.MethodGet {
				u += "?" + evil.Encode()
			}
			st, loc, body := mustPage(t, m, u, evil)
			if st != http.StatusBadRequest || loc != "" || !strings.Contains(body, "evil.example") ||
				strings.Contains(body, `id="pay"`) || strings.Contains(body, `href="https://evil.example`) {
				t.Fatalf("%s H5 page to another host: %d %q\n%s", m, st, loc, body)
			}
		}
		if digest(t, e.sim) != before {
			t.Fatal("a refused H5 redirect changed the emulator's state")
		}
		if o, _ := e.sim.Order("T3-H5-HOST"); o.State != wxpaysim.StateNotPay {
			t.Fatalf("order %s after the refusals", o.State)
		}
	})
	t.Run("BaseURLHost", func(t *testing.T) {
		e := mustEnv(t, func(s *wxpaysim.Server) { s.BaseURL = "https://pay.example/sandbox/wxpay" })
		if st, _, body, _ := authorize(t, e, "https://pay.example/checkout/T/wechat"); st != http.StatusFound {
			t.Fatalf("back to BaseURL's host: %d %s", st, body)
		}
		if st, _, _, _ := authorize(t, e, "https://other.example/cb"); st != http.StatusBadRequest {
			t.Fatalf("another host: %d", st)
		}
	})
	t.Run("Configured", func(t *testing.T) {
		e := mustEnv(t, func(s *wxpaysim.Server) {
			s.RedirectHosts = []string{"Shop.Example", "127.0.0.1:8443", "pay.example:443", "[::1]"}
		})
		self, _ := url.Parse(e.base)
		for back, want := range map[string]int{
			"https://shop.example/cb":      http.StatusFound, // no port in the entry: any port
			"http://SHOP.example:8080/cb":  http.StatusFound,
			"http://127.0.0.1:8443/cb":     http.StatusFound,
			"http://127.0.0.1:8444/cb":     http.StatusBadRequest,
			"https://pay.example/cb":       http.StatusFound, // https's port 443
			"http://pay.example/cb":        http.StatusBadRequest,
			"http://[::1]:9000/cb":         http.StatusFound,
			"https://pay.shop.example/cb":  http.StatusBadRequest,
			"https://shop.example.evil/cb": http.StatusBadRequest,
			"http://" + self.Host + "/cb":  http.StatusBadRequest, // the list replaces the default
		} {
			if st, loc, body, _ := authorize(t, e, back); st != want {
				t.Errorf("redirect_uri %s: %d %q, want %d\n%s", back, st, loc, want, body)
			}
		}
	})
}

func TestCheckRedirectHost(t *testing.T) {
	for h, ok := range map[string]bool{
		"pay.example.com": true, "127.0.0.1:8080": true, "[::1]:443": true, "[::1]": true, "localhost": true,
		"": false, "https://pay.example.com": false, "pay.example.com/checkout": false, "user@pay.example.com": false,
		"pay.example.com:": false, "pay.example.com:0": false, "pay.example.com:70000": false, "pay.example.com:http": false,
		"pay example.com": false, "::1": false, "pay.example.com?x": false,
	} {
		err := wxpaysim.CheckRedirectHost(h)
		if (err == nil) != ok {
			t.Errorf("CheckRedirectHost(%q) = %v, want ok %v", h, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "HOST:PORT") {
			t.Errorf("CheckRedirectHost(%q): %v does not say what is wanted", h, err)
		}
	}
}
