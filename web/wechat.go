package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

// Browsers, as the checkout tells them apart by User-Agent.
const (
	browserDesktop = "desktop"
	browserMobile  = "mobile"
	browserWeChat  = "wechat"
)

// browserOf classifies a User-Agent: WeChat's built-in browser says
// MicroMessenger (WeCom's, which also says wxwork, cannot pay with an
// official account's openid and counts as a phone); phones and tablets say
// iPhone, iPad, iPod, Android or Mobile. Anything else is a desktop, which
// scans a QR code.
func browserOf(ua string) string {
	switch {
	case strings.Contains(ua, "MicroMessenger") && !strings.Contains(ua, "wxwork"):
		return browserWeChat
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"),
		strings.Contains(ua, "Android"), strings.Contains(ua, "Mobile"), strings.Contains(ua, "HarmonyOS"):
		return browserMobile
	}
	return browserDesktop
}

// OAuth state: WeChat passes it back untouched but allows only a–z, A–Z,
// 0–9 and 128 bytes, so it is hex: a random nonce, the expiry and a MAC
// binding both to the checkout session. The nonce is also in a cookie of
// this browser, so a state made for another browser (or used once already,
// which clears the cookie) is refused.
const (
	stateDomain  = "tollgate-wechat-oauth-state-v1\n"
	openIDDomain = "tollgate-wechat-openid-v1\n"
	stateCookie  = "tollgate_wxstate"
	openIDCookie = "tollgate_wx"
	stateTTL     = 10 * time.Minute
	nonceLen     = 12
	stateLen     = 2*nonceLen + 8 + 32
)

var (
	errStateInvalid = errors.New("web: OAuth state is missing, malformed, expired or not this browser's")
	validOAuthCode  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	validOpenID     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// newState returns a state for the session token and the nonce to keep in
// the browser's cookie.
func (h *Handler) newState(token string) (state, nonce string) {
	b := make([]byte, nonceLen)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	nonce = hex.EncodeToString(b)
	exp := strconv.FormatUint(uint64(h.now().Add(stateTTL).Unix()), 16)
	exp = strings.Repeat("0", 8-len(exp)) + exp
	return nonce + exp + hex.EncodeToString(h.stateMAC(token, nonce+exp)), nonce
}

func (h *Handler) stateMAC(token, body string) []byte {
	m := hmac.New(sha256.New, h.Secret)
	m.Write([]byte(stateDomain))
	m.Write([]byte(token))
	m.Write([]byte{'\n'})
	m.Write([]byte(body))
	return m.Sum(nil)[:16]
}

// checkState verifies a state against the session token, the clock and the
// browser's nonce cookie.
func (h *Handler) checkState(token, state, cookieNonce string) error {
	if len(state) != stateLen {
		return errStateInvalid
	}
	mac, err := hex.DecodeString(state[2*nonceLen+8:])
	if err != nil {
		return errStateInvalid
	}
	body := state[:2*nonceLen+8]
	if !hmac.Equal(mac, h.stateMAC(token, body)) {
		return errStateInvalid
	}
	exp, err := strconv.ParseUint(body[2*nonceLen:], 16, 64)
	if err != nil || !h.now().Before(time.Unix(int64(exp), 0)) {
		return errStateInvalid
	}
	if subtle.ConstantTimeCompare([]byte(body[:2*nonceLen]), []byte(cookieNonce)) != 1 {
		return errStateInvalid
	}
	return nil
}

// openIDPayload is the openid cookie's content before its MAC.
type openIDPayload struct {
	OpenID  string `json:"o"`
	Expires int64  `json:"e"`
}

// openIDCookieValue signs openid for the session token until exp.
func (h *Handler) openIDCookieValue(token, openid string, exp time.Time) string {
	p, _ := json.Marshal(openIDPayload{OpenID: openid, Expires: exp.Unix()})
	body := b64.EncodeToString(p)
	return body + "." + b64.EncodeToString(h.openIDMAC(token, body))
}

func (h *Handler) openIDMAC(token, body string) []byte {
	m := hmac.New(sha256.New, h.Secret)
	m.Write([]byte(openIDDomain))
	m.Write([]byte(token))
	m.Write([]byte{'\n'})
	m.Write([]byte(body))
	return m.Sum(nil)
}

// openID returns the openid this browser got through OAuth for the
// session in the path, "" when it has none (no cookie, another session's,
// expired or forged).
func (h *Handler) openID(r *http.Request) string {
	c, err := r.Cookie(openIDCookie)
	if err != nil || len(c.Value) > 1024 {
		return ""
	}
	body, sig, ok := strings.Cut(c.Value, ".")
	mac, err := b64.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, h.openIDMAC(r.PathValue("session"), body)) {
		return ""
	}
	raw, err := b64.DecodeString(body)
	var p openIDPayload
	if err != nil || json.Unmarshal(raw, &p) != nil || !validOpenID.MatchString(p.OpenID) ||
		!h.now().Before(time.Unix(p.Expires, 0)) {
		return ""
	}
	return p.OpenID
}

// sessionCookie is a cookie scoped to one checkout session's paths.
func (h *Handler) sessionCookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	age := int(maxAge / time.Second)
	if maxAge <= 0 {
		age = -1
	}
	return &http.Cookie{Name: name, Value: value, Path: "/checkout/" + r.PathValue("session"), MaxAge: age,
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || strings.HasPrefix(h.PublicURL, "https://")}
}

