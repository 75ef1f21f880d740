package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"tollgate"
)

// DefaultSessionTTL is how long a checkout link stays valid when the
// configuration does not say.
const DefaultSessionTTL = 30 * time.Minute

// MinSecretLen is the shortest session secret accepted: an HMAC-SHA256 key
// should be at least as long as its output.
const MinSecretLen = 32

// Errors of VerifySession. Each is shown to the user as a clear page, never
// as a 500.
var (
	ErrSessionMalformed = errors.New("web: checkout link is malformed")
	ErrSessionSignature = errors.New("web: checkout link signature does not verify")
	ErrSessionExpired   = errors.New("web: checkout link has expired")
)

// sessionDomain separates session MACs from any other use of the secret.
const sessionDomain = "tollgate-checkout-session-v1\n"

// Session is what a checkout link carries: whose account it serves, until
// when, and the package to show at once ("" for none). It is stateless: the
// server keeps nothing, the HMAC proves the server made it.
type Session struct {
	Account   tollgate.AccountID
	ExpiresAt time.Time
	PackageID string
	// ReturnURL is where the page sends the user after paying or giving
	// up ("" for nowhere), Locale the page's language (zh or en; "" lets
	// the browser choose), and Metadata the app's JSON object copied into
	// every order made from the session (nil for none). An app's session
	// (POST /v1/checkout/sessions) sets them, already checked. The user
	// can read them in the link, not change them: no secrets there.
	ReturnURL string
	Locale    string
	Metadata  json.RawMessage
}

// sessionPayload is the JSON inside a token; short names keep links short.
type sessionPayload struct {
	Account string          `json:"a"`
	Expires int64           `json:"e"`
	Package string          `json:"p,omitempty"`
	Return  string          `json:"r,omitempty"`
	Locale  string          `json:"l,omitempty"`
	Meta    json.RawMessage `json:"m,omitempty"`
}

// MaxTokenLen bounds a session token: room for MaxMetadata bytes of
// metadata and a return URL, base64-encoded.
const MaxTokenLen = 12 << 10

var b64 = base64.RawURLEncoding

// SignSession returns the token of s: base64url(JSON payload) "." base64url(
// HMAC-SHA256(secret, domain || payload part)). The token uses only URL-safe
// characters, so it can be a path segment.
func SignSession(secret []byte, s Session) string {
	p, _ := json.Marshal(sessionPayload{
		Account: string(s.Account),
		Expires: s.ExpiresAt.Unix(),
		Package: s.PackageID,
		Return:  s.ReturnURL,
		Locale:  s.Locale,
		Meta:    s.Metadata,
	})
	body := b64.EncodeToString(p)
	return body + "." + b64.EncodeToString(sessionMAC(secret, body))
}

// VerifySession checks token's signature in constant time and its expiry
// against now. Errors: ErrSessionMalformed, ErrSessionSignature,
// ErrSessionExpired. The payload is decoded only after the MAC verifies,
// so nothing an attacker writes is parsed.
func VerifySession(secret []byte, token string, now time.Time) (Session, error) {
	body, sig, ok := strings.Cut(token, ".")
	if !ok || body == "" || sig == "" || len(token) > MaxTokenLen {
		return Session{}, ErrSessionMalformed
	}
	mac, err := b64.DecodeString(sig)
	if err != nil {
		return Session{}, ErrSessionMalformed
	}
	if !hmac.Equal(mac, sessionMAC(secret, body)) {
		return Session{}, ErrSessionSignature
	}
	raw, err := b64.DecodeString(body)
	if err != nil {
		return Session{}, ErrSessionMalformed
	}
	var p sessionPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.Account == "" {
		return Session{}, ErrSessionMalformed
	}
	s := Session{Account: tollgate.AccountID(p.Account), ExpiresAt: time.Unix(p.Expires, 0), PackageID: p.Package,
		ReturnURL: p.Return, Locale: p.Locale, Metadata: p.Meta}
	if !now.Before(s.ExpiresAt) {
		return s, ErrSessionExpired
	}
	return s, nil
}

func sessionMAC(secret []byte, body string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sessionDomain))
	m.Write([]byte(body))
	return m.Sum(nil)
}
