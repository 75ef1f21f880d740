package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/kv"
)

// logBuffer collects a console's log lines as JSON objects.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the log lines whose msg is msg.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("log line %q: %v", ln, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func withLog(e *env) *logBuffer {
	l := &logBuffer{}
	e.c.Logger = slog.New(slog.NewJSONHandler(l, nil))
	return l
}

// sessionTag is what a session is called in logs and as the admin API's
// actor: "console:" and 8 hex digits of sha256 of the cookie's value.
func sessionTag(ck *http.Cookie) string {
	h := sha256.Sum256([]byte(ck.Value))
	return "console:" + hex.EncodeToString(h[:])[:8]
}

// TestActionsAttributed: every admin API request the console makes for a
// session names it in X-Tollgate-Actor; the login logs the same tag with
// the client IP, and each action logs it with its reason.
func TestActionsAttributed(t *testing.T) {
	e := newEnv(t)
	logs := withLog(e)
	ck := e.login()
	tag := sessionTag(ck)
	if !regexp.MustCompile(`^console:[0-9a-f]{8}$`).MatchString(tag) {
		t.Fatalf("tag %q", tag)
	}
	csrf := e.csrf(ck)
	e.do("POST", "/admin/ui/accounts/acct_1/adjust", url.Values{"csrf": {csrf}, "credits": {"5"}, "reason": {"goodwill"}, "idem": {newIdem()}}, ck)
	e.do("POST", "/admin/ui/accounts/acct_1/edit", url.Values{"csrf": {csrf}, "label": {"Alice B"}, "metadata": {"{}"}, "reason": {"renamed"}}, ck)
	e.do("POST", "/admin/ui/accounts/acct_1/keys", url.Values{"csrf": {csrf}}, ck)
	e.do("POST", "/admin/ui/orders/T1/refund", url.Values{"csrf": {csrf}, "reason": {"asked by email"}, "idem": {newIdem()}}, ck)
	e.do("GET", "/admin/ui/refunds", nil, ck)

	e.api.mu.Lock()
	if len(e.api.actors) < 6 {
		t.Fatalf("only %d admin API calls", len(e.api.actors))
	}
	for i, a := range e.api.actors {
		if a != tag {
			t.Errorf("call %q: X-Tollgate-Actor %q, want %q", e.api.calls[i], a, tag)
		}
	}
	e.api.mu.Unlock()

	login := logs.lines(t, "console: login")
	if len(login) != 1 || login[0]["session"] != tag || login[0]["client_ip"] != "192.0.2.1" {
		t.Fatalf("login log %v, want session %s with client_ip", login, tag)
	}
	want := map[string]string{"adjust": "goodwill", "edit": "renamed", "create_key": "", "refund": "asked by email"}
	for _, l := range logs.lines(t, "console: action") {
		if l["session"] != tag {
			t.Errorf("action log %v without the session's tag %s", l, tag)
		}
		a, _ := l["action"].(string)
		if r, ok := want[a]; ok && l["reason"] == r {
			delete(want, a)
		}
	}
	if len(want) != 0 {
		t.Errorf("actions not logged with their reason: %v\n%s", want, logs.buf.String())
	}
	if strings.Contains(logs.buf.String(), ck.Value) {
		t.Error("the log holds the session id itself")
	}
}

// TestSessionBoundToToken: a session made with one admin token is refused
// once serve runs with another, on this instance and on one sharing the
// session store, and a login with the new token works.
func TestSessionBoundToToken(t *testing.T) {
	store := kv.NewMemory(kv.MemoryOptions{})
	a := newEnvWith(t, store)
	ck := a.login()
	if w := a.do("GET", "/admin/", nil, ck); w.Code != http.StatusOK {
		t.Fatalf("before the change: %d", w.Code)
	}
	// Another instance, restarted with a rotated token, on the same store.
	b := newEnvWith(t, store)
	b.c.Token = token + "-rotated"
	w := b.do("GET", "/admin/", nil, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login?expired=1" {
		t.Fatalf("old token's session after the change: %d %q, want 303 to the login", w.Code, w.Header().Get("Location"))
	}
	// Forgotten: even the old instance no longer knows it.
	if w := a.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("the refused session still works on the old instance: %d", w.Code)
	}
	// Its forms change nothing.
	if w := b.do("POST", "/admin/ui/accounts/acct_1/adjust", url.Values{"csrf": {"x"}, "credits": {"5"}, "reason": {"r"}, "idem": {newIdem()}}, ck); w.Code != http.StatusUnauthorized {
		t.Fatalf("adjust with the old token's session: %d, want 401", w.Code)
	}
	if got := append(a.api.writes(), b.api.writes()...); len(got) != 0 {
		t.Fatalf("the admin API was asked to change %v", got)
	}
	// Changing the token on a running console has the same effect.
	ck = a.login()
	a.c.Token = token + "-2"
	if w := a.do("GET", "/admin/", nil, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("after the token changed in place: %d, want a redirect", w.Code)
	}
}

