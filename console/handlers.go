package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tollgate/auth"
	"tollgate/httpapi"
	"tollgate/kv"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/console.css
var css []byte

// pages are the console's templates, each parsed with the layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		out[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n))
	}
	return out
}()

// Routes are the console's routes, for httpapi.Server.Routes: every path
// under /admin/ that the admin API does not use.
func (c *Console) Routes() []httpapi.Route {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log().WarnContext(r.Context(), "console: cross-site request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		c.plainError(w, r, http.StatusForbidden, "err.crosssite")
	}))
	get := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) httpapi.Route {
		return httpapi.Route{Pattern: "GET " + pattern, Handler: c.guard(cop, c.authed(h))}
	}
	post := func(pattern string, h func(http.ResponseWriter, *http.Request, *session)) httpapi.Route {
		return httpapi.Route{Pattern: "POST " + pattern, Handler: c.guard(cop, c.authed(c.withCSRF(h))), MaxBody: 16 << 10}
	}
	return []httpapi.Route{
		{Pattern: "GET /admin/console.css", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Write(css)
		})},
		{Pattern: "GET /admin/login", Handler: c.guard(cop, http.HandlerFunc(c.loginPage))},
		{Pattern: "POST /admin/login", Handler: c.guard(cop, http.HandlerFunc(c.login)), MaxBody: 4 << 10},
		post("/admin/logout", c.logout),
		get("/admin/{$}", c.overview),
		get("/admin/ui/accounts", c.accounts),
		get("/admin/ui/accounts/{id}", c.account),
		post("/admin/ui/accounts/{id}/adjust", c.adjust),
		post("/admin/ui/accounts/{id}/keys", c.createKey),
		post("/admin/ui/accounts/{id}/keys/{key}/revoke", c.revokeKey),
		post("/admin/ui/accounts/{id}/disable", c.disable),
		post("/admin/ui/accounts/{id}/edit", c.edit),
		get("/admin/ui/orders", c.orders),
		get("/admin/ui/orders/{no}", c.order),
		post("/admin/ui/orders/{no}/refund", c.refund),
		get("/admin/ui/refunds", c.refunds),
		get("/admin/ui/usage", c.usage),
		get("/admin/ui/catalog", c.catalog),
		get("/admin/ui/webhooks", c.webhooks),
		post("/admin/ui/webhooks", c.createWebhook),
		get("/admin/ui/webhooks/{id}", c.webhook),
		post("/admin/ui/webhooks/{id}/rotate", c.rotateWebhook),
		post("/admin/ui/webhooks/{id}/enable", c.enableWebhook),
		post("/admin/ui/webhooks/{id}/delete", c.deleteWebhook),
		post("/admin/ui/webhooks/{id}/deliveries/{delivery}/retry", c.retryDelivery),
		get("/admin/ui/platforms", c.platforms),
		post("/admin/ui/platforms", c.createPlatform),
		post("/admin/ui/platforms/{id}/revoke", c.revokePlatform),
	}
}

// guard refuses a credential in the query string and cross-site unsafe
// requests, and keeps pages out of caches and frames.
func (c *Console) guard(cop *http.CrossOriginProtection, next http.Handler) http.Handler {
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Referrer-Policy", "same-origin")
		if c.tokenInQuery(r) {
			c.log().WarnContext(r.Context(), "console: credential in a query string refused", "path", r.URL.Path)
			c.plainError(w, r, http.StatusBadRequest, "err.tokenquery")
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// authed passes the session on, or sends the browser to the login (a
// form post without a session is 401: its data would be lost anyway).
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.sessionOf(r)
		if err != nil {
			c.log().ErrorContext(r.Context(), "console: session store", "err", err)
			c.plainError(w, r, http.StatusServiceUnavailable, "err.unavailable")
			return
		}
		if s == nil {
			to := "/admin/login"
			if _, err := r.Cookie(cookieName); err == nil {
				c.setCookie(w, "", -1) // stale, forged or expired
				to += "?expired=1"
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				c.plainError(w, r, http.StatusUnauthorized, "err.session")
				return
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(withSession(r.Context(), s)), s)
	})
}

