package wxpaysim_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/wxpay/wxpaysim"
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

// jsapiParams are the params of getBrandWCPayRequest, as a merchant's
// server builds them.
type jsapiParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// signJSAPI returns params for prepayID signed with key (RSA-SHA256 of
// "appId\ntimeStamp\nnonceStr\npackage\n", base64), written here from the
// JSAPI documentation rather than with package wxpay.
func signJSAPI(t testing.TB, key *rsa.PrivateKey, appID, prepayID string) jsapiParams {
	t.Helper()
	p := jsapiParams{AppID: appID, TimeStamp: strconv.FormatInt(time.Now().Unix(), 10), NonceStr: nonce(),
		Package: "prepay_id=" + prepayID, SignType: "RSA"}
	resign(t, key, &p)
	return p
}

func resign(t testing.TB, key *rsa.PrivateKey, p *jsapiParams) {
	t.Helper()
	sum := sha256.Sum256([]byte(p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	p.PaySign = base64.StdEncoding.EncodeToString(sig)
}

// sheet posts body to the payment sheet and returns the status and answer.
func (e *env) sheet(body []byte) (int, map[string]string, http.Header) {
	e.t.Helper()
	resp, err := http.Post(e.base+"/sim/jsapi/pay", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		e.t.Fatalf("sheet answer is not JSON: %v", err)
	}
	return resp.StatusCode, ans, resp.Header
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJSAPIPaymentSheetPays(t *testing.T) {
	e := mustEnv(t, nil)
	const openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	prepay := e.mustJSAPIOrder("T3-SHEET-0001", 990, openid)
	st, ans, hdr := e.sheet(mustJSON(t, signJSAPI(t, e.priv, e.cfg.AppID, prepay)))
	if st != 200 || ans["err_msg"] != "get_brand_wcpay_request:ok" {
		t.Fatalf("sheet: %d %v", st, ans)
	}
	if hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("answer without Access-Control-Allow-Origin: %v", hdr)
	}
	o, _ := e.sim.Order("T3-SHEET-0001")
	if o.State != wxpaysim.StateSuccess || o.OpenID != openid {
		t.Fatalf("order after the sheet: %s openid %q", o.State, o.OpenID)
	}
	_, tx := decryptResource(t, e.cfg.APIv3Key, e.rcv.next(t).Body)
	if tx["trade_state"] != "SUCCESS" || tx["trade_type"] != "JSAPI" || tx["out_trade_no"] != "T3-SHEET-0001" {
		t.Fatalf("notification: %v", tx)
	}
}

func TestJSAPIPaymentSheetRefusals(t *testing.T) {
	e := mustEnv(t, nil)
	prepay := e.mustJSAPIOrder("T3-SHEET-0002", 100, "oTestOpenID0000000000000002")
	h5 := e.mustH5Order("T3-SHEET-H5", 100)
	paid := e.mustJSAPIOrder("T3-SHEET-PAID", 100, "oTestOpenID0000000000000003")
	if st := e.simPost("/sim/orders/T3-SHEET-PAID/pay"); st != 200 {
		t.Fatalf("pay: %d", st)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := func() jsapiParams { return signJSAPI(t, e.priv, e.cfg.AppID, prepay) }
	tests := []struct {
		name   string
		params func() []byte
		reason string
	}{
		{"NotJSON", func() []byte { return []byte("prepay_id=" + prepay) }, "JSON"},
		{"OtherAppID", func() []byte { return mustJSON(t, signJSAPI(t, e.priv, "wx0000000000000000", prepay)) }, "appId"},
		{"SignTypeMD5", func() []byte { p := good(); p.SignType = "MD5"; return mustJSON(t, p) }, "signType"},
		{"TimeStampNotANumber", func() []byte { p := good(); p.TimeStamp = "now"; resign(t, e.priv, &p); return mustJSON(t, p) }, "timeStamp"},
		{"NoNonce", func() []byte { p := good(); p.NonceStr = ""; resign(t, e.priv, &p); return mustJSON(t, p) }, "nonceStr"},
		{"PackageWithoutPrefix", func() []byte { p := good(); p.Package = prepay; resign(t, e.priv, &p); return mustJSON(t, p) }, "package"},
		{"SignedByAnotherKey", func() []byte { return mustJSON(t, signJSAPI(t, other, e.cfg.AppID, prepay)) }, "paySign"},
		{"TamperedNonce", func() []byte { p := good(); p.NonceStr = p.NonceStr[1:] + "X"; return mustJSON(t, p) }, "paySign"},
		{"PaySignNotBase64", func() []byte { p := good(); p.PaySign = "not base64!"; return mustJSON(t, p) }, "paySign"},
		{"UnknownPrepayID", func() []byte { return mustJSON(t, signJSAPI(t, e.priv, e.cfg.AppID, "wx0000")) }, "prepay_id"},
		{"H5Order", func() []byte {
			return mustJSON(t, signJSAPI(t, e.priv, e.cfg.AppID, strings.TrimPrefix(h5, e.base+"/sim/h5/pay?prepay_id=")))
		}, "not a v3 JSAPI"},
		{"AlreadyPaid", func() []byte { return mustJSON(t, signJSAPI(t, e.priv, e.cfg.AppID, paid)) }, "SUCCESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := digest(t, e.sim)
			st, ans, _ := e.sheet(tt.params())
			if st != 400 || ans["err_msg"] != "get_brand_wcpay_request:fail" || !strings.Contains(ans["reason"], tt.reason) {
				t.Fatalf("%d %v, want 400 fail with a reason about %q", st, ans, tt.reason)
			}
			if digest(t, e.sim) != before {
				t.Fatal("a refused payment changed the emulator's state")
			}
		})
	}
}

// TestJSAPIPaymentSheetChecksThePayer: when the sheet knows who is paying
// (the body's openid, else the browser's wxpaysim_openid cookie from the
// emulator's OAuth), only the order's payer can pay; anyone else gets a
// 400 fail and nothing is paid.
func TestJSAPIPaymentSheetChecksThePayer(t *testing.T) {
	e, _, _ := oauthEnv(t)
	// browser is a WeChat user's browser: the emulator's OAuth gives it an
	// openid (kept in its cookie), for which the merchant orders.
	browser := func(no string) (*http.Client, string, []byte) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: noRedirects.CheckRedirect}
		code := e.mustAuthorize(c, e.authorizeURL("https://shop.example/cb", "s", nil)).Query().Get("code")
		ans := e.exchange(e.cfg.AppID, testAppSecret, code, "authorization_code")
		openid, _ := ans["openid"].(string)
		if openid == "" {
			t.Fatalf("exchange: %v", ans)
		}
		return c, openid, mustJSON(t, signJSAPI(t, e.priv, e.cfg.AppID, e.mustJSAPIOrder(no, 100, openid)))
	}
	post := func(c *http.Client, body []byte) (int, map[string]string) {
		t.Helper()
		resp, err := c.Post(e.base+"/sim/jsapi/pay", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ans map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&ans)
		return resp.StatusCode, ans
	}
	refused := func(t *testing.T, c *http.Client, body []byte, no, reason string) {
		t.Helper()
		before := digest(t, e.sim)
		if st, ans := post(c, body); st != 400 || ans["err_msg"] != "get_brand_wcpay_request:fail" || !strings.Contains(ans["reason"], reason) {
			t.Fatalf("%d %v, want 400 fail about %q", st, ans, reason)
		}
		if o, _ := e.sim.Order(no); o.State != wxpaysim.StateNotPay || digest(t, e.sim) != before {
			t.Fatalf("a refused sheet changed the emulator's state (order %s)", o.State)
		}
	}
	withOpenID := func(body []byte, openid string) []byte {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["openid"] = openid
		return mustJSON(t, m)
	}

	alice, aliceID, aliceSheet := browser("T3-PAYER-A")
	bob, bobID, bobSheet := browser("T3-PAYER-B")
	if aliceID == bobID {
		t.Fatalf("two browsers got the same openid %s", aliceID)
	}
	t.Run("ErrAnotherUsersCookie", func(t *testing.T) {
		refused(t, bob, aliceSheet, "T3-PAYER-A", "another WeChat user")
	})
	t.Run("ErrAnotherUsersOpenID", func(t *testing.T) {
		refused(t, http.DefaultClient, withOpenID(aliceSheet, bobID), "T3-PAYER-A", "another WeChat user")
		// The body's openid is the payer even with the order's cookie.
		refused(t, alice, withOpenID(aliceSheet, bobID), "T3-PAYER-A", "another WeChat user")
	})
	t.Run("ErrMalformedOpenID", func(t *testing.T) {
		refused(t, alice, withOpenID(aliceSheet, "o<script>"), "T3-PAYER-A", "openid must be")
	})
	t.Run("ThePayerPays", func(t *testing.T) {
		if st, ans := post(alice, aliceSheet); st != 200 || ans["err_msg"] != "get_brand_wcpay_request:ok" {
			t.Fatalf("the order's payer: %d %v", st, ans)
		}
		if st, ans := post(http.DefaultClient, withOpenID(bobSheet, bobID)); st != 200 || ans["err_msg"] != "get_brand_wcpay_request:ok" {
			t.Fatalf("the order's payer by the body's openid: %d %v", st, ans)
		}
		for _, no := range []string{"T3-PAYER-A", "T3-PAYER-B"} {
			if o, _ := e.sim.Order(no); o.State != wxpaysim.StateSuccess {
				t.Fatalf("order %s is %s", no, o.State)
			}
		}
	})
}