var newKeyRE = regexp.MustCompile(`id="new-key">([^<]*)<`)

// TestCreateKeyPostRedirectGet: creating a key redirects to the account's
// page, which shows the secret once; reloading that page (what a browser's
// refresh does after the redirect) creates no other key and no longer
// shows the secret.
func TestCreateKeyPostRedirectGet(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	csrf := e.csrf(ck)
	w := e.do("POST", "/admin/ui/accounts/acct_1/keys", url.Values{"csrf": {csrf}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/accounts/acct_1" {
		t.Fatalf("create key: %d %q, want 303 to the account's page", w.Code, w.Header().Get("Location"))
	}
	if strings.Contains(w.Body.String(), "tg_secret") {
		t.Error("the redirect itself carries the secret")
	}
	// Another account's page does not take it.
	e.do("GET", "/admin/ui/accounts/acct_2", nil, ck)
	page := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck).Body.String()
	if m := newKeyRE.FindStringSubmatch(page); m == nil || m[1] != "tg_secret_1" {
		t.Fatalf("the landing page does not show the new key:\n%s", page)
	}
	if !strings.Contains(page, "shown once") {
		t.Error("the landing page does not say the key is shown once")
	}
	for i := range 2 {
		page = e.do("GET", "/admin/ui/accounts/acct_1", nil, ck).Body.String()
		if strings.Contains(page, "tg_secret") || strings.Contains(page, `id="new-key"`) {
			t.Fatalf("refresh %d shows the secret again", i+1)
		}
	}
	var posts int
	for _, c := range e.api.writes() {
		if strings.HasPrefix(c, "POST /admin/accounts/acct_1/keys") {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("%d keys created, want 1: %v", posts, e.api.writes())
	}
}

// TestEditAccount: the account page's form changes label, external id and
// metadata through PATCH /admin/accounts/{id}; bad metadata and a taken
// external id are refused with a clear message, the typed values kept.
func TestEditAccount(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	page := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck).Body.String()
	for _, want := range []string{`id="edit-label" maxlength="200" value="Alice"`, `id="edit-external-id" maxlength="128" value="u-1"`, `{}</textarea>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("edit form without %q:\n%s", want, page)
		}
	}
	csrf := e.csrf(ck)
	form := url.Values{"csrf": {csrf}, "label": {" Alice Wang "}, "external_id": {"u-9"}, "metadata": {`{"plan": "pro"}`}, "reason": {"support ticket 12"}}
	w := e.do("POST", "/admin/ui/accounts/acct_1/edit", form, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/accounts/acct_1" {
		t.Fatalf("edit: %d %q", w.Code, w.Header().Get("Location"))
	}
	want := `PATCH /admin/accounts/acct_1  {"external_id":"u-9","label":"Alice Wang","metadata":{"plan":"pro"},"reason":"support ticket 12"}`
	if got := e.api.writes(); len(got) != 1 || got[0] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
	if page := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck).Body.String(); !strings.Contains(page, "Saved.") {
		t.Error("the account page does not say it was saved")
	}
	// An empty external id removes it.
	form.Set("external_id", "")
	e.do("POST", "/admin/ui/accounts/acct_1/edit", form, ck)
	if got := e.api.writes(); len(got) != 2 || !strings.Contains(got[1], `"external_id":null`) {
		t.Fatalf("empty external id sent as %q, want null", got)
	}

	for name, tc := range map[string]struct {
		f      url.Values
		status int
		msg    string
	}{
		"bad JSON":    {url.Values{"metadata": {`{"plan": pro}`}}, 400, "Metadata must be a JSON object"},
		"not object":  {url.Values{"metadata": {`["a"]`}}, 400, "Metadata must be a JSON object"},
		"null":        {url.Values{"metadata": {`null`}}, 400, "Metadata must be a JSON object"},
		"taken":       {url.Values{"external_id": {"taken"}}, 409, `The external id &#34;taken&#34; already belongs to another account. Nothing was changed.`},
		"taken in zh": {url.Values{"external_id": {"taken"}, "lang": {"zh"}}, 409, "已属于另一个账户"},
	} {
		before := len(e.api.writes())
		f := url.Values{"csrf": {csrf}, "label": {"Typed label"}, "external_id": {"u-1"}, "metadata": {`{}`}, "reason": {"r"}}
		for k, v := range tc.f {
			f[k] = v
		}
		target := "/admin/ui/accounts/acct_1/edit"
		if f.Get("lang") != "" {
			target += "?lang=" + f.Get("lang")
		}
		w := e.do("POST", target, f, ck)
		body := w.Body.String()
		if w.Code != tc.status || !strings.Contains(body, `id="edit-err"`) || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d, want %d with %q:\n%s", name, w.Code, tc.status, tc.msg, body)
		}
		if !strings.Contains(body, `value="Typed label"`) {
			t.Errorf("%s: the typed label is lost", name)
		}
		if tc.status == 400 && len(e.api.writes()) != before {
			t.Errorf("%s: the admin API was asked %v", name, e.api.writes()[before:])
		}
	}
	// Without the CSRF token: refused before the API is asked.
	before := len(e.api.writes())
	if w := e.do("POST", "/admin/ui/accounts/acct_1/edit", url.Values{"label": {"x"}}, ck); w.Code != http.StatusForbidden {
		t.Fatalf("edit without CSRF: %d, want 403", w.Code)
	}
	if len(e.api.writes()) != before {
		t.Fatal("an edit without its CSRF token reached the admin API")
	}
}

