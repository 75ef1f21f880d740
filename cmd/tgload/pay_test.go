package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

const (
	testMch    = "1900000109"
	testAppID  = "wxbenchapp00000001"
	testAPIKey = "benchv2apikey0123456789abcdefABC"
)

func testPayConfig(base string) Config {
	return Config{Base: base, Key: "k", MchID: testMch, AppID: testAppID, APIKey: testAPIKey, Package: "starter",
		Fingerprint: "bench-fingerprint-0001", Clients: 2, PrepClients: 2, Duration: 10 * time.Second, Timeout: 5 * time.Second}
}

func TestNotificationBodyVerifies(t *testing.T) {
	cfg := testPayConfig("http://127.0.0.1:1")
	o := createdOrder{OutTradeNo: "TG20261127000001", AmountFen: 990}
	body, err := NotificationBody(cfg, o, "nonce0123456789abcdef0123456789ab", "4200000000202611270000000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v2 := &wxpay.V2Client{AppID: testAppID, MchID: testMch, APIKey: testAPIKey}
	for _, st := range []string{"", wxpay.SignTypeMD5} {
		n, _, err := v2.ParsePaymentNotification(context.Background(), body, st)
		if err != nil {
			t.Fatalf("sign type %q: %v", st, err)
		}
		if n.OutTradeNo != o.OutTradeNo || n.TotalFee != 990 || n.ResultCode != "SUCCESS" || n.TransactionID == "" ||
			n.NonceStr != "nonce0123456789abcdef0123456789ab" || n.FeeType != "CNY" {
			t.Fatalf("parsed %+v", n)
		}
	}
	other := &wxpay.V2Client{AppID: testAppID, MchID: testMch, APIKey: strings.Repeat("x", 32)}
	if _, _, err := other.ParsePaymentNotification(context.Background(), body, ""); !errors.Is(err, wxpay.ErrBadSignature) {
		t.Fatalf("another key: %v, want ErrBadSignature", err)
	}
	if _, _, err := (&wxpay.V2Client{AppID: "wxother", MchID: testMch, APIKey: testAPIKey}).ParsePaymentNotification(context.Background(), body, ""); !errors.Is(err, wxpay.ErrV2NotOurs) {
		t.Fatalf("another appid: %v, want ErrV2NotOurs", err)
	}
}

// fakeServe is a minimal stand-in for serve's payment API: orders, the v2
// notify URL (verifying as serve does and crediting once per order), the
// balance and an order's status.
type fakeServe struct {
	mu       sync.Mutex
	orders   map[string]int64 // out_trade_no -> fen
	paid     map[string]bool
	credits  int64
	idem     map[string]bool
	v2       *wxpay.V2Client
	badAckAt string // out_trade_no whose notification is answered FAIL
}

func newFakeServe() *fakeServe {
	return &fakeServe{orders: map[string]int64{}, paid: map[string]bool{}, idem: map[string]bool{},
		v2: &wxpay.V2Client{AppID: testAppID, MchID: testMch, APIKey: testAPIKey}}
}

func (f *fakeServe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payments/orders":
		k := r.Header.Get("Idempotency-Key")
		if k == "" || f.idem[k] {
			http.Error(w, "idempotency key missing or reused", http.StatusConflict)
			return
		}
		f.idem[k] = true
		no := fmt.Sprintf("TG%014d", len(f.orders))
		f.orders[no] = 990
		fmt.Fprintf(w, `{"out_trade_no":%q,"amount_fen":990,"credits":1000,"status":"NOTPAY"}`, no)
	case r.Method == http.MethodPost && r.URL.Path == "/wxpay/notify":
		body, _ := io.ReadAll(r.Body)
		n, _, err := f.v2.ParsePaymentNotification(r.Context(), body, wxpay.SignTypeMD5)
		if err != nil || n.TotalFee != f.orders[n.OutTradeNo] || n.OutTradeNo == f.badAckAt {
			w.WriteHeader(http.StatusBadRequest)
			w.Write(wxpay.V2NotifyAck(false, "refused"))
			return
		}
		if !f.paid[n.OutTradeNo] {
			f.paid[n.OutTradeNo] = true
			f.credits += 1000
		}
		w.Write(wxpay.V2NotifyAck(true, ""))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/balance":
		fmt.Fprintf(w, `{"credits":%d}`, f.credits)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/orders/"):
		st := "NOTPAY"
		if f.paid[strings.TrimPrefix(r.URL.Path, "/v1/payments/orders/")] {
			st = "SUCCESS"
		}
		json.NewEncoder(w).Encode(map[string]string{"status": st})
	default:
		http.NotFound(w, r)
	}
}

