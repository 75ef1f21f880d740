package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// adminRefundAnswer is the body of POST /admin/orders/{no}/refund.
type adminRefundAnswer struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundFen   int64  `json:"refund_fen"`
	AskedFen    int64  `json:"asked_fen"`
	Status      string `json:"status"`
	RequestedBy string `json:"requested_by"`
	Reason      string `json:"reason"`
	Actor       string `json:"actor"`
	Resumed     *bool  `json:"resumed"`
}

type refundRow struct {
	OutRefundNo string `json:"out_refund_no"`
	RequestedBy string `json:"requested_by"`
	Reason      string `json:"reason"`
	Actor       string `json:"actor"`
	Status      string `json:"status"`
}

// TestAdminActor: the admin API records who acted (X-Tollgate-Actor,
// "admin" without it) on adjustments and refunds and refuses a malformed
// actor with nothing changed; an admin refund asked again with its
// Idempotency-Key answers with the refund as first made ("resumed": true,
// its reason and actor, a failed one included), another body 409; the
// order detail bounds its refunds. The app routes (POST
// /v1/checkout/sessions, /v1/account/links) check the actor beside the
// admin token as every admin route does, and not beside a platform key.
func TestAdminActor(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		as := func(actor string, extra ...string) map[string]string {
			h := map[string]string{"X-Tollgate-Actor": actor}
			for i := 0; i+1 < len(extra); i += 2 {
				h[extra[i]] = extra[i+1]
			}
			return h
		}
		var a adminAccount
		st, b, _ := c.call("POST", "/admin/accounts", adminToken, `{"external_id":"actor-1"}`, as("ops:grace"))
		if st != 201 || json.Unmarshal(b, &a) != nil {
			t.Fatalf("create account as ops:grace: %d %s", st, b)
		}
		o := mustPaidOrder(t, c, a.APIKey, "actor-order-1")
		bal := mustBalance(c, a.APIKey)

		// A malformed actor: 400 naming the header, on every admin route,
		// and nothing changed.
		adjURL := "/admin/accounts/" + a.AccountID + "/adjustments"
		refundURL := "/admin/orders/" + o.OutTradeNo + "/refund"
		for _, bad := range []string{"", "has space", "tab\there", strings.Repeat("a", 65), "caf\xc3\xa9"} {
			for _, call := range []struct{ method, path, body string }{
				{"POST", adjURL, `{"credits":5,"reason":"bad actor"}`},
				{"POST", refundURL, `{"reason":"bad actor"}`},
				{"POST", "/admin/accounts", `{"external_id":"actor-bad"}`},
				{"PATCH", "/admin/accounts/" + a.AccountID, `{"disabled":true,"reason":"bad actor"}`},
				{"POST", "/admin/accounts/" + a.AccountID + "/keys", ``},
				{"GET", "/admin/refunds", ``},
				// The app routes with the admin token are admin routes too.
				{"POST", "/v1/checkout/sessions", `{"external_id":"actor-bad","package_id":"starter"}`},
				{"POST", "/v1/account/links", `{"external_id":"actor-bad"}`},
			} {
				st, b, _ := c.call(call.method, call.path, adminToken, call.body, as(bad, "Idempotency-Key", "bad-actor"))
				if st != 400 || !strings.Contains(string(b), "X-Tollgate-Actor must be 1 to 64 printable ASCII characters") {
					t.Fatalf("%s %s as %q: %d %s; want 400 naming the header", call.method, call.path, bad, st, b)
				}
			}
		}
		// Two actors: refused too.
		req, _ := http.NewRequest("POST", c.base+adjURL, strings.NewReader(`{"credits":5,"reason":"two actors"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Idempotency-Key", "two-actors")
		req.Header.Add("X-Tollgate-Actor", "a")
		req.Header.Add("X-Tollgate-Actor", "b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("two X-Tollgate-Actor headers: %d, want 400", resp.StatusCode)
		}
		var d adminDetail
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &d)
		if after := mustBalance(c, a.APIKey); after != bal || len(d.Adjustments) != 0 || len(d.Keys) != 1 || d.Account.Disabled {
			t.Fatalf("a malformed actor changed something: balance %+v (was %+v), detail %+v", after, bal, d)
		}
		var list struct {
			Data []refundRow `json:"data"`
		}
		c.must(200, "GET", "/admin/refunds?account="+a.AccountID, adminToken, "", &list)
		if len(list.Data) != 0 {
			t.Fatalf("a malformed actor made refunds %+v", list.Data)
		}
		var accounts accountPage
		c.must(200, "GET", "/admin/accounts?q=actor-bad", adminToken, "", &accounts)
		if len(accounts.Data) != 0 {
			t.Fatalf("a malformed actor made accounts %+v", accounts.Data)
		}

		// A well-formed actor opens an app user's checkout; a platform key
		// has no actor, so the header means nothing beside it.
		if st, b, _ := c.call("POST", "/v1/checkout/sessions", adminToken, `{"external_id":"actor-app"}`, as("ops:grace")); st != 201 {
			t.Fatalf("checkout session as ops:grace: %d %s", st, b)
		}
		var plat struct{ Key string }
		c.must(201, "POST", "/admin/platforms", adminToken, `{"name":"Actor shop"}`, &plat)
		if st, b, _ := c.call("POST", "/v1/account/links", plat.Key, `{"external_id":"actor-app"}`, as("has space")); st != 201 {
			t.Fatalf("account link with a platform key and a stray actor header: %d %s", st, b)
		}
		if st, b, _ := c.call("POST", "/v1/account/links?token="+adminToken, adminToken, `{"external_id":"actor-app"}`, nil); st != 400 ||
			!strings.Contains(string(b), "admin_token_in_query") {
			t.Fatalf("account link with the admin token in the URL: %d %s", st, b)
		}

		// Adjustments record the actor, "admin" without one.
		if st, b, _ := c.call("POST", adjURL, adminToken, `{"credits":100,"reason":"goodwill"}`, as("console:1a2b3c4d", "Idempotency-Key", "act-adj-1")); st != 201 ||
			!strings.Contains(string(b), `"actor":"console:1a2b3c4d"`) {
			t.Fatalf("adjust as the console: %d %s", st, b)
		}
		if st, b, _ := c.call("POST", adjURL, adminToken, `{"credits":100,"reason":"goodwill"}`, map[string]string{"Idempotency-Key": "act-adj-2"}); st != 201 ||
			!strings.Contains(string(b), `"actor":"admin"`) {
			t.Fatalf("adjust without an actor: %d %s", st, b)
		}
		// A retry by another actor gets the first adjustment, its actor kept.
		if st, b, _ := c.call("POST", adjURL, adminToken, `{"credits":100,"reason":"goodwill"}`, as("ops:other", "Idempotency-Key", "act-adj-1")); st != 200 ||
			!strings.Contains(string(b), `"actor":"console:1a2b3c4d"`) {
			t.Fatalf("adjust again as another actor: %d %s", st, b)
		}
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &d)
		if len(d.Adjustments) != 2 || d.Adjustments[0].Actor != "admin" || d.Adjustments[1].Actor != "console:1a2b3c4d" {
			t.Fatalf("adjustments %+v", d.Adjustments)
		}

		// An admin refund records its actor; asked again with the key it
		// answers with the refund as stored, resumed.
		refund := func(actor, key, body string) (int, adminRefundAnswer, http.Header, []byte) {
			t.Helper()
			hdr := map[string]string{"Idempotency-Key": key}
			if actor != "" {
				hdr["X-Tollgate-Actor"] = actor
			}
			st, b, h := c.call("POST", refundURL, adminToken, body, hdr)
			var r adminRefundAnswer
			if st == 200 {
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
			}
			return st, r, h, b
		}
		body := `{"amount_fen":1,"reason":"customer asked, ticket 11"}`
		st, first, h, b := refund("console:1a2b3c4d", "act-rf-1", body)
		if st != 200 || first.Resumed == nil || *first.Resumed || first.Actor != "console:1a2b3c4d" || first.RequestedBy != "admin" ||
			first.Reason != "customer asked, ticket 11" || first.AskedFen != 1 || first.RefundFen != 1 || h.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first refund: %d %s", st, b)
		}
		st, again, h, b := refund("ops:someone-else", "act-rf-1", body)
		if st != 200 || again.Resumed == nil || !*again.Resumed || again.OutRefundNo != first.OutRefundNo || again.Actor != "console:1a2b3c4d" ||
			again.Reason != first.Reason || again.RefundFen != 1 || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("the same key again, by another actor: %d %s; want the first refund resumed", st, b)
		}
		for _, other := range []string{`{"amount_fen":2,"reason":"customer asked, ticket 11"}`, `{"amount_fen":1,"reason":"another reason"}`,
			`{"reason":"customer asked, ticket 11"}`} {
			if st, _, _, b := refund("console:1a2b3c4d", "act-rf-1", other); st != 409 || !strings.Contains(string(b), "Idempotency-Key") {
				t.Fatalf("the same key with %s: %d %s; want 409", other, st, b)
			}
		}
		// WeChat Pay finishes the refund; then the next may be asked.
		settle := func(no string) {
			t.Helper()
			c.must(200, "POST", "/sandbox/wxpay/sim/refunds/"+no+"/complete", "", "", nil)
			eventually(t, "refund "+no+" succeeded", func() bool {
				var l struct {
					Data []refundRow `json:"data"`
				}
				c.must(200, "GET", "/admin/refunds?out_trade_no="+o.OutTradeNo, adminToken, "", &l)
				return len(l.Data) > 0 && l.Data[0].OutRefundNo == no && l.Data[0].Status == "succeeded"
			})
		}
		settle(first.OutRefundNo)
		st, second, _, b := refund("", "act-rf-2", `{"amount_fen":1,"reason":"no actor"}`)
		if st != 200 || second.Actor != "admin" || *second.Resumed {
			t.Fatalf("a refund without an actor: %d %s", st, b)
		}
		settle(second.OutRefundNo)

		// A refund that failed (nothing left: the credit was taken away)
		// answers, asked again, with the failed record.
		left := mustBalance(c, a.APIKey).Credits
		if st, b, _ := c.call("POST", adjURL, adminToken, fmt.Sprintf(`{"credits":%d,"reason":"drain"}`, -left), as("ops:grace", "Idempotency-Key", "act-drain")); st != 201 {
			t.Fatalf("drain: %d %s", st, b)
		}
		if st, _, _, b := refund("ops:grace", "act-rf-fail", `{"reason":"all of it"}`); st != 409 || !strings.Contains(string(b), "nothing to refund") {
			t.Fatalf("refund of nothing: %d %s", st, b)
		}
		st, failed, _, b := refund("ops:grace", "act-rf-fail", `{"reason":"all of it"}`)
		if st != 200 || failed.Status != "failed" || !*failed.Resumed || failed.Actor != "ops:grace" || failed.Reason != "all of it" {
			t.Fatalf("the failed refund asked again: %d %s; want it, failed, resumed", st, b)
		}

		// The lists show the actor beside who asked and why.
		c.must(200, "GET", "/admin/refunds?account="+a.AccountID, adminToken, "", &list)
		if len(list.Data) != 3 || list.Data[0].Actor != "ops:grace" || list.Data[0].Status != "failed" || list.Data[1].Actor != "admin" ||
			list.Data[2].Actor != "console:1a2b3c4d" || list.Data[2].Reason != "customer asked, ticket 11" {
			t.Fatalf("refunds %+v", list.Data)
		}
		var detail struct {
			Refunds          []refundRow `json:"refunds"`
			RefundsTruncated *bool       `json:"refunds_truncated"`
		}
		c.must(200, "GET", "/admin/orders/"+o.OutTradeNo, adminToken, "", &detail)
		if len(detail.Refunds) != 3 || detail.RefundsTruncated == nil || *detail.RefundsTruncated || detail.Refunds[2].Actor != "console:1a2b3c4d" {
			t.Fatalf("order detail refunds %+v, truncated %v", detail.Refunds, detail.RefundsTruncated)
		}
		mustAuditClean(t, m)
	})
}

// TestSelfRefundActor: under --refund-policy self a user's own refund
// records the account as its actor.
func TestSelfRefundActor(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		var a adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{}`, &a)
		o := mustPaidOrder(t, c, a.APIKey, "self-actor-1")
		c.must(200, "POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", a.APIKey, "", nil)
		var list struct {
			Data []refundRow `json:"data"`
		}
		c.must(200, "GET", "/admin/refunds?account="+a.AccountID, adminToken, "", &list)
		if len(list.Data) != 1 || list.Data[0].RequestedBy != "account" || list.Data[0].Actor != "account:"+a.AccountID {
			t.Fatalf("refunds %+v; want actor account:%s", list.Data, a.AccountID)
		}
		mustAuditClean(t, m)
	}, "--refund-policy", "self")
}
