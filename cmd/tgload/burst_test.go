package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// hangOnce holds the first notification of order no until the client
// gives up (WeChat Pay's deadline), so that it is dropped and retried;
// every other request goes to next.
type hangOnce struct {
	next http.Handler
	no   string
	mu   sync.Mutex
	hung bool
}

func (h *hangOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/wxpay/notify" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		m, _ := wxpay.DecodeV2XML(body)
		h.mu.Lock()
		hang := m["out_trade_no"] == h.no && !h.hung
		h.hung = h.hung || hang
		h.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

func TestBurstModeCreditsEachOrderOnceAndCountsTheDropped(t *testing.T) {
	f := newFakeServe()
	srv := httptest.NewServer(&hangOnce{next: f, no: "TG00000000000007"})
	defer srv.Close()
	cfg := testPayConfig(srv.URL)
	cfg.Mode, cfg.Orders = ModeBurst, 40
	// All at once through a pool of 8; the hung attempt is cut by the
	// deadline and sent again at once. (On a loaded machine another
	// attempt may miss the deadline too: at least the hung one is
	// dropped, and every order is still credited once.)
	cfg.Within, cfg.Pool, cfg.NotifyTimeout, cfg.RetryAfter, cfg.Attempts = 0, 8, time.Second, 0, 3
	rep, err := LoadPay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.paid) != 40 || f.credits != 40000 {
		t.Fatalf("%d paid, %d credits", len(f.paid), f.credits)
	}
	res := rep.Rows[1].Res
	if len(res.Latencies) != 40 || res.ByStatus[http.StatusOK] != 40 || res.ByStatus[0] < 1 {
		t.Fatalf("%d acknowledged, by status %v", len(res.Latencies), res.ByStatus)
	}
	want := fmt.Sprintf(`^40/40 orders SUCCESS, balance \+40000 credits \(want \+40000\); %[1]d attempts dropped \(%[1]d not answered within the 1s deadline, 0 refused\), 0 never acknowledged in 3 attempts; notification to ack p50 `, res.ByStatus[0])
	if !regexp.MustCompile(want).MatchString(rep.Check) {
		t.Fatalf("check %q", rep.Check)
	}
	var out bytes.Buffer
	cfg.Row = true
	rep.Write(&out, cfg)
	if got := strings.Count(out.String(), "\n"); got != 2 || !strings.Contains(out.String(), fmt.Sprintf("| %d |", res.ByStatus[0])) {
		t.Fatalf("rows:\n%s", out.String())
	}
}

func TestBurstModeFailsWhenANotificationIsNeverAcknowledged(t *testing.T) {
	f := newFakeServe()
	f.badAckAt = "TG00000000000002"
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := testPayConfig(srv.URL)
	cfg.Mode, cfg.Orders = ModeBurst, 10
	cfg.Within, cfg.Pool, cfg.NotifyTimeout, cfg.RetryAfter, cfg.Attempts = 0, 4, 5*time.Second, 0, 2
	rep, err := LoadPay(context.Background(), cfg)
	if err == nil || rep == nil || !strings.Contains(err.Error(), "9/10 orders SUCCESS") ||
		!strings.Contains(err.Error(), "2 attempts dropped (0 not answered within the 5s deadline, 2 refused)") || !strings.Contains(err.Error(), "1 never acknowledged in 2 attempts") {
		t.Fatalf("err %v", err)
	}
	if rep.Rows[1].Res.ByStatus[http.StatusBadRequest] != 2 {
		t.Fatalf("by status %v", rep.Rows[1].Res.ByStatus)
	}
}

func TestBacklogModeReadsThePollersQueriesAtTheEmulator(t *testing.T) {
	sim := &wxpaysim.Server{MchID: testMch, AppID: testAppID, APIKey: testAPIKey}
	defer sim.Close()
	f := newFakeServe()
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", sim))
	mux.Handle("/", f)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The fake serve has no poller: the test plays one, querying three
	// orders the emulator knows before the load starts.
	v2 := &wxpay.V2Client{BaseURL: srv.URL + "/sandbox/wxpay", AppID: testAppID, MchID: testMch, APIKey: testAPIKey}
	for i := range 3 {
		no := fmt.Sprintf("TGQ%013d", i)
		if _, err := v2.UnifiedOrder(context.Background(), &wxpay.V2UnifiedOrderRequest{OutTradeNo: no, Body: "b", TotalFee: 100,
			SpbillCreateIP: "127.0.0.1", NotifyURL: srv.URL + "/wxpay/notify", TradeType: wxpay.V2TradeTypeNative, ProductID: "p"}); err != nil {
			t.Fatal(err)
		}
		if _, err := v2.QueryOrder(context.Background(), wxpay.V2OrderQuery{OutTradeNo: no}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testPayConfig(srv.URL)
	cfg.Mode, cfg.Orders, cfg.Backlog, cfg.QueryLimit = ModeBacklog, 20, 30, 100
	rep, err := LoadPay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || len(rep.Rows[0].Res.Latencies) != 30 || len(rep.Rows[1].Res.Latencies) != 20 ||
		!strings.Contains(rep.Rows[1].Name, "30 pending") {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if len(f.orders) != 50 || len(f.paid) != 20 {
		t.Fatalf("%d orders, %d paid", len(f.orders), len(f.paid))
	}
	if !strings.Contains(rep.Check, "20/20 orders SUCCESS") || !strings.Contains(rep.Check, "busiest sliding minute since the emulator started: 3 (limit 100), 3 answered") {
		t.Fatalf("check %q", rep.Check)
	}

	// A limit below what the emulator saw fails the run.
	cfg.QueryLimit, cfg.Backlog = 2, 0
	if _, err := LoadPay(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "query limit exceeded") {
		t.Fatalf("limit 2: %v", err)
	}
}

func TestBurstAndBacklogRefuseBadSettings(t *testing.T) {
	m := []string{"-key", "k", "-mch-id", "1", "-appid", "wx", "-api-key", testAPIKey}
	for _, extra := range [][]string{
		{"-mode", "burst", "-orders", "0"},
		{"-mode", "burst", "-pool", "0"},
		{"-mode", "burst", "-within", "-1s"},
		{"-mode", "burst", "-attempts", "0"},
		{"-mode", "burst", "-notify-timeout", "0s"},
		{"-mode", "backlog", "-backlog", "-1"},
		{"-mode", "backlog", "-sim", "http://example.com"},
		{"-mode", "backlog", "-query-limit", "0"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append(extra, m...), &out, &errOut); err == nil {
			t.Errorf("%v: accepted", extra)
		}
	}
}
