package wxpaysim_test

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

var txIDRe = regexp.MustCompile(`^[0-9]{28}$`)

func TestV2NativePaymentFlow(t *testing.T) {
	for _, signType := range []string{wxpay.SignTypeMD5, wxpay.SignTypeHMACSHA256} {
		t.Run(signType, func(t *testing.T) {
			e := mustEnv(t, nil)
			key := e.cfg.APIKey
			ans := e.v2("/pay/unifiedorder", e.v2Order("T2-"+signType[:3]+"-0001", 5000), signType, key)
			if ans["return_code"] != "SUCCESS" || ans["result_code"] != "SUCCESS" {
				t.Fatalf("unifiedorder: %v", ans)
			}
			if !strings.HasPrefix(ans["code_url"], "weixin://wxpay/bizpayurl?pr=") || ans["prepay_id"] == "" {
				t.Fatalf("code_url %q prepay_id %q", ans["code_url"], ans["prepay_id"])
			}
			no := "T2-" + signType[:3] + "-0001"
			if q := e.v2Query(no); q["trade_state"] != "NOTPAY" || q["total_fee"] != "5000" {
				t.Fatalf("query before paying: %v", q)
			}
			if st := e.simPost("/sim/orders/" + no + "/pay"); st != http.StatusOK {
				t.Fatalf("sim pay: %d", st)
			}
			if got := e.rcv.next(t); got.Method != http.MethodHead {
				t.Fatalf("first request %s, want the HEAD handshake", got.Method)
			}
			got := e.rcv.next(t)
			if got.Method != http.MethodPost {
				t.Fatalf("second request %s, want POST", got.Method)
			}
			n, err := wxpay.DecodeV2XML(got.Body)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := n["sign_type"]; ok {
				t.Errorf("notification carries sign_type; WeChat Pay omits it")
			}
			if err := wxpay.VerifyV2(n, signType, key); err != nil {
				t.Fatalf("notification signature with %s: %v", signType, err)
			}
			if n["total_fee"] != "5000" || n["out_trade_no"] != no || !txIDRe.MatchString(n["transaction_id"]) || n["result_code"] != "SUCCESS" {
				t.Fatalf("notification fields: %v", n)
			}
			q := e.v2Query(no)
			if q["trade_state"] != "SUCCESS" || q["transaction_id"] != n["transaction_id"] || q["time_end"] == "" {
				t.Fatalf("query after paying: %v", q)
			}
		})
	}
}

func TestV2JSAPIOrder(t *testing.T) {
	e := mustEnv(t, nil)
	p := e.v2Order("T2-JSAPI-1", 100)
	p["trade_type"], p["openid"] = "JSAPI", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	delete(p, "product_id")
	ans := e.v2("/pay/unifiedorder", p, wxpay.SignTypeMD5, e.cfg.APIKey)
	if ans["result_code"] != "SUCCESS" || ans["prepay_id"] == "" || ans["code_url"] != "" {
		t.Fatalf("JSAPI order: %v", ans)
	}
}

