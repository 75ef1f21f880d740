package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tollgate/gateway/mockllm"
	"tollgate/internal/testenv"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// The production path end to end, as an operator runs it: `tollgate
// sandbox` in another process stands in for WeChat Pay, configured from key
// files the test generates (the merchant's certificate, WeChat Pay's key
// and public key id or platform certificates, the APIv3 key); `serve --mode
// production` takes the matching files; an https reverse proxy made by the
// test is the public URL WeChat Pay notifies, and the sandbox trusts its
// certificate (--notify-ca). Native, H5 and JSAPI orders are paid the way
// a payer would (the simulation API, the H5 page's Pay button, the JSAPI
// sheet with the order's signed parameters) and credited exactly once.
//
// Each test runs one sandbox process for its verification mode and, over
// it, serve on SQLite and then two serve instances on PostgreSQL and Redis
// (skipped unless those are available, a failure when
// TOLLGATE_REQUIRE_SERVICES=1).

// TestProductionPublicKeyMode: WeChat Pay verified with its public key
// (PUB_KEY_ID_…), as merchants since 2024 have it.
func TestProductionPublicKeyMode(t *testing.T) {
	e := newProductionWeChatPay(t, false)
	t.Run("SQLite", func(t *testing.T) { e.run(t, 1) })
	t.Run("PostgresRedisTwoInstances", func(t *testing.T) { e.run(t, 2) })
}

// TestProductionCertificateMode: WeChat Pay verified with platform
// certificates downloaded from /v3/certificates; WeChat Pay rotates its
// certificate in the middle of the run (retiring the old one at once) and
// no notification fails; a notification signed with the rotated-out key is
// refused.
func TestProductionCertificateMode(t *testing.T) {
	e := newProductionWeChatPay(t, true)
	t.Run("SQLite", func(t *testing.T) { e.run(t, 1) })
	t.Run("PostgresRedisTwoInstances", func(t *testing.T) { e.run(t, 2) })
}

// productionWeChatPay is an operator's WeChat Pay (the sandbox process),
// its keys, and the https front door of the deployment under test.
type productionWeChatPay struct {
	keys      *operatorKeys
	certMode  bool
	simURL    string
	sim       client
	front     *frontDoor
	providers string
	adminFile string
	admin     string
	appSecret string // file
}

