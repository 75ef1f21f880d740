package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/webhook"
)

// TestServeWebhookPaymentSucceeded: on each store, a sandbox payment made
// through serve reaches a test receiver as a signed payment.succeeded
// delivery (checked with the webhook package's signature), whose data is
// the order as GET /v1/payments/orders/{no} shows it and whose account is
// the payer's, with the credit /v1/balance shows. PATCH
// low_balance_credits is answered back, and shown by the account's
// detail and the account list (null when unset).
func TestServeWebhookPaymentSucceeded(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		var mu sync.Mutex
		var secret string
		var got []webhook.Event
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			key, err := webhook.SecretKey(secret)
			if err != nil {
				t.Errorf("secret: %v", err)
				w.WriteHeader(500)
				return
			}
			sec, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
			want := webhook.Signature(key, r.Header.Get("webhook-id"), time.Unix(sec, 0), b)
			if !slices.Contains(strings.Fields(r.Header.Get("webhook-signature")), want) {
				t.Errorf("delivery %s does not verify", r.Header.Get("webhook-id"))
				w.WriteHeader(400)
				return
			}
			var e webhook.Event
			if err := json.Unmarshal(b, &e); err != nil || e.ID != r.Header.Get("webhook-id") {
				t.Errorf("delivery body %s: %v", b, err)
			}
			got = append(got, e)
		}))
		defer recv.Close()
		var created struct{ ID, Secret string }
		c.must(201, "POST", "/admin/webhooks", adminToken,
			`{"url":"`+recv.URL+`/hooks","events":["payment.succeeded","account.created"]}`, &created)
		mu.Lock()
		secret = created.Secret
		mu.Unlock()

		var a adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{"external_id":"app-user-emit"}`, &a)
		var patched struct {
			LowBalanceCredits *int64 `json:"low_balance_credits"`
		}
		c.must(200, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"low_balance_credits":5}`, &patched)
		if patched.LowBalanceCredits == nil || *patched.LowBalanceCredits != 5 {
			t.Fatalf("PATCH low_balance_credits answered %+v", patched)
		}
		c.wantError(400, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"low_balance_credits":-1}`, "low_balance_credits")
		// The account's views show it: the detail and the list.
		var detail struct {
			Account struct {
				LowBalanceCredits *int64 `json:"low_balance_credits"`
			} `json:"account"`
		}
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &detail)
		var listed struct {
			Data []struct {
				AccountID         string          `json:"account_id"`
				LowBalanceCredits json.RawMessage `json:"low_balance_credits"`
			} `json:"data"`
		}
		c.must(200, "GET", "/admin/accounts?q=app-user-emit", adminToken, "", &listed)
		if detail.Account.LowBalanceCredits == nil || *detail.Account.LowBalanceCredits != 5 ||
			len(listed.Data) != 1 || string(listed.Data[0].LowBalanceCredits) != "5" {
			t.Fatalf("after PATCH low_balance_credits 5: detail %+v, list %+v", detail, listed)
		}
		var other adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{"external_id":"app-user-nolow"}`, &other)
		c.must(200, "GET", "/admin/accounts?q=app-user-nolow", adminToken, "", &listed)
		if len(listed.Data) != 1 || string(listed.Data[0].LowBalanceCredits) != "null" {
			t.Fatalf("an account without low_balance_credits is listed as %+v", listed)
		}

		o := mustPaidOrder(t, c, a.APIKey, "emit-order-1")
		var paid webhook.Event
		eventually(t, "payment.succeeded is delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range got {
				if e.Type == webhook.PaymentSucceeded {
					paid = e
					return true
				}
			}
			return false
		})
		if string(paid.Account.ID) != a.AccountID || paid.Account.ExternalID == nil || *paid.Account.ExternalID != "app-user-emit" || paid.Seq < 2 {
			t.Fatalf("payment.succeeded account %+v seq %d", paid.Account, paid.Seq)
		}
		var data, api map[string]any
		if err := json.Unmarshal(paid.Data, &data); err != nil {
			t.Fatal(err)
		}
		c.must(200, "GET", "/v1/payments/orders/"+o.OutTradeNo, a.APIKey, "", &api)
		for _, k := range []string{"out_trade_no", "status", "amount_fen", "credits", "method", "transaction_id", "created_at", "expires_at"} {
			if data[k] != api[k] {
				t.Errorf("event data %s = %v, the API says %v", k, data[k], api[k])
			}
		}
		if b := mustBalance(c, a.APIKey); data["credits"] != float64(b.Credits) || data["status"] != "SUCCESS" {
			t.Fatalf("event data %v; balance %+v", data, b)
		}
		// The account was made with its external_id: its account.created
		// names the user too.
		var made webhook.Event
		eventually(t, "account.created is delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range got {
				if e.Type == webhook.AccountCreated && string(e.Account.ID) == a.AccountID {
					made = e
					return true
				}
			}
			return false
		})
		if made.Account.ExternalID == nil || *made.Account.ExternalID != "app-user-emit" || made.Seq != 1 {
			t.Fatalf("account.created account %+v seq %d; want external_id app-user-emit, seq 1", made.Account, made.Seq)
		}
		mu.Lock()
		n := 0
		for _, e := range got {
			if e.ID == paid.ID {
				n++
			}
		}
		mu.Unlock()
		if n != 1 {
			t.Fatalf("payment.succeeded delivered %d times", n)
		}
		mustAuditClean(t, m)
	}, "--webhook-allow-private")
}

