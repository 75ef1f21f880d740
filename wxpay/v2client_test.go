package wxpay_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"tollgate/wxpay"
)

const (
	testAppID = "wx2421b1c4370ec43b"
	testMchID = "10000100"
)

// fakeV2 is a small WeChat Pay v2 server for client tests: it decodes and
// verifies each request like the real service (FAIL 签名错误 otherwise),
// records it, and answers what Answer returns, signed with the request's
// sign_type unless Sign says otherwise. (The full emulator is wxpaysim.)
type fakeV2 struct {
	Key string
	// Answer returns the fields of the answer to a verified request; the
	// envelope (return_code, appid, mch_id, nonce_str) is added unless the
	// answer sets return_code itself.
	Answer func(path string, req map[string]string) map[string]string
	// Sign, when set, replaces signing: it gets the answer and may tamper
	// with it after signing.
	Sign func(ans map[string]string, signType, key string)
	// Raw, when set, answers with its result as is.
	Raw func(w http.ResponseWriter, path string, req map[string]string)

	mu   sync.Mutex
	reqs []fakeReq
}

type fakeReq struct {
	Path   string
	Params map[string]string
}

func (f *fakeV2) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeV2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	if r.Method != http.MethodPost {
		w.Write(wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "请使用post方法"}))
		return
	}
	req, err := wxpay.ReadV2XML(r.Body)
	if err != nil {
		w.Write(wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "XML格式错误"}))
		return
	}
	signType := req["sign_type"]
	if signType == "" {
		signType = wxpay.SignTypeMD5
	}
	if err := wxpay.VerifyV2(req, signType, f.Key); err != nil {
		w.Write(wxpay.EncodeV2XML(map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}))
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeReq{Path: r.URL.Path, Params: req})
	f.mu.Unlock()
	if f.Raw != nil {
		f.Raw(w, r.URL.Path, req)
		return
	}
	ans := f.Answer(r.URL.Path, req)
	if ans["return_code"] == "" {
		ans["return_code"] = "SUCCESS"
		ans["return_msg"] = "OK"
		ans["appid"] = req["appid"]
		ans["mch_id"] = req["mch_id"]
		ans["nonce_str"] = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
		if ans["result_code"] == "" {
			ans["result_code"] = "SUCCESS"
		}
	}
	if ans["return_code"] == "SUCCESS" {
		if f.Sign != nil {
			f.Sign(ans, signType, f.Key)
		} else {
			ans["sign"], _ = wxpay.SignV2(ans, signType, f.Key)
		}
	}
	w.Write(wxpay.EncodeV2XML(ans))
}

// MustV2Client starts f and returns a client for it.
func MustV2Client(tb testing.TB, f *fakeV2, signType string) *wxpay.V2Client {
	tb.Helper()
	if f.Key == "" {
		f.Key = v2Key
	}
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	return &wxpay.V2Client{
		BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: v2Key,
		SignType: signType, HTTPClient: srv.Client(),
	}
}

func nativeOrder() *wxpay.V2UnifiedOrderRequest {
	return &wxpay.V2UnifiedOrderRequest{
		OutTradeNo: "tg_20261126_0001", Body: "tollgate credits", TotalFee: 5000,
		SpbillCreateIP: "203.0.113.7", NotifyURL: "https://tollgate.example/wxpay/v2/notify",
		TradeType: wxpay.V2TradeTypeNative, ProductID: "credits-5000", Attach: "acct_1",
	}
}

func codeURLAnswer(string, map[string]string) map[string]string {
	return map[string]string{
		"trade_type": "NATIVE", "prepay_id": "wx201410272009395522657a690389285100",
		"code_url": "weixin://wxpay/bizpayurl?pr=GkbUkg4",
	}
}