func TestV2Refusals(t *testing.T) {
	e := mustEnv(t, nil)
	key := e.cfg.APIKey
	if a := e.v2("/pay/unifiedorder", e.v2Order("T2-EXISTING", 100), wxpay.SignTypeMD5, key); a["result_code"] != "SUCCESS" {
		t.Fatal(a)
	}
	with := func(no string, f func(map[string]string)) map[string]string {
		p := e.v2Order(no, 100)
		f(p)
		return p
	}
	tests := []struct {
		name     string
		params   map[string]string
		signKey  string
		wantMsg  string // return_msg when return_code=FAIL
		wantCode string // err_code otherwise
	}{
		{"WrongKey", e.v2Order("T2-NEW-0001", 100), "00000000000000000000000000000000", "签名错误", ""},
		{"MissingBody", with("T2-NEW-0002", func(p map[string]string) { delete(p, "body") }), key, "", "LACK_PARAMS"},
		{"MissingProductIDForNative", with("T2-NEW-0003", func(p map[string]string) { delete(p, "product_id") }), key, "", "LACK_PARAMS"},
		{"BadFee", with("T2-NEW-0004", func(p map[string]string) { p["total_fee"] = "1.5" }), key, "", "PARAM_ERROR"},
		{"ZeroFee", with("T2-NEW-0005", func(p map[string]string) { p["total_fee"] = "0" }), key, "", "PARAM_ERROR"},
		{"UnknownParam", with("T2-NEW-0006", func(p map[string]string) { p["appId"] = "x" }), key, "", "PARAM_ERROR"},
		{"OtherMerchant", with("T2-NEW-0007", func(p map[string]string) { p["mch_id"] = "1900000000" }), key, "", "MCHID_NOT_EXIST"},
		{"ReusedNoOtherAmount", e.v2Order("T2-EXISTING", 200), key, "", "INVALID_REQUEST"},
		{"NotifyURLWithQuery", with("T2-NEW-0008", func(p map[string]string) { p["notify_url"] += "?a=1" }), key, "", "PARAM_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := digest(t, e.sim)
			a := e.v2("/pay/unifiedorder", tt.params, wxpay.SignTypeMD5, tt.signKey)
			if tt.wantMsg != "" {
				if a["return_code"] != "FAIL" || a["return_msg"] != tt.wantMsg || a["sign"] != "" {
					t.Fatalf("answer %v, want unsigned return_code=FAIL %s", a, tt.wantMsg)
				}
			} else if a["result_code"] != "FAIL" || a["err_code"] != tt.wantCode {
				t.Fatalf("answer %v, want err_code %s", a, tt.wantCode)
			}
			if tt.name == "ReusedNoOtherAmount" && a["err_code_des"] != "201 商户订单号重复" {
				t.Errorf("err_code_des = %q", a["err_code_des"])
			}
			if after := digest(t, e.sim); after != before {
				t.Fatal("a refused request changed the emulator's state")
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(e.base + "/pay/unifiedorder")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, _ := wxpay.ReadV2XML(resp.Body)
		if m["return_code"] != "FAIL" || m["return_msg"] != "请使用post方法" {
			t.Fatal(m)
		}
	})
	t.Run("Doctype", func(t *testing.T) {
		m := e.v2Raw("/pay/unifiedorder", []byte(`<!DOCTYPE x [<!ENTITY a "b">]><xml><a>&a;</a></xml>`), wxpay.SignTypeMD5, key)
		if m["return_code"] != "FAIL" {
			t.Fatal(m)
		}
	})
	t.Run("Unmodelled", func(t *testing.T) {
		resp, err := http.Post(e.base+"/pay/micropay", "text/xml", bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want a loud 404", resp.StatusCode)
		}
	})
}

func TestV2ReentryReturnsSameCodeURL(t *testing.T) {
	e := mustEnv(t, nil)
	a := e.v2("/pay/unifiedorder", e.v2Order("T2-REENTRY", 100), wxpay.SignTypeMD5, e.cfg.APIKey)
	b := e.v2("/pay/unifiedorder", e.v2Order("T2-REENTRY", 100), wxpay.SignTypeMD5, e.cfg.APIKey)
	if a["code_url"] == "" || a["code_url"] != b["code_url"] {
		t.Fatalf("re-entry code_url %q then %q", a["code_url"], b["code_url"])
	}
	if n := len(e.sim.Orders()); n != 1 {
		t.Fatalf("%d orders after re-entry, want 1", n)
	}
}

func TestV2Close(t *testing.T) {
	e := mustEnv(t, nil)
	key := e.cfg.APIKey
	closeOrder := func(no string) map[string]string {
		return e.v2("/pay/closeorder", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": no}, wxpay.SignTypeMD5, key)
	}
	e.v2("/pay/unifiedorder", e.v2Order("T2-CLOSE-1", 100), wxpay.SignTypeMD5, key)
	e.v2("/pay/unifiedorder", e.v2Order("T2-CLOSE-2", 100), wxpay.SignTypeMD5, key)
	if _, err := e.sim.Pay("T2-CLOSE-2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, no, wantCode string
	}{
		{"Unpaid", "T2-CLOSE-1", ""},
		{"AgainORDERCLOSED", "T2-CLOSE-1", "ORDERCLOSED"},
		{"PaidORDERPAID", "T2-CLOSE-2", "ORDERPAID"},
		{"UnknownORDERNOTEXIST", "T2-CLOSE-X", "ORDERNOTEXIST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := closeOrder(tt.no)
			if a["err_code"] != tt.wantCode {
				t.Fatalf("close %s: %v, want err_code %q", tt.no, a, tt.wantCode)
			}
		})
	}
	if q := e.v2Query("T2-CLOSE-1"); q["trade_state"] != "CLOSED" {
		t.Fatalf("closed order reads %v", q)
	}
	if a := e.v2("/pay/unifiedorder", e.v2Order("T2-CLOSE-1", 100), wxpay.SignTypeMD5, key); a["err_code"] != "ORDERCLOSED" {
		t.Fatalf("re-entry of a closed order: %v", a)
	}
}

func TestV2Sandbox(t *testing.T) {
	e := mustEnv(t, nil)
	a := e.v2Raw("/sandboxnew/pay/getsignkey", signed(t, map[string]string{"mch_id": e.cfg.MchID, "nonce_str": nonce()}, e.cfg.APIKey), wxpay.SignTypeMD5, "")
	sk := a["sandbox_signkey"]
	if a["return_code"] != "SUCCESS" || len(sk) != 32 || sk == e.cfg.APIKey || sk != e.cfg.SandboxKey {
		t.Fatalf("getsignkey: %v", a)
	}
	if a := e.v2("/sandboxnew/pay/unifiedorder", e.v2Order("T2-SANDBOX", 101), wxpay.SignTypeMD5, e.cfg.APIKey); a["return_msg"] != "签名错误" {
		t.Fatalf("sandbox request signed with the API key: %v", a)
	}
	if a := e.v2("/sandboxnew/pay/unifiedorder", e.v2Order("T2-SANDBOX", 101), wxpay.SignTypeMD5, sk); a["result_code"] != "SUCCESS" {
		t.Fatalf("sandbox order: %v", a)
	}
	if q := e.v2Query("T2-SANDBOX"); q["err_code"] != "ORDERNOTEXIST" {
		t.Fatalf("sandbox order visible in production: %v", q)
	}
	if _, err := e.sim.Pay("T2-SANDBOX"); err != nil {
		t.Fatal(err)
	}
	e.rcv.next(t) // HEAD
	n, _ := wxpay.DecodeV2XML(e.rcv.next(t).Body)
	if err := wxpay.VerifyV2(n, wxpay.SignTypeMD5, sk); err != nil {
		t.Fatalf("sandbox notification not signed with the sandbox key: %v", err)
	}
	rf := e.v2("/sandboxnew/pay/refund", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T2-SANDBOX",
		"out_refund_no": "R-SANDBOX", "total_fee": "101", "refund_fee": "101"}, wxpay.SignTypeMD5, sk)
	if rf["result_code"] != "SUCCESS" {
		t.Fatalf("sandbox refund: %v", rf)
	}
}

