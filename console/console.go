// Package console is the operator's console at /admin/: server-rendered
// pages (templates and CSS embedded, nothing loaded from elsewhere) in
// Chinese and English, over the admin API. Every action a page takes is a
// request to the admin API's own handler (API), made in-process with the
// admin token, so the console validates, records and counts exactly what
// the API does; the console adds the login, its session and the log line
// naming the session and the reason given.
//
// Security: the admin token is compared in constant time at login and
// becomes a random session id in an HttpOnly, SameSite=Strict cookie
// (Secure when Secure is set: production's https public URL). Sessions
// live in the session store (Sessions: the deployment's shared TTL store,
// keyed by the hash of the session id), expire after Idle without a request and MaxAge
// after login, and end at logout. Every form carries the session's CSRF
// token; every unsafe request must come from the same origin
// (http.CrossOriginProtection: Sec-Fetch-Site, else Origin), and a
// credential in a query string is refused. Wrong admin tokens are limited
// per client IP (LoginLimit, through the shared limiter; the IP as
// httpapi.ClientIP resolves it behind TrustedProxyHeader): past it, logins
// from that IP are answered 429; and across all IPs (GlobalLoginLimit):
// past it, every new login is answered 429 for a while.
//
// A session is bound to the admin token it logged in with: when the token
// changes (a rotation and restart), every session made with the old one
// is refused at its next request.
//
// Attribution: each session has a tag, "console:" and the first 8 hex
// digits of sha256(session id), logged at login (with the client IP) and
// with each action and its reason, and sent to the admin API as the
// actor (actorHeader) of every request made on the session's behalf.
package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/gateway"
	"tollgate/httpapi"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/payment"
)

// Session lifetimes by default.
const (
	DefaultIdle   = time.Hour
	DefaultMaxAge = 12 * time.Hour
	cookieName    = "tollgate_console"
)

// Console serves the console's routes. Set the fields, then call Routes;
// API may be set after Routes (it is the server Routes are mounted on).
type Console struct {
	// API is the admin API's handler (httpapi.Server.Handler).
	API http.Handler
	// Token is the admin token: the login's password and what the
	// console's API requests carry.
	Token string
	// Revenue builds the overview's revenue figures (the revenue report's
	// domain call, for today and this month); nil shows none.
	Revenue httpapi.RevenueReporter
	// Debt sums the debt outstanding across accounts for the overview
	// (the store's aggregate); nil shows none.
	Debt ledger.DebtReporter
	// Orders counts the last 24 hours' orders per hour for the overview's
	// payments-and-failures chart (the store's aggregate); nil shows none.
	Orders payment.HourlyReporter
	// Health lists the deployments' breaker states and upstream failures
	// for the overview (gateway.Metrics); nil shows none.
	Health HealthReporter
	// Secure marks the session cookie Secure (an https public URL).
	Secure bool
	// Idle and MaxAge bound a session (DefaultIdle, DefaultMaxAge when 0).
	Idle, MaxAge time.Duration
	Clock        tollgate.Clock
	Logger       *slog.Logger
	// Sessions is where sessions live: the deployment's shared TTL store
	// (Redis with several instances), so a login holds on every instance
	// and across restarts. Nil keeps them in this process.
	Sessions kv.Cache
	// Limiter counts wrong admin tokens per client IP (LoginLimit); the
	// deployment's shared limiter, so the bound holds across instances.
	// Nil counts in this process.
	Limiter kv.Limiter
	// TrustedProxyHeader is httpapi.Server's: where the client IP is read
	// from behind a reverse proxy ("" for the connection's peer).
	TrustedProxyHeader string

	mu      sync.Mutex
	limiter kv.Limiter
}

// HealthReporter is what the overview's provider health reads:
// *gateway.Metrics.
type HealthReporter interface {
	Health() []gateway.DeploymentHealth
}

// LoginLimit bounds wrong admin tokens from one client IP: after 10 in
// any 15 minutes, every login from it (even with the right token) is
// refused with 429 until the lockout has passed.
var LoginLimit = kv.Window{Budget: 10, Length: 15 * time.Minute}

// GlobalLoginLimit bounds wrong admin tokens from all client IPs together,
// so that guessing from many addresses (each under LoginLimit) is slowed
// too: after 100 in any 15 minutes, every console login (even with the
// right token) is refused with 429 for the next 15 minutes. Sessions
// already open and the admin API (a bearer token, not a guessable form)
// are not affected.
var GlobalLoginLimit = kv.Window{Budget: 100, Length: 15 * time.Minute}

