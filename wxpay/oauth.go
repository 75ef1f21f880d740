package wxpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Default hosts of WeChat's Official Account web authorisation.
const (
	DefaultOAuthAuthorizeURL = "https://open.weixin.qq.com"
	DefaultOAuthAPIURL       = "https://api.weixin.qq.com"
)

// Error codes of /sns/oauth2/access_token that mean the code cannot be
// exchanged: the browser must go through AuthorizeRedirect again.
const (
	OAuthCodeInvalid = 40029 // invalid code (unknown, expired after 5 minutes, or for another app)
	OAuthCodeUsed    = 40163 // code been used (each code is good once)
)

// ErrOAuthCode is wrapped by OpenID's error when the code is missing,
// invalid (errcode 40029) or already used (errcode 40163), as when a user
// reloads the page the authorisation redirected to: send the browser
// through AuthorizeRedirect again. For an errcode the error is also an
// *OAuthError.
var ErrOAuthCode = errors.New("wxpay oauth: authorisation code invalid or already used")

// OAuthError is an error code WeChat answered to a code exchange
// (errcode, errmsg): 40125 invalid appsecret, 40013 invalid appid, -1
// system busy, …. Message is WeChat's errmsg, with the secret removed
// should it ever appear.
type OAuthError struct {
	Code    int
	Message string
}

// Error implements error.
func (e *OAuthError) Error() string {
	return fmt.Sprintf("wxpay oauth: errcode %d: %s", e.Code, e.Message)
}

// OAuthClient gets a payer's openid through WeChat's Official Account web
// authorisation with scope snsapi_base (silent, no consent page), as JSAPI
// orders need. Set the fields before the first call; it is then safe for
// concurrent use. The secret is sent only to APIURL and never appears in
// an error.
type OAuthClient struct {
	// AuthorizeURL is the root of the authorisation page,
	// DefaultOAuthAuthorizeURL when empty.
	AuthorizeURL string
	// APIURL is the root of the code exchange, DefaultOAuthAPIURL when
	// empty. Either may carry a path prefix (the emulator's mount point).
	APIURL string
	// AppID is the Official Account's AppID (the one JSAPI orders use);
	// Secret its AppSecret.
	AppID  string
	Secret string
	// HTTPClient sends the exchange; a client with a 30 s timeout when nil.
	HTTPClient *http.Client
}

// AuthorizeRedirect returns the URL to send a browser inside WeChat to:
// {AuthorizeURL}/connect/oauth2/authorize?appid=…&redirect_uri=…&response_type=code&scope=snsapi_base&state=…#wechat_redirect,
// parameters in that order, as WeChat requires, each query-escaped.
// WeChat then redirects to redirectURI with ?code=…&state=state appended
// (state: up to 128 characters of [a-zA-Z0-9], by WeChat's rules).
func (c *OAuthClient) AuthorizeRedirect(redirectURI, state string) string {
	base := c.AuthorizeURL
	if base == "" {
		base = DefaultOAuthAuthorizeURL
	}
	return strings.TrimRight(base, "/") + "/connect/oauth2/authorize" +
		"?appid=" + url.QueryEscape(c.AppID) +
		"&redirect_uri=" + url.QueryEscape(redirectURI) +
		"&response_type=code&scope=snsapi_base" +
		"&state=" + url.QueryEscape(state) +
		"#wechat_redirect"
}

// oauthAnswer is the JSON of /sns/oauth2/access_token.
type oauthAnswer struct {
	OpenID  string `json:"openid"`
	Scope   string `json:"scope"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// OpenID exchanges the code WeChat appended to the redirect for the
// payer's openid under AppID (GET {APIURL}/sns/oauth2/access_token). The
// access token that comes with it is not kept: snsapi_base needs nothing
// more. It returns:
//   - an error wrapping ErrOAuthCode for an empty code, and wrapping both
//     ErrOAuthCode and an *OAuthError for errcode 40029 or 40163;
//   - an *OAuthError for any other errcode (40125: wrong Secret);
//   - a *TransportError for a network failure, an HTTP status other than
//     200, or an answer that is not JSON or has no openid (ErrMalformed);
//   - a plain error when AppID or Secret is not set.
func (c *OAuthClient) OpenID(ctx context.Context, code string) (string, error) {
	const op = "oauth access_token"
	switch {
	case c.AppID == "" || c.Secret == "":
		return "", errors.New("wxpay oauth: AppID or Secret not set")
	case code == "":
		return "", fmt.Errorf("wxpay oauth: no code in the redirect: %w", ErrOAuthCode)
	}
	base := c.APIURL
	if base == "" {
		base = DefaultOAuthAPIURL
	}
	target := strings.TrimRight(base, "/") + "/sns/oauth2/access_token" +
		"?appid=" + url.QueryEscape(c.AppID) +
		"&secret=" + url.QueryEscape(c.Secret) +
		"&code=" + url.QueryEscape(code) +
		"&grant_type=authorization_code"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		// The error quotes the URL, and with it the secret.
		return "", fmt.Errorf("wxpay oauth: APIURL %q is not a usable URL", base)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", v3UserAgent)
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultV3HTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", &TransportError{Op: op, Err: c.redactErr(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	switch {
	case err != nil:
		return "", &TransportError{Op: op, Err: fmt.Errorf("read answer: %w", c.redactErr(err))}
	case len(body) > MaxBodyBytes:
		return "", &TransportError{Op: op, Err: fmt.Errorf("answer over %d bytes: %w", MaxBodyBytes, ErrBodyTooLarge)}
	case resp.StatusCode != http.StatusOK:
		return "", &TransportError{Op: op, Err: fmt.Errorf("HTTP %d: %w", resp.StatusCode, ErrMalformed)}
	}
	var a oauthAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", &TransportError{Op: op, Err: fmt.Errorf("answer is not JSON: %w", ErrMalformed)}
	}
	if a.ErrCode != 0 {
		e := &OAuthError{Code: a.ErrCode, Message: c.redact(a.ErrMsg)}
		if a.ErrCode == OAuthCodeInvalid || a.ErrCode == OAuthCodeUsed {
			return "", fmt.Errorf("%w: %w", ErrOAuthCode, e)
		}
		return "", e
	}
	if a.OpenID == "" || len(a.OpenID) > 128 {
		return "", &TransportError{Op: op, Err: fmt.Errorf("answer without a usable openid: %w", ErrMalformed)}
	}
	return a.OpenID, nil
}

// redact removes the secret, and its query-escaped form, from s.
func (c *OAuthClient) redact(s string) string {
	if c.Secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, c.Secret, "[secret]")
	return strings.ReplaceAll(s, url.QueryEscape(c.Secret), "[secret]")
}

// redactErr returns err with the secret removed from its text: a
// *url.Error quotes the whole request URL. Errors it wraps stay reachable
// through errors.Is only when the text needed no change.
func (c *OAuthClient) redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the operation and URL are known; keep the cause
	}
	if text := c.redact(err.Error()); text != err.Error() {
		return errors.New(text)
	}
	return err
}
