package wxpay_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"tollgate/wxpay"
)

// oauthTestSecret is the AppSecret of the OAuth tests; it must never show
// in an error. It holds characters that query escaping changes.
const oauthTestSecret = "s3cr3t+AppSecret/0123456789abcdef"

// oauthFake answers /sns/oauth2/access_token with answer and records the
// query it got.
type oauthFake struct {
	mu     sync.Mutex
	status int
	answer string
	query  url.Values
	path   string
}

func (f *oauthFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.query, f.path = r.URL.Query(), r.URL.Path
	w.Header().Set("Content-Type", "application/json; encoding=utf-8") // WeChat's own spelling
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.answer)
}

func newOAuthTest(t *testing.T, status int, answer string) (*oauthFake, *wxpay.OAuthClient, *httptest.Server) {
	t.Helper()
	f := &oauthFake{status: status, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &wxpay.OAuthClient{APIURL: srv.URL + "/sandbox/wxpay/", AppID: v3TestAppID, Secret: oauthTestSecret, HTTPClient: srv.Client()}, srv
}

func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{oauthTestSecret, url.QueryEscape(oauthTestSecret), "s3cr3t"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error text %q shows the secret", err)
		}
	}
}

func TestOAuthOpenID(t *testing.T) {
	f, c, _ := newOAuthTest(t, 200, `{"access_token":"ACCESS_TOKEN","expires_in":7200,"refresh_token":"REFRESH_TOKEN","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","scope":"snsapi_base"}`)
	openid, err := c.OpenID(context.Background(), "061Ab+Ga1/xyz&a=b")
	if err != nil {
		t.Fatal(err)
	}
	if openid != v3TestOpenID {
		t.Errorf("openid = %q", openid)
	}
	want := url.Values{"appid": {v3TestAppID}, "secret": {oauthTestSecret}, "code": {"061Ab+Ga1/xyz&a=b"}, "grant_type": {"authorization_code"}}
	if f.path != "/sandbox/wxpay/sns/oauth2/access_token" || f.query.Encode() != want.Encode() {
		t.Errorf("request %s ? %v\nwant %v", f.path, f.query, want)
	}
}

func TestOAuthOpenIDErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		answer   string
		code     string
		wantCode bool // wraps ErrOAuthCode
		wantErr  int  // OAuthError.Code, 0 for none
		wantSent error
	}{
		{name: "InvalidCode", status: 200, answer: `{"errcode":40029,"errmsg":"invalid code, rid: 6566d7a2-1a2b3c4d"}`, wantCode: true, wantErr: 40029},
		{name: "CodeUsed", status: 200, answer: `{"errcode":40163,"errmsg":"code been used, rid: 6566d7a2-1a2b3c4d"}`, wantCode: true, wantErr: 40163},
		{name: "InvalidSecret", status: 200, answer: `{"errcode":40125,"errmsg":"invalid appsecret, rid: 6566d7a2-1a2b3c4d"}`, wantErr: 40125},
		{name: "SecretEchoed", status: 200, answer: `{"errcode":40125,"errmsg":"invalid appsecret ` + oauthTestSecret + `"}`, wantErr: 40125},
		{name: "Busy", status: 200, answer: `{"errcode":-1,"errmsg":"system error"}`, wantErr: -1},
		{name: "NotJSON", status: 200, answer: `<html>502 Bad Gateway</html>`, wantSent: wxpay.ErrMalformed},
		{name: "HTTP500", status: 500, answer: `{"errcode":40029}`, wantSent: wxpay.ErrMalformed},
		{name: "NoOpenID", status: 200, answer: `{"access_token":"ACCESS_TOKEN","expires_in":7200}`, wantSent: wxpay.ErrMalformed},
		{name: "TooLarge", status: 200, answer: `{"openid":"` + strings.Repeat("o", wxpay.MaxBodyBytes) + `"}`, wantSent: wxpay.ErrBodyTooLarge},
		{name: "EmptyCode", status: 200, answer: `{"openid":"o"}`, code: "-", wantCode: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c, _ := newOAuthTest(t, tt.status, tt.answer)
			code := "061Ab2Ga1"
			if tt.code == "-" {
				code = ""
			}
			_, err := c.OpenID(context.Background(), code)
			if err == nil {
				t.Fatal("no error")
			}
			checkNoSecret(t, err)
			if got := errors.Is(err, wxpay.ErrOAuthCode); got != tt.wantCode {
				t.Errorf("errors.Is(%v, ErrOAuthCode) = %v", err, got)
			}
			var oe *wxpay.OAuthError
			if tt.wantErr != 0 && (!errors.As(err, &oe) || oe.Code != tt.wantErr || oe.Message == "") {
				t.Errorf("err = %v, want OAuthError %d", err, tt.wantErr)
			}
			if tt.wantErr == 0 && errors.As(err, &oe) {
				t.Errorf("err = %v is an OAuthError", err)
			}
			if tt.wantSent != nil {
				var te *wxpay.TransportError
				if !errors.As(err, &te) || !errors.Is(err, tt.wantSent) {
					t.Errorf("err = %v, want a *TransportError wrapping %v", err, tt.wantSent)
				}
			}
			if tt.code == "-" && f.query != nil {
				t.Error("an empty code was sent")
			}
		})
	}

	t.Run("Unreachable", func(t *testing.T) {
		_, c, srv := newOAuthTest(t, 200, `{}`)
		srv.Close()
		_, err := c.OpenID(context.Background(), "061Ab2Ga1")
		var te *wxpay.TransportError
		if !errors.As(err, &te) {
			t.Fatalf("err = %v, want *TransportError", err)
		}
		checkNoSecret(t, err)
	})
	t.Run("Cancelled", func(t *testing.T) {
		_, c, _ := newOAuthTest(t, 200, `{}`)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.OpenID(ctx, "061Ab2Ga1")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		checkNoSecret(t, err)
	})
	t.Run("BadAPIURL", func(t *testing.T) {
		c := &wxpay.OAuthClient{APIURL: "http://[::1", AppID: v3TestAppID, Secret: oauthTestSecret}
		_, err := c.OpenID(context.Background(), "061Ab2Ga1")
		if err == nil {
			t.Fatal("no error")
		}
		checkNoSecret(t, err)
	})
	t.Run("NoSecret", func(t *testing.T) {
		c := &wxpay.OAuthClient{AppID: v3TestAppID}
		if _, err := c.OpenID(context.Background(), "061Ab2Ga1"); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestOAuthAuthorizeRedirect(t *testing.T) {
	c := &wxpay.OAuthClient{AppID: v3TestAppID, Secret: oauthTestSecret}
	got := c.AuthorizeRedirect("https://pay.example.com/checkout/wechat?order=o_1&amp=a b#frag", "Zx9")
	want := "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxd678efh567hg6787" +
		"&redirect_uri=https%3A%2F%2Fpay.example.com%2Fcheckout%2Fwechat%3Forder%3Do_1%26amp%3Da+b%23frag" +
		"&response_type=code&scope=snsapi_base&state=Zx9#wechat_redirect"
	if got != want {
		t.Errorf("AuthorizeRedirect =\n%s\nwant\n%s", got, want)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("redirect_uri") != "https://pay.example.com/checkout/wechat?order=o_1&amp=a b#frag" || q.Get("state") != "Zx9" || u.Fragment != "wechat_redirect" {
		t.Errorf("parsed back: %v #%s", q, u.Fragment)
	}
	if strings.Contains(got, "s3cr3t") {
		t.Error("the secret is in the authorisation URL")
	}

	c.AuthorizeURL = "http://127.0.0.1:8080/sandbox/wxpay/"
	if got := c.AuthorizeRedirect("http://127.0.0.1:8080/cb", "s&t"); got != "http://127.0.0.1:8080/sandbox/wxpay/connect/oauth2/authorize?appid=wxd678efh567hg6787&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&response_type=code&scope=snsapi_base&state=s%26t#wechat_redirect" {
		t.Errorf("with a mount prefix: %s", got)
	}
}