// TestRefundsPage: the refunds page lists GET /admin/refunds, passes the
// status filter on, pages by cursor and is in the nav, in both languages.
func TestRefundsPage(t *testing.T) {
	e := newEnv(t)
	ck := e.login()
	if page := e.do("GET", "/admin/", nil, ck).Body.String(); !strings.Contains(page, `href="/admin/ui/refunds"`) {
		t.Fatal("the nav has no link to the refunds page")
	}
	w := e.do("GET", "/admin/ui/refunds", nil, ck)
	page := w.Body.String()
	for _, want := range []string{"T1Kx", `href="/admin/ui/orders/T1"`, `href="/admin/ui/accounts/acct_1"`, "¥1.00", "asked by email", "pending", `href="?cursor=CUR1"`} {
		if !strings.Contains(page, want) {
			t.Errorf("refunds page without %q", want)
		}
	}
	if w.Code != 200 || t.Failed() {
		t.Fatalf("refunds page %d:\n%s", w.Code, page)
	}
	if page := e.do("GET", "/admin/ui/refunds?cursor=CUR1", nil, ck).Body.String(); !strings.Contains(page, "T2Ky") || strings.Contains(page, "T1Kx") {
		t.Error("the next page is not the cursor's")
	}
	if page := e.do("GET", "/admin/ui/refunds?status=failed", nil, ck).Body.String(); strings.Contains(page, "T1Kx") || !strings.Contains(page, `<option value="failed" selected>`) {
		t.Error("the status filter is not applied")
	}
	if page := e.do("GET", "/admin/ui/refunds?lang=zh", nil, ck).Body.String(); !strings.Contains(page, "<h1>退款</h1>") || !strings.Contains(page, "处理中") {
		t.Error("no Chinese refunds page")
	}
	var asked []string
	e.api.mu.Lock()
	for _, c := range e.api.calls {
		if strings.HasPrefix(c, "GET /admin/refunds") {
			asked = append(asked, c)
		}
	}
	e.api.mu.Unlock()
	if len(asked) != 4 {
		t.Fatalf("GET /admin/refunds asked %d times", len(asked))
	}
}

