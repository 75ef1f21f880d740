package wxpaysim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// TestAcknowledgementRules shows which replies stop the retries: for v2
// only HTTP 200 with XML return_code SUCCESS (WeChat Pay's docs list
// "success", JSON and HTML pages as common mistakes); for v3 any 2xx.
func TestAcknowledgementRules(t *testing.T) {
	tests := []struct {
		name    string
		version int
		status  int
		reply   string
		acked   bool
	}{
		{"V2SuccessXML", 2, 200, string(wxpay.V2NotifyAck(true, "")), true},
		{"V2SuccessXMLWithoutCDATA", 2, 200, "<xml><return_code>SUCCESS</return_code><return_msg>OK</return_msg></xml>", true},
		{"V2FailXML", 2, 200, string(wxpay.V2NotifyAck(false, "bad sign")), false},
		{"V2PlainSuccess", 2, 200, "SUCCESS", false},
		{"V2JSON", 2, 200, `{"return_code":"SUCCESS"}`, false},
		{"V2EmptyBody", 2, 200, "", false},
		{"V2SuccessXMLWith500", 2, 500, string(wxpay.V2NotifyAck(true, "")), false},
		{"V3NoContent", 3, 204, "", true},
		{"V3OKWithJSON", 3, 200, `{"code":"SUCCESS","message":"成功"}`, true},
		{"V3ServerError", 3, 500, `{"code":"FAIL","message":"失败"}`, false},
		{"V3BadRequest", 3, 400, `{"code":"FAIL","message":"失败"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = fmt.Fprint(w, tt.reply)
			}))
			t.Cleanup(rcv.Close)
			e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
			if tt.version == 2 {
				p := e.v2Order("T-ACK-0001", 100)
				p["notify_url"] = rcv.URL + "/notify"
				if a := e.v2("/pay/unifiedorder", p, wxpay.SignTypeMD5, e.cfg.APIKey); a["result_code"] != "SUCCESS" {
					t.Fatal(a)
				}
			} else {
				if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBodyTo("T-ACK-0001", 100, rcv.URL+"/notify/v3")); st != 200 {
					t.Fatalf("%d %s", st, b)
				}
			}
			if _, err := e.sim.Pay("T-ACK-0001"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the first attempt", func() bool { return len(posts(e.sim, "T-ACK-0001")) > 0 })
			d := posts(e.sim, "T-ACK-0001")[0]
			if got := d.Outcome == wxpaysim.OutcomeAcked; got != tt.acked {
				t.Fatalf("reply %d %q: outcome %s, want acked=%v", tt.status, tt.reply, d.Outcome, tt.acked)
			}
		})
	}
}