func newProductionWeChatPay(t *testing.T, certMode bool) *productionWeChatPay {
	k := newOperatorKeys(t, 0)
	front := newFrontDoor(t)
	caFile := filepath.Join(k.Dir, "front-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := writeFile(t, "app-secret", "tollgateTestAppSecret0123456789ab\n")
	// Time scale 0.01: a refund is PROCESSING for 0.6 s; signatures keep
	// the real clock.
	// WeChat's OAuth sends the browser back only to the deployment's
	// public host, its web authorization domain.
	simURL := startSandboxProc(t, k, certMode, "--notify-ca", caFile, "--app-secret-file", secret, "--time-scale", "0.01",
		"--redirect-host", strings.TrimPrefix(front.srv.URL, "https://"))
	up := httptest.NewServer(&mockllm.Server{})
	t.Cleanup(up.Close)
	admin := "tga_production_" + strings.Repeat("a", 32)
	return &productionWeChatPay{keys: k, certMode: certMode, simURL: simURL, sim: client{t, simURL}, front: front,
		providers: providersAt(t, up.URL), adminFile: writeFile(t, "admin-token", admin+"\n"), admin: admin, appSecret: secret}
}

// serveArgs are the flags of one production instance: everything from
// files and flags, as an operator would give them.
func (e *productionWeChatPay) serveArgs() []string {
	a := []string{"--mode", "production", "--public-url", e.front.srv.URL, "--providers", e.providers,
		"--admin-token-file", e.adminFile, "--wxpay-url", e.simURL, "--wxpay-mch-id", testMchID, "--wxpay-appid", testAppID,
		"--trusted-proxy-header", "X-Forwarded-For",
		"--wechat-app-secret-file", e.appSecret, "--wechat-oauth-url", e.simURL, "--wechat-api-url", e.simURL}
	return append(a, e.keys.serveV3Args(e.certMode)...)
}

// deployment is the instances under test behind the front door.
type deployment struct {
	*productionWeChatPay
	t   *testing.T
	api []client // each instance, directly (the test is its own proxy, sending X-Forwarded-For)
}

// run starts n instances (1: SQLite; 2: PostgreSQL and Redis) and walks
// every payment method and bad input through them.
func (e *productionWeChatPay) run(t *testing.T, n int) {
	args := e.serveArgs()
	if n > 1 {
		dbURL := testenv.MustPostgres(t)
		redisURL, prefix := testenv.MustRedis(t)
		args = append(args, "--database-url", dbURL, "--redis-url", redisURL, "--redis-prefix", prefix)
	}
	d := &deployment{productionWeChatPay: e, t: t}
	var targets []*url.URL
	for range n {
		m := MustRunMain(t, args...)
		if m.Sim != nil {
			t.Fatal("production built the in-process emulator")
		}
		addr := "http://" + m.ln.Addr().String()
		d.api = append(d.api, client{t, addr})
		u, _ := url.Parse(addr)
		targets = append(targets, u)
	}
	e.front.route(targets)
	t.Cleanup(func() { e.front.route(nil) })
	d.payEveryMethod()
}

// prodOrder is the answer of POST /v1/payments/orders.
type prodOrder struct {
	OutTradeNo string               `json:"out_trade_no"`
	Method     string               `json:"method"`
	Status     string               `json:"status"`
	Credits    int64                `json:"credits"`
	AmountFen  int64                `json:"amount_fen"`
	CodeURL    string               `json:"code_url"`
	H5URL      string               `json:"h5_url"`
	JSAPI      *wxpay.V3JSAPIParams `json:"jsapi"`
}

// order places an order through c as a payer behind the front door at
// clientIP ("" for a request without X-Forwarded-For). It returns the
// status and the answer.
func (d *deployment) order(c client, key, body, clientIP string) (int, prodOrder, []byte) {
	d.t.Helper()
	hdr := map[string]string{"Idempotency-Key": "idem-" + testenv.RandomSuffix(8)}
	if clientIP != "" {
		hdr["X-Forwarded-For"] = clientIP
	}
	st, b, _ := c.call("POST", "/v1/payments/orders", key, body, hdr)
	var o prodOrder
	if st == http.StatusCreated {
		if err := json.Unmarshal(b, &o); err != nil {
			d.t.Fatalf("order answer %s: %v", b, err)
		}
	}
	return st, o, b
}

func (d *deployment) mustOrder(c client, key, method, openid, clientIP string) prodOrder {
	d.t.Helper()
	body := fmt.Sprintf(`{"package_id":"starter","device_fingerprint":%q,"method":%q`, fingerprint, method)
	if openid != "" {
		body += fmt.Sprintf(`,"openid":%q`, openid)
	}
	st, o, b := d.order(c, key, body+"}", clientIP)
	if st != http.StatusCreated || o.Method != method || o.Status != "NOTPAY" || o.Credits <= 0 {
		d.t.Fatalf("%s order: %d %s", method, st, b)
	}
	return o
}

// payEveryMethod pays a native, an H5 and a JSAPI order (in certificate
// mode, WeChat Pay rotates its certificate after the first), checks each
// is credited exactly once with no failed notification, refunds one, and
// sends each bad input.
func (d *deployment) payEveryMethod() {
	t := d.t
	api := func(i int) client { return d.api[i%len(d.api)] }
	acct := mustAccount(api(0), d.admin)
	var credited int64
	waitCredited := func(o prodOrder) {
		t.Helper()
		credited += o.Credits
		// Read through the last instance: the first placed the order. The
		// ledger's credit commits before the order is marked paid.
		c := api(len(d.api) - 1)
		eventually(t, o.Method+" order "+o.OutTradeNo+" credited and paid", func() bool {
			var got struct{ Status string }
			c.must(http.StatusOK, "GET", "/v1/payments/orders/"+o.OutTradeNo, acct.APIKey, "", &got)
			return got.Status == "SUCCESS" && mustBalance(c, acct.APIKey).Credits == credited
		})
	}

	// Native: the payer scans code_url and pays.
	native := d.mustOrder(api(0), acct.APIKey, "native", "", "198.51.100.10")
	if !strings.HasPrefix(native.CodeURL, "weixin://") {
		t.Errorf("native code_url %q", native.CodeURL)
	}
	d.sim.must(http.StatusOK, "POST", "/sim/orders/"+native.OutTradeNo+"/pay", "", "", nil)
	waitCredited(native)

	var retired string
	if d.certMode {
		// WeChat Pay rotates: a new certificate signs from now on and the
		// old one is no longer listed.
		var cfg wxpaysim.Config
		d.sim.must(http.StatusOK, "GET", "/sim/config", "", "", &cfg)
		retired = cfg.PlatformCertificateSerial
		var rot struct {
			Serial  string
			Serials []string
		}
		d.sim.must(http.StatusOK, "POST", "/sim/rotate-certificate?retire=1", "", "", &rot)
		if rot.Serial == retired || len(rot.Serials) != 1 || retired == "" {
			t.Fatalf("rotation from %s: %+v", retired, rot)
		}
	}

	// H5: the payer's browser opens h5_url and presses Pay. Its first
	// notification after a rotation reaches instance 0.
	d.front.pin(0)
	h5 := d.mustOrder(api(1), acct.APIKey, "h5", "", "203.0.113.7")
	if !strings.HasPrefix(h5.H5URL, d.simURL+"/sim/h5/pay?prepay_id=") {
		t.Fatalf("h5_url %q is not the sandbox's payment page", h5.H5URL)
	}
	resp, err := http.Get(h5.H5URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("H5 page: %d", resp.StatusCode)
	}
	resp, err = http.Post(h5.H5URL, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("H5 Pay button: %d", resp.StatusCode)
	}
	var simOrder wxpaysim.Order
	d.sim.must(http.StatusOK, "GET", "/sim/orders/"+h5.OutTradeNo, "", "", &simOrder)
	if simOrder.PayerClientIP != "203.0.113.7" || simOrder.NotifyURL != d.front.srv.URL+"/wxpay/notify/v3" {
		t.Errorf("WeChat Pay got payer_client_ip %q and notify_url %q, want the payer's and the public URL's",
			simOrder.PayerClientIP, simOrder.NotifyURL)
	}
	waitCredited(h5)

	// JSAPI: the page inside WeChat hands the signed parameters to the
	// payment sheet, which checks paySign with the merchant's key.
	d.front.pin(len(d.api) - 1)
	jsapi := d.mustOrder(api(0), acct.APIKey, "jsapi", "oPayerOpenID_0123456789", "198.51.100.11")
	if jsapi.JSAPI == nil || jsapi.JSAPI.AppID != testAppID || jsapi.JSAPI.SignType != "RSA" ||
		wxpay.VerifyV3JSAPIPaySign(&testRSAKey(t, 0).PublicKey, *jsapi.JSAPI) != nil {
		t.Fatalf("jsapi parameters %+v do not verify with the merchant's key", jsapi.JSAPI)
	}
	sheet, _ := json.Marshal(jsapi.JSAPI)
	var paid struct {
		ErrMsg string `json:"err_msg"`
	}
	d.sim.must(http.StatusOK, "POST", "/sim/jsapi/pay", "", string(sheet), &paid)
	if paid.ErrMsg != "get_brand_wcpay_request:ok" {
		t.Fatalf("JSAPI sheet: %q", paid.ErrMsg)
	}
	waitCredited(jsapi)
	d.front.pin(-1)

	// The checkout opened inside WeChat: WeChat's OAuth (--wechat-oauth-url,
	// the code exchanged at --wechat-api-url with the AppSecret file) gives
	// the page the payer's openid, and its JSAPI sheet pays.
	checkout := d.payInsideWeChat(api(1), acct.APIKey)
	waitCredited(checkout)

	// Each order paid, credited once, through every instance.
	for i := range d.api {
		if b := mustBalance(api(i), acct.APIKey); b.Credits != credited || b.Debt != 0 {
			t.Errorf("instance %d: balance %+v, want exactly %d credits", i, b, credited)
		}
		for _, o := range []prodOrder{native, h5, jsapi, checkout} {
			var got struct{ Status, Method string }
			api(i).must(http.StatusOK, "GET", "/v1/payments/orders/"+o.OutTradeNo, acct.APIKey, "", &got)
			if got.Status != "SUCCESS" || got.Method != o.Method {
				t.Errorf("instance %d: order %s is %+v", i, o.OutTradeNo, got)
			}
		}
	}

	// A notification signed with the rotated-out certificate is refused
	// by every instance and credits nothing.
	if d.certMode {
		for i := range d.api {
			d.front.pin(i)
			var del wxpaysim.Delivery
			d.sim.must(http.StatusOK, "POST", "/sim/orders/"+native.OutTradeNo+"/notify-signed-by?serial="+retired, "", "", &del)
			if del.Status != http.StatusBadRequest || del.SignedBy != retired {
				t.Errorf("instance %d answered a notification signed by retired certificate %s with %d %s", i, retired, del.Status, del.Reply)
			}
		}
		d.front.pin(-1)
		if b := mustBalance(api(0), acct.APIKey); b.Credits != credited {
			t.Errorf("after the rotated-out notifications: balance %+v, want %d", b, credited)
		}
	}

	// A refund, asked by the operator (production's default --refund-policy
	// admin refuses the user's own), notified the same way.
	var refund struct {
		Credits int64  `json:"credits"`
		Status  string `json:"status"`
	}
	api(1).must(http.StatusForbidden, "POST", "/v1/payments/orders/"+native.OutTradeNo+"/refund", acct.APIKey, "", nil)
	if st, b, _ := api(1).call("POST", "/admin/orders/"+native.OutTradeNo+"/refund", d.admin, `{"reason":"the payer asked"}`,
		map[string]string{"Idempotency-Key": "prod-refund-1"}); st != http.StatusOK || json.Unmarshal(b, &refund) != nil {
		t.Fatalf("refund: %d %s", st, b)
	}
	if refund.Credits != native.Credits {
		t.Fatalf("refund %+v of the unused order worth %d credits", refund, native.Credits)
	}
	eventually(t, "the refund notification acknowledged", func() bool {
		for _, dl := range d.deliveries(native.OutTradeNo) {
			if dl.Kind == "refund" && (dl.Outcome == wxpaysim.OutcomeAcked || dl.Outcome == wxpaysim.OutcomeDuplicateAcked) {
				return true
			}
		}
		return false
	})
	if b := mustBalance(api(0), acct.APIKey); b.Credits != credited-native.Credits {
		t.Errorf("after the refund: balance %+v, want %d", b, credited-native.Credits)
	}

	// Every notification WeChat Pay sent was acknowledged at the first
	// attempt, the rotation included; only the rotated-out ones failed.
	for _, o := range []prodOrder{native, h5, jsapi, checkout} {
		acked := 0
		for _, dl := range d.deliveries(o.OutTradeNo) {
			switch {
			case dl.SignedBy != "":
			case dl.Outcome == wxpaysim.OutcomeAcked || dl.Outcome == wxpaysim.OutcomeDuplicateAcked:
				acked++
			default:
				t.Errorf("order %s: a %s notification was %s (HTTP %d %s %s)", o.OutTradeNo, dl.Kind, dl.Outcome, dl.Status, dl.Reply, dl.Err)
			}
		}
		if acked == 0 {
			t.Errorf("order %s: no notification acknowledged", o.OutTradeNo)
		}
	}

	// Bad input: each refused with its parameter named, nothing placed.
	before := len(d.simOrders())
	for _, tc := range []struct {
		name, body, clientIP, param string
	}{
		{"jsapi without openid", `{"package_id":"starter","device_fingerprint":"` + fingerprint + `","method":"jsapi"}`, "198.51.100.12", "openid"},
		{"h5 without a client IP", `{"package_id":"starter","device_fingerprint":"` + fingerprint + `","method":"h5"}`, "", "client_ip"},
		{"unknown method", `{"package_id":"starter","device_fingerprint":"` + fingerprint + `","method":"app"}`, "198.51.100.12", "method"},
	} {
		st, _, b := d.order(api(0), acct.APIKey, tc.body, tc.clientIP)
		var e struct{ Error struct{ Param string } }
		_ = json.Unmarshal(b, &e)
		if st != http.StatusBadRequest || e.Error.Param != tc.param {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, st, b, tc.param)
		}
	}
	if after := len(d.simOrders()); after != before {
		t.Errorf("bad orders reached WeChat Pay: %d orders before, %d after", before, after)
	}
}

