package wxpay_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/wxpay"
)

const v2Key = "192006250b4c09247ec02edce69f6a2d"

func TestParseV2PaymentNotificationVectors(t *testing.T) {
	tests := []struct {
		file     string
		signType string
	}{
		{"notify_v2-2_md5.xml", wxpay.SignTypeMD5},
		{"notify_v2-2_md5.xml", ""},
		{"notify_v2-2_hmac.xml", wxpay.SignTypeHMACSHA256},
		{"notify_v2-2_hmac.xml", ""}, // no sign_type in the body: chosen by length
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.signType, func(t *testing.T) {
			n, m, err := wxpay.ParseV2PaymentNotification(MustReadFile(t, tt.file), v2Key, tt.signType)
			if err != nil {
				t.Fatal(err)
			}
			want := wxpay.V2PaymentNotification{
				AppID: "wx2421b1c4370ec43b", MchID: "10000100", OutTradeNo: "1409811653",
				TransactionID: "1004400740201409030005092168", TotalFee: 1, CashFee: 1, FeeType: "CNY",
				ResultCode: "SUCCESS", TimeEnd: "20140903131540", NonceStr: "5d2b6c2a8db53831f7eda20af46e531c",
				TradeType: "NATIVE", OpenID: "oUpF8uMEb4qRXf22hE3X68TekukE", Attach: "支付测试", BankType: "CFT",
			}
			if *n != want {
				t.Errorf("notification = %+v\nwant %+v", *n, want)
			}
			if m["total_fee"] != "1" || m["is_subscribe"] != "Y" || m["sign"] == "" {
				t.Errorf("verified map = %v", m)
			}
		})
	}
}

func TestParseV2PaymentNotificationRefuses(t *testing.T) {
	md5Body := string(MustReadFile(t, "notify_v2-2_md5.xml"))
	hmacBody := string(MustReadFile(t, "notify_v2-2_hmac.xml"))
	tests := []struct {
		name     string
		body     string
		key      string
		signType string
		want     error
	}{
		{"amount raised", strings.Replace(md5Body, "<total_fee>1</total_fee>", "<total_fee>100</total_fee>", 1), v2Key, "", wxpay.ErrBadSignature},
		{"duplicate total_fee", strings.Replace(md5Body, "<total_fee>1</total_fee>", "<total_fee>1</total_fee><total_fee>100</total_fee>", 1), v2Key, "", wxpay.ErrMalformed},
		{"wrong key", md5Body, "192006250b4c09247ec02edce69f6a2e", "", wxpay.ErrBadSignature},
		{"md5 body for an HMAC order", md5Body, v2Key, wxpay.SignTypeHMACSHA256, wxpay.ErrBadSignature},
		{"hmac body for an MD5 order", hmacBody, v2Key, wxpay.SignTypeMD5, wxpay.ErrBadSignature},
		{"sign removed", strings.Replace(md5Body, "<sign><![CDATA[26836236CF7E758A063AD0916497593D]]></sign>", "", 1), v2Key, "", wxpay.ErrNotSigned},
		{"lower-case sign", strings.Replace(md5Body, "26836236CF7E758A063AD0916497593D", "26836236cf7e758a063ad0916497593d", 1), v2Key, "", wxpay.ErrBadSignature},
		{"xxe", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + md5Body, v2Key, "", wxpay.ErrMalformed},
		{"not xml", "SUCCESS", v2Key, "", wxpay.ErrMalformed},
		{"oversized", strings.Replace(md5Body, "</xml>", "<pad>"+strings.Repeat("x", wxpay.MaxBodyBytes)+"</pad></xml>", 1), v2Key, "", wxpay.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, m, err := wxpay.ParseV2PaymentNotification([]byte(tt.body), tt.key, tt.signType)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if n != nil || m != nil {
				t.Errorf("refused notification still returned %v, %v", n, m)
			}
		})
	}
}

