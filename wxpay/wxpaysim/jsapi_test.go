package wxpaysim_test

import (
	"encoding/json"
	"fmt"
	"testing"
)

// v3JSAPIBody is a JSAPI order body for the payer openid (none when empty).
func (e *env) v3JSAPIBody(no string, total int, openid string) []byte {
	var m map[string]any
	_ = json.Unmarshal(e.v3OrderBody(no, total), &m)
	if openid != "" {
		m["payer"] = map[string]any{"openid": openid}
	}
	b, _ := json.Marshal(m)
	return b
}

// mustJSAPIOrder places a JSAPI order and returns its prepay_id.
func (e *env) mustJSAPIOrder(no string, total int, openid string) string {
	e.t.Helper()
	st, b := e.v3("POST", "/v3/pay/transactions/jsapi", e.v3JSAPIBody(no, total, openid))
	var ans struct {
		PrepayID string `json:"prepay_id"`
	}
	if err := json.Unmarshal(b, &ans); st != 200 || err != nil || ans.PrepayID == "" {
		e.t.Fatalf("jsapi order: %d %s", st, b)
	}
	return ans.PrepayID
}

func TestV3JSAPIOrderNeedsOpenID(t *testing.T) {
	e := mustEnv(t, nil)
	for name, body := range map[string][]byte{
		"NoPayer":     e.v3JSAPIBody("T3-JS-NOID", 100, ""),
		"EmptyOpenID": []byte(`{"appid":"` + e.cfg.AppID + `","mchid":"` + e.cfg.MchID + `","description":"x","out_trade_no":"T3-JS-NOID","notify_url":"https://shop.example/n","amount":{"total":100},"payer":{"openid":""}}`),
	} {
		t.Run(name, func(t *testing.T) {
			before := digest(t, e.sim)
			st, b := e.v3("POST", "/v3/pay/transactions/jsapi", body)
			var ans struct {
				Code   string                 `json:"code"`
				Detail struct{ Field string } `json:"detail"`
			}
			_ = json.Unmarshal(b, &ans)
			if st != 400 || ans.Code != "PARAM_ERROR" || ans.Detail.Field != "/payer/openid" {
				t.Fatalf("%d %s, want 400 PARAM_ERROR at /payer/openid", st, b)
			}
			if digest(t, e.sim) != before {
				t.Fatal("a refused order changed the emulator's state")
			}
		})
	}
}

// TestV3JSAPIOrderReportsThePayer: the openid of the order is the payer's in
// the ground truth, the query and the notification, with trade_type JSAPI.
func TestV3JSAPIOrderReportsThePayer(t *testing.T) {
	e := mustEnv(t, nil)
	const openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	e.mustJSAPIOrder("T3-JS-0001", 300, openid)
	if o, _ := e.sim.Order("T3-JS-0001"); o.OpenID != openid || o.TradeType != "JSAPI" {
		t.Fatalf("ground truth: openid %q trade_type %q", o.OpenID, o.TradeType)
	}
	if st, q := e.v3Query("T3-JS-0001"); st != 200 || q["trade_type"] != "JSAPI" || q["trade_state"] != "NOTPAY" {
		t.Fatalf("query before paying: %d %v", st, q)
	}
	if st := e.simPost("/sim/orders/T3-JS-0001/pay"); st != 200 {
		t.Fatalf("pay: %d", st)
	}
	got := e.rcv.next(t)
	_, tx := decryptResource(t, e.cfg.APIv3Key, got.Body)
	if tx["trade_type"] != "JSAPI" || fmt.Sprint(tx["payer"]) != fmt.Sprint(map[string]any{"openid": openid}) {
		t.Fatalf("notification: %v", tx)
	}
	st, q := e.v3Query("T3-JS-0001")
	if st != 200 || q["trade_type"] != "JSAPI" || fmt.Sprint(q["payer"]) != fmt.Sprint(map[string]any{"openid": openid}) {
		t.Fatalf("query after paying: %d %v", st, q)
	}
}