// TestServeWebhookRefundSucceeded: on each store, an operator's refund
// completed at the emulator reaches a test receiver as refund.succeeded
// whose data is the refund exactly as GET /admin/refunds shows it then:
// who asked, why, the amount asked, the status and updated_at included.
// (refund.failed is checked the same way in payment's
// TestRefundEventIsTheAPIView: the emulator does not refuse refunds.)
func TestServeWebhookRefundSucceeded(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		var mu sync.Mutex
		var got []webhook.Event
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var e webhook.Event
			if err := json.Unmarshal(b, &e); err != nil {
				t.Errorf("delivery body %s: %v", b, err)
			}
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		}))
		defer recv.Close()
		c.must(201, "POST", "/admin/webhooks", adminToken, `{"url":"`+recv.URL+`/hooks","events":["refund.succeeded","refund.failed"]}`, nil)
		var a adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{"external_id":"app-user-refund"}`, &a)
		o := mustPaidOrder(t, c, a.APIKey, "emit-refund-1")
		st, b, _ := c.call("POST", "/admin/orders/"+o.OutTradeNo+"/refund", adminToken, `{"reason":"asked by mail","amount_fen":100}`,
			map[string]string{"Idempotency-Key": "emit-refund-k", "X-Tollgate-Actor": "ops:refunds"})
		var r adminRefundAnswer
		if st != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("admin refund: %d %s", st, b)
		}
		if r.Status == "pending" {
			c.must(200, "POST", "/sandbox/wxpay/sim/refunds/"+r.OutRefundNo+"/complete", "", "", nil)
		}
		var ev webhook.Event
		eventually(t, "refund.succeeded is delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range got {
				if e.Type == webhook.RefundSucceeded {
					ev = e
					return true
				}
			}
			return false
		})
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		var data, api map[string]any
		// The ledger's transaction writes the event; the refund record
		// follows it (payment.settleRefund).
		eventually(t, "GET /admin/refunds shows the refund succeeded", func() bool {
			c.must(200, "GET", "/admin/refunds?out_trade_no="+o.OutTradeNo, adminToken, "", &page)
			if len(page.Data) != 1 || json.Unmarshal(page.Data[0], &api) != nil {
				t.Fatalf("refunds %s", page.Data)
			}
			return api["status"] == "succeeded"
		})
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("event %s: %v", ev.Data, err)
		}
		if !reflect.DeepEqual(data, api) {
			t.Fatalf("refund.succeeded data\n  %s\nGET /admin/refunds shows\n  %s", ev.Data, page.Data[0])
		}
		if data["status"] != "succeeded" || data["actor"] != "ops:refunds" || data["reason"] != "asked by mail" || data["asked_fen"] != 100.0 ||
			string(ev.Account.ID) != a.AccountID {
			t.Fatalf("refund.succeeded %+v data %v", ev.Account, data)
		}
		mustAuditClean(t, m)
	}, "--webhook-allow-private")
}
