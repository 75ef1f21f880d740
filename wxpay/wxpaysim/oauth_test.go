package wxpaysim_test

import (
	"encoding/json"
	"fmt"
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
