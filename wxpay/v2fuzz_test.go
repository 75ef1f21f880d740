package wxpay_test

import (
	"errors"
	"maps"
	"strconv"
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
