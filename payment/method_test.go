package payment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// openID is a well-formed openid, as WeChat's OAuth gives it.
const openID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"

// v3Mode is the one mode that places H5 and JSAPI orders.
var v3Mode = modes[2]

// forEachBackendV3 runs body on every backend, over API v3.
func forEachBackendV3(t *testing.T, body func(t *testing.T, w *world)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			body(t, newWorld(t, b, v3Mode, nil))
		})
	}
}

// mustVerifyJSAPI checks p is a pay sheet for prepayID signed by the
// emulator's merchant key.
func mustVerifyJSAPI(t *testing.T, w *world, p *wxpay.V3JSAPIParams, prepayID string) {
	t.Helper()
	if p == nil {
		t.Fatal("no jsapi parameters")
	}
	if p.AppID != w.sim.Config().AppID || p.Package != "prepay_id="+prepayID || p.SignType != "RSA" || p.NonceStr == "" {
		t.Fatalf("jsapi %+v for prepay_id %s", p, prepayID)
	}
	if err := wxpay.VerifyV3JSAPIPaySign(&w.v3.MerchantKey.PublicKey, *p); err != nil {
		t.Fatalf("paySign: %v", err)
	}
}

// paySheet submits p to the emulator's JSAPI payment sheet, as
// WeixinJSBridge does inside WeChat, and returns its err_msg.
func paySheet(t *testing.T, w *world, p *wxpay.V3JSAPIParams) string {
	t.Helper()
	b, _ := json.Marshal(p)
	resp, err := w.v3.HTTPClient.Post(w.simURL+"/sim/jsapi/pay", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ErrMsg string `json:"err_msg"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Reason != "" {
		t.Logf("pay sheet: %s", out.Reason)
	}
	return out.ErrMsg
}

// TestCreateOrderMethods: each method places its kind of order at the
// emulator and answers with what the payer needs — code_url, h5_url or a
// signed JSAPI pay sheet — recorded with the order; the payment of each
// (its notification says trade_type NATIVE, MWEB or JSAPI) credits the
// order's credits exactly once.
func TestCreateOrderMethods(t *testing.T) {
	t.Parallel()
	forEachBackendV3(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		native, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodNative})
		if err != nil || native.Method != payment.MethodNative || native.CodeURL == "" || native.H5URL != "" || native.JSAPI != nil {
			t.Fatalf("native = %+v, %v", native, err)
		}
		h5, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodH5, ClientIP: "203.0.113.9"})
		if err != nil || h5.Method != payment.MethodH5 || h5.H5URL == "" || h5.CodeURL != "" || h5.JSAPI != nil {
			t.Fatalf("h5 = %+v, %v", h5, err)
		}
		js, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodJSAPI, OpenID: openID})
		if err != nil || js.Method != payment.MethodJSAPI || js.CodeURL != "" || js.H5URL != "" {
			t.Fatalf("jsapi = %+v, %v", js, err)
		}
		// What the emulator was asked for, and what the store keeps.
		for _, c := range []struct {
			res       payment.OrderResult
			tradeType string
		}{{native, "NATIVE"}, {h5, "MWEB"}, {js, "JSAPI"}} {
			so, err := w.sim.Order(c.res.OutTradeNo)
			if err != nil || so.TradeType != c.tradeType {
				t.Fatalf("emulator has %s as %+v, %v; want %s", c.res.OutTradeNo, so, err, c.tradeType)
			}
			o := w.order(c.res.OutTradeNo)
			if o.Method != c.res.Method || o.CodeURL != c.res.CodeURL || o.H5URL != c.res.H5URL || !o.Placed() {
				t.Fatalf("stored %+v for %+v", o, c.res)
			}
		}
		if so, _ := w.sim.Order(h5.OutTradeNo); !strings.Contains(h5.H5URL, so.PrepayID) {
			t.Fatalf("h5_url %s is not the emulator's for prepay_id %s", h5.H5URL, so.PrepayID)
		}
		so, _ := w.sim.Order(js.OutTradeNo)
		if o := w.order(js.OutTradeNo); o.OpenID != openID || o.PrepayID != so.PrepayID || so.OpenID != openID {
			t.Fatalf("jsapi stored %+v, emulator %+v", o, so)
		}
		mustVerifyJSAPI(t, w, js.JSAPI, so.PrepayID)

		// Pay each: the QR code and the H5 page through the emulator, the
		// JSAPI order through its pay sheet with the parameters returned.
		for _, no := range []string{native.OutTradeNo, h5.OutTradeNo} {
			if _, err := w.sim.Pay(no); err != nil {
				t.Fatal(err)
			}
		}
		if msg := paySheet(t, w, js.JSAPI); msg != wxpaysim.JSAPIPayOK {
			t.Fatalf("pay sheet answered %q", msg)
		}
		for _, no := range []string{native.OutTradeNo, h5.OutTradeNo, js.OutTradeNo} {
			w.waitStatus(no, payment.StatusSuccess)
			w.eventually("the ack of "+no, func() bool { return acked(w.sim, no) > 0 })
		}
		w.quiesce()
		if ls := w.lots("alice"); len(ls) != 3 {
			t.Fatalf("%d lots, want 3", len(ls))
		}
		if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Credits != 3*native.Credits {
			t.Fatalf("balance %+v, want %d credits", b, 3*native.Credits)
		}
		// A paid order has no pay sheet any more.
		if p, err := w.svc.JSAPIParams(w.order(js.OutTradeNo)); p != nil || err != nil {
			t.Fatalf("JSAPIParams of a paid order = %+v, %v", p, err)
		}
	})
}

// TestJSAPIReplay: a replay with the same Idempotency-Key, and every read
// of a payable JSAPI order, answers a pay sheet for the same prepay_id
// (within a minute the same one, see TestJSAPISheetReused) without placing
// the order again; another method or openid under that key is refused.
func TestJSAPIReplay(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], v3Mode, nil)
	w.mustAccount("alice")
	req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k-js", PackageID: "plus", DeviceFingerprint: fp,
		Method: payment.MethodJSAPI, OpenID: openID}
	first, err := w.svc.CreateOrder(w.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := w.svc.CreateOrder(w.ctx, req)
	if err != nil || !again.Replayed || again.OutTradeNo != first.OutTradeNo || again.JSAPI == nil ||
		*again.JSAPI != *first.JSAPI ||
		again.AccessToken == nil || again.AccessToken.Token != first.AccessToken.Token {
		t.Fatalf("replay = %+v, %v\nfirst %+v", again, err, first)
	}
	so, _ := w.sim.Order(first.OutTradeNo)
	mustVerifyJSAPI(t, w, again.JSAPI, so.PrepayID)
	w.clock.Advance(time.Minute)
	read, err := w.svc.JSAPIParams(w.order(first.OutTradeNo))
	if err != nil || read == nil || read.Package != again.JSAPI.Package || read.NonceStr == again.JSAPI.NonceStr {
		t.Fatalf("JSAPIParams = %+v, %v", read, err)
	}
	mustVerifyJSAPI(t, w, read, so.PrepayID)
	if c := w.sim.Stats().Calls["order"]; c != 1 {
		t.Fatalf("%d order placements, want 1", c)
	}
	for name, change := range map[string]func(*payment.CreateOrderRequest){
		"method": func(r *payment.CreateOrderRequest) { r.Method, r.OpenID = payment.MethodNative, "" },
		"openid": func(r *payment.CreateOrderRequest) { r.OpenID = "oOtherPayer" },
	} {
		other := req
		change(&other)
		_, err := w.svc.CreateOrder(w.ctx, other)
		if tollgate.ErrorCode(err) != tollgate.ECONFLICT {
			t.Fatalf("same key, other %s: %v, want ECONFLICT", name, err)
		}
	}
	// "native" and "" are one method: the same request.
	nat := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k-nat", PackageID: "plus", DeviceFingerprint: fp}
	a, err := w.svc.CreateOrder(w.ctx, nat)
	if err != nil {
		t.Fatal(err)
	}
	nat.Method = payment.MethodNative
	if b, err := w.svc.CreateOrder(w.ctx, nat); err != nil || !b.Replayed || b.OutTradeNo != a.OutTradeNo || b.Method != payment.MethodNative {
		t.Fatalf("native replay = %+v, %v", b, err)
	}
}

// TestJSAPIResumeAfterFailure: when WeChat Pay does not answer, a retry
// with the same Idempotency-Key places the recorded JSAPI order with the
// openid it was recorded with.
func TestJSAPIResumeAfterFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], v3Mode, nil)
	w.mustAccount("alice")
	if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 1, SystemError: map[string]float64{"order": 1}}); err != nil {
		t.Fatal(err)
	}
	req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k", PackageID: "starter", DeviceFingerprint: fp,
		Method: payment.MethodJSAPI, OpenID: openID}
	var err error
	w.clock.Run(func() { _, err = w.svc.CreateOrder(w.ctx, req) })
	wantCode(t, err, tollgate.EUNAVAILABLE)
	os, _ := w.store.ListOrders(w.ctx, "alice", 10)
	if len(os) != 1 || os[0].Placed() || os[0].Method != payment.MethodJSAPI || os[0].OpenID != openID {
		t.Fatalf("recorded %+v", os)
	}
	if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.CreateOrder(w.ctx, req)
	if err != nil || res.OutTradeNo != os[0].OutTradeNo || res.JSAPI == nil || res.AccessToken == nil {
		t.Fatalf("resumed = %+v, %v", res, err)
	}
	if so, err := w.sim.Order(res.OutTradeNo); err != nil || so.OpenID != openID || so.TradeType != "JSAPI" {
		t.Fatalf("emulator order %+v, %v", so, err)
	}
}

// recordingGateway records what PlaceOrder is asked.
type recordingGateway struct {
	payment.Gateway
	mu    sync.Mutex
	calls []payment.PlaceRequest
	// answer, when set, replaces the inner gateway's answer.
	answer *payment.Placement
}

func (g *recordingGateway) PlaceOrder(ctx context.Context, r payment.PlaceRequest) (payment.Placement, error) {
	g.mu.Lock()
	g.calls = append(g.calls, r)
	answer := g.answer
	g.mu.Unlock()
	if answer != nil {
		return *answer, nil
	}
	return g.Gateway.PlaceOrder(ctx, r)
}

func (g *recordingGateway) placed() []payment.PlaceRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]payment.PlaceRequest(nil), g.calls...)
}

// TestCreateMethodRefused: each bad method, openid or client IP is refused
// with a PARAM_ERROR naming the field, before anything is recorded or sent
// to WeChat Pay; on API v2, H5 and JSAPI are refused as needing API v3.
func TestCreateMethodRefused(t *testing.T) {
	t.Parallel()
	for _, m := range []mode{modes[0], v3Mode} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			var gw *recordingGateway
			w := newWorld(t, backends[0], m, func(_ *payment.Config, d *payment.Deps) {
				var inner payment.Gateway = &payment.V2Gateway{Client: d.V2}
				if m.version == payment.APIv3 {
					inner = &payment.V3Gateway{Client: d.V3}
				}
				gw = &recordingGateway{Gateway: inner}
				d.Gateway = gw
			})
			w.mustAccount("alice")
			type bad struct {
				name, param, message string
				req                  payment.CreateOrderRequest
			}
			cases := []bad{
				{"unknown method", "method", "method must be native, h5 or jsapi", payment.CreateOrderRequest{Method: "alipay"}},
				{"method in capitals", "method", "method must be native, h5 or jsapi", payment.CreateOrderRequest{Method: "JSAPI", OpenID: openID}},
				{"openid on native", "openid", "openid is only for method jsapi", payment.CreateOrderRequest{OpenID: openID}},
				{"bad client ip", "client_ip", "client IP is not an IP address", payment.CreateOrderRequest{ClientIP: "localhost"}},
			}
			if m.version == payment.APIv3 {
				cases = append(cases,
					bad{"jsapi without openid", "openid", "method jsapi needs the payer's openid", payment.CreateOrderRequest{Method: payment.MethodJSAPI}},
					bad{"openid with a space", "openid", "openid must be 1-128", payment.CreateOrderRequest{Method: payment.MethodJSAPI, OpenID: "o abc"}},
					bad{"openid too long", "openid", "openid must be 1-128", payment.CreateOrderRequest{Method: payment.MethodJSAPI, OpenID: strings.Repeat("o", 129)}},
					bad{"openid on h5", "openid", "openid is only for method jsapi", payment.CreateOrderRequest{Method: payment.MethodH5, ClientIP: "203.0.113.9", OpenID: openID}},
					bad{"h5 without client ip", "client_ip", "method h5 needs the payer's IP address", payment.CreateOrderRequest{Method: payment.MethodH5}},
					bad{"h5 with a bad client ip", "client_ip", "client IP is not an IP address", payment.CreateOrderRequest{Method: payment.MethodH5, ClientIP: "203.0.113"}},
				)
				// A proxy's address (no --trusted-proxy-header): WeChat Pay
				// would refuse the payment without saying why.
				for _, ip := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.5",
					"fd00::7", "169.254.1.1", "fe80::1", "0.0.0.0", "::"} {
					cases = append(cases, bad{"h5 from " + ip, "client_ip", "set --trusted-proxy-header",
						payment.CreateOrderRequest{Method: payment.MethodH5, ClientIP: ip}})
				}
			} else {
				cases = append(cases,
					bad{"h5 on v2", "method", "method h5 needs WeChat Pay API v3 (--wxpay-api-version v3)", payment.CreateOrderRequest{Method: payment.MethodH5, ClientIP: "203.0.113.9"}},
					bad{"jsapi on v2", "method", "method jsapi needs WeChat Pay API v3 (--wxpay-api-version v3)", payment.CreateOrderRequest{Method: payment.MethodJSAPI, OpenID: openID}},
				)
			}
			for _, c := range cases {
				r := c.req
				r.Account, r.PackageID, r.DeviceFingerprint, r.IdempotencyKey = "alice", "starter", fp, "k-"+c.name
				_, err := w.svc.CreateOrder(w.ctx, r)
				var pe *payment.ParamError
				if !errors.As(err, &pe) || pe.Param != c.param || !strings.Contains(pe.Message, c.message) || tollgate.ErrorCode(err) != tollgate.EINVALID {
					t.Errorf("%s: %v, want PARAM_ERROR %s %q", c.name, err, c.param, c.message)
				}
			}
			if os, _ := w.store.ListOrders(w.ctx, "alice", 10); len(os) != 0 {
				t.Fatalf("refused requests recorded %d orders", len(os))
			}
			if n := len(gw.placed()); n != 0 || len(w.sim.Orders()) != 0 {
				t.Fatalf("refused requests reached WeChat Pay: %d placements", n)
			}
			// The keys of refused requests were not recorded: a good request
			// may use one.
			res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
				DeviceFingerprint: fp, IdempotencyKey: "k-" + cases[0].name})
			if err != nil || res.Replayed {
				t.Fatalf("a good request under a refused request's key: %+v, %v", res, err)
			}
		})
	}
}

// TestV2GatewayRefusesH5AndJSAPI: the v2 gateway places only Native
// orders, and says so without calling WeChat Pay.
func TestV2GatewayRefusesH5AndJSAPI(t *testing.T) {
	t.Parallel()
	g := &payment.V2Gateway{} // no client: nothing may be sent
	for _, m := range []string{payment.MethodH5, payment.MethodJSAPI} {
		_, err := g.PlaceOrder(context.Background(), payment.PlaceRequest{Method: m, OutTradeNo: "tg2026112700000001"})
		var pe *payment.ParamError
		if !errors.As(err, &pe) || pe.Param != "method" || !strings.Contains(err.Error(), "needs WeChat Pay API v3 (--wxpay-api-version v3)") {
			t.Fatalf("%s on v2: %v", m, err)
		}
	}
	if _, err := g.JSAPIParams("wx201410272009395522657a690389285100"); err == nil {
		t.Fatal("v2 signed JSAPI parameters")
	}
}

// TestPlaceSendsMethodAndPayer: the gateway is asked for the order's
// method with the payer's openid and client IP, and an answer without the
// method's field (a code_url for an h5 order) is not taken for an accepted
// order: the caller is told WeChat Pay refused.
func TestPlaceSendsMethodAndPayer(t *testing.T) {
	t.Parallel()
	var gw *recordingGateway
	w := newWorld(t, backends[0], v3Mode, func(_ *payment.Config, d *payment.Deps) {
		gw = &recordingGateway{Gateway: &payment.V3Gateway{Client: d.V3}}
		d.Gateway = gw
	})
	w.mustAccount("alice")
	if _, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp,
		Method: payment.MethodJSAPI, OpenID: openID, ClientIP: "2001:db8::7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp,
		Method: payment.MethodH5, ClientIP: "203.0.113.9"}); err != nil {
		t.Fatal(err)
	}
	calls := gw.placed()
	if len(calls) != 2 || calls[0].Method != payment.MethodJSAPI || calls[0].OpenID != openID || calls[0].ClientIP != "2001:db8::7" ||
		calls[1].Method != payment.MethodH5 || calls[1].OpenID != "" || calls[1].ClientIP != "203.0.113.9" {
		t.Fatalf("placed %+v", calls)
	}
	gw.mu.Lock()
	gw.answer = &payment.Placement{CodeURL: "weixin://wxpay/bizpayurl?pr=x"}
	gw.mu.Unlock()
	res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp,
		Method: payment.MethodH5, ClientIP: "203.0.113.9"})
	if tollgate.ErrorCode(err) != tollgate.EUPSTREAM {
		t.Fatalf("an h5 order answered with a code_url: %+v, %v", res, err)
	}
	os, _ := w.store.ListOrders(w.ctx, "alice", 10)
	var closed []payment.Order
	for _, o := range os {
		if o.Status == payment.StatusClosed {
			closed = append(closed, o)
		}
	}
	if len(os) != 3 || len(closed) != 1 || closed[0].Placed() || closed[0].Method != payment.MethodH5 {
		t.Fatalf("the orders after a malformed answer: %+v", os)
	}
}

// signCounter is the v3 gateway counting the pay sheets it signs.
type signCounter struct {
	payment.Gateway
	signed atomic.Int64
}

func (g *signCounter) JSAPIParams(prepayID string) (wxpay.V3JSAPIParams, error) {
	g.signed.Add(1)
	return g.Gateway.JSAPIParams(prepayID)
}

// TestJSAPISheetReused: polling a payable JSAPI order costs one RSA
// signature a minute, not one a poll: reads within a minute get the sheet
// signed by the create (still valid for the emulator's pay sheet), the
// first read after a minute a fresh one; each order has its own, and a
// paid order none.
func TestJSAPISheetReused(t *testing.T) {
	t.Parallel()
	var gw *signCounter
	w := newWorld(t, backends[0], v3Mode, func(_ *payment.Config, d *payment.Deps) {
		gw = &signCounter{Gateway: &payment.V3Gateway{Client: d.V3}}
		d.Gateway = gw
	})
	w.mustAccount("alice")
	create := func() payment.OrderResult {
		t.Helper()
		r, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodJSAPI, OpenID: openID})
		if err != nil || r.JSAPI == nil {
			t.Fatalf("create = %+v, %v", r, err)
		}
		return r
	}
	a := create()
	if n := gw.signed.Load(); n != 1 {
		t.Fatalf("%d signatures for one order, want 1", n)
	}
	for i := range 20 {
		w.clock.Advance(2 * time.Second) // the checkout's poll
		p, err := w.svc.JSAPIParams(w.order(a.OutTradeNo))
		if err != nil || p == nil || *p != *a.JSAPI {
			t.Fatalf("poll %d = %+v, %v; want the sheet of the create", i, p, err)
		}
	}
	if n := gw.signed.Load(); n != 1 {
		t.Fatalf("%d signatures after 20 polls within a minute, want 1", n)
	}
	w.clock.Advance(20 * time.Second) // a minute after the create
	fresh, err := w.svc.JSAPIParams(w.order(a.OutTradeNo))
	if err != nil || fresh == nil || fresh.NonceStr == a.JSAPI.NonceStr || gw.signed.Load() != 2 {
		t.Fatalf("after a minute = %+v, %v, %d signatures; want a fresh sheet", fresh, err, gw.signed.Load())
	}
	so, _ := w.sim.Order(a.OutTradeNo)
	mustVerifyJSAPI(t, w, fresh, so.PrepayID)

	b := create()
	if gw.signed.Load() != 3 || b.JSAPI.Package == fresh.Package {
		t.Fatalf("another order: %+v, %d signatures", b.JSAPI, gw.signed.Load())
	}
	// The sheet kept is one WeChat takes: the reused one pays.
	if msg := paySheet(t, w, fresh); msg != wxpaysim.JSAPIPayOK {
		t.Fatalf("pay sheet answered %q", msg)
	}
	w.waitStatus(a.OutTradeNo, payment.StatusSuccess)
	if p, err := w.svc.JSAPIParams(w.order(a.OutTradeNo)); p != nil || err != nil || gw.signed.Load() != 3 {
		t.Fatalf("paid order's sheet = %+v, %v, %d signatures", p, err, gw.signed.Load())
	}
	w.quiesce()
}

// TestH5PrivateClientIPAllowed: with AllowPrivateClientIP (serve's
// in-process emulator) a developer pays by H5 from 127.0.0.1; without it
// the same request is refused, while native orders from 127.0.0.1 are
// placed either way.
func TestH5PrivateClientIPAllowed(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		w := newWorld(t, backends[0], v3Mode, func(c *payment.Config, _ *payment.Deps) { c.AllowPrivateClientIP = allow })
		w.mustAccount("alice")
		h5, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodH5, ClientIP: "127.0.0.1"})
		if allow {
			if so, _ := w.sim.Order(h5.OutTradeNo); err != nil || h5.H5URL == "" || so.PayerClientIP != "127.0.0.1" {
				t.Fatalf("allowed: h5 from 127.0.0.1 = %+v, %v; emulator %+v", h5, err, so)
			}
		} else if tollgate.ErrorCode(err) != tollgate.EINVALID || !strings.Contains(tollgate.ErrorMessage(err), "--trusted-proxy-header") {
			t.Fatalf("refused by default: h5 from 127.0.0.1 = %+v, %v", h5, err)
		}
		if n, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter",
			DeviceFingerprint: fp, ClientIP: "127.0.0.1"}); err != nil || n.CodeURL == "" {
			t.Fatalf("allow %v: native from 127.0.0.1 = %+v, %v", allow, n, err)
		}
		w.quiesce()
	}
}

func TestPublicIP(t *testing.T) {
	for ip, want := range map[string]bool{"203.0.113.7": true, "2001:db8::1": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.0.0.1": false, "172.31.255.255": false, "192.168.0.1": false, "fc00::1": false,
		"169.254.0.1": false, "fe80::1": false, "0.0.0.0": false, "::": false, "::ffff:10.0.0.1": false, "": false, "localhost": false} {
		if got := payment.PublicIP(ip); got != want {
			t.Errorf("PublicIP(%q) = %v, want %v", ip, got, want)
		}
	}
}
