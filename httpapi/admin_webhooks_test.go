package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/httpapi"
	"tollgate/internal/clocktest"
	"tollgate/store/sqlite"
	"tollgate/webhook"
)

type hookWorld struct {
	t     *testing.T
	st    *sqlite.Store
	h     http.Handler
	clock *clocktest.Clock
	woken int
}

func newHookWorld(t *testing.T, policy webhook.URLPolicy) *hookWorld {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &hookWorld{t: t, st: st, clock: clocktest.New(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))}
	w.h = (&httpapi.Server{AdminToken: "adm-token", Webhooks: st, WebhookPolicy: policy, Clock: w.clock,
		WebhookWake: func() { w.woken++ }}).Handler()
	return w
}

func (w *hookWorld) do(method, path, body string) (int, map[string]any) {
	w.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer adm-token")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		w.t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, out
}

func TestAdminWebhooks(t *testing.T) {
	w := newHookWorld(t, webhook.URLPolicy{HTTPSOnly: true})
	code, created := w.do("POST", "/admin/webhooks", `{"url":"https://app.example/hooks","events":["payment.succeeded","refund.failed"],"description":"app"}`)
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if code != 201 || !strings.HasPrefix(id, "we_") || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create = %d %v", code, created)
	}
	// The list never shows a secret.
	code, list := w.do("GET", "/admin/webhooks", "")
	data, _ := list["data"].([]any)
	if code != 200 || len(data) != 1 || data[0].(map[string]any)["id"] != id {
		t.Fatalf("list = %d %v", code, list)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), "whsec_") || strings.Contains(string(b), `"secret"`) {
		t.Fatalf("the list shows a secret: %s", b)
	}
	// One endpoint by id, without its secret either.
	code, one := w.do("GET", "/admin/webhooks/"+id, "")
	if b, _ := json.Marshal(one); code != 200 || one["id"] != id || one["url"] != "https://app.example/hooks" ||
		strings.Contains(string(b), "whsec_") || strings.Contains(string(b), `"secret"`) {
		t.Fatalf("get = %d %s", code, b)
	}
	// Rotate: a new secret, the old one valid for 24 h.
	code, rot := w.do("POST", "/admin/webhooks/"+id+"/rotate-secret", "")
	if code != 200 || rot["secret"] == secret || !strings.HasPrefix(rot["secret"].(string), "whsec_") ||
		rot["previous_secret_expires_at"] != "2026-06-02T09:00:00Z" {
		t.Fatalf("rotate = %d %v", code, rot)
	}
	// Enable (after the dispatcher disabled it).
	if _, err := w.st.SetEndpointDisabled(context.Background(), id, w.clock.Now(), "failing for days"); err != nil {
		t.Fatal(err)
	}
	_, list = w.do("GET", "/admin/webhooks", "")
	if v := list["data"].([]any)[0].(map[string]any); v["disabled"] != true || v["disabled_reason"] != "failing for days" {
		t.Fatalf("disabled endpoint listed as %v", v)
	}
	code, en := w.do("POST", "/admin/webhooks/"+id+"/enable", "")
	if code != 200 || en["disabled"] != false {
		t.Fatalf("enable = %d %v", code, en)
	}
	// Deliveries: one event, then the list, the status filter, a retry.
	ev, err := webhook.NewEvent(webhook.PaymentSucceeded, "alice", w.clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	cs, err := w.st.Claim(context.Background(), webhook.ClaimRequest{Owner: "d", Now: w.clock.Now(), Lease: time.Minute, Limit: 5})
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim = %d, %v", len(cs), err)
	}
	if _, err := w.st.Complete(context.Background(), webhook.Outcome{DeliveryID: cs[0].Delivery.ID, Owner: "d", Now: w.clock.Now(),
		Failed: true, HTTPStatus: 500, Error: "answered 500"}); err != nil {
		t.Fatal(err)
	}
	code, ds := w.do("GET", "/admin/webhooks/"+id+"/deliveries?status=failed", "")
	dd, _ := ds["data"].([]any)
	if code != 200 || len(dd) != 1 {
		t.Fatalf("deliveries = %d %v", code, ds)
	}
	d := dd[0].(map[string]any)
	if d["event_id"] != ev.ID || d["status"] != "failed" || d["last_http_status"] != float64(500) || d["next_attempt_at"] != nil {
		t.Fatalf("delivery = %v", d)
	}
	if _, ds = w.do("GET", "/admin/webhooks/"+id+"/deliveries?status=delivered", ""); len(ds["data"].([]any)) != 0 {
		t.Fatalf("delivered = %v", ds)
	}
	code, rd := w.do("POST", "/admin/webhooks/"+id+"/deliveries/"+d["id"].(string)+"/retry", "")
	if code != 200 || rd["status"] != "pending" || rd["next_attempt_at"] == nil || w.woken != 1 {
		t.Fatalf("retry = %d %v (woken %d)", code, rd, w.woken)
	}
	// Delete; then it is gone.
	if code, _ := w.do("DELETE", "/admin/webhooks/"+id, ""); code != 200 {
		t.Fatalf("delete = %d", code)
	}
	for _, p := range []string{"GET /admin/webhooks/" + id, "DELETE /admin/webhooks/" + id, "POST /admin/webhooks/" + id + "/rotate-secret",
		"POST /admin/webhooks/" + id + "/enable", "GET /admin/webhooks/" + id + "/deliveries",
		"POST /admin/webhooks/" + id + "/deliveries/wd_x/retry"} {
		m, path, _ := strings.Cut(p, " ")
		if code, body := w.do(m, path, ""); code != 404 {
			t.Errorf("%s after delete = %d %v", p, code, body)
		}
	}
}