// withCSRF refuses a form without the session's CSRF token.
func (c *Console) withCSRF(h func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if err := r.ParseForm(); err != nil {
			c.plainError(w, r, http.StatusBadRequest, "err.form")
			return
		}
		if !csrfOK(s, r) {
			c.log().WarnContext(r.Context(), "console: form without its CSRF token refused", "session", s.tag(), "path", r.URL.Path)
			c.plainError(w, r, http.StatusForbidden, "err.csrf")
			return
		}
		h(w, r, s)
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, _ := c.sessionOf(r); s != nil {
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
		return
	}
	p := c.page(w, r, nil, "title.login")
	if r.URL.Query().Get("expired") != "" {
		p.FlashErr = p.T("login.expired")
	}
	c.render(w, "login", http.StatusOK, p)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.plainError(w, r, http.StatusBadRequest, "err.form")
		return
	}
	ctx, ip := r.Context(), httpapi.ClientIP(r, c.TrustedProxyHeader)
	if ip == "" {
		ip = "unknown"
	}
	// Per IP, then across all IPs: a lock set when a budget is spent
	// refuses logins until it expires. The per-IP lock refuses the right
	// token too (a guess made while locked out is worth nothing); the
	// global one lets the right token in, so wrong tokens from anywhere
	// cannot lock the operator out of the console.
	right := auth.TokenEqual(r.PostFormValue("token"), c.Token)
	lockKey := "console:login-locked:" + ip
	for _, l := range []struct {
		key, msg, logMsg string
		w                kv.Window
	}{
		{lockKey, "err.throttled", "console: login refused: too many wrong tokens from this IP", LoginLimit},
		{globalLockKey, "err.paused", "console: login refused: too many wrong tokens from all IPs, logins paused", GlobalLoginLimit},
	} {
		if _, locked, err := c.store().Get(ctx, l.key); err != nil {
			c.log().ErrorContext(ctx, "console: session store", "err", err)
			c.plainError(w, r, http.StatusServiceUnavailable, "err.unavailable")
			return
		} else if locked && !(right && l.key == globalLockKey) {
			c.log().WarnContext(ctx, l.logMsg, "client_ip", ip)
			w.Header().Set("Retry-After", strconv.Itoa(int(l.w.Length.Seconds())))
			c.plainError(w, r, http.StatusTooManyRequests, l.msg)
			return
		}
	}
	if !right {
		c.log().WarnContext(ctx, "console: login refused", "remote", r.RemoteAddr, "client_ip", ip)
		refused, retry, err := c.countWrongToken(ctx, ip, lockKey)
		if err != nil {
			c.log().ErrorContext(ctx, "console: login limiter", "err", err)
			c.plainError(w, r, http.StatusServiceUnavailable, "err.unavailable")
			return
		}
		if refused != "" {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			c.plainError(w, r, http.StatusTooManyRequests, refused)
			return
		}
		p := c.page(w, r, nil, "title.login")
		p.FlashErr = p.T("login.bad")
		c.render(w, "login", http.StatusUnauthorized, p)
		return
	}
	s, err := c.newSession(r.Context())
	if err != nil {
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.plainError(w, r, http.StatusServiceUnavailable, "err.unavailable")
		return
	}
	c.setCookie(w, s.id, int(c.maxAge().Seconds()))
	// The session's tag with the address it logged in from: every later
	// action logged under the tag is tied to this IP.
	c.log().InfoContext(r.Context(), "console: login", "session", s.tag(), "client_ip", ip, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
}

// globalLockKey pauses every login once GlobalLoginLimit is spent.
const globalLockKey = "console:login-locked:*"

// countWrongToken counts a wrong admin token from ip against LoginLimit
// and GlobalLoginLimit; spending either's budget sets its lock for a
// whole window. refused is the message key when this attempt is itself
// over a budget ("" when it is within both), retry that budget's window.
func (c *Console) countWrongToken(ctx context.Context, ip, lockKey string) (refused string, retry time.Duration, err error) {
	for _, b := range []struct {
		limitKey, lockKey, msg string
		w                      kv.Window
	}{
		{"console-login:" + ip, lockKey, "err.throttled", LoginLimit},
		{"console-login:*", globalLockKey, "err.paused", GlobalLoginLimit},
	} {
		res, err := c.loginLimiter().AllowWindow(ctx, b.limitKey, b.w, 1)
		if err != nil {
			return "", 0, err
		}
		if !res.Allowed || res.Remaining == 0 {
			// The budget is spent: lock out for a whole window.
			if err := c.store().Set(ctx, b.lockKey, []byte("1"), b.w.Length); err != nil {
				return "", 0, err
			}
			if b.lockKey == globalLockKey {
				c.log().WarnContext(ctx, "console: logins paused: too many wrong admin tokens from all IPs", "for", b.w.Length.String())
			}
		}
		if !res.Allowed && refused == "" {
			refused, retry = b.msg, b.w.Length
		}
	}
	return refused, retry, nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.endSession(r.Context(), s); err != nil {
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.plainError(w, r, http.StatusServiceUnavailable, "err.unavailable")
		return
	}
	c.setCookie(w, "", -1)
	c.log().InfoContext(r.Context(), "console: logout", "session", s.tag())
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

// plainError answers a refused request with a short page.
func (c *Console) plainError(w http.ResponseWriter, r *http.Request, status int, key string) {
	p := c.page(w, r, nil, "title.error")
	p.FlashErr = p.T(key)
	c.render(w, "error", status, p)
}

// render executes a page.
func (c *Console) render(w http.ResponseWriter, name string, status int, p *pageData) {
	t := pages[name]
	var b strings.Builder
	if err := t.Execute(&b, p); err != nil {
		c.log().Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// done ends an action: logs it with the session and the reason, leaves
// the outcome for the next page and redirects there.
func (c *Console) done(w http.ResponseWriter, r *http.Request, s *session, to, action, reason string, err error, okMsg string, attrs ...any) {
	attrs = append([]any{"session", s.tag(), "action", action, "reason", reason}, attrs...)
	if err != nil {
		attrs = append(attrs, "err", err.Error())
		c.log().WarnContext(r.Context(), "console: action refused", attrs...)
		c.setFlash(r.Context(), s, err.Error(), true)
	} else {
		c.log().InfoContext(r.Context(), "console: action", attrs...)
		c.setFlash(r.Context(), s, okMsg, false)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// errStatus is the status of an admin API error (500 for others).
func errStatus(err error) int {
	var e *apiError
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// pathURL builds a console path with escaped segments.
func pathURL(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("/")
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}