// wechatUA is WeChat's in-app browser on an iPhone.
const wechatUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2f) NetType/WIFI Language/zh_CN"

// payInsideWeChat opens a checkout link in WeChat's browser through the
// front door, follows WeChat's OAuth, places the page's JSAPI order and
// pays it with the sheet. It returns the order.
func (d *deployment) payInsideWeChat(api client, key string) prodOrder {
	t := d.t
	var session struct{ URL string }
	api.must(http.StatusCreated, "POST", "/v1/checkout/sessions", key, `{"package_id":"starter"}`, &session)
	if !strings.HasPrefix(session.URL, d.front.srv.URL+"/checkout/") {
		t.Fatalf("checkout link %q is not under the public URL", session.URL)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var hops []string
	browser := &http.Client{Jar: jar, Transport: d.front.srv.Client().Transport,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			hops = append(hops, r.URL.String())
			return nil
		}}
	do := func(method, u, body string, hdr map[string]string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", wechatUA)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, page := do("GET", session.URL, "", nil); st != http.StatusOK {
		t.Fatalf("checkout inside WeChat: %d %s", st, page)
	}
	authorize := d.simURL + "/connect/oauth2/authorize?appid=" + testAppID + "&redirect_uri=" + url.QueryEscape(session.URL+"/wechat")
	if len(hops) != 3 || !strings.HasPrefix(hops[0], authorize) || !strings.HasPrefix(hops[1], session.URL+"/wechat?") || !strings.HasPrefix(hops[2], session.URL) {
		t.Fatalf("the checkout inside WeChat went %q, want WeChat's OAuth (%s…) and back", hops, authorize)
	}
	st, b := do("POST", session.URL+"/orders", `{"package_id":"starter","device_fingerprint":"`+fingerprint+`","method":"jsapi"}`,
		map[string]string{"Content-Type": "application/json", "Idempotency-Key": "wechat-" + testenv.RandomSuffix(6)})
	var o struct {
		prodOrder
		JSAPI *wxpay.V3JSAPIParams `json:"jsapi"`
	}
	if err := json.Unmarshal(b, &o); st != http.StatusCreated || err != nil || o.Method != "jsapi" || o.JSAPI == nil {
		t.Fatalf("the page's jsapi order: %d %s", st, b)
	}
	var simOrder wxpaysim.Order
	d.sim.must(http.StatusOK, "GET", "/sim/orders/"+o.OutTradeNo, "", "", &simOrder)
	if simOrder.OpenID == "" || simOrder.TradeType != "JSAPI" {
		t.Errorf("WeChat Pay got the page's order as %s for openid %q", simOrder.TradeType, simOrder.OpenID)
	}
	sheet, _ := json.Marshal(o.JSAPI)
	var paid struct {
		ErrMsg string `json:"err_msg"`
	}
	d.sim.must(http.StatusOK, "POST", "/sim/jsapi/pay", "", string(sheet), &paid)
	if paid.ErrMsg != "get_brand_wcpay_request:ok" {
		t.Fatalf("JSAPI sheet: %q", paid.ErrMsg)
	}
	o.prodOrder.JSAPI = o.JSAPI
	return o.prodOrder
}