func TestV2UnifiedOrderNative(t *testing.T) {
	for _, st := range []string{"", wxpay.SignTypeMD5, wxpay.SignTypeHMACSHA256} {
		t.Run("signType="+st, func(t *testing.T) {
			f := &fakeV2{Answer: codeURLAnswer}
			c := MustV2Client(t, f, st)
			resp, err := c.UnifiedOrder(context.Background(), nativeOrder())
			if err != nil {
				t.Fatal(err)
			}
			if resp.CodeURL != "weixin://wxpay/bizpayurl?pr=GkbUkg4" || resp.PrepayID == "" || resp.Raw["sign"] == "" {
				t.Errorf("response = %+v", resp)
			}
			reqs := f.requests()
			if len(reqs) != 1 || reqs[0].Path != "/pay/unifiedorder" {
				t.Fatalf("requests = %+v", reqs)
			}
			p := reqs[0].Params
			wantType := st
			if wantType == "" {
				wantType = wxpay.SignTypeMD5
			}
			for k, want := range map[string]string{
				"appid": testAppID, "mch_id": testMchID, "sign_type": wantType, "trade_type": "NATIVE",
				"product_id": "credits-5000", "total_fee": "5000", "out_trade_no": "tg_20261126_0001",
				"attach": "acct_1", "spbill_create_ip": "203.0.113.7",
			} {
				if p[k] != want {
					t.Errorf("request %s = %q, want %q", k, p[k], want)
				}
			}
			if _, ok := p["openid"]; ok {
				t.Error("empty openid was sent")
			}
			if len(p["nonce_str"]) != 32 {
				t.Errorf("nonce_str = %q, want 32 characters", p["nonce_str"])
			}
		})
	}
}

func TestV2UnifiedOrderJSAPIAndFreshNonce(t *testing.T) {
	f := &fakeV2{Answer: func(string, map[string]string) map[string]string {
		return map[string]string{"trade_type": "JSAPI", "prepay_id": "wx2014"}
	}}
	c := MustV2Client(t, f, wxpay.SignTypeHMACSHA256)
	o := nativeOrder()
	o.TradeType, o.ProductID, o.OpenID = wxpay.V2TradeTypeJSAPI, "", "oUpF8uMEb4qRXf22hE3X68TekukE"
	for range 2 {
		if resp, err := c.UnifiedOrder(context.Background(), o); err != nil || resp.PrepayID != "wx2014" {
			t.Fatalf("UnifiedOrder = %+v, %v", resp, err)
		}
	}
	reqs := f.requests()
	if reqs[0].Params["openid"] != o.OpenID {
		t.Errorf("openid not sent: %v", reqs[0].Params)
	}
	if reqs[0].Params["nonce_str"] == reqs[1].Params["nonce_str"] {
		t.Errorf("nonce_str reused: %s", reqs[0].Params["nonce_str"])
	}
}

