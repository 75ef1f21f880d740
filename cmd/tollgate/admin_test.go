package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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

		// Disabling stops the account's keys and provisional tokens at once;
		// enabling brings them back.
		o := mustOrder(c, a.APIKey, "disable-1")
		if o.AccessToken == nil {
			t.Fatal("no provisional access token")
		}
		c.must(200, "GET", "/v1/balance", o.AccessToken.Token, "", nil)
		var patched adminAccount
		c.must(200, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"disabled":true,"reason":"chargeback"}`, &patched)
		if !patched.Disabled || patched.Label != "Ada Lovelace" {
			t.Fatalf("patched %+v", patched)
		}
		c.wantError(403, "GET", "/v1/balance", a.APIKey, "", "account is disabled")
		c.wantError(403, "GET", "/v1/balance", o.AccessToken.Token, "", "account is disabled")
		c.wantError(403, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, "account is disabled")
		c.must(200, "GET", "/v1/balance", b.APIKey, "", nil)
		c.must(200, "PATCH", "/admin/accounts/"+a.AccountID, adminToken, `{"disabled":false,"external_id":null,"label":"Ada"}`, &patched)
		if patched.Disabled || patched.ExternalID != nil || patched.Label != "Ada" {
			t.Fatalf("re-enabled %+v", patched)
		}
		c.must(200, "GET", "/v1/balance", a.APIKey, "", nil)
		c.must(200, "GET", "/v1/balance", o.AccessToken.Token, "", nil)
		// The external id is free again.
		c.must(200, "PATCH", "/admin/accounts/"+b.AccountID, adminToken, `{"external_id":"app-user-1"}`, nil)
	})
}

// mustAuditClean closes serve and runs `tollgate audit` over its store.
func mustAuditClean(t *testing.T, m *Main) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	args := []string{"audit", "--format", "json"}
	if m.Config.DatabaseURL != "" {
		args = append(args, "--database-url", m.Config.DatabaseURL)
	} else {
		args = append(args, "--data", m.Config.Data)
	}
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), args, &out, &errOut); err != nil || !strings.Contains(out.String(), `"clean": true`) {
		t.Fatalf("tollgate audit: %v\n%s%s", err, out.String(), errOut.String())
	}
}

// mustPaidOrder places an order for key and pays it in the emulator.
func mustPaidOrder(t *testing.T, c client, key, idem string) orderResult {
	t.Helper()
	o := mustOrder(c, key, idem)
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	eventually(t, "the paid order reads SUCCESS", func() bool {
		var got struct{ Status string }
		c.must(200, "GET", "/v1/payments/orders/"+o.OutTradeNo, key, "", &got)
		return got.Status == "SUCCESS"
	})
	return o
}

type adminDetail struct {
	Account adminAccount `json:"account"`
	Balance balance      `json:"balance"`
	Lots    []struct {
		Kind       string `json:"kind"`
		OutTradeNo string `json:"out_trade_no"`
		Fen        int64  `json:"fen"`
		Granted    int64  `json:"granted"`
		Used       int64  `json:"used"`
		Left       int64  `json:"left"`
		Payment    *struct {
			Status string `json:"status"`
		} `json:"payment"`
	} `json:"lots"`
	Holds       []json.RawMessage `json:"holds"`
	Grants      []json.RawMessage `json:"provisional_grants"`
	Adjustments []struct {
		Credits int64 `json:"credits"`
		Debt    int64 `json:"debt"`
		// DebtPaid is a pointer to tell null (never) from 0.
		DebtPaid *int64 `json:"debt_paid"`
		Reason   string `json:"reason"`
		Actor    string `json:"actor"`
	} `json:"adjustments"`
	Keys []json.RawMessage `json:"keys"`
}

// TestAdminAPI walks every admin endpoint and its bad input through serve
// on SQLite and PostgreSQL, and ends with a clean `tollgate audit`.
func TestAdminAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, m *Main, c client) {
		var a adminAccount
		c.must(201, "POST", "/admin/accounts", adminToken, `{"external_id":"shop-42","label":"Grace"}`, &a)
		o := mustPaidOrder(t, c, a.APIKey, "admin-api-1")
		unpaid := mustOrder(c, a.APIKey, "admin-api-2")
		var chat struct {
			Usage struct {
				CostCredits int64 `json:"cost_credits"`
			}
		}
		c.must(200, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`, &chat)
		left := o.Credits - chat.Usage.CostCredits

		// The account as the operator sees it.
		var d adminDetail
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &d)
		if d.Account.ExternalID == nil || *d.Account.ExternalID != "shop-42" || d.Balance.Credits != left || len(d.Lots) != 1 ||
			d.Lots[0].Payment == nil || d.Lots[0].Payment.Status != "SUCCESS" || d.Lots[0].Used != chat.Usage.CostCredits ||
			len(d.Keys) != 1 || len(d.Adjustments) != 0 || d.Holds == nil || d.Grants == nil {
			t.Fatalf("detail %+v", d)
		}
		c.wantError(404, "GET", "/admin/accounts/acct_nobody", adminToken, "", "no such account")

		// Adjustments: idempotent by key, refused beyond the balance unless as debt.
		adjust := func(status int, key, body, says string) []byte {
			t.Helper()
			hdr := map[string]string{}
			if key != "" {
				hdr["Idempotency-Key"] = key
			}
			st, b, h := c.call("POST", "/admin/accounts/"+a.AccountID+"/adjustments", adminToken, body, hdr)
			if st != status || !strings.Contains(string(b), says) {
				t.Fatalf("adjust %s %s: %d %s, want %d saying %q", key, body, st, b, status, says)
			}
			if status == 200 && h.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay without Idempotent-Replayed")
			}
			return b
		}
		adjust(201, "adj-1", `{"credits":1000,"reason":"goodwill for ticket 7"}`, `"credits":1000`)
		adjust(200, "adj-1", `{"credits":1000,"reason":"goodwill for ticket 7"}`, `"credits":1000`)
		adjust(409, "adj-1", `{"credits":2000,"reason":"goodwill for ticket 7"}`, "Idempotency-Key")
		adjust(400, "", `{"credits":1000,"reason":"x"}`, "Idempotency-Key")
		adjust(400, "adj-x", `{"credits":0,"reason":"x"}`, "non-zero")
		adjust(400, "adj-x", `{"reason":"x"}`, "credits is required")
		adjust(400, "adj-x", `{"credits":5}`, "reason is required")
		adjust(400, "adj-x", `{"credits":"5","reason":"x"}`, "credits")
		adjust(400, "adj-x", `{"credits":5,"reason":"x","as_debt":true}`, "as_debt")
		adjust(402, "adj-x", `{"credits":-999999999,"reason":"chargeback"}`, "as_debt: true")
		if st, b, _ := c.call("POST", "/admin/accounts/acct_nobody/adjustments", adminToken, `{"credits":5,"reason":"x"}`,
			map[string]string{"Idempotency-Key": "adj-n"}); st != 404 || !strings.Contains(string(b), "not found") {
			t.Fatalf("adjusting no account: %d %s", st, b)
		}
		if b := mustBalance(c, a.APIKey); b.Credits != left+1000 {
			t.Fatalf("after +1000: %+v, want %d", b, left+1000)
		}

		// Orders: filtered, paged, and one with WeChat Pay's side.
		var orders struct {
			Data []struct {
				OutTradeNo string `json:"out_trade_no"`
				Status     string `json:"status"`
				Account    string `json:"account_id"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		c.must(200, "GET", "/admin/orders?account="+a.AccountID+"&limit=1", adminToken, "", &orders)
		first := orders.Data[0].OutTradeNo
		if len(orders.Data) != 1 || orders.NextCursor == "" || first != unpaid.OutTradeNo {
			t.Fatalf("first page %+v", orders)
		}
		c.must(200, "GET", "/admin/orders?account="+a.AccountID+"&limit=1&cursor="+orders.NextCursor, adminToken, "", &orders)
		if len(orders.Data) != 1 || orders.Data[0].OutTradeNo != o.OutTradeNo {
			t.Fatalf("second page %+v", orders)
		}
		c.must(200, "GET", "/admin/orders?status=SUCCESS&from=2020-01-01", adminToken, "", &orders)
		if len(orders.Data) != 1 || orders.Data[0].OutTradeNo != o.OutTradeNo || orders.NextCursor != "" {
			t.Fatalf("paid orders %+v", orders)
		}
		c.wantError(400, "GET", "/admin/orders?status=PAID", adminToken, "", "status must be")
		c.wantError(400, "GET", "/admin/orders?from=yesterday", adminToken, "", "from must be")
		c.wantError(400, "GET", "/admin/orders?limit=100000", adminToken, "", "limit must be")
		c.wantError(400, "GET", "/admin/orders?cursor=YWJj", adminToken, "", "cursor is not one")
		var detail struct {
			Status  string `json:"status"`
			Account string `json:"account_id"`
			WeChat  *struct {
				TradeState string `json:"trade_state"`
				AmountFen  int64  `json:"amount_fen"`
			} `json:"wechat"`
			Refunds []json.RawMessage `json:"refunds"`
		}
		c.must(200, "GET", "/admin/orders/"+o.OutTradeNo, adminToken, "", &detail)
		if detail.Status != "SUCCESS" || detail.Account != a.AccountID || detail.WeChat == nil || detail.WeChat.TradeState != "SUCCESS" ||
			detail.WeChat.AmountFen != o.AmountFen || len(detail.Refunds) != 0 {
			t.Fatalf("order detail %+v", detail)
		}
		c.wantError(404, "GET", "/admin/orders/nosuchorder1", adminToken, "", "not found")

		// Refunds: the operator's only (the default policy), with a reason.
		c.wantError(403, "POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", a.APIKey, "", "refunds are made by the operator")
		refundURL := "/admin/orders/" + o.OutTradeNo + "/refund"
		refundErr := func(status int, url, body, says string) {
			t.Helper()
			st, b, _ := c.call("POST", url, adminToken, body, map[string]string{"Idempotency-Key": "rf-bad-" + body})
			if st != status || !strings.Contains(string(b), says) {
				t.Fatalf("POST %s %s: %d %s, want %d saying %q", url, body, st, b, status, says)
			}
		}
		refundErr(400, refundURL, `{}`, "reason is required")
		refundErr(400, refundURL, `{"reason":"x","amount_fen":0}`, "amount_fen")
		refundErr(400, refundURL, fmt.Sprintf(`{"reason":"x","amount_fen":%d}`, o.AmountFen+1), "more than the")
		refundErr(409, "/admin/orders/"+unpaid.OutTradeNo+"/refund", `{"reason":"x"}`, "not paid")
		refundErr(404, "/admin/orders/nosuchorder1/refund", `{"reason":"x"}`, "not found")
		var refund struct {
			RefundFen   int64  `json:"refund_fen"`
			RequestedBy string `json:"requested_by"`
		}
		// Once per Idempotency-Key: a retry or double submit pays once.
		refundBody := `{"amount_fen":1,"reason":"customer asked, ticket 9"}`
		c.wantError(400, "POST", refundURL, adminToken, refundBody, "Idempotency-Key")
		keyed := func(key, body string) (int, []byte, http.Header) {
			return c.call("POST", refundURL, adminToken, body, map[string]string{"Idempotency-Key": key})
		}
		st, rb, _ := keyed("rf-1", refundBody)
		if st != 200 {
			t.Fatalf("refund: %d %s", st, rb)
		}
		if err := json.Unmarshal(rb, &refund); err != nil || refund.RefundFen != 1 || refund.RequestedBy != "admin" {
			t.Fatalf("refund %+v %v", refund, err)
		}
		st, again, h := keyed("rf-1", refundBody)
		var firstAnswer, second map[string]any
		_ = json.Unmarshal(rb, &firstAnswer)
		_ = json.Unmarshal(again, &second)
		if st != 200 || h.Get("Idempotent-Replayed") != "true" || firstAnswer["resumed"] != false || second["resumed"] != true ||
			second["out_refund_no"] != firstAnswer["out_refund_no"] || second["refund_fen"] != firstAnswer["refund_fen"] || second["reason"] != firstAnswer["reason"] {
			t.Fatalf("same key again: %d %s %v, want the first refund %s, resumed", st, again, h, rb)
		}
		if st, b, _ := keyed("rf-1", `{"amount_fen":2,"reason":"customer asked, ticket 9"}`); st != 409 || !strings.Contains(string(b), "Idempotency-Key") {
			t.Fatalf("same key, another amount: %d %s", st, b)
		}
		var refunds struct {
			Data []struct {
				OutTradeNo  string `json:"out_trade_no"`
				RequestedBy string `json:"requested_by"`
				Reason      string `json:"reason"`
				AskedFen    int64  `json:"asked_fen"`
			} `json:"data"`
		}
		c.must(200, "GET", "/admin/refunds?account="+a.AccountID, adminToken, "", &refunds)
		if len(refunds.Data) != 1 || refunds.Data[0].RequestedBy != "admin" || refunds.Data[0].Reason != "customer asked, ticket 9" || refunds.Data[0].AskedFen != 1 {
			t.Fatalf("refunds %+v", refunds)
		}
		c.wantError(400, "GET", "/admin/refunds?status=done", adminToken, "", "status must be")
		c.wantError(400, "GET", "/admin/refunds?limit=-1", adminToken, "", "limit must be")

		// Taking more than is available: as debt, on purpose.
		b := mustBalance(c, a.APIKey)
		adjust(201, "adj-2", fmt.Sprintf(`{"credits":%d,"reason":"chargeback","as_debt":true}`, -(b.Credits+50)), `"debt":50`)
		if after := mustBalance(c, a.APIKey); after.Credits != -50 || after.Debt != 50 {
			t.Fatalf("after the debt adjustment: %+v", after)
		}
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &d)
		if len(d.Adjustments) != 2 || d.Adjustments[0].Debt != 50 || d.Adjustments[1].Credits != 1000 || d.Adjustments[1].Actor != "admin" ||
			len(d.Lots) != 2 || d.Lots[0].Kind != "adjustment" || d.Lots[0].Fen != 0 {
			t.Fatalf("detail after adjustments %+v", d)
		}

		// Usage, by model and by day.
		var usage struct {
			Data []struct {
				Model    string `json:"model"`
				Day      string `json:"day"`
				Requests int64  `json:"requests"`
				Credits  int64  `json:"credits"`
			} `json:"data"`
		}
		c.must(200, "GET", "/admin/usage?group_by=model&account="+a.AccountID, adminToken, "", &usage)
		if len(usage.Data) != 1 || usage.Data[0].Model != "mock-gpt" || usage.Data[0].Credits != chat.Usage.CostCredits {
			t.Fatalf("usage by model %+v", usage)
		}
		c.must(200, "GET", "/admin/usage?model=mock-gpt", adminToken, "", &usage)
		if len(usage.Data) != 1 || usage.Data[0].Day == "" || usage.Data[0].Requests != 1 {
			t.Fatalf("usage by day %+v", usage)
		}
		c.wantError(400, "GET", "/admin/usage?group_by=week", adminToken, "", "group_by must be")
		c.wantError(400, "GET", "/admin/usage?from=2026-01-01&to=2025-01-01", adminToken, "", "from must be before to")
		c.wantError(400, "GET", "/admin/usage?from=2020-01-01&to=2026-01-01", adminToken, "", "366 days")

		// The month's report and the counters show the adjustments.
		var rep struct {
			Adjustments struct {
				Count          int64 `json:"count"`
				CreditsAdded   int64 `json:"credits_added"`
				CreditsRemoved int64 `json:"credits_removed"`
			} `json:"adjustments"`
		}
		c.must(200, "GET", "/admin/reports/revenue", adminToken, "", &rep)
		if rep.Adjustments.Count != 2 || rep.Adjustments.CreditsAdded != 1000 {
			t.Fatalf("revenue report adjustments %+v", rep.Adjustments)
		}
		_, metrics, _ := c.call("GET", "/metrics", "", "", nil)
		for _, want := range []string{`tollgate_adjustments_total{direction="add"} 1`, `tollgate_adjustments_total{direction="remove"} 1`,
			`tollgate_payments_total{method="native"} 1`, `tollgate_payments_fen_total{method="native"} ` + fmt.Sprint(o.AmountFen),
			`tollgate_payment_events_total{event="refund_asked",reason="admin"} 1`} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}

		// A positive adjustment pays the debt first and says how much; the
		// store keeps it, so a replay and the account detail say the same.
		adjust(201, "adj-3", `{"credits":80,"reason":"goodwill after the chargeback"}`, `"debt_paid":50`)
		adjust(200, "adj-3", `{"credits":80,"reason":"goodwill after the chargeback"}`, `"debt_paid":50`)
		if after := mustBalance(c, a.APIKey); after.Credits != 30 || after.Debt != 0 {
			t.Fatalf("after paying the debt: %+v, want 30 credits, no debt", after)
		}
		c.must(200, "GET", "/admin/accounts/"+a.AccountID, adminToken, "", &d)
		for _, adj := range d.Adjustments {
			if want := map[int64]int64{80: 50}[adj.Credits]; adj.DebtPaid == nil || *adj.DebtPaid != want {
				t.Errorf("detail: adjustment of %d credits has debt_paid %v, want %d", adj.Credits, adj.DebtPaid, want)
			}
		}
		// A reason is up to 500 characters, whatever their bytes.
		zh := strings.Repeat("退", 500)
		adjust(201, "adj-zh", `{"credits":1,"reason":"`+zh+`"}`, `"debt_paid":0`)
		adjust(400, "adj-zh2", `{"credits":1,"reason":"`+zh+`款"}`, "reason is at most 500 characters")
		if after := mustBalance(c, a.APIKey); after.Credits != 31 {
			t.Fatalf("after the reasons: %+v, want 31 credits", after)
		}

		// The account holder sees the adjustments in their usage history,
		// beside the billed call, each marked by its type.
		var hist struct {
			Data []struct {
				Type         string `json:"type"`
				AdjustmentID string `json:"adjustment_id"`
				RequestID    string `json:"request_id"`
				Model        string `json:"model"`
				Credits      int64  `json:"credits"`
				Reason       string `json:"reason"`
			} `json:"data"`
		}
		c.must(200, "GET", "/v1/usage", a.APIKey, "", &hist)
		if len(hist.Data) != 1 || hist.Data[0].Type != "usage" {
			t.Fatalf("usage without include: %+v; want the one call only", hist.Data)
		}
		c.wantError(400, "GET", "/v1/usage?include=everything", a.APIKey, "", "include")
		c.must(200, "GET", "/v1/usage?include=adjustments", a.APIKey, "", &hist)
		var calls, adds, removes int
		for _, e := range hist.Data {
			switch {
			case e.Type == "usage" && e.Model == "mock-gpt" && e.RequestID != "" && e.Credits == chat.Usage.CostCredits:
				calls++
			case e.Type == "adjustment" && strings.HasPrefix(e.AdjustmentID, "adj_") && e.Model == "" && e.Reason == "" && e.Credits > 0:
				adds++
			case e.Type == "adjustment" && e.Credits < 0:
				removes++
			default:
				t.Errorf("usage history entry %+v", e)
			}
		}
		if calls != 1 || adds != 3 || removes != 1 {
			t.Fatalf("usage history: %d calls, %d additions, %d removals: %+v", calls, adds, removes, hist.Data)
		}
		c.must(200, "GET", "/v1/usage?include=adjustments&limit=2", a.APIKey, "", &hist)
		if len(hist.Data) != 2 {
			t.Fatalf("usage history with limit=2: %+v", hist.Data)
		}
		mustAuditClean(t, m)
	})
}