// deliveries are WeChat Pay's notification attempts for an order.
func (d *deployment) deliveries(outTradeNo string) []wxpaysim.Delivery {
	var all, out []wxpaysim.Delivery
	d.sim.must(http.StatusOK, "GET", "/sim/notifications", "", "", &all)
	for _, dl := range all {
		if dl.OutTradeNo == outTradeNo && dl.Method == http.MethodPost {
			out = append(out, dl)
		}
	}
	return out
}

func (d *deployment) simOrders() []json.RawMessage {
	var os []json.RawMessage
	d.sim.must(http.StatusOK, "GET", "/sim/orders", "", "", &os)
	return os
}

// frontDoor is the deployment's https reverse proxy: the public URL users
// and WeChat Pay reach, forwarding to the instances in turn (or to one,
// pinned) and appending X-Forwarded-For as a proxy does.
type frontDoor struct {
	srv *httptest.Server

	mu      sync.Mutex
	targets []*url.URL
	pinned  int // -1: in turn
	next    int
}

func newFrontDoor(t *testing.T) *frontDoor {
	f := &frontDoor{pinned: -1}
	f.srv = httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(f.pick())
		r.SetXForwarded()
		r.Out.Host = r.In.Host
	}})
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *frontDoor) route(targets []*url.URL) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets, f.pinned, f.next = targets, -1, 0
}

// pin sends every request to instance i (-1: in turn again).
func (f *frontDoor) pin(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinned = i
}

func (f *frontDoor) pick() *url.URL {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.targets) == 0 {
		return &url.URL{Scheme: "http", Host: "127.0.0.1:1"} // between tests: nothing behind the door
	}
	if f.pinned >= 0 {
		return f.targets[f.pinned%len(f.targets)]
	}
	f.next++
	return f.targets[f.next%len(f.targets)]
}
