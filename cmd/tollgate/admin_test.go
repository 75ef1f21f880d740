package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"tollgate/internal/testenv"
)

const adminToken = "admin-token-for-the-admin-api-tests"

// onEachStore runs body against serve on SQLite and on PostgreSQL, with
// the admin token and extra flags.
func onEachStore(t *testing.T, body func(t *testing.T, m *Main, c client), extra ...string) {
	t.Run("sqlite", func(t *testing.T) {
		m := MustRunMain(t, append([]string{"--admin-token", adminToken}, extra...)...)
		body(t, m, client{t, m.URL})
	})
	t.Run("postgres", func(t *testing.T) {
		m := MustRunMain(t, append([]string{"--admin-token", adminToken, "--database-url", testenv.MustPostgres(t)}, extra...)...)
		body(t, m, client{t, m.URL})
	})
}

type adminAccount struct {
	AccountID  string          `json:"account_id"`
	APIKey     string          `json:"api_key"`
	Label      string          `json:"label"`
	ExternalID *string         `json:"external_id"`
	Metadata   json.RawMessage `json:"metadata"`
	Disabled   bool            `json:"disabled"`
	Credits    int64           `json:"credits"`
}

type accountPage struct {
	Data       []adminAccount `json:"data"`
	NextCursor string         `json:"next_cursor"`
}

// wantError calls and checks the status and that the error message says
// what it must.
func (c client) wantError(status int, method, path, auth, body, says string) {
	c.tb.Helper()
	st, b, _ := c.call(method, path, auth, body, nil)
	if st != status || !strings.Contains(string(b), says) {
		c.tb.Fatalf("%s %s %s: %d %s, want %d saying %q", method, path, body, st, b, status, says)
	}
}

func TestAdminAccounts(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		var a adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{"label":"Ada Lovelace","external_id":"app-user-1","metadata":{"plan":"pro"},"rpm":10}`, &a)
		if a.Label != "Ada Lovelace" || a.ExternalID == nil || *a.ExternalID != "app-user-1" || string(a.Metadata) != `{"plan":"pro"}` {
			t.Fatalf("created %+v", a)
		}
		b := mustAccount(c, adminToken)
		// Found by external id, id and label; pages follow each other.
		for q, want := range map[string]string{"app-user-1": a.AccountID, a.AccountID: a.AccountID, "lovelace": a.AccountID, b.AccountID: b.AccountID} {
			var p accountPage
			c.must(200, "GET", "/admin/accounts?q="+url.QueryEscape(q), adminToken, "", &p)
			if len(p.Data) != 1 || p.Data[0].AccountID != want {
				t.Fatalf("q=%s: %+v", q, p)
			}
		}
		var p1, p2 accountPage
		c.must(200, "GET", "/admin/accounts?limit=1", adminToken, "", &p1)
		c.must(200, "GET", "/admin/accounts?limit=1&cursor="+p1.NextCursor, adminToken, "", &p2)
		if len(p1.Data) != 1 || len(p2.Data) != 1 || p1.Data[0].AccountID == p2.Data[0].AccountID || p1.NextCursor == "" {
			t.Fatalf("pages %+v then %+v", p1, p2)
		}
		// Bad input: a clear 4xx, nothing changed.
		c.wantError(409, "POST", "/admin/accounts", adminToken, `{"external_id":"app-user-1"}`, "app-user-1")
		c.wantError(400, "POST", "/admin/accounts", adminToken, `{"metadata":[1,2]}`, "metadata must be a JSON object")
		c.wantError(400, "POST", "/admin/accounts", adminToken, `{"metadata":{"x":"`+strings.Repeat("a", 5000)+`"}}`, "metadata is")
		c.wantError(400, "POST", "/admin/accounts", adminToken, `{"label":"`+strings.Repeat("l", 201)+`"}`, "label must be")
		c.wantError(400, "POST", "/admin/accounts", adminToken, `{"external_id":"a\u0000b"}`, "control characters")
		c.wantError(400, "PATCH", "/admin/accounts/"+b.AccountID, adminToken, `{"external_id":"app-user-1x","colour":"red"}`, "unknown field")
		c.wantError(400, "PATCH", "/admin/accounts/"+b.AccountID, adminToken, `{}`, "nothing to change")
		c.wantError(409, "PATCH", "/admin/accounts/"+b.AccountID, adminToken, `{"external_id":"app-user-1"}`, "app-user-1")
		c.wantError(404, "PATCH", "/admin/accounts/acct_nobody", adminToken, `{"label":"x"}`, "no such account")
		c.wantError(400, "GET", "/admin/accounts?limit=501", adminToken, "", "limit must be")
		c.wantError(400, "GET", "/admin/accounts?limit=0", adminToken, "", "limit must be")
		c.wantError(400, "GET", "/admin/accounts?cursor=not-a-cursor", adminToken, "", "cursor is not one this server made")
		c.wantError(400, "GET", "/admin/accounts?token="+adminToken, adminToken, "", "never put the admin token in a URL")
		c.wantError(400, "GET", "/admin/accounts?x="+adminToken, "", "", "never put the admin token in a URL")
		c.wantError(401, "GET", "/admin/accounts", "", "", "admin token")
		var count accountPage
		c.must(200, "GET", "/admin/accounts", adminToken, "", &count)
		if len(count.Data) != 2 {
			t.Fatalf("refused requests made accounts: %+v", count)
		}

		// Disabling stops the account's keys at once; enabling brings them back.
		var patched adminAccount
		c.must(200, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"disabled":true,"reason":"chargeback"}`, &patched)
		if !patched.Disabled || patched.Label != "Ada Lovelace" {
			t.Fatalf("patched %+v", patched)
		}
		c.wantError(403, "GET", "/v1/balance", a.APIKey, "", "account is disabled")
		c.must(200, "GET", "/v1/balance", b.APIKey, "", nil)
		c.must(200, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"disabled":false,"external_id":null,"label":"Ada"}`, &patched)
		if patched.Disabled || patched.ExternalID != nil || patched.Label != "Ada" {
			t.Fatalf("re-enabled %+v", patched)
		}
		c.must(200, "GET", "/v1/balance", a.APIKey, "", nil)
		// The external id is free again.
		c.must(200, "PATCH", "/admin/accounts/"+b.AccountID, adminToken, `{"external_id":"app-user-1"}`, nil)
	})
}
