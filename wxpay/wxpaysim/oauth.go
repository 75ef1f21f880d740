package wxpaysim

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultAppSecret is the AppSecret of the default app (DefaultAppID) when
// Server.AppSecret is empty: a test value, never a real one.
const DefaultAppSecret = "wxpaysimtestappsecret0123456789a"

// OAuthCodeTTL is how long an authorization code can be exchanged, once.
const OAuthCodeTTL = 5 * time.Minute

// OAuthOpenIDCookie is the cookie that keeps a browser's openid stable
// across authorizations.
const OAuthOpenIDCookie = "wxpaysim_openid"

// Error codes of /sns/oauth2/access_token (answered with HTTP 200, as
// WeChat does).
const (
	OAuthErrInvalidAppID     = 40013 // "invalid appid"
	OAuthErrInvalidSecret    = 40125 // "invalid appsecret"
	OAuthErrInvalidGrantType = 40002 // "invalid grant_type"
	OAuthErrMissingCode      = 41008 // "missing code"
	OAuthErrInvalidCode      = 40029 // "invalid code": unknown, expired or for another app
	OAuthErrCodeUsed         = 40163 // "code been used"
)

var oauthErrMsg = map[int]string{
	OAuthErrInvalidAppID: "invalid appid", OAuthErrInvalidSecret: "invalid appsecret",
	OAuthErrInvalidGrantType: "invalid grant_type", OAuthErrMissingCode: "missing code",
	OAuthErrInvalidCode: "invalid code", OAuthErrCodeUsed: "code been used",
}

// openIDRe is what the emulator accepts as an openid (WeChat's are 28
// characters of [A-Za-z0-9_-]).
var openIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// oauthCode is an authorization code handed to a redirect_uri.
type oauthCode struct {
	openID  string
	scope   string
	expires time.Time
	used    bool
}

// oauthRoutes registers WeChat's web authorization (网页授权) for an
// Official Account: the browser side on open.weixin.qq.com and the code
// exchange on api.weixin.qq.com, both served here.
func (s *Server) oauthRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /connect/oauth2/authorize", s.oauthAuthorize)
	m.HandleFunc("GET /sns/oauth2/access_token", s.oauthAccessToken)
}

func (s *Server) appSecret() string {
	if s.AppSecret == "" {
		return DefaultAppSecret
	}
	return s.AppSecret
}

// oauthAuthorize is the user opening the authorization URL inside WeChat:
// snsapi_base asks nothing, so WeChat redirects at once to redirect_uri
// with a code and the state, if redirect_uri's host is allowed
// (RedirectHosts). The payer is the openid query parameter (for
// tests), else the browser's wxpaysim_openid cookie, else a new openid
// remembered in that cookie. A bad request is answered 400, as WeChat
// shows an error page instead of redirecting.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	s.init()
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("appid") == "":
		s.oauthRefuse(w, "appid is missing (WeChat: 10012)")
		return
	case q.Get("appid") != s.AppID:
		s.oauthRefuse(w, "appid is not this emulator's app (WeChat: 10016)")
		return
	case q.Get("redirect_uri") == "" || err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "":
		s.oauthRefuse(w, "redirect_uri must be an absolute http(s) URL (WeChat: 10011)")
		return
	case q.Get("response_type") != "code":
		s.oauthRefuse(w, `response_type must be "code" (WeChat: 10008)`)
		return
	case q.Get("scope") != "snsapi_base" && q.Get("scope") != "snsapi_userinfo":
		s.oauthRefuse(w, "scope must be snsapi_base or snsapi_userinfo (WeChat: 10005)")
		return
	case len(q.Get("state")) > 128:
		s.oauthRefuse(w, "state is longer than 128 bytes")
		return
	}
	if why := s.redirectRefusal(r, redirect); why != "" {
		s.oauthRefuse(w, "redirect_uri "+why+" (WeChat: 10003 redirect_uri域名与后台配置不一致)")
		return
	}
	openID, ok := s.oauthPayer(w, r)
	if !ok {
		return
	}
	code := s.issueOAuthCode(oauthCode{openID: openID, scope: q.Get("scope")})
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	redirect.RawQuery, redirect.Fragment = rq.Encode(), ""
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// oauthPayer returns the openid of the user authorizing (see
// oauthAuthorize). On failure it has answered.
func (s *Server) oauthPayer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if v := r.URL.Query().Get("openid"); v != "" {
		if !openIDRe.MatchString(v) {
			s.oauthRefuse(w, "openid must be 1 to 128 characters of [A-Za-z0-9_-]")
			return "", false
		}
		return v, true
	}
	if c, err := r.Cookie(OAuthOpenIDCookie); err == nil && openIDRe.MatchString(c.Value) {
		return c.Value, true
	}
	v := newOpenID()
	http.SetCookie(w, &http.Cookie{Name: OAuthOpenIDCookie, Value: v, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	return v, true
}

// newOpenID makes an openid shaped like WeChat's.
func newOpenID() string { return "oUpF8u" + randAlnum(22) }

func (s *Server) oauthRefuse(w http.ResponseWriter, msg string) {
	s.logf("wxpaysim: OAuth authorize refused: %s", msg)
	http.Error(w, "wxpaysim: OAuth authorize: "+msg, http.StatusBadRequest)
}

// issueOAuthCode stores c under a new code valid for OAuthCodeTTL and
// drops expired ones.
func (s *Server) issueOAuthCode(c oauthCode) string {
	code := randAlnum(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked(s.clockSkew)
	for k, old := range s.oauthCodes {
		if !now.Before(old.expires) {
			delete(s.oauthCodes, k)
		}
	}
	c.expires = now.Add(OAuthCodeTTL)
	s.oauthCodes[code] = &c
	return code
}

// oauthAccessToken exchanges a code for the payer's openid. The code is
// spent only by a successful exchange; every refusal leaves it as it was.
// The secret is never logged or echoed.
func (s *Server) oauthAccessToken(w http.ResponseWriter, r *http.Request) {
	s.init()
	q := r.URL.Query()
	fail := func(code int) {
		s.logf("wxpaysim: OAuth access_token refused: %d %s", code, oauthErrMsg[code])
		writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": oauthErrMsg[code]})
	}
	switch {
	case q.Get("appid") != s.AppID:
		fail(OAuthErrInvalidAppID)
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("secret")), []byte(s.appSecret())) != 1:
		fail(OAuthErrInvalidSecret)
		return
	case q.Get("grant_type") != "authorization_code":
		fail(OAuthErrInvalidGrantType)
		return
	case q.Get("code") == "":
		fail(OAuthErrMissingCode)
		return
	}
	c, errCode := s.spendOAuthCode(q.Get("code"))
	if errCode != 0 {
		fail(errCode)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": randAlnum(86), "expires_in": 7200, "refresh_token": randAlnum(86),
		"openid": c.openID, "scope": c.scope,
	})
}

