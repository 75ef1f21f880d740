package wxpaysim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

func (e *env) simJSON(method, path, body string, v any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			e.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestSimAPIOverHTTP(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
	e.mustPlaceV2("T-SIM-0001", 250)

	var cfg wxpaysim.Config
	if st := e.simJSON("GET", "/sim/config", "", &cfg); st != 200 || cfg.MchID != e.cfg.MchID || cfg.APIKey != e.cfg.APIKey {
		t.Fatalf("config: %d %+v", st, cfg)
	}
	var paid wxpaysim.Order
	if st := e.simJSON("POST", "/sim/orders/T-SIM-0001/pay", "", &paid); st != 200 || paid.State != "SUCCESS" || paid.Total != 250 {
		t.Fatalf("pay: %d %+v", st, paid)
	}
	waitFor(t, "the notification is acknowledged", acked(e.sim, 1))
	var orders []wxpaysim.Order
	if st := e.simJSON("GET", "/sim/orders", "", &orders); st != 200 || len(orders) != 1 || orders[0].TransactionID != paid.TransactionID {
		t.Fatalf("orders: %d %+v", st, orders)
	}
	var ds []wxpaysim.Delivery
	if st := e.simJSON("GET", "/sim/notifications", "", &ds); st != 200 || len(ds) != 1 || ds[0].Status != 200 || ds[0].URL != e.rcv.srv.URL+"/wxpay/notify" || ds[0].Kind != "payment" {
		t.Fatalf("notifications: %d %+v", st, ds)
	}

	faults := []struct {
		name, body string
		want       int
	}{
		{"OK", `{"seed":7,"drop_rate":0.1,"duplicate_rate":0.3,"delay_min_ms":0,"delay_max_ms":30000,"reorder_rate":0.05,"system_error":{"refund":0.5,"*":0.01},"probes":true}`, 200},
		{"RateAboveOne", `{"drop_rate":1.5}`, 400},
		{"NegativeRate", `{"system_error":{"query":-0.1}}`, 400},
		{"UnknownEndpoint", `{"system_error":{"unifiedorder":1}}`, 400},
		{"DelayRangeInverted", `{"delay_min_ms":10,"delay_max_ms":5}`, 400},
		{"UnknownField", `{"drop":0.5}`, 400},
	}
	for _, tt := range faults {
		t.Run("Faults"+tt.name, func(t *testing.T) {
			if st := e.simJSON("POST", "/sim/faults", tt.body, nil); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
		})
	}
	if f := e.sim.CurrentFaults(); f.Seed != 7 || f.SystemError["refund"] != 0.5 {
		t.Fatalf("faults in effect: %+v (a refused update must not replace them)", f)
	}
	if st := e.simJSON("POST", "/sim/orders/T-SIM-NONE/fail", "", nil); st != 404 {
		t.Fatalf("fail of an unknown order: %d", st)
	}
	if st := e.simJSON("POST", "/sim/clock", `{"advance":"-1h"}`, nil); st != 400 {
		t.Fatalf("clock moved backwards: %d", st)
	}
	if st := e.simJSON("GET", "/sim/nothing", "", nil); st != 404 {
		t.Fatalf("unmodelled sim path: %d", st)
	}
}

// TestPayLateAfterClose models the close-vs-pay race: the order is closed,
// yet WeChat Pay reports the user's payment as SUCCESS and notifies it.
func TestPayLateAfterClose(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
	e.mustPlaceV2("T-LATE-001", 100)
	a := e.v2("/pay/closeorder", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-LATE-001"}, wxpay.SignTypeMD5, e.cfg.APIKey)
	if a["result_code"] != "SUCCESS" {
		t.Fatal(a)
	}
	if st := e.simPost("/sim/orders/T-LATE-001/pay"); st != http.StatusConflict {
		t.Fatalf("ordinary pay of a closed order: %d, want 409", st)
	}
	if st := e.simPost("/sim/orders/T-LATE-001/pay?late=1"); st != 200 {
		t.Fatalf("late pay: %d", st)
	}
	if q := e.v2Query("T-LATE-001"); q["trade_state"] != "SUCCESS" || q["transaction_id"] == "" {
		t.Fatalf("after a late payment: %v", q)
	}
	n, _ := wxpay.DecodeV2XML(e.rcv.next(t).Body)
	if n["out_trade_no"] != "T-LATE-001" || n["result_code"] != "SUCCESS" {
		t.Fatalf("late payment notification: %v", n)
	}
}

func TestRefundNotifyURLKnob(t *testing.T) {
	other := newReceiver()
	t.Cleanup(other.srv.Close)
	e := mustEnv(t, func(s *wxpaysim.Server) {
		s.NoHandshake, s.RefundDelay, s.RefundNotifyURL = true, -1, other.srv.URL+"/refunds"
	})
	e.mustPlaceV2("T-RNU-0001", 100)
	if _, err := e.sim.Pay("T-RNU-0001"); err != nil {
		t.Fatal(err)
	}
	a := e.v2("/secapi/pay/refund", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-RNU-0001",
		"out_refund_no": "R-RNU-1", "total_fee": "100", "refund_fee": "100"}, wxpay.SignTypeMD5, e.cfg.APIKey)
	if a["result_code"] != "SUCCESS" {
		t.Fatal(a)
	}
	if _, err := e.sim.CompleteRefund("R-RNU-1"); err != nil {
		t.Fatal(err)
	}
	n, _ := wxpay.DecodeV2XML(other.next(t).Body)
	if n["req_info"] == "" {
		t.Fatalf("refund notification at the configured URL: %v", n)
	}
	if _, err := e.sim.CompleteRefund("R-RNU-1"); err == nil {
		t.Fatal("a refund completed twice")
	}
}

func TestStatsCountVerifiedCalls(t *testing.T) {
	e := mustEnv(t, nil)
	e.mustPlaceV2("T-STATS-01", 100)
	for range 5 {
		e.v2Query("T-STATS-01")
	}
	e.v2("/pay/orderquery", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-STATS-01"}, wxpay.SignTypeMD5, "00000000000000000000000000000000")
	if err := e.sim.SetFaults(wxpaysim.Faults{SystemError: map[string]float64{"query": 1}}); err != nil {
		t.Fatal(err)
	}
	e.v2Query("T-STATS-01")
	var st wxpaysim.Stats
	if code := e.simJSON("GET", "/sim/stats", "", &st); code != 200 {
		t.Fatal(code)
	}
	if st.Calls["order"] != 1 || st.Calls["query"] != 6 || st.SystemErrors["query"] != 1 || st.PeakQueriesPerMinute != 6 {
		t.Fatalf("stats %+v: want 1 order, 6 verified queries (the badly signed one not counted), 1 SYSTEMERROR, peak 6", st)
	}
}

// TestQueryMinuteSlides: the FREQUENCY_LIMITED counter and the peak count
// any 60 seconds of the emulator's clock, not minutes aligned to whole
// seconds: 3 queries late in one second and 3 at the start of the second a
// minute later are 6 within 59.1 s.
func TestQueryMinuteSlides(t *testing.T) {
	for _, limit := range []int{0, 3} {
		t.Run(fmt.Sprint("limit", limit), func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			e := mustEnv(t, func(s *wxpaysim.Server) { s.Clock, s.QueryLimitPerMinute = clock, limit })
			e.mustPlaceV2("T-SLIDE-01", 100)
			query := func(want string) {
				t.Helper()
				q := e.v2Query("T-SLIDE-01")
				if got := q["err_code"]; want == "SUCCESS" && q["result_code"] != "SUCCESS" || want != "SUCCESS" && got != want {
					t.Fatalf("query at %v: %v, want %s", clock.Now().Format("15:04:05.000"), q, want)
				}
			}
			clock.Advance(900 * time.Millisecond)
			for range 3 {
				query("SUCCESS")
			}
			clock.Advance(59*time.Second + 100*time.Millisecond) // 59.1 s after them
			if limit == 0 {
				for range 3 {
					query("SUCCESS")
				}
				if p := e.sim.Stats().PeakQueriesPerMinute; p != 6 {
					t.Fatalf("peak %d queries per minute, want 6 (all within 59.1 s)", p)
				}
				return
			}
			query("FREQUENCY_LIMITED")
			clock.Advance(900 * time.Millisecond) // the first three are now 60 s old
			query("SUCCESS")
			if p := e.sim.Stats().PeakQueriesPerMinute; p != 3 {
				t.Fatalf("peak %d queries per minute, want the limit 3", p)
			}
		})
	}
}

func TestQueryLimitPerMinute(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.QueryLimitPerMinute = 3 })
	e.mustPlaceV2("T-LIMIT-01", 100)
	for i := range 3 {
		if q := e.v2Query("T-LIMIT-01"); q["result_code"] != "SUCCESS" {
			t.Fatalf("query %d under the limit: %v", i+1, q)
		}
	}
	if q := e.v2Query("T-LIMIT-01"); q["err_code"] != "FREQUENCY_LIMITED" {
		t.Fatalf("4th query in a minute: %v", q)
	}
	if st, b := e.v3("GET", "/v3/pay/transactions/out-trade-no/T-LIMIT-01?mchid="+e.cfg.MchID, nil); st != 429 || !strings.Contains(string(b), "FREQUENCY_LIMITED") {
		t.Fatalf("v3 query over the limit: %d %s", st, b)
	}
	if s := e.sim.Stats(); s.PeakQueriesPerMinute != 3 || s.Calls["query"] != 5 {
		t.Fatalf("stats %+v", s)
	}
}
