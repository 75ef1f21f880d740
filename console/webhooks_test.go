package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"tollgate/httpapi"
	"tollgate/kv"
	"tollgate/store/sqlite"
	"tollgate/webhook"
)

// fakeHooks stands for the admin API's webhook and platform routes: it
// keeps endpoints and platforms as the API would, refusing what the API
// refuses (a URL that is not http(s), no event, an empty name).
type fakeHooks struct {
	mu        sync.Mutex
	endpoints map[string]bool // id → disabled
	secrets   int
	platforms map[string]bool // id → revoked
}

func withHooks(e *env) *fakeHooks {
	h := &fakeHooks{endpoints: map[string]bool{}, platforms: map[string]bool{}}
	e.api.extra = h.serve
	return h
}

func apiErr(w http.ResponseWriter, status int, code, msg string) bool {
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	w.Write(b)
	return true
}

func (h *fakeHooks) endpoint(id string) string {
	return fmt.Sprintf(`{"id":%q,"object":"webhook_endpoint","url":"https://app.example/hooks","events":["payment.succeeded"],"description":"app","created_at":"2026-03-01T01:00:00Z","disabled":%v}`,
		id, h.endpoints[id])
}

func (h *fakeHooks) serve(w http.ResponseWriter, r *http.Request, body []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/admin/"), "/")
	route := r.Method + " " + parts[0]
	if len(parts) > 1 {
		if _, ok := h.endpoints[parts[1]]; parts[0] == "webhooks" && !ok {
			return apiErr(w, 404, "not_found", "no such webhook endpoint")
		}
		if _, ok := h.platforms[parts[1]]; parts[0] == "platforms" && !ok {
			return apiErr(w, 404, "not_found", "no such platform")
		}
		route += " {id}"
		if len(parts) > 2 {
			route += " " + strings.Join(parts[2:], " ")
		}
	}
	switch route {
	case "POST webhooks":
		var b struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
		}
		json.Unmarshal(body, &b)
		if !strings.HasPrefix(b.URL, "https://") && !strings.HasPrefix(b.URL, "http://") {
			return apiErr(w, 400, "invalid_request", fmt.Sprintf("url must be http:// or https://, not %q", b.URL))
		}
		if len(b.Events) == 0 {
			return apiErr(w, 400, "invalid_request", "events must name at least one event type")
		}
		id := fmt.Sprintf("we_%d", len(h.endpoints)+1)
		h.endpoints[id] = false
		h.secrets++
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id":%q,"url":%q,"secret":"whsec_secret_%d"}`, id, b.URL, h.secrets)
	case "GET webhooks":
		var data []string
		for id := range h.endpoints {
			data = append(data, h.endpoint(id))
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s],"next_cursor":""}`, strings.Join(data, ","))
	case "GET webhooks {id}":
		io.WriteString(w, h.endpoint(parts[1]))
	case "DELETE webhooks {id}":
		delete(h.endpoints, parts[1])
		io.WriteString(w, `{"deleted":true}`)
	case "POST webhooks {id} rotate-secret":
		h.secrets++
		fmt.Fprintf(w, `{"id":%q,"secret":"whsec_secret_%d"}`, parts[1], h.secrets)
	case "POST webhooks {id} enable":
		h.endpoints[parts[1]] = false
		io.WriteString(w, h.endpoint(parts[1]))
	case "GET webhooks {id} deliveries":
		switch r.URL.Query().Get("status") {
		case "", "pending":
			io.WriteString(w, `{"object":"list","data":[{"id":"wd_1","event_id":"evt_1","event_type":"payment.succeeded","status":"pending","attempts":3,"next_attempt_at":"2026-03-01T02:00:00Z","last_http_status":500,"last_error":"answered 500 Internal Server Error","created_at":"2026-03-01T01:00:00Z"}],"next_cursor":""}`)
		case "delivered", "failed":
			io.WriteString(w, `{"object":"list","data":[],"next_cursor":""}`)
		default:
			return apiErr(w, 400, "invalid_request", "status is pending, delivered or failed")
		}
	case "POST webhooks {id} deliveries wd_1 retry":
		io.WriteString(w, `{"id":"wd_1","status":"pending"}`)
	case "POST platforms":
		var b struct {
			Name  string   `json:"name"`
			Hosts []string `json:"return_url_hosts"`
		}
		json.Unmarshal(body, &b)
		if b.Name == "" {
			return apiErr(w, 400, "invalid_request", "name is 1 to 200 characters")
		}
		id := fmt.Sprintf("pl_%d", len(h.platforms)+1)
		h.platforms[id] = false
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id":%q,"name":%q,"key":"tgp-secret-%s"}`, id, b.Name, id)
	case "GET platforms":
		var data []string
		for id, revoked := range h.platforms {
			at := "null"
			if revoked {
				at = `"2026-03-01T01:00:00Z"`
			}
			data = append(data, fmt.Sprintf(`{"id":%q,"name":"Shop","key_prefix":"tgp-abcdef","return_url_hosts":["shop.example"],"revoked_at":%s}`, id, at))
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s]}`, strings.Join(data, ","))
	case "DELETE platforms {id}":
		h.platforms[parts[1]] = true
		fmt.Fprintf(w, `{"id":%q}`, parts[1])
	default:
		return false
	}
	return true
}

var newSecretRE = regexp.MustCompile(`id="new-secret">([^<]*)<`)

// TestWebhookSecretShownOnce: adding an endpoint redirects to its page,
// which shows the signing secret once (not in the redirect, not to another
// page, not on a reload); rotating does the same with the new secret.
// Between the action and the page the secret is in the session store only
// sealed.
func TestWebhookSecretShownOnce(t *testing.T) {
	store := &recordingStore{Memory: kv.NewMemory(kv.MemoryOptions{})}
	e := newEnvWith(t, store)
	withHooks(e)
	ck := e.login()
	csrf := e.csrf(ck)
	w := e.do("POST", "/admin/ui/webhooks", url.Values{"csrf": {csrf}, "url": {"https://app.example/hooks"},
		"events": {"payment.succeeded", "refund.succeeded"}, "description": {"app"}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/webhooks/we_1" {
		t.Fatalf("create: %d %q, want 303 to the endpoint's page", w.Code, w.Header().Get("Location"))
	}
	if strings.Contains(w.Body.String(), "whsec_") {
		t.Error("the redirect carries the secret")
	}
	want := `POST /admin/webhooks  {"description":"app","events":["payment.succeeded","refund.succeeded"],"url":"https://app.example/hooks"}`
	if got := e.api.writes(); len(got) != 1 || got[0] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
	// Other pages do not take it.
	e.do("GET", "/admin/ui/webhooks", nil, ck)
	e.do("GET", "/admin/ui/platforms", nil, ck)
	e.do("GET", "/admin/ui/accounts/acct_1", nil, ck)
	page := e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String()
	if m := newSecretRE.FindStringSubmatch(page); m == nil || m[1] != "whsec_secret_1" {
		t.Fatalf("the endpoint's page does not show the secret:\n%s", page)
	}
	if !strings.Contains(page, "shown once") {
		t.Error("the page does not say the secret is shown once")
	}
	if page = e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String(); strings.Contains(page, "whsec_") {
		t.Fatal("a reload shows the secret again")
	}
	// Rotate: the new secret, once.
	w = e.do("POST", "/admin/ui/webhooks/we_1/rotate", url.Values{"csrf": {csrf}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/webhooks/we_1" {
		t.Fatalf("rotate: %d %q", w.Code, w.Header().Get("Location"))
	}
	page = e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String()
	if m := newSecretRE.FindStringSubmatch(page); m == nil || m[1] != "whsec_secret_2" || !strings.Contains(page, "24 hours") {
		t.Fatalf("after rotating, the page does not show the new secret:\n%s", page)
	}
	if page = e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String(); strings.Contains(page, "whsec_") {
		t.Fatal("a reload shows the rotated secret again")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, v := range store.written {
		if strings.Contains(v, "whsec_") {
			t.Fatalf("the session store was given the secret in the clear: %s", v)
		}
	}
}

// TestWebhookCreateRefused: a URL the API refuses, or no event ticked,
// shows the form again with what was typed and the API's reason, and
// creates nothing; so does a form without its CSRF token.
func TestWebhookCreateRefused(t *testing.T) {
	e := newEnv(t)
	h := withHooks(e)
	ck := e.login()
	csrf := e.csrf(ck)
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"url": {"ftp://app.example/hooks"}, "events": {"refund.failed"}, "description": {"mine"}}, `url must be http:// or https://, not &#34;ftp://app.example/hooks&#34;`},
		{url.Values{"url": {"https://app.example/hooks"}, "description": {"mine"}}, "events must name at least one event type"},
	} {
		c.form.Set("csrf", csrf)
		w := e.do("POST", "/admin/ui/webhooks", c.form, ck)
		body := w.Body.String()
		if w.Code != http.StatusBadRequest || !strings.Contains(body, `id="webhook-err">`+c.want) {
			t.Fatalf("create %v: %d, want 400 saying %q:\n%s", c.form, w.Code, c.want, body)
		}
		if !strings.Contains(body, `value="`+c.form.Get("url")+`"`) || !strings.Contains(body, `value="mine"`) {
			t.Errorf("the refused form lost what was typed:\n%s", body)
		}
		if ev := c.form.Get("events"); ev != "" && !strings.Contains(body, `value="`+ev+`" checked`) {
			t.Errorf("the refused form lost the ticked event %s", ev)
		}
	}
	if w := e.do("POST", "/admin/ui/webhooks", url.Values{"url": {"https://app.example/hooks"}, "events": {"refund.failed"}}, ck); w.Code != http.StatusForbidden {
		t.Fatalf("create without the CSRF token: %d, want 403", w.Code)
	}
	if len(h.endpoints) != 0 {
		t.Fatalf("endpoints created: %v", h.endpoints)
	}
	if page := e.do("GET", "/admin/ui/webhooks", nil, ck).Body.String(); !strings.Contains(page, "Nothing here.") || strings.Contains(page, "whsec_") {
		t.Fatalf("the list after refusals:\n%s", page)
	}
}