func TestNotifyModeCreditsEachOrderOnce(t *testing.T) {
	f := newFakeServe()
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testPayConfig(srv.URL)
	cfg.Mode, cfg.Orders = ModeNotify, 50
	rep, err := LoadPay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || len(rep.Rows[0].Res.Latencies) != 50 || len(rep.Rows[1].Res.Latencies) != 50 {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if len(f.paid) != 50 || f.credits != 50000 {
		t.Fatalf("%d paid, %d credits", len(f.paid), f.credits)
	}
	if !strings.Contains(rep.Check, "50/50 orders SUCCESS, balance +50000 credits (want +50000), +0 after") {
		t.Fatalf("check %q", rep.Check)
	}
	var out bytes.Buffer
	cfg.Row = true
	rep.Write(&out, cfg)
	if got := strings.Count(out.String(), "\n"); got != 2 || !strings.Contains(out.String(), "| 0 |") {
		t.Fatalf("rows:\n%s", out.String())
	}
}

func TestNotifyModeFailsOnARefusedNotification(t *testing.T) {
	f := newFakeServe()
	f.badAckAt = "TG00000000000003"
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testPayConfig(srv.URL)
	cfg.Mode, cfg.Orders = ModeNotify, 10
	rep, err := LoadPay(context.Background(), cfg)
	if err == nil || rep == nil || !strings.Contains(err.Error(), "9/10 orders SUCCESS") {
		t.Fatalf("err %v", err)
	}
	if rep.Rows[0].Res.ByStatus[http.StatusBadRequest] != 1 {
		t.Fatalf("by status %v", rep.Rows[0].Res.ByStatus)
	}
}

func TestOrdersAndUnifiedOrderModes(t *testing.T) {
	sim := &wxpaysim.Server{MchID: testMch, AppID: testAppID, APIKey: testAPIKey}
	defer sim.Close()
	f := newFakeServe()
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", sim))
	mux.Handle("/", f)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, mode := range []string{ModeOrders, ModeUnifiedOrder} {
		cfg := testPayConfig(srv.URL)
		cfg.Mode, cfg.Requests = mode, 30
		rep, err := LoadPay(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res := rep.Rows[0].Res; len(res.Latencies) != 30 || res.FirstErr != "" {
			t.Fatalf("%s: %d ok, first error %s", mode, len(res.Latencies), res.FirstErr)
		}
	}
	if len(f.orders) != 30 {
		t.Fatalf("%d orders through serve", len(f.orders))
	}
}

func TestPayModesRefuseBadSettings(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "orders"}, // no -key
		{"-mode", "orders", "-key", "k", "-base", "http://example.com"},
		{"-mode", "notify", "-key", "k"},                                                                         // no merchant
		{"-mode", "unifiedorder", "-mch-id", "1", "-appid", "wx", "-api-key", "short"},                           // key length
		{"-mode", "notify", "-key", "k", "-mch-id", "1", "-appid", "wx", "-api-key", testAPIKey, "-orders", "0"}, // no orders
		{"-mode", "refund"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestUnifiedOrderModeAtAnEmulatorOfItsOwn(t *testing.T) {
	sim := &wxpaysim.Server{MchID: testMch, AppID: testAppID, APIKey: testAPIKey}
	defer sim.Close()
	simSrv := httptest.NewServer(sim) // as `tollgate sandbox` serves it: at the root
	defer simSrv.Close()
	cfg := testPayConfig("http://127.0.0.1:1") // serve is not called
	cfg.Mode, cfg.Requests, cfg.Sim = ModeUnifiedOrder, 10, simSrv.URL
	rep, err := LoadPay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res := rep.Rows[0].Res; len(res.Latencies) != 10 || res.FirstErr != "" {
		t.Fatalf("%d ok, first error %s", len(res.Latencies), res.FirstErr)
	}
	if got := sim.Stats().Calls["order"]; got != 10 {
		t.Fatalf("the emulator saw %d orders", got)
	}
}
