package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/auth"
	"tollgate/httpapi"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
	"tollgate/pricing"
	"tollgate/store/sqlite"
)

type appKeyWorld struct {
	t     *testing.T
	h     http.Handler
	au    *auth.Service
	clock *clocktest.Clock
}

func newAppKeyWorld(t *testing.T) *appKeyWorld {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	w := &appKeyWorld{t: t, clock: clocktest.New(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))}
	led := ledger.New(st, ledger.Options{Clock: w.clock})
	t.Cleanup(func() { led.Close(); st.Close() })
	pr, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.au = &auth.Service{Store: st, Accounts: led, Clock: w.clock}
	w.h = (&httpapi.Server{Ledger: led, Auth: w.au, Pricer: pr, AdminToken: "adm-token", Clock: w.clock}).Handler()
	return w
}

func (w *appKeyWorld) do(method, path, cred, body string) (int, map[string]any) {
	w.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+cred)
	r.Header.Set("X-Tollgate-Actor", "ops@example.com")
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		w.t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, out
}

// TestAppUserKeys: an app gets an API key for its own user by external_id
// (the account made on first use, the same after); the key spends that
// account's balance; another platform's key reaches another account for
// the same external_id and never the first app's; an account's API key,
// bad input and a disabled account change nothing.
func TestAppUserKeys(t *testing.T) {
	w := newAppKeyWorld(t)
	ctx := context.Background()
	keyA, pa, err := w.au.CreatePlatform(ctx, "App A", nil)
	if err != nil {
		t.Fatal(err)
	}
	keyB, _, err := w.au.CreatePlatform(ctx, "App B", nil)
	if err != nil {
		t.Fatal(err)
	}

	code, k1 := w.do("POST", "/v1/account/keys", keyA, `{"external_id":"user-42"}`)
	if code != http.StatusCreated || !strings.HasPrefix(fmt.Sprint(k1["api_key"]), "tg-") {
		t.Fatalf("first key: %d %v", code, k1)
	}
	acct := fmt.Sprint(k1["account_id"])
	code, k2 := w.do("POST", "/v1/account/keys", keyA, `{"external_id":"user-42","rpm":30,"allowed_models":["gpt-4o-mini"]}`)
	if code != http.StatusCreated || k2["account_id"] != acct || k2["api_key"] == k1["api_key"] || k2["rpm"] != float64(30) {
		t.Fatalf("second key: %d %v (first account %s)", code, k2, acct)
	}
	// The key is the user's: /v1/balance answers for that account.
	code, bal := w.do("GET", "/v1/balance", fmt.Sprint(k1["api_key"]), "")
	if code != http.StatusOK || bal["account_id"] != acct {
		t.Fatalf("balance with the minted key: %d %v", code, bal)
	}
	// The same external_id under another platform is another account.
	code, kb := w.do("POST", "/v1/account/keys", keyB, `{"external_id":"user-42"}`)
	if code != http.StatusCreated || kb["account_id"] == acct {
		t.Fatalf("platform B's user-42: %d %v", code, kb)
	}
	// B cannot name A's platform; an API key cannot mint keys.
	if code, e := w.do("POST", "/v1/account/keys", keyB, `{"external_id":"user-42","platform":"`+pa.ID+`"}`); code != http.StatusForbidden {
		t.Fatalf("B naming A: %d %v", code, e)
	}
	if code, e := w.do("POST", "/v1/account/keys", fmt.Sprint(k1["api_key"]), `{"external_id":"user-42"}`); code != http.StatusForbidden {
		t.Fatalf("an API key minting: %d %v", code, e)
	}
	// The admin token names the platform and reaches A's user.
	code, ka := w.do("POST", "/v1/account/keys", "adm-token", `{"external_id":"user-42","platform":"`+pa.ID+`"}`)
	if code != http.StatusCreated || ka["account_id"] != acct {
		t.Fatalf("admin for A: %d %v", code, ka)
	}

	// Bad input: refused, and no account made for it.
	for _, body := range []string{`{}`, `{"external_id":""}`, `{"external_id":"new-user","rpm":-1}`,
		`{"external_id":"new-user","allowed_models":["no-such-model"]}`, `{"external_id":"new-user","expires_at":"yesterday"}`,
		`{"external_id":"new-user","unknown":1}`, `not json`} {
		if code, e := w.do("POST", "/v1/account/keys", keyA, body); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %v", body, code, e)
		}
	}
	if code, e := w.do("POST", "/v1/account/keys", "tgp-not-a-key", `{"external_id":"new-user"}`); code != http.StatusUnauthorized {
		t.Fatalf("bad platform key: %d %v", code, e)
	}
	if code, page := w.do("GET", "/admin/accounts?q=new-user", "adm-token", ""); code != http.StatusOK || len(page["data"].([]any)) != 0 {
		t.Fatalf("bad input made an account: %d %v", code, page)
	}

	// A user's live keys are bounded.
	for i := 0; ; i++ {
		code, e := w.do("POST", "/v1/account/keys", keyA, `{"external_id":"hoarder"}`)
		if code == http.StatusConflict {
			if i != httpapi.MaxAppUserKeys {
				t.Fatalf("refused after %d keys, want %d: %v", i, httpapi.MaxAppUserKeys, e)
			}
			break
		}
		if code != http.StatusCreated || i > httpapi.MaxAppUserKeys {
			t.Fatalf("key %d: %d %v", i, code, e)
		}
	}

	// A disabled account is given no key.
	if code, e := w.do("PATCH", "/admin/accounts/"+acct, "adm-token", `{"disabled":true}`); code != http.StatusOK {
		t.Fatalf("disable: %d %v", code, e)
	}
	if code, e := w.do("POST", "/v1/account/keys", keyA, `{"external_id":"user-42"}`); code < 400 {
		t.Fatalf("disabled account got a key: %d %v", code, e)
	}
}