// TestWebhookDeliveriesAndActions: the endpoint's page lists its
// deliveries with attempts, last answer and error, filtered by status; a
// retry keeps the filter; delete goes back to the list; each action is
// logged with the session and sent with it as the actor.
func TestWebhookDeliveriesAndActions(t *testing.T) {
	e := newEnv(t)
	logs := withLog(e)
	h := withHooks(e)
	h.endpoints["we_1"] = true // disabled by the dispatcher
	ck := e.login()
	csrf := e.csrf(ck)
	page := e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String()
	for _, want := range []string{"wd_1", "payment.succeeded", "HTTP 500", "answered 500 Internal Server Error", `class="r attempts">3<`, `id="enable"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the endpoint's page lacks %q", want)
		}
	}
	if page = e.do("GET", "/admin/ui/webhooks/we_1?status=delivered", nil, ck).Body.String(); strings.Contains(page, "wd_1") {
		t.Error("the delivered filter lists a pending delivery")
	}
	if w := e.do("GET", "/admin/ui/webhooks/we_1?status=bogus", nil, ck); w.Code != 400 || !strings.Contains(w.Body.String(), "pending, delivered or failed") {
		t.Errorf("a bad status filter: %d", w.Code)
	}
	w := e.do("POST", "/admin/ui/webhooks/we_1/deliveries/wd_1/retry", url.Values{"csrf": {csrf}, "status": {"pending"}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/webhooks/we_1?status=pending" {
		t.Fatalf("retry: %d %q", w.Code, w.Header().Get("Location"))
	}
	if page = e.do("GET", "/admin/ui/webhooks/we_1?status=pending", nil, ck).Body.String(); !strings.Contains(page, "queued to be sent now") {
		t.Error("the page does not say the delivery was retried")
	}
	e.do("POST", "/admin/ui/webhooks/we_1/enable", url.Values{"csrf": {csrf}}, ck)
	if page = e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String(); !strings.Contains(page, "Endpoint enabled.") || strings.Contains(page, `id="enable"`) {
		t.Error("after enabling, the page does not say so or still offers to enable")
	}
	// An unknown delivery: the API's refusal, shown.
	e.do("POST", "/admin/ui/webhooks/we_1/deliveries/wd_9/retry", url.Values{"csrf": {csrf}}, ck)
	if page = e.do("GET", "/admin/ui/webhooks/we_1", nil, ck).Body.String(); !strings.Contains(page, `id="flash-err">not found`) {
		t.Errorf("retrying an unknown delivery shows no error:\n%s", page)
	}
	w = e.do("POST", "/admin/ui/webhooks/we_1/delete", url.Values{"csrf": {csrf}, "reason": {"app retired"}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/webhooks" {
		t.Fatalf("delete: %d %q", w.Code, w.Header().Get("Location"))
	}
	if page = e.do("GET", "/admin/ui/webhooks", nil, ck).Body.String(); !strings.Contains(page, "Endpoint deleted.") || strings.Contains(page, "we_1") {
		t.Error("after deleting, the list does not say so or still lists the endpoint")
	}
	if w := e.do("GET", "/admin/ui/webhooks/we_1", nil, ck); w.Code != 404 {
		t.Errorf("a deleted endpoint's page: %d, want 404", w.Code)
	}
	tag := sessionTag(ck)
	e.api.mu.Lock()
	for i, a := range e.api.actors {
		if a != tag {
			t.Errorf("call %q: actor %q, want %q", e.api.calls[i], a, tag)
		}
	}
	e.api.mu.Unlock()
	want := map[string]string{"retry_delivery": "", "enable_webhook": "", "delete_webhook": "app retired"}
	for _, l := range logs.lines(t, "console: action") {
		if a, _ := l["action"].(string); l["session"] == tag && l["reason"] == want[a] && l["endpoint"] == "we_1" {
			delete(want, a)
		}
	}
	if len(want) != 0 {
		t.Errorf("actions not logged: %v\n%s", want, logs.buf.String())
	}
}

var newPlatformKeyRE = regexp.MustCompile(`id="new-platform-key">([^<]*)<`)

// TestPlatforms: creating a platform shows its key once on the platforms
// page; an empty name shows the form again with the API's reason and
// creates nothing; revoking marks it revoked.
func TestPlatforms(t *testing.T) {
	e := newEnv(t)
	h := withHooks(e)
	ck := e.login()
	csrf := e.csrf(ck)
	if w := e.do("POST", "/admin/ui/platforms", url.Values{"csrf": {csrf}, "name": {"  "}, "return_url_hosts": {"shop.example"}}, ck); w.Code != 400 ||
		!strings.Contains(w.Body.String(), `id="platform-err">name is 1 to 200 characters`) || !strings.Contains(w.Body.String(), `value="shop.example"`) {
		t.Fatalf("an empty name: %d\n%s", w.Code, w.Body.String())
	}
	if len(h.platforms) != 0 {
		t.Fatal("a refused platform was created")
	}
	w := e.do("POST", "/admin/ui/platforms", url.Values{"csrf": {csrf}, "name": {"Shop"}, "return_url_hosts": {"shop.example, m.shop.example"}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/ui/platforms" || strings.Contains(w.Body.String(), "tgp-") {
		t.Fatalf("create: %d %q", w.Code, w.Header().Get("Location"))
	}
	want := `POST /admin/platforms  {"name":"Shop","return_url_hosts":["shop.example","m.shop.example"]}`
	if got := e.api.writes(); len(got) != 2 || got[1] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
	page := e.do("GET", "/admin/ui/platforms", nil, ck).Body.String()
	if m := newPlatformKeyRE.FindStringSubmatch(page); m == nil || m[1] != "tgp-secret-pl_1" || !strings.Contains(page, `Platform &#34;Shop&#34; created.`) {
		t.Fatalf("the platforms page does not show the new key:\n%s", page)
	}
	if page = e.do("GET", "/admin/ui/platforms", nil, ck).Body.String(); strings.Contains(page, "tgp-secret") {
		t.Fatal("a reload shows the key again")
	}
	e.do("POST", "/admin/ui/platforms/pl_1/revoke", url.Values{"csrf": {csrf}}, ck)
	page = e.do("GET", "/admin/ui/platforms", nil, ck).Body.String()
	if !strings.Contains(page, "Platform key revoked.") || !strings.Contains(page, "Revoked 2026-03-01 09:00") || strings.Contains(page, "pl_1/revoke") {
		t.Fatalf("after revoking:\n%s", page)
	}
	e.do("POST", "/admin/ui/platforms/pl_9/revoke", url.Values{"csrf": {csrf}}, ck)
	if page = e.do("GET", "/admin/ui/platforms", nil, ck).Body.String(); !strings.Contains(page, "no such platform") {
		t.Error("revoking an unknown platform shows no error")
	}
}