// TestParseV2PaymentNotificationSignedButBad covers bodies correctly signed
// (a sender with the key but a bug) that still cannot be acted on.
func TestParseV2PaymentNotificationSignedButBad(t *testing.T) {
	var v signVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	tests := map[string]func(p map[string]string){
		"negative amount":      func(p map[string]string) { p["total_fee"] = "-1" },
		"decimal amount":       func(p map[string]string) { p["total_fee"] = "0.01" },
		"no out_trade_no":      func(p map[string]string) { delete(p, "out_trade_no") },
		"no transaction_id":    func(p map[string]string) { delete(p, "transaction_id") },
		"return_code FAIL":     func(p map[string]string) { p["return_code"] = "FAIL" },
		"amount overflows":     func(p map[string]string) { p["total_fee"] = "9223372036854775808" },
		"cash_fee not integer": func(p map[string]string) { p["cash_fee"] = "1e3" },
		"no result_code":       func(p map[string]string) { delete(p, "result_code") },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			p := maps.Clone(v.Params)
			mutate(p)
			sign, err := wxpay.SignV2(p, wxpay.SignTypeMD5, v.Key)
			if err != nil {
				t.Fatal(err)
			}
			p["sign"] = sign
			if _, _, err := wxpay.ParseV2PaymentNotification(wxpay.EncodeV2XML(p), v.Key, ""); !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseV2RefundNotification(t *testing.T) {
	var v reqInfoVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "reqinfo_v2-4_self.json"), &v)
	envelope := func(reqInfo string) []byte {
		return wxpay.EncodeV2XML(map[string]string{
			"return_code": "SUCCESS", "appid": "wx2421b1c4370ec43b", "mch_id": "10000100",
			"nonce_str": "0b9f35f484df17a732e537c37708d1d0", "req_info": reqInfo,
		})
	}
	n, m, err := wxpay.ParseV2RefundNotification(envelope(v.ReqInfo), v.Key)
	if err != nil {
		t.Fatal(err)
	}
	want := wxpay.V2RefundNotification{
		AppID: "wx2421b1c4370ec43b", MchID: "10000100", NonceStr: "0b9f35f484df17a732e537c37708d1d0",
		TransactionID: "1004400740201409030005092168", OutTradeNo: "1409811653",
		RefundID: "50000408942018111907145868882", OutRefundNo: "R1409811653",
		TotalFee: 1, SettlementTotalFee: 1, RefundFee: 1, SettlementRefundFee: 1,
		RefundStatus: "SUCCESS", SuccessTime: "2018-11-19 16:24:13", RefundRecvAccout: "支付用户零钱",
		RefundAccount: "REFUND_SOURCE_RECHARGE_FUNDS", RefundRequestSource: "API",
	}
	if *n != want {
		t.Errorf("notification = %+v\nwant %+v", *n, want)
	}
	if !maps.Equal(m, v.Fields) {
		t.Errorf("decrypted map = %v", m)
	}

	forged, err := wxpay.EncryptV2RefundReqInfo(v.Fields, "another merchant's key")
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		body []byte
		want error
	}{
		{"other key", envelope(forged), wxpay.ErrBadSignature},
		{"no req_info", envelope(""), wxpay.ErrNotSigned},
		{"garbage req_info", envelope("AAAA"), wxpay.ErrBadSignature},
		{"return_code FAIL", []byte(`<xml><return_code>FAIL</return_code><return_msg>x</return_msg></xml>`), wxpay.ErrMalformed},
		{"doctype", append([]byte("<!DOCTYPE xml>"), envelope(v.ReqInfo)...), wxpay.ErrMalformed},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := wxpay.ParseV2RefundNotification(tt.body, v.Key); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseV2PaymentNotificationResultFail checks that a signed FAIL
// notification (which WeChat Pay documents but does not send) is returned
// typed, without a transaction_id, for the caller to refuse crediting.
func TestParseV2PaymentNotificationResultFail(t *testing.T) {
	var v signVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "sign_v2-2_notification.json"), &v)
	p := maps.Clone(v.Params)
	p["result_code"], p["err_code"], p["err_code_des"] = "FAIL", "NOTENOUGH", "余额不足"
	delete(p, "transaction_id")
	p["sign"], _ = wxpay.SignV2(p, wxpay.SignTypeHMACSHA256, v.Key)
	n, _, err := wxpay.ParseV2PaymentNotification(wxpay.EncodeV2XML(p), v.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	if n.ResultCode != "FAIL" || n.ErrCode != "NOTENOUGH" || n.TransactionID != "" {
		t.Errorf("notification = %+v", n)
	}
}

func TestV2ClientParseNotifications(t *testing.T) {
	body := MustReadFile(t, "notify_v2-2_hmac.xml")
	var rv reqInfoVector
	MustLoadJSON(t, filepath.Join("testdata", "v2", "reqinfo_v2-4_self.json"), &rv)
	refund := wxpay.EncodeV2XML(map[string]string{
		"return_code": "SUCCESS", "appid": "wx2421b1c4370ec43b", "mch_id": "10000100",
		"nonce_str": "n", "req_info": rv.ReqInfo,
	})
	tests := []struct {
		name        string
		appID, mch  string
		payWant     error
		refundWant  error
		paySignType string
	}{
		{"ours", "wx2421b1c4370ec43b", "10000100", nil, nil, wxpay.SignTypeHMACSHA256},
		{"ours, type by length", "wx2421b1c4370ec43b", "10000100", nil, nil, ""},
		{"other mch_id", "wx2421b1c4370ec43b", "10000101", wxpay.ErrV2NotOurs, wxpay.ErrV2NotOurs, ""},
		{"other appid", "wx0000000000000000", "10000100", wxpay.ErrV2NotOurs, wxpay.ErrV2NotOurs, ""},
		{"order placed with MD5", "wx2421b1c4370ec43b", "10000100", wxpay.ErrBadSignature, nil, wxpay.SignTypeMD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &wxpay.V2Client{AppID: tt.appID, MchID: tt.mch, APIKey: v2Key}
			n, _, err := c.ParsePaymentNotification(context.Background(), body, tt.paySignType)
			if !errors.Is(err, tt.payWant) || (err == nil) != (n != nil) {
				t.Errorf("payment: %v, %v; want %v", n, err, tt.payWant)
			}
			r, _, err := c.ParseRefundNotification(context.Background(), refund)
			if !errors.Is(err, tt.refundWant) || (err == nil) != (r != nil) {
				t.Errorf("refund: %v, %v; want %v", r, err, tt.refundWant)
			}
		})
	}
}

func BenchmarkParseV2PaymentNotification(b *testing.B) {
	body := MustReadFile(b, "notify_v2-2_hmac.xml")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := wxpay.ParseV2PaymentNotification(body, v2Key, ""); err != nil {
			b.Fatal(err)
		}
	}
}
