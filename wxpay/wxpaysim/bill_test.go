package wxpaysim_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// downloadBill calls /pay/downloadbill and returns the raw answer.
func (e *env) downloadBill(p map[string]string) []byte {
	e.t.Helper()
	q := map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "nonce_str": nonce()}
	for k, v := range p {
		q[k] = v
	}
	sig, _ := wxpay.SignV2(q, wxpay.SignTypeMD5, e.cfg.APIKey)
	q["sign"] = sig
	resp, err := http.Post(e.base+"/pay/downloadbill", "text/xml", bytes.NewReader(wxpay.EncodeV2XML(q)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func TestV2DownloadBill(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true; s.RefundDelay = -1 })
	e.mustPlaceV2("T-BILL-001", 1234)
	e.mustPlaceV2("T-BILL-002", 500) // unpaid: never in a bill
	if _, err := e.sim.Pay("T-BILL-001"); err != nil {
		t.Fatal(err)
	}
	a := e.v2("/secapi/pay/refund", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-BILL-001",
		"out_refund_no": "R-BILL-1", "total_fee": "1234", "refund_fee": "234"}, wxpay.SignTypeMD5, e.cfg.APIKey)
	if a["result_code"] != "SUCCESS" {
		t.Fatal(a)
	}
	today := time.Now().In(tollgate.Beijing)
	tests := []struct {
		name     string
		billType string
		gzip     bool
		rows     int    // detail rows
		cols     int    // columns per row
		summary  string // summary data line
	}{
		{"ALL", "ALL", false, 2, 27, "`2,`12.34,`2.34,`0.00,`0.06,`12.34,`2.34"},
		{"SUCCESS", "SUCCESS", false, 1, 20, "`1,`12.34,`0.07,`12.34"},
		{"REFUND", "REFUND", false, 1, 29, "`1,`0.00,`2.34,`0.00,`-0.01,`0.00,`2.34"},
		{"ALLGzip", "ALL", true, 2, 27, "`2,`12.34,`2.34,`0.00,`0.06,`12.34,`2.34"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := map[string]string{"bill_date": today.Format("20060102"), "bill_type": tt.billType}
			if tt.gzip {
				p["tar_type"] = "GZIP"
			}
			b := e.downloadBill(p)
			if tt.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("not gzip: %v", err)
				}
				b, _ = io.ReadAll(zr)
			}
			lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(string(b), "\ufeff"), "\r\n"), "\r\n")
			if len(lines) != tt.rows+3 {
				t.Fatalf("%d lines, want header + %d rows + summary header + summary:\n%s", len(lines), tt.rows, b)
			}
			if got := strings.Count(lines[0], ",") + 1; got != tt.cols {
				t.Errorf("header has %d columns, want %d", got, tt.cols)
			}
			for _, row := range lines[1 : 1+tt.rows] {
				if !strings.HasPrefix(row, "`") || strings.Count(row, ",`")+1 != tt.cols {
					t.Errorf("row %q: want %d backtick-prefixed fields", row, tt.cols)
				}
			}
			if got := lines[len(lines)-1]; got != tt.summary {
				t.Errorf("summary %q, want %q", got, tt.summary)
			}
		})
	}
	t.Run("NoBillExist", func(t *testing.T) {
		m, err := wxpay.DecodeV2XML(e.downloadBill(map[string]string{"bill_date": today.AddDate(0, 0, -3).Format("20060102")}))
		if err != nil || m["return_code"] != "FAIL" || m["return_msg"] != "No Bill Exist" || m["error_code"] != "20002" {
			t.Fatalf("%v %v", m, err)
		}
	})
}