// TestWebhookURLPolicyThroughTheAPI: against the real admin API in
// production's policy (https only, no private or loopback hosts), every
// URL it refuses shows the API's reason on the form and stores nothing;
// an https URL on a public host is added.
func TestWebhookURLPolicyThroughTheAPI(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t)
	e.c.API = (&httpapi.Server{AdminToken: token, Webhooks: st, WebhookPolicy: webhook.URLPolicy{HTTPSOnly: true}, Clock: e.c.Clock}).Handler()
	ck := e.login()
	csrf := csrfRE.FindStringSubmatch(e.do("GET", "/admin/ui/webhooks", nil, ck).Body.String())[1]
	for u, want := range map[string]string{
		"ftp://app.example/hooks":   "http:// or https://",
		"http://app.example/hooks":  "https:// in production",
		"https://10.0.0.5/hooks":    "10.0.0.5",
		"https://127.0.0.1/hooks":   "127.0.0.1",
		"https://localhost/hooks":   "localhost",
		"https://[::1]:8443/hooks":  "::1",
		"https://169.254.169.254/x": "169.254.169.254",
	} {
		w := e.do("POST", "/admin/ui/webhooks", url.Values{"csrf": {csrf}, "url": {u}, "events": {"payment.succeeded"}}, ck)
		m := regexp.MustCompile(`id="webhook-err">([^<]*)<`).FindStringSubmatch(w.Body.String())
		if w.Code != http.StatusBadRequest || m == nil || !strings.Contains(html.UnescapeString(m[1]), want) {
			t.Errorf("%s: %d, error %q, want 400 naming %q", u, w.Code, m, want)
		}
	}
	if es, err := st.ListEndpoints(context.Background(), webhook.EndpointQuery{Limit: 10}); err != nil || len(es) != 0 {
		t.Fatalf("endpoints after refusals: %v, %v", es, err)
	}
	w := e.do("POST", "/admin/ui/webhooks", url.Values{"csrf": {csrf}, "url": {"https://app.example/hooks"}, "events": {"payment.succeeded"}}, ck)
	page := e.do("GET", w.Header().Get("Location"), nil, ck).Body.String()
	if m := newSecretRE.FindStringSubmatch(page); w.Code != http.StatusSeeOther || m == nil || !strings.HasPrefix(m[1], "whsec_") {
		t.Fatalf("a public https URL: %d %q\n%s", w.Code, w.Header().Get("Location"), page)
	}
}

// TestWebhookForPlatform: the form's platform reaches the admin API (the
// endpoint then gets only that platform's users' events); the list names
// an endpoint without one as the operator's.
func TestWebhookForPlatform(t *testing.T) {
	e := newEnvWith(t, &recordingStore{Memory: kv.NewMemory(kv.MemoryOptions{})})
	withHooks(e)
	ck := e.login()
	w := e.do("POST", "/admin/ui/webhooks", url.Values{"csrf": {e.csrf(ck)}, "url": {"https://app.example/hooks"},
		"events": {"payment.succeeded"}, "platform": {" plat_a "}}, ck)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	want := `POST /admin/webhooks  {"description":"","events":["payment.succeeded"],"platform":"plat_a","url":"https://app.example/hooks"}`
	if got := e.api.writes(); len(got) != 1 || got[0] != want {
		t.Fatalf("admin API calls %q, want [%q]", got, want)
	}
	if page := e.do("GET", "/admin/ui/webhooks", nil, ck).Body.String(); !strings.Contains(page, "operator&#39;s (all)") {
		t.Fatalf("the list does not name the operator's endpoint:\n%s", page)
	}
}
