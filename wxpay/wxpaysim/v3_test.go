package wxpaysim_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay/wxpaysim"
)

func (e *env) v3OrderBody(no string, total int) []byte {
	return e.v3OrderBodyTo(no, total, e.rcv.srv.URL+"/wxpay/notify/v3")
}

// v3OrderBodyTo is a Native order body notifying notifyURL.
func (e *env) v3OrderBodyTo(no string, total int, notifyURL string) []byte {
	return []byte(fmt.Sprintf(`{"appid":%q,"mchid":%q,"description":"tollgate credits","out_trade_no":%q,"notify_url":%q,"amount":{"total":%d,"currency":"CNY"},"scene_info":{"payer_client_ip":"127.0.0.1","device_id":"fp-1"}}`,
		e.cfg.AppID, e.cfg.MchID, no, notifyURL, total))
}

func (e *env) v3Query(no string) (int, map[string]any) {
	e.t.Helper()
	st, b := e.v3("GET", "/v3/pay/transactions/out-trade-no/"+no+"?mchid="+e.cfg.MchID, nil)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return st, m
}

func TestV3NativePaymentFlow(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.HandshakeV3 = true })
	st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-FLOW-0001", 5000))
	var ord struct {
		CodeURL string `json:"code_url"`
	}
	if err := json.Unmarshal(b, &ord); st != 200 || err != nil || !strings.HasPrefix(ord.CodeURL, "weixin://wxpay/bizpayurl?pr=") {
		t.Fatalf("native order: %d %s", st, b)
	}
	if st, q := e.v3Query("T3-FLOW-0001"); st != 200 || q["trade_state"] != "NOTPAY" {
		t.Fatalf("query before paying: %d %v", st, q)
	}
	if st := e.simPost("/sim/orders/T3-FLOW-0001/pay"); st != 200 {
		t.Fatalf("sim pay %d", st)
	}
	if got := e.rcv.next(t); got.Method != http.MethodHead {
		t.Fatalf("first request %s, want HEAD", got.Method)
	}
	got := e.rcv.next(t)
	if err := verifyWechatpay(e.plat, got.Header, got.Body); err != nil {
		t.Fatalf("notification signature: %v", err)
	}
	if got.Header.Get("Wechatpay-Serial") != e.cfg.PlatformKeyID || got.Header.Get("Wechatpay-Signature-Type") != "WECHATPAY2-SHA256-RSA2048" {
		t.Fatalf("notification headers: %v", got.Header)
	}
	ev, tx := decryptResource(t, e.cfg.APIv3Key, got.Body)
	amount, _ := tx["amount"].(map[string]any)
	if ev != "TRANSACTION.SUCCESS" || tx["trade_state"] != "SUCCESS" || amount["total"] != float64(5000) || !txIDRe.MatchString(fmt.Sprint(tx["transaction_id"])) {
		t.Fatalf("notification %s %v", ev, tx)
	}
	st, q := e.v3Query("T3-FLOW-0001")
	if st != 200 || q["trade_state"] != "SUCCESS" || q["transaction_id"] != tx["transaction_id"] {
		t.Fatalf("query after paying: %d %v", st, q)
	}
	if st, _ := e.v3("GET", "/v3/pay/transactions/id/"+fmt.Sprint(tx["transaction_id"])+"?mchid="+e.cfg.MchID, nil); st != 200 {
		t.Fatalf("query by transaction_id: %d", st)
	}
}

