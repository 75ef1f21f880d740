package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
// low_balance_credits is answered back.
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