func TestAdminWebhooksRefuseBadInput(t *testing.T) {
	w := newHookWorld(t, webhook.URLPolicy{HTTPSOnly: true})
	for _, body := range []string{
		`{"url":"https://app.example/h","events":["payment.refunded"]}`,            // unknown event type
		`{"url":"https://app.example/h","events":[]}`,                              // no events
		`{"url":"http://app.example/h","events":["payment.succeeded"]}`,            // http in production
		`{"url":"ftp://app.example/h","events":["payment.succeeded"]}`,             // not http(s)
		`{"url":"not a url","events":["payment.succeeded"]}`,                       // bad URL
		`{"url":"https://127.0.0.1/h","events":["payment.succeeded"]}`,             // loopback
		`{"url":"https://10.0.0.8/h","events":["payment.succeeded"]}`,              // private
		`{"url":"https://169.254.169.254/latest","events":["payment.succeeded"]}`,  // metadata
		`{"url":"https://[::1]/h","events":["payment.succeeded"]}`,                 // loopback v6
		`{"url":"https://app.example/h","events":["payment.succeeded"],"extra":1}`, // unknown field
	} {
		if code, out := w.do("POST", "/admin/webhooks", body); code != 400 {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}
	if code, _ := w.do("GET", "/admin/webhooks", ""); code != 200 {
		t.Fatal(code)
	}
	if _, list := w.do("GET", "/admin/webhooks", ""); len(list["data"].([]any)) != 0 {
		t.Fatalf("a refused endpoint was stored: %v", list)
	}
	_, created := w.do("POST", "/admin/webhooks", `{"url":"https://app.example/h","events":["balance.low"]}`)
	id := created["id"].(string)
	for _, q := range []string{"?status=lost", "?cursor=bogus", "?limit=0"} {
		if code, out := w.do("GET", "/admin/webhooks/"+id+"/deliveries"+q, ""); code != 400 {
			t.Errorf("deliveries%s: %d %v", q, code, out)
		}
	}
	// Private hosts with the flag; http outside production.
	dev := newHookWorld(t, webhook.URLPolicy{AllowPrivate: true})
	if code, out := dev.do("POST", "/admin/webhooks", `{"url":"http://127.0.0.1:9000/h","events":["balance.low"]}`); code != 201 {
		t.Fatalf("private with the flag: %d %v", code, out)
	}
	// Without the admin token: 401.
	req := httptest.NewRequest("GET", "/admin/webhooks", nil)
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("no token: %d", rec.Code)
	}
}
