package wxpay_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tollgate/wxpay"
)

// MustReadFile returns the contents of a testdata/v2 file.
func MustReadFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "v2", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseBillFixture(t *testing.T) {
	raw := MustReadFile(t, "bill_all.csv")
	for name, body := range map[string]string{
		"as stored": string(raw),
		"crlf":      strings.ReplaceAll(string(raw), "\n", "\r\n"),
		"no bom":    strings.TrimPrefix(string(raw), "\uFEFF"),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := wxpay.ParseBill(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Header) != 27 || b.Header[0] != "交易时间" {
				t.Errorf("header = %q (BOM kept?)", b.Header)
			}
			if len(b.Records) != 3 {
				t.Fatalf("%d records, want 3", len(b.Records))
			}
			paid, small, refund := b.Records[0], b.Records[1], b.Records[2]
			if paid.OutTradeNo != "tg_20261126_0001" || paid.TransactionID != "4200000263202611260000000001" ||
				paid.TradeState != "SUCCESS" || paid.TradeTime != "2026-11-26 10:15:02" || paid.Attach != "acct_1" {
				t.Errorf("paid record = %+v", paid)
			}
			if paid.SettlementTotalFee != 5000 || paid.TotalFee != 5000 || paid.ServiceFeeMilliFen != 30000 || paid.FeeRate != "0.60%" {
				t.Errorf("paid amounts = %d %d %d %s", paid.SettlementTotalFee, paid.TotalFee, paid.ServiceFeeMilliFen, paid.FeeRate)
			}
			if small.Body != "credits, 3 tokens" || small.SettlementTotalFee != 3 || small.ServiceFeeMilliFen != 18 {
				t.Errorf("record with a comma = %q %d %d", small.Body, small.SettlementTotalFee, small.ServiceFeeMilliFen)
			}
			if refund.TradeState != "REFUND" || refund.OutRefundNo != "R_tg_20261126_0001" || refund.RefundFee != 1000 ||
				refund.RequestRefundFee != 1000 || refund.RefundStatus != "SUCCESS" || refund.ServiceFeeMilliFen != -6000 {
				t.Errorf("refund record = %+v", refund)
			}
			if got := paid.Fields["费率备注"]; got != "" {
				t.Errorf("last (empty) column = %q", got)
			}
			s := b.Summary
			want := wxpay.BillSummary{Count: 3, SettlementTotalFee: 5003, RefundFee: 1000, TotalFee: 5003, RequestRefundFee: 1000, ServiceFeeMilliFen: 24018}
			s.Fields = nil
			if !reflect.DeepEqual(s, want) {
				t.Errorf("summary = %+v, want %+v", s, want)
			}
			// The summary agrees with the records, as a reconciler would check.
			var sum, fee int64
			for _, r := range b.Records {
				sum += r.SettlementTotalFee
				fee += r.ServiceFeeMilliFen
			}
			if sum != s.SettlementTotalFee || fee != s.ServiceFeeMilliFen {
				t.Errorf("records add up to %d fen, fee %d; summary says %d, %d", sum, fee, s.SettlementTotalFee, s.ServiceFeeMilliFen)
			}
		})
	}
}

func TestParseBillRefuses(t *testing.T) {
	good := string(MustReadFile(t, "bill_all.csv"))
	lines := strings.Split(strings.TrimSpace(good), "\n")
	tests := map[string]string{
		"empty":             "",
		"header only":       lines[0],
		"no summary":        strings.Join(lines[:4], "\n"),
		"two summary rows":  good + lines[5] + "\n",
		"short row":         strings.Replace(good, ",`acct_1,`0.30000", ",`0.30000", 1),
		"float-ish amount":  strings.Replace(good, "`50.00,`0.00,`0,", "`5e1,`0.00,`0,", 1),
		"sub-fen amount":    strings.Replace(good, "`50.00,`0.00,`0,", "`50.001,`0.00,`0,", 1),
		"sub-milli-fen fee": strings.Replace(good, "`0.30000", "`0.300001", 1),
		"bad summary":       strings.Replace(good, "`3,`50.03", "`three,`50.03", 1),
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := wxpay.ParseBill(strings.NewReader(body)); !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseYuanFen(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0.03", 3, true}, {"45.0", 4500, true}, {"12", 1200, true}, {"0.00", 0, true},
		{"-1.5", -150, true}, {"1.230", 123, true}, {"", 0, true},
		{"92233720368547758.07", 9223372036854775807, true},
		{"92233720368547758.08", 0, false},
		{"1.234", 0, false}, {"1.", 0, false}, {".5", 0, false}, {"1e2", 0, false},
		{"+1", 0, false}, {"1,000.00", 0, false}, {" 1", 0, false}, {"--1", 0, false},
		{"0.1000000000000000000001", 0, false},
	}
	for _, tt := range tests {
		got, err := wxpay.ParseYuanFen(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseYuanFen(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, wxpay.ErrMalformed) {
			t.Errorf("ParseYuanFen(%q) = %d, %v; want ErrMalformed", tt.in, got, err)
		}
	}
}

// TestParseBillTypes checks the SUCCESS and REFUND layouts, whose columns
// differ from ALL: parsing goes by header name, not position.
func TestParseBillTypes(t *testing.T) {
	tests := []struct {
		file    string
		want    wxpay.BillRecord
		summary wxpay.BillSummary
	}{
		{"bill_success.csv",
			wxpay.BillRecord{OutTradeNo: "tg_20261126_0001", TradeState: "SUCCESS", SettlementTotalFee: 5000, TotalFee: 5000, ServiceFeeMilliFen: 30000},
			wxpay.BillSummary{Count: 1, SettlementTotalFee: 5000, TotalFee: 5000, ServiceFeeMilliFen: 30000}},
		{"bill_refund.csv",
			wxpay.BillRecord{OutTradeNo: "tg_20261126_0001", TradeState: "REFUND", RefundFee: 1000, RequestRefundFee: 1000,
				ServiceFeeMilliFen: -6000, RefundRequestTime: "2026-11-26 18:03:27", RefundSuccessTime: "2026-11-26 18:03:41",
				OutRefundNo: "R_tg_20261126_0001", RefundStatus: "SUCCESS"},
			wxpay.BillSummary{Count: 1, RefundFee: 1000, RequestRefundFee: 1000, ServiceFeeMilliFen: -6000}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := wxpay.ParseBill(bytes.NewReader(MustReadFile(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Records) != 1 {
				t.Fatalf("%d records", len(b.Records))
			}
			r := b.Records[0]
			got := wxpay.BillRecord{OutTradeNo: r.OutTradeNo, TradeState: r.TradeState, SettlementTotalFee: r.SettlementTotalFee,
				TotalFee: r.TotalFee, RefundFee: r.RefundFee, RequestRefundFee: r.RequestRefundFee,
				ServiceFeeMilliFen: r.ServiceFeeMilliFen, RefundRequestTime: r.RefundRequestTime,
				RefundSuccessTime: r.RefundSuccessTime, OutRefundNo: r.OutRefundNo, RefundStatus: r.RefundStatus}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("record = %+v\nwant %+v", got, tt.want)
			}
			b.Summary.Fields = nil
			if !reflect.DeepEqual(b.Summary, tt.summary) {
				t.Errorf("summary = %+v\nwant %+v", b.Summary, tt.summary)
			}
		})
	}
}
