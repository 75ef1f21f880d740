package wxpay_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"tollgate/wxpay"
)

// FuzzV2DecodeXML checks that the decoder never panics, refuses only with
// its documented errors, and that whatever it accepts survives an
// encode/decode round trip unchanged (so the emulator and the client read
// the same map from the same bytes). Seeds: testdata/fuzz/FuzzV2DecodeXML.
func FuzzV2DecodeXML(f *testing.F) {
	f.Add([]byte(`<xml><a><![CDATA[x]]></a><total_fee>1</total_fee></xml>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := wxpay.DecodeV2XML(body)
		if err != nil {
			if !errors.Is(err, wxpay.ErrMalformed) && !errors.Is(err, wxpay.ErrBodyTooLarge) {
				t.Fatalf("undocumented error %v", err)
			}
			if m != nil {
				t.Fatalf("refused body returned %v", m)
			}
			return
		}
		for k, v := range m {
			if !utf8.ValidString(v) || k == "" {
				t.Fatalf("accepted field %q=%q", k, v)
			}
		}
		back, err := wxpay.DecodeV2XML(wxpay.EncodeV2XML(m))
		if err != nil {
			t.Fatalf("re-encoded map refused: %v", err)
		}
		if !maps.Equal(back, m) {
			t.Fatalf("round trip changed the map:\n%v\n%v", m, back)
		}
	})
}

// FuzzV2PaymentNotification checks that a notification is accepted only
// when its signature verifies, and that the typed fields are exactly those
// of the returned map. Seeds: testdata/fuzz/FuzzV2PaymentNotification.
func FuzzV2PaymentNotification(f *testing.F) {
	f.Add(MustReadFile(f, "notify_v2-2_md5.xml"), "")
	f.Add(MustReadFile(f, "notify_v2-2_hmac.xml"), wxpay.SignTypeHMACSHA256)
	f.Fuzz(func(t *testing.T, body []byte, signType string) {
		n, m, err := wxpay.ParseV2PaymentNotification(body, v2Key, signType)
		if err != nil {
			if n != nil || m != nil {
				t.Fatal("refused notification returned values")
			}
			return
		}
		if err := wxpay.VerifyV2(m, signType, v2Key); err != nil {
			t.Fatalf("accepted a map that does not verify: %v", err)
		}
		total, err := strconv.ParseInt(m["total_fee"], 10, 64)
		if err != nil || total != n.TotalFee || total < 0 {
			t.Fatalf("TotalFee %d vs map %q", n.TotalFee, m["total_fee"])
		}
		if n.OutTradeNo != m["out_trade_no"] || n.TransactionID != m["transaction_id"] || n.MchID != m["mch_id"] || n.AppID != m["appid"] {
			t.Fatalf("typed fields differ from the verified map: %+v vs %v", n, m)
		}
	})
}

// FuzzV2ParseBill checks that the bill parser never panics, refuses only
// with its documented errors, and that every accepted amount is the exact
// value of its text. Seeds: testdata/fuzz/FuzzV2ParseBill.
func FuzzV2ParseBill(f *testing.F) {
	f.Add(MustReadFile(f, "bill_all.csv"))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := wxpay.ParseBill(bytes.NewReader(body))
		if err != nil {
			if b != nil {
				t.Fatal("refused bill returned a value")
			}
			return
		}
		for _, r := range b.Records {
			if s := r.Fields["订单金额"]; s != "" {
				if back := formatFen(r.TotalFee); !sameDecimal(s, back) {
					t.Fatalf("订单金额 %q parsed as %d fen (%s)", s, r.TotalFee, back)
				}
			}
		}
	})
}

// FuzzV2ParseYuanFen checks ParseYuanFen against integer formatting: every
// fen amount formats and parses back to itself.
func FuzzV2ParseYuanFen(f *testing.F) {
	for _, n := range []int64{0, 1, 3, 99, 100, 5003, -150, math.MaxInt64, math.MinInt64 + 1} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n == math.MinInt64 {
			return
		}
		got, err := wxpay.ParseYuanFen(formatFen(n))
		if err != nil || got != n {
			t.Fatalf("ParseYuanFen(%q) = %d, %v", formatFen(n), got, err)
		}
	})
}

// formatFen writes n fen as yuan with two decimals.
func formatFen(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%02d", sign, n/100, n%100)
}

// sameDecimal reports whether two decimal strings denote the same number
// (the parser's own checks having accepted a).
func sameDecimal(a, b string) bool {
	norm := func(s string) string {
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		i, frac, _ := strings.Cut(s, ".")
		i = strings.TrimLeft(i, "0")
		frac = strings.TrimRight(frac, "0")
		if i == "" && frac == "" {
			return "0"
		}
		if neg {
			return "-" + i + "." + frac
		}
		return i + "." + frac
	}
	return norm(a) == norm(b)
}