// actorHeader names who asks on an admin API request: the console sends
// its session's tag.
const actorHeader = httpapi.ActorHeader

// session is one login.
type session struct {
	id, csrf        string
	created, seen   time.Time
	flash, flashErr string
	// tokenMAC binds the session to the admin token it logged in with
	// (tokenBinding).
	tokenMAC string
	// newKey is a just-created secret (an API key, a webhook endpoint's
	// signing secret, a platform key), shown once on the console page
	// newKeyFor (its path) and then forgotten.
	newKey, newKeyFor string
}

// tag names a session in logs and as the admin API's actor without
// revealing the cookie: "console:" and 8 hex digits of sha256(id).
func (s *session) tag() string {
	h := sha256.Sum256([]byte(s.id))
	return "console:" + hex.EncodeToString(h[:4])
}

// tokenBinding is what a session keeps to tie it to the admin token:
// HMAC-SHA256 keyed by the session id over sha256(token). Keyed by the id
// (which the store never holds), so a copy of the store gives no way to
// test guesses of the token.
func tokenBinding(sessionID, token string) string {
	th := sha256.Sum256([]byte(token))
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write(th[:])
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

func (c *Console) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Console) idle() time.Duration {
	if c.Idle > 0 {
		return c.Idle
	}
	return DefaultIdle
}

func (c *Console) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return DefaultMaxAge
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionRecord is what the session store keeps under the hash of a
// session id: never the id itself, so a copy of the store (a Redis dump)
// holds nothing a browser could present.
type sessionRecord struct {
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"`
	Seen     time.Time `json:"seen"`
	Flash    string    `json:"flash,omitempty"`
	FlashErr string    `json:"flash_err,omitempty"`
	// Token is tokenBinding's; a record without one (made before sessions
	// were bound) is refused like a changed token.
	Token string `json:"token,omitempty"`
	// NewKey and NewKeyFor: a created secret until the page at path
	// NewKeyFor shows it (once), at most as long as the session lives.
	// The secret is sealed with a key derived from the session id
	// (sealNewKey), which the store never holds, so a copy of the store
	// holds no usable key.
	NewKey    string `json:"new_key,omitempty"`
	NewKeyFor string `json:"new_key_for,omitempty"`
}

// store is the session store: Sessions, else one in this process.
func (c *Console) store() kv.Cache {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Sessions == nil {
		c.Sessions = kv.NewMemory(kv.MemoryOptions{Clock: c.Clock})
	}
	return c.Sessions
}

// loginLimiter is Limiter, else one in this process.
func (c *Console) loginLimiter() kv.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Limiter != nil {
		return c.Limiter
	}
	if c.limiter == nil {
		c.limiter = kv.NewMemory(kv.MemoryOptions{Clock: c.Clock})
	}
	return c.limiter
}

// newKeyAEAD is the cipher that seals a created key's secret in session
// id's record: AES-256-GCM under HMAC-SHA256(id, "console new key").
func newKeyAEAD(id string) cipher.AEAD {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("console new key"))
	b, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// sealNewKey seals secret for session id's record ("" stays "").
func sealNewKey(id, secret string) string {
	if secret == "" {
		return ""
	}
	g := newKeyAEAD(id)
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return base64.RawStdEncoding.EncodeToString(g.Seal(nonce, nonce, []byte(secret), nil))
}

// openNewKey opens what sealNewKey sealed; "" when it cannot (nothing
// kept, or a record not of this session).
func openNewKey(id, sealed string) string {
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	g := newKeyAEAD(id)
	if sealed == "" || err != nil || len(b) < g.NonceSize() {
		return ""
	}
	p, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], nil)
	if err != nil {
		return ""
	}
	return string(p)
}

// sessionKey is the store key of session id: a hash, never the id.
func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return "console:session:" + hex.EncodeToString(h[:])
}

// save writes s to the store, to live until the first of its idle and
// absolute expiries.
func (c *Console) save(ctx context.Context, s *session, now time.Time) error {
	ttl := min(s.seen.Add(c.idle()).Sub(now), s.created.Add(c.maxAge()).Sub(now))
	if ttl <= 0 {
		return c.store().Delete(ctx, sessionKey(s.id))
	}
	b, err := json.Marshal(sessionRecord{CSRF: s.csrf, Created: s.created, Seen: s.seen, Flash: s.flash, FlashErr: s.flashErr,
		Token: s.tokenMAC, NewKey: sealNewKey(s.id, s.newKey), NewKeyFor: s.newKeyFor})
	if err != nil {
		return err
	}
	return c.store().Set(ctx, sessionKey(s.id), b, ttl)
}

