package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/auth"
	"tollgate/httpapi"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
	"tollgate/store/sqlite"
	"tollgate/webhook"
)

// platformHooks is a server with platforms and webhooks on one store.
type platformHooks struct {
	t     *testing.T
	st    *sqlite.Store
	au    *auth.Service
	h     *httpapi.Server
	clock *clocktest.Clock
}

func newPlatformHooks(t *testing.T) *platformHooks {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := clocktest.New(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	led := ledger.New(st, ledger.Options{Clock: clock})
	t.Cleanup(func() { led.Close() })
	au := &auth.Service{Store: st, Accounts: led, Clock: clock}
	return &platformHooks{t: t, st: st, au: au, clock: clock,
		h: &httpapi.Server{AdminToken: "adm-token", Auth: au, Ledger: led, Webhooks: st, Clock: clock}}
}

// do sends a request with bearer token tok and returns the status and the
// JSON answer.
func (w *platformHooks) do(tok, method, path, body string) (int, map[string]any) {
	w.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	w.h.Handler().ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		w.t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, out
}

func (w *platformHooks) platform(name string) (key, id string) {
	w.t.Helper()
	key, p, err := w.au.CreatePlatform(context.Background(), name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return key, p.ID
}

func ids(t *testing.T, list map[string]any) []string {
	t.Helper()
	var out []string
	for _, v := range list["data"].([]any) {
		out = append(out, v.(map[string]any)["id"].(string))
	}
	return out
}

// TestPlatformWebhooks: a platform key manages its own endpoints under
// /v1/webhooks with the admin's JSON; another platform's endpoint, or the
// operator's, is 404 to it and never listed; the admin sees every
// endpoint with its platform, and registers one for a platform that
// exists and is not revoked.
func TestPlatformWebhooks(t *testing.T) {
	w := newPlatformHooks(t)
	keyA, platA := w.platform("App A")
	keyB, platB := w.platform("App B")
	const body = `{"url":"https://app.example/hooks","events":["account.created"]}`

	code, a := w.do(keyA, "POST", "/v1/webhooks", body)
	if code != 201 || a["platform"] != platA || !strings.HasPrefix(a["secret"].(string), "whsec_") {
		t.Fatalf("A's create = %d %v", code, a)
	}
	aID := a["id"].(string)
	if code, e := w.do(keyA, "POST", "/v1/webhooks", `{"url":"https://app.example/hooks","events":["account.created"],"platform":"`+platB+`"}`); code != 400 {
		t.Fatalf("A registering for B = %d %v", code, e)
	}
	code, b := w.do(keyB, "POST", "/v1/webhooks", `{"url":"https://b.example/hooks","events":["account.created"],"platform":"`+platB+`"}`)
	if code != 201 || b["platform"] != platB {
		t.Fatalf("B's create = %d %v", code, b)
	}
	code, op := w.do("adm-token", "POST", "/admin/webhooks", body)
	if code != 201 || op["platform"] != nil {
		t.Fatalf("operator's create = %d %v", code, op)
	}
	if v, ok := op["platform"]; !ok || v != nil {
		t.Fatalf("operator's endpoint shows platform %v (present %v); want null", v, ok)
	}
	code, fromAdmin := w.do("adm-token", "POST", "/admin/webhooks", `{"url":"https://app.example/a2","events":["refund.failed"],"platform":"`+platA+`"}`)
	if code != 201 || fromAdmin["platform"] != platA {
		t.Fatalf("admin's create for A = %d %v", code, fromAdmin)
	}

	// Lists: each platform its own; the admin all, with their platforms.
	if _, l := w.do(keyA, "GET", "/v1/webhooks", ""); strings.Join(ids(t, l), ",") != strings.Join(sorted(aID, fromAdmin["id"].(string)), ",") {
		t.Fatalf("A's list = %v", l)
	}
	if _, l := w.do(keyB, "GET", "/v1/webhooks", ""); strings.Join(ids(t, l), ",") != b["id"] {
		t.Fatalf("B's list = %v", l)
	}
	if _, l := w.do("adm-token", "GET", "/admin/webhooks", ""); len(ids(t, l)) != 4 {
		t.Fatalf("admin's list = %v", l)
	}

	// B reaches neither A's endpoint nor the operator's, whatever it does.
	for _, id := range []string{aID, op["id"].(string), "we_nope"} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/webhooks/" + id},
			{"DELETE", "/v1/webhooks/" + id},
			{"POST", "/v1/webhooks/" + id + "/rotate-secret"},
			{"POST", "/v1/webhooks/" + id + "/enable"},
			{"GET", "/v1/webhooks/" + id + "/deliveries"},
			{"POST", "/v1/webhooks/" + id + "/deliveries/wd_x/retry"},
		} {
			if code, e := w.do(keyB, c.method, c.path, ""); code != 404 {
				t.Fatalf("B: %s %s = %d %v; want 404", c.method, c.path, code, e)
			}
		}
	}
	if got, err := w.st.GetEndpoint(context.Background(), aID); err != nil || got.Secret != a["secret"] {
		t.Fatalf("A's endpoint after B's tries: %+v, %v", got, err)
	}

	// A manages its own: rotate, enable, deliveries, retry, delete.
	if code, r := w.do(keyA, "GET", "/v1/webhooks/"+aID, ""); code != 200 || r["id"] != aID || r["platform"] != platA || r["secret"] != nil {
		t.Fatalf("A reads its endpoint: %d %v", code, r)
	}
	if code, r := w.do(keyA, "POST", "/v1/webhooks/"+aID+"/rotate-secret", ""); code != 200 || r["secret"] == a["secret"] {
		t.Fatalf("A's rotate = %d %v", code, r)
	}
	if code, r := w.do(keyA, "POST", "/v1/webhooks/"+aID+"/enable", ""); code != 200 || r["platform"] != platA {
		t.Fatalf("A's enable = %d %v", code, r)
	}
	if _, _, err := w.au.PlatformAccount(context.Background(), platA, "user-1"); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(time.Second)
	cs, err := w.st.Claim(context.Background(), webhook.ClaimRequest{Owner: "d", Now: w.clock.Now(), Lease: time.Minute, Limit: 10})
	if err != nil || len(cs) != 2 {
		t.Fatalf("claim = %d, %v; want A's account.created for A's endpoint and the operator's", len(cs), err)
	}
	code, ds := w.do(keyA, "GET", "/v1/webhooks/"+aID+"/deliveries", "")
	if code != 200 || len(ds["data"].([]any)) != 1 {
		t.Fatalf("A's deliveries = %d %v", code, ds)
	}
	d := ds["data"].([]any)[0].(map[string]any)["id"].(string)
	if code, r := w.do(keyA, "POST", "/v1/webhooks/"+aID+"/deliveries/"+d+"/retry", ""); code != 200 || r["status"] != "pending" {
		t.Fatalf("A's retry = %d %v", code, r)
	}
	if code, _ := w.do(keyB, "GET", "/v1/webhooks/"+b["id"].(string)+"/deliveries", ""); code != 200 {
		t.Fatalf("B's own deliveries = %d", code)
	}
	if code, r := w.do(keyA, "DELETE", "/v1/webhooks/"+aID, ""); code != 200 || r["deleted"] != true {
		t.Fatalf("A's delete = %d %v", code, r)
	}

	// Credentials: no key, an admin token, an unknown platform key.
	for _, tok := range []string{"", "adm-token", auth.PlatformKeyPrefix + strings.Repeat("x", 43)} {
		if code, e := w.do(tok, "GET", "/v1/webhooks", ""); code != 401 {
			t.Fatalf("GET /v1/webhooks with %q = %d %v; want 401", tok, code, e)
		}
	}

	// The admin names a platform: unknown is 404, revoked 400; either
	// way nothing is made.
	if code, e := w.do("adm-token", "POST", "/admin/webhooks", `{"url":"https://x.example/","events":["refund.failed"],"platform":"plat_nope"}`); code != 404 {
		t.Fatalf("unknown platform = %d %v", code, e)
	}
	// Revoking B through the admin API disables B's endpoints (and only
	// B's); revoking again is harmless.
	for range 2 {
		if code, e := w.do("adm-token", "DELETE", "/admin/platforms/"+platB, ""); code != 200 || e["revoked_at"] == nil {
			t.Fatalf("revoke B = %d %v", code, e)
		}
	}
	if got, err := w.st.GetEndpoint(context.Background(), b["id"].(string)); err != nil || !got.Disabled() ||
		!strings.Contains(got.DisabledReason, "revoked") {
		t.Fatalf("B's endpoint after B was revoked: %+v, %v", got, err)
	}
	if _, l := w.do("adm-token", "GET", "/admin/webhooks", ""); true {
		for _, e := range l["data"].([]any) {
			e := e.(map[string]any)
			if e["platform"] != platB && e["disabled_at"] != nil {
				t.Fatalf("revoking B disabled %v", e)
			}
		}
	}
	if code, e := w.do("adm-token", "POST", "/admin/webhooks", `{"url":"https://x.example/","events":["refund.failed"],"platform":"`+platB+`"}`); code != 400 ||
		!strings.Contains(e["error"].(map[string]any)["message"].(string), "revoked") {
		t.Fatalf("revoked platform = %d %v", code, e)
	}
	if code, e := w.do(keyB, "GET", "/v1/webhooks", ""); code != 401 {
		t.Fatalf("revoked key = %d %v", code, e)
	}
	if _, l := w.do("adm-token", "GET", "/admin/webhooks", ""); len(ids(t, l)) != 3 {
		t.Fatalf("admin's list after = %v", l)
	}
}

func sorted(s ...string) []string {
	if s[0] > s[1] {
		s[0], s[1] = s[1], s[0]
	}
	return s
}
