package console_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/console"
	"tollgate/kv"
)

const token = "admin-token-for-tests-0123456789"

// fakeAPI stands for the admin API: it records what the console asked and
// answers an account and its adjustments.
type fakeAPI struct {
	mu     sync.Mutex
	calls  []string // "METHOD path Idempotency-Key body"
	actors []string // each call's X-Tollgate-Actor
	keys   int      // keys created
	// extra answers what the switch below does not (nil: 404); it
	// reports whether it answered.
	extra func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"message":"this route needs the admin token","code":"invalid_admin_token"}}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Idempotency-Key")+" "+string(b)))
	f.actors = append(f.actors, r.Header.Get("X-Tollgate-Actor"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "GET" && r.URL.Path == "/admin/accounts/acct_1":
		io.WriteString(w, `{"account":{"account_id":"acct_1","label":"Alice","external_id":"u-1","metadata":{}},"balance":{"credits":1234},"lots":[],"holds":[],"provisional_grants":[],"adjustments":[],"keys":[]}`)
	case r.Method == "POST" && r.URL.Path == "/admin/accounts/acct_1/adjustments":
		var body struct{ Credits int64 }
		json.Unmarshal(b, &body)
		if body.Credits < -1234 {
			w.WriteHeader(402)
			io.WriteString(w, `{"error":{"message":"the account has 1234 credits available","code":"insufficient_balance"}}`)
			return
		}
		w.WriteHeader(201)
		io.WriteString(w, `{"adjustment_id":"adj_1"}`)
	case r.Method == "POST" && r.URL.Path == "/admin/accounts/acct_1/keys":
		f.mu.Lock()
		f.keys++
		n := f.keys
		f.mu.Unlock()
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"key_id":"key_%d","api_key":"tg_secret_%d"}`, n, n)
	case r.Method == "PATCH" && r.URL.Path == "/admin/accounts/acct_1":
		var body struct {
			ExternalID *string `json:"external_id"`
		}
		json.Unmarshal(b, &body)
		if body.ExternalID != nil && *body.ExternalID == "taken" {
			w.WriteHeader(409)
			io.WriteString(w, `{"error":{"message":"external_id \"taken\" belongs to another account","code":"conflict"}}`)
			return
		}
		io.WriteString(w, `{"account_id":"acct_1","label":"x","metadata":{}}`)
	case r.Method == "GET" && r.URL.Path == "/admin/refunds":
		q := r.URL.Query()
		if q.Get("cursor") != "" {
			io.WriteString(w, `{"object":"list","data":[{"out_refund_no":"T2Ky","out_trade_no":"T2","account_id":"acct_2","refund_fen":50,"status":"failed","requested_by":"account","reason":"old"}],"next_cursor":""}`)
			return
		}
		if st := q.Get("status"); st != "" && st != "pending" {
			io.WriteString(w, `{"object":"list","data":[],"next_cursor":""}`)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"out_refund_no":"T1Kx","out_trade_no":"T1","account_id":"acct_1","refund_fen":100,"credits":1000,"status":"pending","requested_by":"admin","reason":"asked by email"}],"next_cursor":"CUR1"}`)
	case r.Method == "GET" && r.URL.Path == "/admin/orders":
		io.WriteString(w, `{"object":"list","data":[],"next_cursor":""}`)
	case r.Method == "GET" && r.URL.Path == "/admin/orders/T1":
		io.WriteString(w, `{"out_trade_no":"T1","account_id":"acct_1","status":"SUCCESS","refunds":[]}`)
	case r.Method == "POST" && r.URL.Path == "/admin/orders/T1/refund":
		io.WriteString(w, `{"out_refund_no":"T1Kx","refund_fen":100,"status":"pending"}`)
	default:
		if f.extra != nil && f.extra(w, r, b) {
			return
		}
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"message":"not found","code":"not_found"}}`)
	}
}

func (f *fakeAPI) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "GET ") {
			out = append(out, c)
		}
	}
	return out
}

type env struct {
	t   *testing.T
	c   *console.Console
	api *fakeAPI
	h   http.Handler
	now time.Time
	mu  sync.Mutex
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with its sessions in store (nil: in-process).
func newEnvWith(t *testing.T, store kv.Cache) *env {
	e := &env{t: t, api: &fakeAPI{}, now: time.Date(2026, 3, 1, 9, 0, 0, 0, tollgate.Beijing)}
	e.c = &console.Console{API: e.api, Token: token, Secure: true, Sessions: store,
		Clock: tollgate.ClockFunc(func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now })}
	mux := http.NewServeMux()
	for _, rt := range e.c.Routes() {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	e.h = mux
	return e
}

func (e *env) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

// do sends a same-origin request (as a browser does for the console's own
// forms) with the cookie, if any.
func (e *env) do(method, target string, form url.Values, cookie *http.Cookie) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://console.example"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// login logs in and returns the session cookie.
func (e *env) login() *http.Cookie {
	e.t.Helper()
	w := e.do("POST", "/admin/login", url.Values{"token": {token}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/" {
		e.t.Fatalf("login: %d %s, want 303 to /admin/", w.Code, w.Header().Get("Location"))
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "tollgate_console" {
			return c
		}
	}
	e.t.Fatal("login set no session cookie")
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from the account page's forms.
func (e *env) csrf(ck *http.Cookie) string {
	e.t.Helper()
	w := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck)
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil {
		e.t.Fatalf("account page: %d, no csrf field:\n%s", w.Code, w.Body.String())
	}
	return m[1]
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	// Not logged in: every page leads to the login form.
	if w := e.do("GET", "/admin/", nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login" {
		t.Fatalf("overview without a session: %d %q, want 303 to /admin/login", w.Code, w.Header().Get("Location"))
	}
	if w := e.do("GET", "/admin/login", nil, nil); w.Code != 200 || !strings.Contains(w.Body.String(), `name="token"`) {
		t.Fatalf("login page: %d", w.Code)
	}
	// A wrong token: refused, no cookie.
	w := e.do("POST", "/admin/login", url.Values{"token": {token + "x"}}, nil)
	if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 || !strings.Contains(w.Body.String(), "not the admin token") {
		t.Fatalf("wrong token: %d cookies %v", w.Code, w.Result().Cookies())
	}
	ck := e.login()
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin/" || ck.Value == token || len(ck.Value) < 40 {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path /admin/, a random value", ck)
	}
	if w := e.do("GET", "/admin/", nil, ck); w.Code != 200 || !strings.Contains(w.Body.String(), "Overview") {
		t.Fatalf("overview with the session: %d", w.Code)
	}
	// Chinese when asked.
	if w := e.do("GET", "/admin/?lang=zh", nil, ck); !strings.Contains(w.Body.String(), "概览") {
		t.Fatal("?lang=zh did not show the Chinese overview")
	}
	// Logout ends the session on the server: the old cookie is worthless.
	if w := e.do("POST", "/admin/logout", url.Values{"csrf": {e.csrf(ck)}}, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := e.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/admin/login") {
		t.Fatalf("overview after logout: %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestCookieNotSecureOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.c.Secure = false
	if ck := e.login(); ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("dev cookie %+v", ck)
	}
}

func TestTokenInQueryRefused(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	for _, target := range []string{"/admin/login?token=" + token, "/admin/?admin_token=x", "/admin/ui/accounts?q=" + token} {
		w := e.do("GET", target, nil, ck)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "never put a token in a URL") {
			t.Errorf("GET %s: %d, want 400 naming the rule", target, w.Code)
		}
	}
	if w := e.do("POST", "/admin/login?token="+token, url.Values{}, nil); w.Code != http.StatusBadRequest || len(w.Result().Cookies()) != 0 {
		t.Errorf("login with the token in the URL: %d %v, want 400 and no session", w.Code, w.Result().Cookies())
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	// Idle: a request within the hour keeps the session alive...
	e.advance(59 * time.Minute)
	if w := e.do("GET", "/admin/", nil, ck); w.Code != 200 {
		t.Fatalf("after 59 min idle: %d, want 200", w.Code)
	}
	// ...an hour without one ends it.
	e.advance(time.Hour)
	w := e.do("GET", "/admin/", nil, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login?expired=1" {
		t.Fatalf("after an idle hour: %d %q, want 303 to the login saying it expired", w.Code, w.Header().Get("Location"))
	}
	if w := e.do("GET", "/admin/login?expired=1", nil, nil); !strings.Contains(w.Body.String(), "session ended") {
		t.Error("the login page does not say the session ended")
	}
	// At most 12 hours however busy.
	ck = e.login()
	for range 12 {
		e.advance(55 * time.Minute)
		if w := e.do("GET", "/admin/", nil, ck); w.Code != 200 {
			t.Fatalf("a busy session refused before 12 h: %d", w.Code)
		}
	}
	e.advance(time.Hour)
	if w := e.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("a session past 12 h: %d, want a redirect to the login", w.Code)
	}
	// An expired session's form changes nothing.
	if w := e.do("POST", "/admin/ui/accounts/acct_1/adjust", url.Values{"csrf": {"x"}, "credits": {"5"}, "reason": {"r"}}, ck); w.Code != http.StatusUnauthorized {
		t.Fatalf("adjust with an expired session: %d, want 401", w.Code)
	}
	if got := e.api.writes(); len(got) != 0 {
		t.Fatalf("the admin API was asked to change %v", got)
	}
}

func TestStaleOrForgedSession(t *testing.T) {
	e := newEnv(t)
	e.login()
	for name, ck := range map[string]*http.Cookie{
		"forged":   {Name: "tollgate_console", Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"token":    {Name: "tollgate_console", Value: token},
		"too long": {Name: "tollgate_console", Value: strings.Repeat("a", 500)},
	} {
		w := e.do("GET", "/admin/", nil, ck)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login?expired=1" {
			t.Errorf("%s cookie: GET %d %q, want 303 to the login", name, w.Code, w.Header().Get("Location"))
		}
		if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
			t.Errorf("%s cookie not cleared: %v", name, cs)
		}
		w = e.do("POST", "/admin/ui/accounts/acct_1/adjust", url.Values{"csrf": {"x"}, "credits": {"5"}, "reason": {"r"}}, ck)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "nothing was changed") {
			t.Errorf("%s cookie: POST %d, want 401", name, w.Code)
		}
	}
	if got := e.api.writes(); len(got) != 0 {
		t.Fatalf("the admin API was asked to change %v", got)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	other := e.login() // another session's token is no good either
	otherCSRF := e.csrf(other)
	k1 := newIdem()
	form := url.Values{"credits": {"500"}, "reason": {"goodwill"}, "idem": {k1}}
	for name, tok := range map[string]string{"missing": "", "forged": "forged-token", "other session's": otherCSRF} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if tok != "" {
			f.Set("csrf", tok)
		}
		w := e.do("POST", "/admin/ui/accounts/acct_1/adjust", f, ck)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "security token") {
			t.Errorf("%s CSRF token: %d, want 403", name, w.Code)
		}
	}
	if got := e.api.writes(); len(got) != 0 {
		t.Fatalf("the admin API was asked to change %v", got)
	}
	// With the right one the adjustment goes to the admin API, keyed by
	// the form so a double submit adjusts once.
	form.Set("csrf", e.csrf(ck))
	w := e.do("POST", "/admin/ui/accounts/acct_1/adjust", form, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/accounts/acct_1" {
		t.Fatalf("adjust: %d %q", w.Code, w.Header().Get("Location"))
	}
	want := `POST /admin/accounts/acct_1/adjustments console-` + k1 + ` {"as_debt":false,"credits":500,"reason":"goodwill"}`
	if got := e.api.writes(); len(got) != 1 || got[0] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
	if w := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck); !strings.Contains(w.Body.String(), "Adjusted.") {
		t.Error("the account page does not say it was adjusted")
	}
	// The API's refusal is shown, not hidden.
	form.Set("credits", "-5000")
	e.do("POST", "/admin/ui/accounts/acct_1/adjust", form, ck)
	if w := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck); !strings.Contains(w.Body.String(), "1234 credits available") {
		t.Error("the account page does not show the API's refusal")
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	csrf := e.csrf(ck)
	for name, set := range map[string]func(*http.Request){
		"Sec-Fetch-Site cross-site": func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
		"Sec-Fetch-Site same-site":  func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") },
		"foreign Origin":            func(r *http.Request) { r.Header.Del("Sec-Fetch-Site"); r.Header.Set("Origin", "https://evil.example") },
	} {
		for _, target := range []string{"/admin/ui/accounts/acct_1/adjust", "/admin/login"} {
			f := url.Values{"csrf": {csrf}, "credits": {"500"}, "reason": {"x"}, "idem": {"k"}, "token": {token}}
			r := httptest.NewRequest("POST", "https://console.example"+target, strings.NewReader(f.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(ck)
			set(r)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "another site") {
				t.Errorf("%s POST %s: %d, want 403", name, target, w.Code)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Errorf("%s POST %s set a cookie", name, target)
			}
		}
	}
	if got := e.api.writes(); len(got) != 0 {
		t.Fatalf("the admin API was asked to change %v", got)
	}
}

// TestFormsNeedTheirOneTimeKey: the adjust and refund forms are keyed by
// the page's one-time idem field, so a double submit changes money once;
// a form without one (or with a made-up one) is refused before the API
// is asked, never sent with a key every such form would share.
func TestFormsNeedTheirOneTimeKey(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	csrf := e.csrf(ck)
	page := e.do("GET", "/admin/ui/orders/T1", nil, ck).Body.String()
	m := regexp.MustCompile(`name="idem" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the order page's refund form has no idem field:\n%s", page)
	}
	forms := map[string]url.Values{
		"/admin/ui/accounts/acct_1/adjust": {"csrf": {csrf}, "credits": {"500"}, "reason": {"goodwill"}},
		"/admin/ui/orders/T1/refund":       {"csrf": {csrf}, "amount_fen": {"100"}, "reason": {"asked by email"}},
	}
	for target, f := range forms {
		for _, bad := range []string{"", "k1", "not base64 !!", newIdem()[:20]} {
			f.Set("idem", bad)
			e.do("POST", target, f, ck)
			back := strings.TrimSuffix(strings.TrimSuffix(target, "/adjust"), "/refund")
			if w := e.do("GET", back, nil, ck); !strings.Contains(w.Body.String(), "lost its one-time key") {
				t.Errorf("POST %s idem %q: the page does not say the form lost its key", target, bad)
			}
			if got := e.api.writes(); len(got) != 0 {
				t.Fatalf("POST %s idem %q: the admin API was asked %q", target, bad, got)
			}
		}
	}
	f := forms["/admin/ui/orders/T1/refund"]
	f.Set("idem", m[1])
	e.do("POST", "/admin/ui/orders/T1/refund", f, ck)
	want := `POST /admin/orders/T1/refund console-` + m[1] + ` {"amount_fen":100,"reason":"asked by email"}`
	if got := e.api.writes(); len(got) != 1 || got[0] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
}

// newIdem is a form's one-time key as the console makes it.
func newIdem() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
