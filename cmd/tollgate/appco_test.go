package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/testenv"
)

func TestServeAppCheckout(t *testing.T) {
	testServeAppCheckout(t)
}

func TestServeAppCheckoutPostgres(t *testing.T) {
	testServeAppCheckout(t, "--database-url", testenv.MustPostgres(t))
}

type platformCreated struct {
	ID             string   `json:"id"`
	Key            string   `json:"key"`
	Name           string   `json:"name"`
	ReturnURLHosts []string `json:"return_url_hosts"`
}

type appSession struct {
	ID         string    `json:"id"`
	URL        string    `json:"url"`
	AccountURL string    `json:"account_url"`
	AccountID  string    `json:"account_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// accountsWith is how many accounts the admin's search finds with
// external id ext.
func accountsWith(c client, admin, ext string) int {
	c.tb.Helper()
	var page struct {
		Data []struct {
			ExternalID *string `json:"external_id"`
		}
	}
	c.must(200, "GET", "/admin/accounts?q="+url.QueryEscape(ext), admin, "", &page)
	n := 0
	for _, a := range page.Data {
		if a.ExternalID != nil && *a.ExternalID == ext {
			n++
		}
	}
	return n
}

// testServeAppCheckout: the admin makes two platforms; each opens
// checkouts and account links for its own users by external_id, the
// same user always one account, the same external_id under the other
// platform another; a platform never reaches the other's users; the
// admin acts for either; bad input (return_url of another scheme or host,
// huge metadata, unknown package, bad locale, an API key or a revoked
// key asking for a user) is a clear 4xx that makes nothing; the order
// made from the session carries its metadata into GET
// /v1/payments/orders/{no} and the admin's order; the page links back to
// return_url; and two callers making one new user at once get one
// account.
func testServeAppCheckout(t *testing.T, args ...string) {
	const admin = "app-checkout-admin-token-for-tests"
	m := MustRunMain(t, append([]string{"--admin-token", admin}, args...)...)
	c := client{t, m.URL}

	var pa, pb platformCreated
	c.must(201, "POST", "/admin/platforms", admin, `{"name":"Shop A","return_url_hosts":["Shop-A.example"]}`, &pa)
	c.must(201, "POST", "/admin/platforms", admin, `{"name":"Shop B"}`, &pb)
	if !strings.HasPrefix(pa.Key, "tgp-") || pa.ID == "" || pa.ID == pb.ID || len(pa.ReturnURLHosts) != 1 || pa.ReturnURLHosts[0] != "shop-a.example" {
		t.Fatalf("platforms %+v %+v", pa, pb)
	}
	st, list, _ := c.call("GET", "/admin/platforms", admin, "", nil)
	if st != 200 || strings.Contains(string(list), pa.Key) || !strings.Contains(string(list), `"name":"Shop B"`) {
		t.Fatalf("GET /admin/platforms: %d %s", st, list)
	}
	c.wantError(400, "POST", "/admin/platforms", admin, `{"name":""}`, "name")
	c.wantError(401, "POST", "/admin/platforms", pa.Key, `{"name":"x"}`, "admin token")

	const ret = "https://shop-a.example/done?x=1"
	body := `{"external_id":"u-42","package_id":"starter","return_url":"` + ret + `","locale":"en","metadata":{"cart":"c-1","n":2}}`
	var s1, s2, sb appSession
	c.must(201, "POST", "/v1/checkout/sessions", pa.Key, body, &s1)
	if !strings.HasPrefix(s1.ID, "cs_") || !strings.HasPrefix(s1.URL, m.URL+"/checkout/") || !strings.HasPrefix(s1.AccountURL, m.URL+"/account/") ||
		s1.AccountID == "" || !s1.ExpiresAt.After(time.Now()) {
		t.Fatalf("session %+v", s1)
	}
	c.must(201, "POST", "/v1/checkout/sessions", pa.Key, `{"external_id":"u-42"}`, &s2)
	if s2.AccountID != s1.AccountID {
		t.Fatalf("the same user has accounts %s and %s", s1.AccountID, s2.AccountID)
	}
	c.must(201, "POST", "/v1/checkout/sessions", pb.Key, `{"external_id":"u-42"}`, &sb)
	if sb.AccountID == s1.AccountID {
		t.Fatal("platform B reached platform A's user u-42")
	}
	// The admin acts for a platform by naming it, or for accounts of none.
	var sa, sn appSession
	c.must(201, "POST", "/v1/checkout/sessions", admin, `{"external_id":"u-42","platform":"`+pa.ID+`"}`, &sa)
	c.must(201, "POST", "/v1/checkout/sessions", admin, `{"external_id":"u-42"}`, &sn)
	if sa.AccountID != s1.AccountID || sn.AccountID == s1.AccountID || sn.AccountID == sb.AccountID {
		t.Fatalf("admin sessions %s %s; platform A's user is %s, B's %s", sa.AccountID, sn.AccountID, s1.AccountID, sb.AccountID)
	}
	if n := accountsWith(c, admin, "u-42"); n != 3 {
		t.Fatalf("%d accounts with external id u-42, want 3 (A's, B's, the admin's)", n)
	}
	// The admin's own accounts share external ids with no platform's user
	// only: a platform's user does not block one, another of the admin's does.
	var solo appSession
	c.must(201, "POST", "/v1/checkout/sessions", pa.Key, `{"external_id":"solo"}`, &solo)
	var adminSolo struct {
		AccountID string  `json:"account_id"`
		Platform  *string `json:"platform_id"`
	}
	c.must(201, "POST", "/admin/accounts", admin, `{"external_id":"solo"}`, &adminSolo)
	if adminSolo.AccountID == solo.AccountID || adminSolo.Platform != nil {
		t.Fatalf("admin account %+v beside platform A's %s", adminSolo, solo.AccountID)
	}
	c.wantError(409, "POST", "/admin/accounts", admin, `{"external_id":"solo"}`, "solo")
	var view struct {
		Account struct {
			Platform *string `json:"platform_id"`
		} `json:"account"`
	}
	c.must(200, "GET", "/admin/accounts/"+solo.AccountID, admin, "", &view)
	if view.Account.Platform == nil || *view.Account.Platform != pa.ID {
		t.Fatalf("admin view of platform A's user: %+v", view)
	}

	// Bad input: a clear 4xx, nothing made.
	key := mustAccount(c, admin).APIKey
	for _, tc := range []struct {
		name, auth, body string
		status           int
		says             string
	}{
		{"javascript return_url", pa.Key, `{"external_id":"bad-1","return_url":"javascript:alert(1)"}`, 400, "return_url"},
		{"data return_url", pa.Key, `{"external_id":"bad-2","return_url":"data:text/html,hi"}`, 400, "return_url"},
		{"ftp return_url", pb.Key, `{"external_id":"bad-3","return_url":"ftp://shop-b.example/"}`, 400, "return_url"},
		{"relative return_url", pb.Key, `{"external_id":"bad-4","return_url":"/done"}`, 400, "return_url"},
		{"foreign host", pa.Key, `{"external_id":"bad-5","return_url":"https://evil.example/"}`, 400, "return_url_hosts"},
		{"foreign host via admin", admin, `{"external_id":"bad-6","platform":"` + pa.ID + `","return_url":"https://evil.example/"}`, 400, "return_url_hosts"},
		{"huge metadata", pa.Key, `{"external_id":"bad-7","metadata":{"k":"` + strings.Repeat("x", 5000) + `"}}`, 400, "metadata"},
		{"too many keys", pa.Key, `{"external_id":"bad-8","metadata":{` + manyKeys(21) + `}}`, 400, "metadata"},
		{"metadata not an object", pa.Key, `{"external_id":"bad-9","metadata":[1]}`, 400, "metadata"},
		{"unknown package", pa.Key, `{"external_id":"bad-10","package_id":"nope"}`, 400, "package_id"},
		{"bad locale", pa.Key, `{"external_id":"bad-11","locale":"fr"}`, 400, "locale"},
		{"no external_id", pa.Key, `{"package_id":"starter"}`, 400, "external_id"},
		{"another platform's user", pa.Key, `{"external_id":"bad-12","platform":"` + pb.ID + `"}`, 403, "own platform"},
		{"unknown platform via admin", admin, `{"external_id":"bad-13","platform":"plat_nope"}`, 404, "platform"},
		{"an API key asking for a user", key, `{"external_id":"bad-14"}`, 403, "platform key"},
		{"forged platform key", "tgp-" + strings.Repeat("A", 43), `{"external_id":"bad-15"}`, 401, "platform key"},
		{"long external_id", pa.Key, `{"external_id":"` + strings.Repeat("x", 129) + `"}`, 400, "external_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client{t, m.URL}
			c.wantError(tc.status, "POST", "/v1/checkout/sessions", tc.auth, tc.body, tc.says)
			var req struct {
				ExternalID string `json:"external_id"`
			}
			if json.Unmarshal([]byte(tc.body), &req) == nil && req.ExternalID != "" && len(req.ExternalID) <= 128 {
				if n := accountsWith(c, admin, req.ExternalID); n != 0 {
					t.Fatalf("%d accounts made for %s", n, req.ExternalID)
				}
			}
		})
	}

	// An account link for the user.
	var link struct {
		URL       string `json:"url"`
		AccountID string `json:"account_id"`
	}
	c.must(201, "POST", "/v1/account/links", pa.Key, `{"external_id":"u-42","locale":"zh"}`, &link)
	if link.AccountID != s1.AccountID || !strings.HasPrefix(link.URL, m.URL+"/account/") {
		t.Fatalf("account link %+v", link)
	}
	if st, _, _ := c.call("GET", strings.TrimPrefix(link.URL, m.URL), "", "", nil); st != 200 {
		t.Fatalf("account page: %d", st)
	}
	c.wantError(400, "POST", "/v1/account/links", pa.Key, `{"external_id":"u-42","metadata":{"a":1}}`, "metadata")

	// The page links back to return_url; the order carries the metadata.
	path := strings.TrimPrefix(s1.URL, m.URL)
	st, page, _ := c.call("GET", path, "", "", nil)
	if st != 200 || !strings.Contains(string(page), `id="return-cancel-link"`) ||
		!strings.Contains(string(page), `https://shop-a.example/done?status=cancelled&amp;x=1`) ||
		!strings.Contains(string(page), `"return_url":"https://shop-a.example/done?x=1"`) ||
		!strings.Contains(string(page), `lang="en"`) {
		t.Fatalf("checkout page: %d %s", st, page)
	}
	st, b, _ := c.call("POST", path+"/orders", "", `{"package_id":"starter","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": "app-checkout-1", "Origin": m.URL})
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
	}
	if st != 201 || json.Unmarshal(b, &o) != nil || o.OutTradeNo == "" {
		t.Fatalf("order from the app's session: %d %s", st, b)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	var userKey struct {
		APIKey string `json:"api_key"`
	}
	c.must(201, "POST", "/admin/accounts/"+s1.AccountID+"/keys", admin, "", &userKey)
	mustOrderStatus(c, userKey.APIKey, o.OutTradeNo, "SUCCESS")
	var got struct {
		Metadata map[string]any `json:"metadata"`
	}
	c.must(200, "GET", "/v1/payments/orders/"+o.OutTradeNo, userKey.APIKey, "", &got)
	if got.Metadata["cart"] != "c-1" || got.Metadata["n"] != float64(2) || len(got.Metadata) != 2 {
		t.Fatalf("GET /v1/payments/orders/{no} metadata %v", got.Metadata)
	}
	var adminView struct {
		Metadata map[string]any `json:"metadata"`
		Account  string         `json:"account_id"`
	}
	c.must(200, "GET", "/admin/orders/"+o.OutTradeNo, admin, "", &adminView)
	if adminView.Metadata["cart"] != "c-1" {
		t.Fatalf("GET /admin/orders/{no} %+v", adminView)
	}
	// An order of an account's own checkout has {}.
	own := mustPaidOrder(t, c, userKey.APIKey, "app-checkout-2")
	st, b, _ = c.call("GET", "/v1/payments/orders/"+own.OutTradeNo, userKey.APIKey, "", nil)
	if st != 200 || !strings.Contains(string(b), `"metadata":{}`) {
		t.Fatalf("order without metadata: %d %s", st, b)
	}

	// Many callers making one new user at once: one account.
	const n = 6
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, b, _ := c.call("POST", "/v1/checkout/sessions", pb.Key, `{"external_id":"racer"}`, nil)
			var s appSession
			if st == 201 && json.Unmarshal(b, &s) == nil {
				ids[i] = s.AccountID
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent sessions for one new user: accounts %v", ids)
		}
	}
	if n := accountsWith(c, admin, "racer"); n != 1 {
		t.Fatalf("%d accounts for racer", n)
	}

	// A disabled user is sold nothing: neither a checkout nor a link.
	c.must(200, "PATCH", "/admin/accounts/"+sb.AccountID, admin, `{"disabled":true,"reason":"abuse"}`, nil)
	c.wantError(403, "POST", "/v1/checkout/sessions", pb.Key, `{"external_id":"u-42"}`, "disabled")
	c.wantError(403, "POST", "/v1/account/links", pb.Key, `{"external_id":"u-42"}`, "disabled")

	// A revoked platform key is refused; its users keep their accounts.
	c.must(200, "DELETE", "/admin/platforms/"+pa.ID, admin, "", nil)
	c.wantError(401, "POST", "/v1/checkout/sessions", pa.Key, `{"external_id":"u-42"}`, "platform key")
	c.wantError(403, "POST", "/v1/checkout/sessions", admin, `{"external_id":"u-42","platform":"`+pa.ID+`","return_url":"https://shop-a.example/"}`, "revoked")
	c.wantError(404, "DELETE", "/admin/platforms/plat_nope", admin, "", "platform")
}

func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}
