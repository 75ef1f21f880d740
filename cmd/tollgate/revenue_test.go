package main

import (
	"encoding/json"
	"testing"
	"time"

	"tollgate"
)

// TestAdminRevenueAndRollout buys credits and spends some, then reads the
// month's revenue report and the rollout status as an operator would.
func TestAdminRevenueAndRollout(t *testing.T) {
	m := MustRunMain(t, "--wxpay-rollout-percent", "100")
	c := client{t, m.URL}
	a := mustAccount(c, m.AdminToken)
	o := mustOrder(c, a.APIKey, "rev-1")
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	// The fee is recorded on the order just after the lot is credited:
	// wait for the order, not only the balance.
	eventually(t, "the order is paid", func() bool {
		var got struct{ Status string }
		c.must(200, "GET", "/v1/payments/orders/"+o.OutTradeNo, a.APIKey, "", &got)
		return got.Status == "SUCCESS"
	})
	var chat struct {
		Usage struct {
			CostCredits int64 `json:"cost_credits"`
		}
	}
	c.must(200, "POST", "/v1/chat/completions", a.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`, &chat)

	month := time.Now().In(tollgate.Beijing).Format("2006-01")
	var rep struct {
		Month                                 string
		Payments, Requests                    int
		GrossFen, FeeFen, RefundedFen, NetFen int64  `json:"-"`
		Gross                                 int64  `json:"gross_fen"`
		Fee                                   int64  `json:"fee_fen"`
		Net                                   int64  `json:"net_fen"`
		CreditsUsed                           int64  `json:"credits_used"`
		ProviderCostUSD                       string `json:"provider_cost_usd"`
		Margin                                int64  `json:"margin_fen"`
	}
	c.must(200, "GET", "/admin/reports/revenue?month="+month, m.AdminToken, "", &rep)
	wantFee := (o.AmountFen*60 + 5000) / 10000 // 0.6%, half-up
	if rep.Month != month || rep.Payments != 1 || rep.Gross != o.AmountFen || rep.Fee != wantFee ||
		rep.Net != o.AmountFen-wantFee || rep.Requests != 1 || rep.CreditsUsed != chat.Usage.CostCredits ||
		rep.ProviderCostUSD != "0.000000" || rep.Margin != rep.Net {
		t.Fatalf("revenue report %+v; want 1 payment of %d fen, fee %d, 1 request of %d credits", rep, o.AmountFen, wantFee, chat.Usage.CostCredits)
	}
	var empty struct{ Payments int }
	c.must(200, "GET", "/admin/reports/revenue?month=2020-01", m.AdminToken, "", &empty)
	if empty.Payments != 0 {
		t.Fatalf("2020-01 has %d payments", empty.Payments)
	}
	for _, bad := range []string{"2026-13", "2026-1", "nov", "2026-11-01"} {
		if st, b, _ := c.call("GET", "/admin/reports/revenue?month="+bad, m.AdminToken, "", nil); st != 400 {
			t.Errorf("month=%s: %d %s", bad, st, b)
		}
	}
	if st, _, _ := c.call("GET", "/admin/reports/revenue", a.APIKey, "", nil); st != 401 {
		t.Errorf("an API key read the revenue report: %d", st)
	}

	var ro map[string]any
	c.must(200, "GET", "/admin/rollout", m.AdminToken, "", &ro)
	if ro["percent"] != float64(100) || ro["paused"] != false || ro["samples"] != float64(1) {
		b, _ := json.Marshal(ro)
		t.Fatalf("rollout %s", b)
	}
}

func TestServeRefusesBadRollout(t *testing.T) {
	for _, args := range [][]string{
		{"--wxpay-rollout-percent", "101"}, {"--wxpay-rollout-percent", "-1"},
		{"--wxpay-guard-failure-rate", "1.5"}, {"--wxpay-guard-failure-rate", "-0.1"},
	} {
		m := NewMain(nil, nil)
		if err := m.ParseFlags(append([]string{"--data", t.TempDir()}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