// TestLoginThrottleBehindProxy: behind a reverse proxy every request comes
// from the proxy's address; the throttle counts by the client IP the
// server resolves from the trusted header, so one client's lockout does
// not lock out the others.
func TestLoginThrottleBehindProxy(t *testing.T) {
	e := newEnv(t)
	e.c.TrustedProxyHeader = "X-Forwarded-For"
	logs := withLog(e)
	from := func(client, tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "https://console.example/admin/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.RemoteAddr = "10.0.0.2:5000" // the proxy
		// What the client sent first, then what the proxy appended.
		r.Header.Set("X-Forwarded-For", "198.51.100.99, "+client)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	for i := range 10 {
		if w := from("203.0.113.7", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d", i+1, w.Code)
		}
	}
	if w := from("203.0.113.7", token); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the locked client: %d, want 429", w.Code)
	}
	if w := from("203.0.113.8", token); w.Code != http.StatusSeeOther {
		t.Fatalf("another client behind the same proxy: %d, want 303", w.Code)
	}
	for _, l := range logs.lines(t, "console: login refused") {
		if l["client_ip"] != "203.0.113.7" {
			t.Errorf("refusal logged with client_ip %v, want the proxy-resolved 203.0.113.7", l["client_ip"])
		}
	}
	if l := logs.lines(t, "console: login"); len(l) != 1 || l[0]["client_ip"] != "203.0.113.8" {
		t.Errorf("login logged %v, want client_ip 203.0.113.8", l)
	}
}

// TestLoginGlobalCeiling: wrong tokens from many addresses, each under the
// per-IP limit, are bounded together: after GlobalLoginLimit's budget,
// every wrong token (from a new address too) is 429 for the window; the
// right token still logs in, so wrong tokens cannot lock the operator out,
// and sessions already open keep working.
func TestLoginGlobalCeiling(t *testing.T) {
	e := newEnv(t)
	open := e.login()
	from := func(ip, tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "https://console.example/admin/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	// 100 wrong tokens, 5 from each of 20 addresses (under the per-IP 10).
	for i := range 100 {
		if w := from(fmt.Sprintf("203.0.113.%d", i/5+1), "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, w.Code)
		}
		e.advance(5 * time.Second)
	}
	w := from("198.51.100.1", "wrong again")
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "from many addresses") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a wrong token from a fresh address past the ceiling: %d, want 429 saying why:\n%s", w.Code, w.Body.String())
	}
	if len(w.Result().Cookies()) != 0 {
		t.Error("a paused login set a cookie")
	}
	if w := e.do("GET", "/admin/", nil, open); w.Code != http.StatusOK {
		t.Fatalf("an open session during the pause: %d, want 200", w.Code)
	}
	if w := from("198.51.100.2", token); w.Code != http.StatusSeeOther {
		t.Fatalf("the right token during the pause: %d, want 303 (the operator is never locked out)", w.Code)
	}
	e.advance(15 * time.Minute)
	if w := from("198.51.100.1", token); w.Code != http.StatusSeeOther {
		t.Fatalf("after the pause: %d, want 303", w.Code)
	}
}

// recordingStore is a session store that keeps a copy of every value
// written to it, as a dump of the shared store would.
type recordingStore struct {
	*kv.Memory
	mu      sync.Mutex
	written []string
}

func (r *recordingStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	r.mu.Lock()
	r.written = append(r.written, string(v))
	r.mu.Unlock()
	return r.Memory.Set(ctx, key, v, ttl)
}

// TestNewKeySealedInStore: between its creation and its page, a created
// key's secret is in the session store only sealed, so a copy of the
// store (Redis, its backups) holds no usable API key; the page still
// shows it once.
func TestNewKeySealedInStore(t *testing.T) {
	store := &recordingStore{Memory: kv.NewMemory(kv.MemoryOptions{})}
	e := newEnvWith(t, store)
	ck := e.login()
	e.do("POST", "/admin/ui/accounts/acct_1/keys", url.Values{"csrf": {e.csrf(ck)}}, ck)
	page := e.do("GET", "/admin/ui/accounts/acct_1", nil, ck).Body.String()
	if m := newKeyRE.FindStringSubmatch(page); m == nil || m[1] != "tg_secret_1" {
		t.Fatalf("the landing page does not show the new key:\n%s", page)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	sealed := false
	for _, v := range store.written {
		if strings.Contains(v, "tg_secret") {
			t.Fatalf("the session store was given the secret in the clear: %s", v)
		}
		sealed = sealed || strings.Contains(v, `"new_key":"`)
	}
	if !sealed {
		t.Error("no session record held the sealed key: the test saw nothing")
	}
}