func TestV3Refusals(t *testing.T) {
	e := mustEnv(t, nil)
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-EXISTING", 100)); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	body := func(no string, mutate func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(e.v3OrderBody(no, 100), &m)
		mutate(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name       string
		body       []byte
		key        *rsa.PrivateKey
		serial     string
		at         time.Time
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"WrongKey", e.v3OrderBody("T3-NEW-0001", 100), other, "", time.Time{}, 401, "SIGN_ERROR", ""},
		{"WrongSerial", e.v3OrderBody("T3-NEW-0002", 100), nil, "0000", time.Time{}, 401, "SIGN_ERROR", ""},
		{"StaleTimestamp", e.v3OrderBody("T3-NEW-0003", 100), nil, "", time.Now().Add(-6 * time.Minute), 401, "SIGN_ERROR", ""},
		{"MissingAmount", body("T3-NEW-0004", func(m map[string]any) { delete(m, "amount") }), nil, "", time.Time{}, 400, "PARAM_ERROR", "/amount"},
		{"FloatTotal", body("T3-NEW-0005", func(m map[string]any) { m["amount"] = map[string]any{"total": 1.5} }), nil, "", time.Time{}, 400, "PARAM_ERROR", "/amount/total"},
		{"MissingDescription", body("T3-NEW-0006", func(m map[string]any) { delete(m, "description") }), nil, "", time.Time{}, 400, "PARAM_ERROR", "/description"},
		{"ReusedNoOtherAmount", e.v3OrderBody("T3-EXISTING", 200), nil, "", time.Time{}, 400, "INVALID_REQUEST", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, serial, at := e.priv, e.cfg.MerchantSerial, time.Now()
			if tt.key != nil {
				key = tt.key
			}
			if tt.serial != "" {
				serial = tt.serial
			}
			if !tt.at.IsZero() {
				at = tt.at
			}
			before := digest(t, e.sim)
			st, b := e.v3With("POST", "/v3/pay/transactions/native", tt.body, key, serial, at)
			var ans struct {
				Code   string
				Detail struct{ Field string }
			}
			_ = json.Unmarshal(b, &ans)
			if st != tt.wantStatus || ans.Code != tt.wantCode || ans.Detail.Field != tt.wantField {
				t.Fatalf("got %d %s, want %d %s field %q", st, b, tt.wantStatus, tt.wantCode, tt.wantField)
			}
			if digest(t, e.sim) != before {
				t.Fatal("a refused request changed the emulator's state")
			}
		})
	}
	t.Run("UnknownOrder404", func(t *testing.T) {
		st, q := e.v3Query("T3-NOPE-0001")
		if st != 404 || q["code"] != "ORDER_NOT_EXIST" {
			t.Fatalf("%d %v", st, q)
		}
	})
	t.Run("NoAuthorization", func(t *testing.T) {
		resp, err := http.Get(e.base + "/v3/pay/transactions/out-trade-no/T3-EXISTING?mchid=" + e.cfg.MchID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestV3ReentryAndClose(t *testing.T) {
	e := mustEnv(t, nil)
	_, a := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-CLOSE-1", 100))
	_, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-CLOSE-1", 100))
	if string(a) != string(b) {
		t.Fatalf("re-entry answered %s then %s", a, b)
	}
	closeBody := []byte(`{"mchid":"` + e.cfg.MchID + `"}`)
	for i := range 2 {
		if st, b := e.v3("POST", "/v3/pay/transactions/out-trade-no/T3-CLOSE-1/close", closeBody); st != 204 || len(b) != 0 {
			t.Fatalf("close #%d: %d %s", i+1, st, b)
		}
	}
	if _, q := e.v3Query("T3-CLOSE-1"); q["trade_state"] != "CLOSED" {
		t.Fatalf("closed order reads %v", q)
	}
	e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-CLOSE-2", 100))
	if _, err := e.sim.Pay("T3-CLOSE-2"); err != nil {
		t.Fatal(err)
	}
	if st, b := e.v3("POST", "/v3/pay/transactions/out-trade-no/T3-CLOSE-2/close", closeBody); st != 400 || !strings.Contains(string(b), "ORDERPAID") {
		t.Fatalf("closing a paid order: %d %s", st, b)
	}
}

func TestV3RefundAndBill(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.RefundDelay = -1 })
	e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-REFUND-1", 100))
	if _, err := e.sim.Pay("T3-REFUND-1"); err != nil {
		t.Fatal(err)
	}
	refund := func(no string, amount int) (int, map[string]any) {
		st, b := e.v3("POST", "/v3/refund/domestic/refunds", []byte(fmt.Sprintf(
			`{"out_trade_no":"T3-REFUND-1","out_refund_no":%q,"notify_url":%q,"amount":{"refund":%d,"total":100,"currency":"CNY"}}`,
			no, e.rcv.srv.URL+"/wxpay/notify/v3", amount)))
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return st, m
	}
	st, r1 := refund("R3-1", 60)
	if st != 200 || r1["status"] != "PROCESSING" {
		t.Fatalf("refund: %d %v", st, r1)
	}
	if st, again := refund("R3-1", 60); st != 200 || again["refund_id"] != r1["refund_id"] {
		t.Fatalf("same out_refund_no: %d %v", st, again)
	}
	if st, m := refund("R3-2", 41); st != 400 || m["code"] != "INVALID_REQUEST" {
		t.Fatalf("refund beyond the paid amount: %d %v", st, m)
	}
	if st, m := refund("R3-2", 40); st != 200 || m["status"] != "PROCESSING" {
		t.Fatalf("second partial refund: %d %v", st, m)
	}
	if _, q := e.v3Query("T3-REFUND-1"); q["trade_state"] != "REFUND" {
		t.Fatalf("order after refund: %v", q)
	}
	if st := e.simPost("/sim/refunds/R3-1/complete"); st != 200 {
		t.Fatalf("complete: %d", st)
	}
	for got := e.rcv.next(t); ; got = e.rcv.next(t) {
		if got.Method != http.MethodPost {
			continue
		}
		ev, m := decryptResource(t, e.cfg.APIv3Key, got.Body)
		if ev == "TRANSACTION.SUCCESS" {
			continue // the payment's own notification
		}
		if ev != "REFUND.SUCCESS" || m["out_refund_no"] != "R3-1" || m["refund_status"] != "SUCCESS" {
			t.Fatalf("refund notification %s %v", ev, m)
		}
		break
	}
	st, b := e.v3("GET", "/v3/refund/domestic/refunds/R3-1", nil)
	if st != 200 || !strings.Contains(string(b), `"status":"SUCCESS"`) {
		t.Fatalf("refund query: %d %s", st, b)
	}
	if st, _ := e.v3("GET", "/v3/refund/domestic/refunds/R3-NOPE", nil); st != 404 {
		t.Fatalf("unknown refund: %d", st)
	}

	day := time.Now().In(tollgate.Beijing).Format(time.DateOnly)
	st, b = e.v3("GET", "/v3/bill/tradebill?bill_date="+day+"&bill_type=ALL", nil)
	var bill struct {
		DownloadURL string `json:"download_url"`
		HashValue   string `json:"hash_value"`
	}
	if err := json.Unmarshal(b, &bill); st != 200 || err != nil || !strings.HasPrefix(bill.DownloadURL, e.base+"/v3/billdownload/file?token=") {
		t.Fatalf("tradebill: %d %s", st, b)
	}
	st, file := e.v3("GET", strings.TrimPrefix(bill.DownloadURL, e.base), nil)
	if st != 200 || !strings.Contains(string(file), "`T3-REFUND-1") || !strings.Contains(string(file), "`1.00") || !strings.Contains(string(file), "`R3-2") {
		t.Fatalf("bill file: %d %s", st, file)
	}
}

func TestV3SignedOverFullPathUnderMount(t *testing.T) {
	e := mustEnv(t, nil)
	e.signPrefix = mount // as a generic client given the prefixed base URL signs
	if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-MOUNT-01", 100)); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	e.signPrefix = "/elsewhere"
	if st, _ := e.v3Query("T3-MOUNT-01"); st != 401 {
		t.Fatalf("signature over another path: %d, want 401", st)
	}
}

func TestRequireDeviceFingerprint(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.RequireDeviceFingerprint = true })
	t.Run("V2WithDeviceInfo", func(t *testing.T) {
		if a := e.v2("/pay/unifiedorder", e.v2Order("T-FP-V2-OK", 100), "MD5", e.cfg.APIKey); a["result_code"] != "SUCCESS" {
			t.Fatal(a)
		}
	})
	t.Run("V2WithoutDeviceInfo", func(t *testing.T) {
		p := e.v2Order("T-FP-V2-NO", 100)
		delete(p, "device_info")
		if a := e.v2("/pay/unifiedorder", p, "MD5", e.cfg.APIKey); a["err_code"] != "PARAM_ERROR" {
			t.Fatal(a)
		}
	})
	t.Run("V3WithDeviceID", func(t *testing.T) {
		if st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T-FP-V3-OK", 100)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	})
	t.Run("V3WithoutDeviceID", func(t *testing.T) {
		body := strings.Replace(string(e.v3OrderBody("T-FP-V3-NO", 100)), `,"device_id":"fp-1"`, "", 1)
		st, b := e.v3("POST", "/v3/pay/transactions/native", []byte(body))
		if st != 400 || !strings.Contains(string(b), `"field":"/scene_info/device_id"`) {
			t.Fatalf("%d %s", st, b)
		}
	})
}

func TestV3TimeExpire(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e := mustEnv(t, func(s *wxpaysim.Server) { s.Clock = tollgate.ClockFunc(func() time.Time { return now }) })
	body := strings.Replace(string(e.v3OrderBody("T3-EXP-001", 100)), `"amount"`,
		`"time_expire":"`+now.Add(30*time.Minute).In(tollgate.Beijing).Format(time.RFC3339)+`","amount"`, 1)
	// Requests are signed at the emulator's time, not the wall clock.
	if st, b := e.v3With("POST", "/v3/pay/transactions/native", []byte(body), e.priv, e.cfg.MerchantSerial, now); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	bad := strings.Replace(string(e.v3OrderBody("T3-EXP-002", 100)), `"amount"`, `"time_expire":"2026-05-01 20:30:00","amount"`, 1)
	if st, b := e.v3With("POST", "/v3/pay/transactions/native", []byte(bad), e.priv, e.cfg.MerchantSerial, now); st != 400 || !strings.Contains(string(b), "/time_expire") {
		t.Fatalf("non-RFC 3339 time_expire: %d %s", st, b)
	}
	e.sim.Advance(31 * time.Minute)
	o, err := e.sim.Order("T3-EXP-001")
	if err != nil || o.State != wxpaysim.StateClosed {
		t.Fatalf("after time_expire: %+v %v", o, err)
	}
}

func TestV3CertificatesPublicKeyMode(t *testing.T) {
	e := mustEnv(t, nil)
	st, b := e.v3("GET", "/v3/certificates", nil)
	if st != 404 || !strings.Contains(string(b), "RESOURCE_NOT_EXISTS") {
		t.Fatalf("%d %s", st, b)
	}
}

func TestV3SystemErrorFault(t *testing.T) {
	e := mustEnv(t, nil)
	if err := e.sim.SetFaults(wxpaysim.Faults{Seed: 1, SystemError: map[string]float64{"*": 1}}); err != nil {
		t.Fatal(err)
	}
	st, b := e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-SYSERR-1", 100))
	if st != 500 || !strings.Contains(string(b), `"code":"SYSTEM_ERROR"`) {
		t.Fatalf("%d %s", st, b)
	}
	if len(e.sim.Orders()) != 0 {
		t.Fatal("a SYSTEM_ERROR answer created an order")
	}
}

func TestV3NoHandshakeByDefault(t *testing.T) {
	e := mustEnv(t, nil)
	e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T3-NOHS-01", 100))
	if _, err := e.sim.Pay("T3-NOHS-01"); err != nil {
		t.Fatal(err)
	}
	if got := e.rcv.next(t); got.Method != http.MethodPost {
		t.Fatalf("first request %s: v3 notifications get no HEAD unless HandshakeV3", got.Method)
	}
}