func signed(t testing.TB, p map[string]string, key string) []byte {
	t.Helper()
	sig, err := wxpay.SignV2(p, wxpay.SignTypeMD5, key)
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sig
	return wxpay.EncodeV2XML(p)
}

func TestV2SystemErrorFault(t *testing.T) {
	e := mustEnv(t, nil)
	if err := e.sim.SetFaults(wxpaysim.Faults{Seed: 1, SystemError: map[string]float64{"order": 1}}); err != nil {
		t.Fatal(err)
	}
	a := e.v2("/pay/unifiedorder", e.v2Order("T2-SYSERR", 100), wxpay.SignTypeMD5, e.cfg.APIKey)
	if a["err_code"] != "SYSTEMERROR" {
		t.Fatalf("answer %v, want SYSTEMERROR", a)
	}
	if len(e.sim.Orders()) != 0 {
		t.Fatal("a SYSTEMERROR answer created an order")
	}
	if q := e.v2Query("T2-SYSERR"); q["err_code"] != "ORDERNOTEXIST" {
		t.Fatalf("query after SYSTEMERROR: %v (only order calls were to fail)", q)
	}
	if err := e.sim.SetFaults(wxpaysim.Faults{SystemError: map[string]float64{"nope": 1}}); err == nil {
		t.Fatal("unknown endpoint accepted")
	}
}