// wechatAuthorize answers a checkout page opened inside WeChat without an
// openid: a redirect to WeChat's authorize page (snsapi_base, no prompt),
// which comes back to /checkout/{session}/wechat.
func (h *Handler) wechatAuthorize(w http.ResponseWriter, r *http.Request, selected string) {
	token := r.PathValue("session")
	state, nonce := h.newState(token)
	back := h.baseURL(r) + "/checkout/" + token + "/wechat"
	if selected != "" {
		back += "?package=" + url.QueryEscape(selected)
	}
	http.SetCookie(w, h.sessionCookie(r, stateCookie, nonce, stateTTL))
	pageHeaders(w)
	w.Header().Set("Vary", "User-Agent")
	http.Redirect(w, r, h.OAuth.AuthorizeRedirect(back, state), http.StatusFound)
}

// wechatCallback answers GET /checkout/{session}/wechat?code=…&state=…,
// where WeChat's OAuth sends the browser back: it checks the state, swaps
// the code for the openid, keeps the openid in a cookie signed for this
// session and returns to the checkout, which then pays with the JSAPI
// sheet. Any failure is a clear page that changes nothing, unless the
// browser already holds this session's openid: then the page was reloaded
// (or reached again with Back) after signing in, its code spent and its
// state cookie cleared, and it returns to the checkout as the first time.
func (h *Handler) wechatCallback(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sessionPage(w, r)
	if !ok {
		return
	}
	token := r.PathValue("session")
	q := r.URL.Query()
	if h.OAuth == nil {
		h.wechatErrorPage(w, r, http.StatusNotFound, "err.oauth.off")
		return
	}
	fail := func(status int, key string) {
		if h.openID(r) != "" {
			h.backToCheckout(w, r)
			return
		}
		h.wechatErrorPage(w, r, status, key)
	}
	nonce := ""
	if c, err := r.Cookie(stateCookie); err == nil {
		nonce = c.Value
	}
	if err := h.checkState(token, q.Get("state"), nonce); err != nil {
		fail(http.StatusBadRequest, "err.oauth.state")
		return
	}
	code := q.Get("code")
	if !validOAuthCode.MatchString(code) {
		// WeChat sends no code when the user refused; a malformed one is
		// not worth asking WeChat about.
		fail(http.StatusBadRequest, "err.oauth.code")
		return
	}
	openid, err := h.OAuth.OpenID(r.Context(), code)
	if err == nil && !validOpenID.MatchString(openid) {
		err = tollgate.Errorf(tollgate.EUPSTREAM, "WeChat answered a malformed openid")
	}
	switch {
	case errors.Is(err, ErrOAuthCode):
		fail(http.StatusBadRequest, "err.oauth.code")
		return
	case err != nil:
		h.log().Warn("web: WeChat OAuth", "path", RedactPath(r.URL.Path), "err", err)
		fail(http.StatusBadGateway, "err.oauth.upstream")
		return
	}
	http.SetCookie(w, h.sessionCookie(r, stateCookie, "", 0))
	http.SetCookie(w, h.sessionCookie(r, openIDCookie, h.openIDCookieValue(token, openid, s.ExpiresAt), s.ExpiresAt.Sub(h.now())))
	h.backToCheckout(w, r)
}

// backToCheckout ends the OAuth round trip: 303 to the checkout, with the
// package chosen before it.
func (h *Handler) backToCheckout(w http.ResponseWriter, r *http.Request) {
	back := "/checkout/" + r.PathValue("session")
	if p := r.URL.Query().Get("package"); p != "" && validPackageID.MatchString(p) {
		back += "?package=" + url.QueryEscape(p)
	}
	pageHeaders(w)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// validPackageID bounds a package id carried through the OAuth round trip
// (the page ignores unknown ones).
var validPackageID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// wechatErrorPage shows an OAuth failure (key: err.oauth.*) with the ways
// on: the checkout again, or the QR code.
func (h *Handler) wechatErrorPage(w http.ResponseWriter, r *http.Request, status int, key string) {
	p := h.newPage(w, r, key+".title")
	base := "/checkout/" + r.PathValue("session")
	// The language switch leads to the checkout: this URL's code is spent.
	if p.Lang == langZH {
		p.SwitchURL = base + "?lang=" + langEN
	} else {
		p.SwitchURL = base + "?lang=" + langZH
	}
	p.Body = errorBody{Heading: p.T(key + ".title"), Text: p.T(key + ".body"), Links: []linkView{
		{ID: "retry-checkout", Href: base, Text: p.T("retry.checkout"), Primary: true},
		{ID: "show-qr", Href: base + "?method=native", Text: p.T("show.qr")},
	}}
	h.render(w, r, status, "error", p)
}

// clientIP is the payer's address for H5 orders: Handler.ClientIP, else
// RemoteAddr's host; "" when it is not an IP address.
func (h *Handler) clientIP(r *http.Request) string {
	var ip string
	if h.ClientIP != nil {
		ip = h.ClientIP(r)
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	} else {
		ip = r.RemoteAddr
	}
	if net.ParseIP(ip) == nil {
		return ""
	}
	return ip
}