func TestJSAPIPaymentSheetAnswersThePreflight(t *testing.T) {
	e := mustEnv(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, e.base+"/sim/jsapi/pay", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
}

// TestJSAPIBridgeScript runs bridge.js in Node (skipped without it) as a
// page would: WeixinJSBridge.invoke pays through the emulator's absolute
// URL and hands the answer to the callback.
func TestJSAPIBridgeScript(t *testing.T) {
	e := mustEnv(t, nil)
	resp, err := http.Get(e.base + "/sim/jsapi/bridge.js")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") ||
		!strings.Contains(string(src), strconv.Quote(e.base+"/sim/jsapi/pay")) {
		t.Fatalf("bridge.js: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), src)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		// As testenv.Required, not imported: it would link pgx, Redis and chromedp here.
		if os.Getenv("TOLLGATE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("node is required (TOLLGATE_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("skipping the run of bridge.js: %v", err)
	}
	prepay := e.mustJSAPIOrder("T3-BRIDGE-0001", 500, "oTestOpenID0000000000000004")
	dir := t.TempDir()
	script := `globalThis.window = globalThis;
globalThis.document = new EventTarget();
let ready = false;
document.addEventListener("WeixinJSBridgeReady", () => { ready = true; });
` + string(src) + `
if (!ready) { console.log(JSON.stringify({err_msg: "no WeixinJSBridgeReady"})); process.exit(0); }
WeixinJSBridge.invoke("getBrandWCPayRequest", JSON.parse(process.argv[2]), (res) => { console.log(JSON.stringify(res)); });
`
	if err := os.WriteFile(filepath.Join(dir, "page.js"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(p jsapiParams) map[string]string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "page.js"), string(mustJSON(t, p))).CombinedOutput()
		var ans map[string]string
		if err != nil || json.Unmarshal(out, &ans) != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		return ans
	}
	bad := signJSAPI(t, e.priv, e.cfg.AppID, prepay)
	bad.NonceStr = bad.NonceStr[1:] + "X" // hex never has X
	if ans := run(bad); ans["err_msg"] != "get_brand_wcpay_request:fail" || !strings.Contains(ans["reason"], "paySign") {
		t.Fatalf("tampered params through the bridge: %v", ans)
	}
	if o, _ := e.sim.Order("T3-BRIDGE-0001"); o.State != wxpaysim.StateNotPay {
		t.Fatalf("refused params paid the order: %s", o.State)
	}
	if ans := run(signJSAPI(t, e.priv, e.cfg.AppID, prepay)); ans["err_msg"] != "get_brand_wcpay_request:ok" {
		t.Fatalf("bridge: %v", ans)
	}
	if o, _ := e.sim.Order("T3-BRIDGE-0001"); o.State != wxpaysim.StateSuccess {
		t.Fatalf("after the bridge: %s", o.State)
	}
}