func TestV2UnifiedOrderRefusedBeforeSending(t *testing.T) {
	tests := map[string]func(o *wxpay.V2UnifiedOrderRequest){
		"NATIVE without product_id": func(o *wxpay.V2UnifiedOrderRequest) { o.ProductID = "" },
		"JSAPI without openid":      func(o *wxpay.V2UnifiedOrderRequest) { o.TradeType = wxpay.V2TradeTypeJSAPI },
		"zero amount":               func(o *wxpay.V2UnifiedOrderRequest) { o.TotalFee = 0 },
		"negative amount":           func(o *wxpay.V2UnifiedOrderRequest) { o.TotalFee = -1 },
		"no out_trade_no":           func(o *wxpay.V2UnifiedOrderRequest) { o.OutTradeNo = "" },
		"no notify_url":             func(o *wxpay.V2UnifiedOrderRequest) { o.NotifyURL = "" },
		"unknown trade_type":        func(o *wxpay.V2UnifiedOrderRequest) { o.TradeType = "MICROPAY" },
	}
	f := &fakeV2{Answer: codeURLAnswer}
	c := MustV2Client(t, f, "")
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			o := nativeOrder()
			mutate(o)
			if _, err := c.UnifiedOrder(context.Background(), o); !errors.Is(err, wxpay.ErrV2Request) {
				t.Errorf("err = %v, want ErrV2Request", err)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// TestV2ClientErrors checks how every kind of answer is classified.
func TestV2ClientErrors(t *testing.T) {
	fail := func(code, des string) func(string, map[string]string) map[string]string {
		return func(string, map[string]string) map[string]string {
			return map[string]string{"result_code": "FAIL", "err_code": code, "err_code_des": des}
		}
	}
	tests := []struct {
		name      string
		fake      *fakeV2
		code      string // want *APIError with this Code ("-" for communication)
		retryable bool
		transport error // want *TransportError wrapping this
	}{
		{name: "return_code FAIL", fake: &fakeV2{Answer: func(string, map[string]string) map[string]string {
			return map[string]string{"return_code": "FAIL", "return_msg": "参数格式校验错误"}
		}}, code: "-", retryable: false},
		{name: "SYSTEMERROR", fake: &fakeV2{Answer: fail("SYSTEMERROR", "system error")}, code: "SYSTEMERROR", retryable: true},
		{name: "ORDERPAID", fake: &fakeV2{Answer: fail("ORDERPAID", "该订单已支付")}, code: "ORDERPAID", retryable: false},
		{name: "INVALID_REQUEST", fake: &fakeV2{Answer: fail("INVALID_REQUEST", "201 商户订单号重复")}, code: "INVALID_REQUEST"},
		{name: "tampered signature", fake: &fakeV2{Answer: codeURLAnswer, Sign: func(a map[string]string, st, k string) {
			a["sign"], _ = wxpay.SignV2(a, st, k)
			a["code_url"] = "weixin://wxpay/bizpayurl?pr=EVIL"
		}}, transport: wxpay.ErrBadSignature},
		{name: "signed with another key", fake: &fakeV2{Answer: codeURLAnswer, Sign: func(a map[string]string, st, _ string) {
			a["sign"], _ = wxpay.SignV2(a, st, "0000000000000000000000000000000a")
		}}, transport: wxpay.ErrBadSignature},
		{name: "unsigned SUCCESS", fake: &fakeV2{Answer: codeURLAnswer, Sign: func(map[string]string, string, string) {}},
			transport: wxpay.ErrNotSigned},
		{name: "unsigned result FAIL is not trusted", fake: &fakeV2{Answer: fail("ORDERPAID", "x"), Sign: func(map[string]string, string, string) {}},
			transport: wxpay.ErrNotSigned},
		{name: "answer for another merchant", fake: &fakeV2{Answer: func(string, map[string]string) map[string]string {
			a := codeURLAnswer("", nil)
			a["return_code"], a["result_code"], a["mch_id"], a["appid"] = "SUCCESS", "SUCCESS", "10000999", testAppID
			return a
		}}, transport: wxpay.ErrV2NotOurs},
		{name: "NATIVE without code_url", fake: &fakeV2{Answer: func(string, map[string]string) map[string]string {
			return map[string]string{"trade_type": "NATIVE"}
		}}, transport: wxpay.ErrMalformed},
		{name: "not XML", fake: &fakeV2{Raw: func(w http.ResponseWriter, _ string, _ map[string]string) { w.Write([]byte("<html>502</html>")) }},
			transport: wxpay.ErrMalformed},
		{name: "duplicate element", fake: &fakeV2{Raw: func(w http.ResponseWriter, _ string, _ map[string]string) {
			w.Write([]byte("<xml><return_code>SUCCESS</return_code><return_code>FAIL</return_code></xml>"))
		}}, transport: wxpay.ErrMalformed},
		{name: "no return_code", fake: &fakeV2{Raw: func(w http.ResponseWriter, _ string, _ map[string]string) {
			w.Write([]byte("<xml><prepay_id>wx1</prepay_id></xml>"))
		}}, transport: wxpay.ErrMalformed},
		{name: "signed answer without result_code", fake: &fakeV2{Answer: func(_ string, req map[string]string) map[string]string {
			return map[string]string{"return_code": "SUCCESS", "appid": req["appid"], "mch_id": req["mch_id"], "code_url": "weixin://x"}
		}}, transport: wxpay.ErrMalformed},
		{name: "oversized answer", fake: &fakeV2{Raw: func(w http.ResponseWriter, _ string, _ map[string]string) {
			w.Write([]byte("<xml><a>" + strings.Repeat("x", wxpay.MaxBodyBytes) + "</a></xml>"))
		}}, transport: wxpay.ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := MustV2Client(t, tt.fake, "")
			_, err := c.UnifiedOrder(context.Background(), nativeOrder())
			if tt.transport != nil {
				var te *wxpay.TransportError
				if !errors.As(err, &te) || !errors.Is(err, tt.transport) {
					t.Fatalf("err = %v, want *TransportError wrapping %v", err, tt.transport)
				}
				if !wxpay.IsRetryable(err) {
					t.Errorf("a transport error must be retryable (after a query)")
				}
				return
			}
			var api *wxpay.APIError
			if !errors.As(err, &api) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if api.Version != 2 || api.Communication != (tt.code == "-") {
				t.Errorf("APIError = %+v", api)
			}
			if tt.code != "-" && api.Code != tt.code {
				t.Errorf("Code = %q, want %q", api.Code, tt.code)
			}
			if api.Retryable() != tt.retryable {
				t.Errorf("Retryable = %v, want %v", api.Retryable(), tt.retryable)
			}
		})
	}
}

func TestV2ClientTransportFailures(t *testing.T) {
	t.Run("HTTP 500", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}))
		defer srv.Close()
		c := &wxpay.V2Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: v2Key}
		var te *wxpay.TransportError
		if _, err := c.QueryOrder(context.Background(), wxpay.V2OrderQuery{OutTradeNo: "x"}); !errors.As(err, &te) {
			t.Errorf("err = %v, want *TransportError", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c := &wxpay.V2Client{BaseURL: url, AppID: testAppID, MchID: testMchID, APIKey: v2Key}
		var te *wxpay.TransportError
		if _, err := c.QueryOrder(context.Background(), wxpay.V2OrderQuery{OutTradeNo: "x"}); !errors.As(err, &te) {
			t.Errorf("err = %v, want *TransportError", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		c := MustV2Client(t, &fakeV2{Answer: codeURLAnswer}, "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.UnifiedOrder(ctx, nativeOrder()); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestV2QueryOrder(t *testing.T) {
	f := &fakeV2{Answer: func(_ string, req map[string]string) map[string]string {
		return map[string]string{
			"trade_state": "SUCCESS", "trade_state_desc": "支付成功", "out_trade_no": "tg_1",
			"transaction_id": "4200000263202611260000000001", "total_fee": "5000", "cash_fee": "5000",
			"trade_type": "NATIVE", "openid": "oUpF8u", "time_end": "20261126101502", "attach": "acct_1",
			"bank_type": "OTHERS", "fee_type": "CNY",
		}
	}}
	c := MustV2Client(t, f, wxpay.SignTypeHMACSHA256)
	o, err := c.QueryOrder(context.Background(), wxpay.V2OrderQuery{TransactionID: "4200000263202611260000000001", OutTradeNo: "tg_1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.TradeState != wxpay.V2TradeStateSuccess || o.TotalFee != 5000 || o.CashFee != 5000 || o.TimeEnd != "20261126101502" || o.Attach != "acct_1" {
		t.Errorf("order = %+v", o)
	}
	p := f.requests()[0].Params
	if f.requests()[0].Path != "/pay/orderquery" || p["transaction_id"] == "" || p["out_trade_no"] != "" {
		t.Errorf("request = %v (transaction_id must be preferred, alone)", p)
	}
	if _, err := c.QueryOrder(context.Background(), wxpay.V2OrderQuery{}); !errors.Is(err, wxpay.ErrV2Request) {
		t.Errorf("empty query: err = %v", err)
	}
}

func TestV2CloseOrder(t *testing.T) {
	f := &fakeV2{Answer: func(_ string, req map[string]string) map[string]string {
		if req["out_trade_no"] == "paid" {
			return map[string]string{"result_code": "FAIL", "err_code": "ORDERPAID", "err_code_des": "订单已支付，不能发起关单"}
		}
		return map[string]string{"result_msg": "OK"}
	}}
	c := MustV2Client(t, f, "")
	if err := c.CloseOrder(context.Background(), "open"); err != nil {
		t.Errorf("close open order: %v", err)
	}
	if err := c.CloseOrder(context.Background(), "paid"); wxpay.ErrorCode(err) != "ORDERPAID" {
		t.Errorf("close paid order: err = %v, want ORDERPAID", err)
	}
	if got := f.requests()[0]; got.Path != "/pay/closeorder" || got.Params["out_trade_no"] != "open" {
		t.Errorf("request = %+v", got)
	}
}

func TestV2QueryRefund(t *testing.T) {
	f := &fakeV2{Answer: func(string, map[string]string) map[string]string {
		return map[string]string{
			"transaction_id": "4200000263202611260000000001", "out_trade_no": "tg_1", "total_fee": "5000",
			"cash_fee": "5000", "refund_count": "2", "total_refund_count": "2",
			"out_refund_no_0": "R1", "refund_id_0": "5000040894", "refund_fee_0": "1000",
			"refund_status_0": "SUCCESS", "refund_channel_0": "ORIGINAL", "refund_recv_accout_0": "支付用户的零钱",
			"refund_success_time_0": "2026-11-26 18:03:27", "settlement_refund_fee_0": "1000",
			"out_refund_no_1": "R2", "refund_id_1": "5000040895", "refund_fee_1": "500",
			"refund_status_1": "PROCESSING",
		}
	}}
	c := MustV2Client(t, f, "")
	r, err := c.QueryRefund(context.Background(), wxpay.V2RefundQuery{OutTradeNo: "tg_1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []wxpay.V2RefundItem{
		{OutRefundNo: "R1", RefundID: "5000040894", RefundChannel: "ORIGINAL", RefundStatus: "SUCCESS",
			RefundRecvAccout: "支付用户的零钱", RefundSuccessTime: "2026-11-26 18:03:27", RefundFee: 1000, SettlementRefundFee: 1000},
		{OutRefundNo: "R2", RefundID: "5000040895", RefundStatus: "PROCESSING", RefundFee: 500},
	}
	if r.TotalFee != 5000 || r.TotalRefundCount != 2 || len(r.Refunds) != 2 || r.Refunds[0] != want[0] || r.Refunds[1] != want[1] {
		t.Errorf("refunds = %+v", r)
	}
	if _, err := c.QueryRefund(context.Background(), wxpay.V2RefundQuery{}); !errors.Is(err, wxpay.ErrV2Request) {
		t.Errorf("empty query: err = %v", err)
	}
}

func TestV2QueryRefundMalformed(t *testing.T) {
	for name, ans := range map[string]map[string]string{
		"count beyond the items": {"refund_count": "2", "out_refund_no_0": "R1", "refund_status_0": "SUCCESS", "refund_fee_0": "1"},
		"absurd count":           {"refund_count": "100000"},
		"bad amount":             {"refund_count": "1", "out_refund_no_0": "R1", "refund_status_0": "SUCCESS", "refund_fee_0": "1.00"},
	} {
		t.Run(name, func(t *testing.T) {
			c := MustV2Client(t, &fakeV2{Answer: func(string, map[string]string) map[string]string { return maps.Clone(ans) }}, "")
			var te *wxpay.TransportError
			if _, err := c.QueryRefund(context.Background(), wxpay.V2RefundQuery{RefundID: "x"}); !errors.As(err, &te) || !errors.Is(err, wxpay.ErrMalformed) {
				t.Errorf("err = %v, want *TransportError wrapping ErrMalformed", err)
			}
		})
	}
}
