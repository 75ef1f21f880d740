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
// live on the server, expire after Idle without a request and MaxAge
// after login, and end at logout. Every form carries the session's CSRF
// token; every unsafe request must come from the same origin
// (http.CrossOriginProtection: Sec-Fetch-Site, else Origin), and a
// credential in a query string is refused.
package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/httpapi"
)

// Session lifetimes by default.
const (
	DefaultIdle   = time.Hour
	DefaultMaxAge = 12 * time.Hour
	// maxSessions bounds the sessions kept; a login past it drops the
	// oldest.
	maxSessions = 256
	cookieName  = "tollgate_console"
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
	// Secure marks the session cookie Secure (an https public URL).
	Secure bool
	// Idle and MaxAge bound a session (DefaultIdle, DefaultMaxAge when 0).
	Idle, MaxAge time.Duration
	Clock        tollgate.Clock
	Logger       *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
}

// session is one login.
type session struct {
	id, csrf        string
	created, seen   time.Time
	flash, flashErr string
}

// logID names a session in logs without revealing the cookie.
func (s *session) logID() string {
	h := sha256.Sum256([]byte(s.id))
	return hex.EncodeToString(h[:6])
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

// newSession starts a session, dropping expired ones and, past
// maxSessions, the oldest.
func (c *Console) newSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions == nil {
		c.sessions = map[string]*session{}
	}
	now := c.now()
	var oldest *session
	for id, s := range c.sessions {
		if c.expired(s, now) {
			delete(c.sessions, id)
		} else if oldest == nil || s.created.Before(oldest.created) {
			oldest = s
		}
	}
	if len(c.sessions) >= maxSessions && oldest != nil {
		delete(c.sessions, oldest.id)
	}
	s := &session{id: randomToken(), csrf: randomToken(), created: now, seen: now}
	c.sessions[s.id] = s
	return s
}

func (c *Console) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) >= c.idle() || now.Sub(s.created) >= c.maxAge()
}

// sessionOf returns the live session of r's cookie and marks it seen;
// nil when there is none, it is unknown (forged, or from before a
// restart) or it expired (then it is forgotten).
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || len(ck.Value) > 100 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil {
		return nil
	}
	now := c.now()
	if c.expired(s, now) {
		delete(c.sessions, s.id)
		return nil
	}
	s.seen = now
	return s
}

func (c *Console) endSession(s *session) {
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
}

// setFlash leaves a message for the next page the session sees.
func (c *Console) setFlash(s *session, msg string, isErr bool) {
	c.mu.Lock()
	if isErr {
		s.flashErr = msg
	} else {
		s.flash = msg
	}
	c.mu.Unlock()
}

func (c *Console) takeFlash(s *session) (msg, errMsg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg, errMsg, s.flash, s.flashErr = s.flash, s.flashErr, "", ""
	return msg, errMsg
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