// newSession starts a session and stores it.
func (c *Console) newSession(ctx context.Context) (*session, error) {
	now := c.now()
	s := &session{id: randomToken(), csrf: randomToken(), created: now, seen: now}
	s.tokenMAC = tokenBinding(s.id, c.Token)
	if err := c.save(ctx, s, now); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Console) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) >= c.idle() || now.Sub(s.created) >= c.maxAge()
}

// sessionOf returns the live session of r's cookie and marks it seen;
// nil when there is none, it is unknown (forged, or ended) or it expired
// (then it is forgotten). An error is the store's: it cannot say.
func (c *Console) sessionOf(r *http.Request) (*session, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) > 100 || ck.Value == "" {
		return nil, nil
	}
	ctx := r.Context()
	b, ok, err := c.store().Get(ctx, sessionKey(ck.Value))
	if err != nil || !ok {
		return nil, err
	}
	var rec sessionRecord
	if json.Unmarshal(b, &rec) != nil {
		return nil, nil
	}
	s := &session{id: ck.Value, csrf: rec.CSRF, created: rec.Created, seen: rec.Seen, flash: rec.Flash, flashErr: rec.FlashErr,
		tokenMAC: rec.Token, newKey: openNewKey(ck.Value, rec.NewKey), newKeyFor: rec.NewKeyFor}
	now := c.now()
	if c.expired(s, now) {
		return nil, c.store().Delete(ctx, sessionKey(s.id))
	}
	if !hmac.Equal([]byte(s.tokenMAC), []byte(tokenBinding(s.id, c.Token))) {
		// Logged in with another admin token: the one it proved is no
		// longer the operator's.
		c.log().InfoContext(ctx, "console: session refused: the admin token has changed since its login", "session", s.tag())
		return nil, c.store().Delete(ctx, sessionKey(s.id))
	}
	s.seen = now
	if err := c.save(ctx, s, now); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *Console) endSession(ctx context.Context, s *session) error {
	return c.store().Delete(ctx, sessionKey(s.id))
}

// setFlash leaves a message for the next page the session sees.
func (c *Console) setFlash(ctx context.Context, s *session, msg string, isErr bool) {
	if isErr {
		s.flashErr = msg
	} else {
		s.flash = msg
	}
	if err := c.save(ctx, s, c.now()); err != nil {
		c.log().WarnContext(ctx, "console: session store", "err", err)
	}
}

func (c *Console) takeFlash(ctx context.Context, s *session) (msg, errMsg string) {
	msg, errMsg, s.flash, s.flashErr = s.flash, s.flashErr, "", ""
	if msg != "" || errMsg != "" {
		if err := c.save(ctx, s, c.now()); err != nil {
			c.log().WarnContext(ctx, "console: session store", "err", err)
		}
	}
	return msg, errMsg
}

// setNewKey keeps a created secret (an API key, a webhook secret, a
// platform key) for the console page at path page, which shows it once:
// the action redirects there (POST-redirect-GET), so the secret is never
// in a URL, a redirect or a page that a reload shows again.
func (c *Console) setNewKey(ctx context.Context, s *session, page, secret string) error {
	s.newKey, s.newKeyFor = secret, page
	return c.save(ctx, s, c.now())
}

// takeNewKey returns the secret kept for the page at path page,
// forgetting it: it is shown once. "" when there is none for this page.
func (c *Console) takeNewKey(ctx context.Context, s *session, page string) string {
	if s.newKey == "" || s.newKeyFor != page {
		return ""
	}
	key := s.newKey
	s.newKey, s.newKeyFor = "", ""
	if err := c.save(ctx, s, c.now()); err != nil {
		// Not forgotten: better not shown than shown twice.
		c.log().WarnContext(ctx, "console: session store", "err", err)
		return ""
	}
	return key
}

func (c *Console) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/admin/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteStrictMode})
}

// tokenInQuery reports whether r's query string carries a credential: a
// parameter named like one, or the admin token itself.
func (c *Console) tokenInQuery(r *http.Request) bool {
	q := r.URL.Query()
	for _, k := range []string{"token", "admin_token", "access_token", "api_key", "key"} {
		if q.Has(k) {
			return true
		}
	}
	for _, vs := range q {
		for _, v := range vs {
			if c.Token != "" && auth.TokenEqual(v, c.Token) {
				return true
			}
		}
	}
	return false
}

// csrfOK checks the form's csrf field against the session's.
func csrfOK(s *session, r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