// spendOAuthCode marks code used and returns it, or the error code.
func (s *Server) spendOAuthCode(code string) (oauthCode, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.oauthCodes[code]
	switch {
	case c == nil || !s.nowLocked(s.clockSkew).Before(c.expires):
		return oauthCode{}, OAuthErrInvalidCode
	case c.used:
		return oauthCode{}, OAuthErrCodeUsed
	}
	c.used = true
	return *c, 0
}

// redirectHosts are the allowed hosts of a browser redirect for r:
// RedirectHosts, or the host r was addressed to and BaseURL's host.
func (s *Server) redirectHosts(r *http.Request) []string {
	if len(s.RedirectHosts) > 0 {
		return s.RedirectHosts
	}
	var hosts []string
	if r.Host != "" {
		hosts = append(hosts, r.Host)
	}
	if b, err := url.Parse(s.BaseURL); err == nil && b.Host != "" && !strings.EqualFold(b.Host, r.Host) {
		hosts = append(hosts, b.Host)
	}
	return hosts
}

// redirectRefusal says why the browser may not be sent to u (an absolute
// URL): "" when its host is one of redirectHosts, else a sentence naming
// the host and the allowed ones.
func (s *Server) redirectRefusal(r *http.Request, u *url.URL) string {
	hosts := s.redirectHosts(r)
	for _, h := range hosts {
		if hostAllows(h, u) {
			return ""
		}
	}
	return fmt.Sprintf("host %.100q is not a domain configured for this merchant (allowed: %s; "+
		"Server.RedirectHosts, tollgate sandbox --redirect-host)", u.Host, strings.Join(hosts, ", "))
}

// h5RedirectRefusal is redirectRefusal for an H5 page's redirect_url, ""
// when there is none.
func (s *Server) h5RedirectRefusal(r *http.Request, redirect string) string {
	u, err := url.Parse(redirect)
	if redirect == "" || err != nil {
		return ""
	}
	if why := s.redirectRefusal(r, u); why != "" {
		return "redirect_url " + why + " (WeChat: 商家存在未配置的参数，请联系商家解决)"
	}
	return ""
}

// hostAllows reports whether the allowed entry ("host" or "host:port")
// matches u's host: the name case-insensitively, and the port (u's
// scheme's default when u names none) when the entry has one.
func hostAllows(entry string, u *url.URL) bool {
	entry = strings.ToLower(strings.TrimSpace(entry))
	name := strings.ToLower(u.Hostname())
	if h, p, err := net.SplitHostPort(entry); err == nil {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		return h == name && p == port
	}
	return strings.Trim(entry, "[]") == name
}

// CheckRedirectHost reports whether h can be an entry of
// Server.RedirectHosts: a host name or IP address, optionally with a
// port, without scheme, user or path.
func CheckRedirectHost(h string) error {
	bad := func(why string) error {
		return fmt.Errorf("redirect host %.100q: %s; want HOST or HOST:PORT, such as pay.example.com or 127.0.0.1:8080", h, why)
	}
	switch {
	case h == "":
		return errors.New("redirect host is empty; want HOST or HOST:PORT, such as pay.example.com or 127.0.0.1:8080")
	case strings.Contains(h, "://"):
		return bad("a host has no scheme")
	case strings.ContainsAny(h, "/?#@ \t\r\n"):
		return bad("a host has no path, query, user or spaces")
	}
	u, err := url.Parse("http://" + h)
	if err != nil || u.Host != h || u.Hostname() == "" {
		return bad("not a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("the port must be 1 to 65535")
		}
	} else if strings.HasSuffix(h, ":") {
		return bad("the port is empty")
	}
	return nil
}
