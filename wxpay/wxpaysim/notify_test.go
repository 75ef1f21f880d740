package wxpaysim_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// posts returns the POST deliveries (not probes) of one order.
func posts(s *wxpaysim.Server, no string) []wxpaysim.Delivery {
	var out []wxpaysim.Delivery
	for _, d := range s.Notifications() {
		if d.OutTradeNo == no && d.Method == http.MethodPost && !d.Probe && !d.Duplicate {
			out = append(out, d)
		}
	}
	return out
}

// mustPlaceV2 places a v2 NATIVE order and fails the test otherwise.
func (e *env) mustPlaceV2(no string, fee int) {
	e.t.Helper()
	if a := e.v2("/pay/unifiedorder", e.v2Order(no, fee), wxpay.SignTypeMD5, e.cfg.APIKey); a["result_code"] != "SUCCESS" {
		e.t.Fatalf("unifiedorder %s: %v", no, a)
	}
}

func TestRetryScheduleUntilAck(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.TimeScale = 0.0001 })
	e.rcv.failPosts = 4
	e.mustPlaceV2("T-RETRY-01", 100)
	start := time.Now()
	if _, err := e.sim.Pay("T-RETRY-01"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notification is acknowledged", func() bool {
		ds := posts(e.sim, "T-RETRY-01")
		return len(ds) > 0 && ds[len(ds)-1].Outcome == wxpaysim.OutcomeAcked
	})
	e.sim.Close() // waits for the delivery goroutine: nothing is sent after the ack
	ds := posts(e.sim, "T-RETRY-01")
	want := []int64{0, 15_000, 30_000, 60_000, 240_000}
	if len(ds) != len(want) {
		t.Fatalf("%d POST attempts, want %d (ack must stop the retries): %+v", len(ds), len(want), ds)
	}
	for i, d := range ds {
		if d.Attempt != i+1 || d.ScheduledMS != want[i] {
			t.Errorf("attempt %d: #%d at %d ms, want #%d at %d ms", i, d.Attempt, d.ScheduledMS, i+1, want[i])
		}
		// Real waits are the schedule times the time scale (never shorter).
		if minGap := time.Duration(want[i]) * time.Millisecond / 10_000; d.Time.Sub(start) < minGap {
			t.Errorf("attempt %d sent %v after paying, before its scaled time %v", i+1, d.Time.Sub(start), minGap)
		}
		wantOutcome := wxpaysim.OutcomeFailed
		if i == len(want)-1 {
			wantOutcome = wxpaysim.OutcomeAcked
		}
		if d.Outcome != wantOutcome {
			t.Errorf("attempt %d outcome %s, want %s", i+1, d.Outcome, wantOutcome)
		}
	}
	if got := wxpaysim.RetrySchedule(); len(got) != 15 {
		t.Fatalf("RetrySchedule has %d waits, want 15", len(got))
	}
}

func TestV2RetryReusesBodyByDefault(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("FreshNonceOnRetry=%v", fresh), func(t *testing.T) {
			e := mustEnv(t, func(s *wxpaysim.Server) { s.FreshNonceOnRetry = fresh; s.NoHandshake = true })
			e.rcv.failPosts = 1
			e.mustPlaceV2("T-NONCE-01", 100)
			if _, err := e.sim.Pay("T-NONCE-01"); err != nil {
				t.Fatal(err)
			}
			a, _ := wxpay.DecodeV2XML(e.rcv.next(t).Body)
			b, _ := wxpay.DecodeV2XML(e.rcv.next(t).Body)
			if same := a["nonce_str"] == b["nonce_str"]; same == fresh {
				t.Fatalf("nonce_str %q then %q with FreshNonceOnRetry=%v", a["nonce_str"], b["nonce_str"], fresh)
			}
			if err := wxpay.VerifyV2(b, wxpay.SignTypeMD5, e.cfg.APIKey); err != nil {
				t.Fatalf("retry signature: %v", err)
			}
		})
	}
}

func TestHandshakeBlacklist(t *testing.T) {
	e := mustEnv(t, nil)
	e.rcv.failHEAD = true
	e.mustPlaceV2("T-HS-0001", 100)
	e.mustPlaceV2("T-HS-0002", 100)
	if _, err := e.sim.Pay("T-HS-0001"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := e.rcv.next(t); got.Method != http.MethodHead {
			t.Fatalf("got %s, want only HEAD handshakes", got.Method)
		}
	}
	blacklistedN := func(n int) func() bool {
		return func() bool {
			c := 0
			for _, d := range e.sim.Notifications() {
				if d.Outcome == wxpaysim.OutcomeBlacklisted {
					c++
				}
			}
			return c == n
		}
	}
	waitFor(t, "the 4th attempt finds the URL blacklisted", blacklistedN(1))
	if _, err := e.sim.Pay("T-HS-0002"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next order's notification is not sent", blacklistedN(2))
	e.sim.Close()
	if len(e.rcv.ch) != 0 {
		t.Fatalf("%d more requests to a blacklisted URL", len(e.rcv.ch))
	}
	var heads, blacklisted int
	for _, d := range e.sim.Notifications() {
		switch {
		case d.Method == http.MethodPost:
			t.Errorf("POST sent despite failed handshakes: %+v", d)
		case d.Outcome == wxpaysim.OutcomeHandshakeFail:
			heads++
		case d.Outcome == wxpaysim.OutcomeBlacklisted:
			blacklisted++
		}
	}
	if heads != 3 || blacklisted != 2 {
		t.Fatalf("%d failed handshakes and %d blacklisted deliveries, want 3 and 2", heads, blacklisted)
	}
}

func TestSignTestProbeBeforeV3Notification(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.SignTestProbes = true; s.NoHandshake = true })
	e.v3("POST", "/v3/pay/transactions/native", e.v3OrderBody("T-PROBE-01", 100))
	if _, err := e.sim.Pay("T-PROBE-01"); err != nil {
		t.Fatal(err)
	}
	probe, real := e.rcv.next(t), e.rcv.next(t)
	if verifyWechatpay(e.plat, probe.Header, probe.Body) == nil {
		t.Fatal("the probe carries a valid signature")
	}
	if err := verifyWechatpay(e.plat, real.Header, real.Body); err != nil {
		t.Fatalf("real notification after the probe: %v", err)
	}
	waitFor(t, "the notification is acknowledged", acked(e.sim, 1))
	e.sim.Close()
	ds := e.sim.Notifications()
	if len(ds) != 2 || !ds[0].Probe || ds[0].Outcome != wxpaysim.OutcomeProbeRefused || ds[1].Outcome != wxpaysim.OutcomeAcked {
		t.Fatalf("deliveries %+v", ds)
	}
}

func TestV2RefundsPartialSumAndNotification(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.RefundDelay = time.Minute; s.TimeScale = 0.0001 })
	e.mustPlaceV2("T-RF-00001", 100)
	refund := func(no string, fee int) map[string]string {
		return e.v2("/secapi/pay/refund", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-RF-00001",
			"out_refund_no": no, "total_fee": "100", "refund_fee": fmt.Sprint(fee)}, wxpay.SignTypeMD5, e.cfg.APIKey)
	}
	if a := refund("R-UNPAID", 10); a["err_code"] != "ORDERNOTEXIST" {
		t.Fatalf("refund of an unpaid order: %v", a)
	}
	if _, err := e.sim.Pay("T-RF-00001"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		no       string
		fee      int
		wantCode string
	}{
		{"R-1", 30, ""},
		{"R-2", 50, ""},
		{"R-1", 30, ""},                // same out_refund_no: the same refund, not a third
		{"R-1", 31, "INVALID_REQUEST"}, // same out_refund_no, other amount
		{"R-3", 21, "NOTENOUGH"},       // 30+50+21 > 100
		{"R-3", 20, ""},                // exactly the rest
		{"R-4", 1, "NOTENOUGH"},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		a := refund(tt.no, tt.fee)
		if a["err_code"] != tt.wantCode {
			t.Fatalf("refund %s of %d: %v, want err_code %q", tt.no, tt.fee, a, tt.wantCode)
		}
		if tt.wantCode == "" {
			if prev, ok := ids[tt.no]; ok && prev != a["refund_id"] {
				t.Fatalf("same out_refund_no got refund_id %s then %s", prev, a["refund_id"])
			}
			ids[tt.no] = a["refund_id"]
		}
	}
	o, _ := e.sim.Order("T-RF-00001")
	if o.Refunded != 100 || len(o.Refunds) != 3 || o.State != wxpaysim.StateRefund {
		t.Fatalf("ground truth: refunded %d in %d refunds, state %s", o.Refunded, len(o.Refunds), o.State)
	}
	q := e.v2("/pay/refundquery", map[string]string{"appid": e.cfg.AppID, "mch_id": e.cfg.MchID, "out_trade_no": "T-RF-00001"}, wxpay.SignTypeMD5, e.cfg.APIKey)
	if q["refund_count"] != "3" || q["out_refund_no_0"] != "R-1" || q["refund_fee_1"] != "50" {
		t.Fatalf("refundquery: %v", q)
	}
	// After RefundDelay each refund succeeds and is notified with req_info.
	seen := map[string]bool{}
	for len(seen) < 3 {
		got := e.rcv.next(t)
		n, _ := wxpay.DecodeV2XML(got.Body)
		if got.Method != http.MethodPost || n["req_info"] == "" {
			continue
		}
		if n["sign"] != "" {
			t.Error("refund notification carries sign; WeChat Pay protects it with req_info only")
		}
		info, err := wxpay.DecryptV2RefundReqInfo(n["req_info"], e.cfg.APIKey)
		if err != nil || info["refund_status"] != "SUCCESS" || info["out_trade_no"] != "T-RF-00001" {
			t.Fatalf("req_info: %v %v", info, err)
		}
		seen[info["out_refund_no"]] = true
	}
}

func TestExpiryClosesUnpaidOrders(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	e := mustEnv(t, func(s *wxpaysim.Server) {
		s.Clock = tollgate.ClockFunc(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	})
	p := e.v2Order("T-EXP-0001", 100)
	p["time_expire"] = now.Add(10 * time.Minute).In(tollgate.Beijing).Format("20060102150405")
	if a := e.v2("/pay/unifiedorder", p, wxpay.SignTypeMD5, e.cfg.APIKey); a["result_code"] != "SUCCESS" {
		t.Fatal(a)
	}
	e.mustPlaceV2("T-EXP-0002", 100) // default OrderTTL: 2 h
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	if q := e.v2Query("T-EXP-0001"); q["trade_state"] != "CLOSED" {
		t.Fatalf("expired order reads %v", q)
	}
	if q := e.v2Query("T-EXP-0002"); q["trade_state"] != "NOTPAY" {
		t.Fatalf("order within the default 2 h reads %v", q)
	}
	if st := e.simPost("/sim/orders/T-EXP-0001/pay"); st != http.StatusConflict {
		t.Fatalf("paying an expired order: %d, want 409", st)
	}
	e.sim.Advance(2 * time.Hour)
	if q := e.v2Query("T-EXP-0002"); q["trade_state"] != "CLOSED" {
		t.Fatalf("order after 2 h reads %v", q)
	}
}

func TestFailAndUserPaying(t *testing.T) {
	e := mustEnv(t, nil)
	e.mustPlaceV2("T-FAIL-001", 100)
	if st := e.simPost("/sim/orders/T-FAIL-001/userpaying"); st != 200 {
		t.Fatal(st)
	}
	if q := e.v2Query("T-FAIL-001"); q["trade_state"] != "USERPAYING" {
		t.Fatal(q)
	}
	if st := e.simPost("/sim/orders/T-FAIL-001/fail"); st != 200 {
		t.Fatal(st)
	}
	if q := e.v2Query("T-FAIL-001"); q["trade_state"] != "PAYERROR" {
		t.Fatal(q)
	}
	if st := e.simPost("/sim/orders/T-FAIL-001/pay"); st != http.StatusConflict {
		t.Fatalf("paying a failed order: %d", st)
	}
	if st := e.simPost("/sim/orders/T-NOPE-001/pay"); st != http.StatusNotFound {
		t.Fatalf("paying an unknown order: %d", st)
	}
}

func TestConcurrentOrdersAndPays(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			no := fmt.Sprintf("T-CONC-%04d", i)
			p := e.v2Order(no, 100+i)
			p["nonce_str"] = nonce()
			sig, _ := wxpay.SignV2(p, wxpay.SignTypeMD5, e.cfg.APIKey)
			p["sign"] = sig
			resp, err := http.Post(e.base+"/pay/unifiedorder", "text/xml", bytes.NewReader(wxpay.EncodeV2XML(p)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if _, err := e.sim.Pay(no); err != nil {
				t.Error(err)
			}
			_, _ = e.sim.Pay(no) // a second pay must not pay twice
		}()
	}
	wg.Wait()
	waitFor(t, "every notification is acknowledged", acked(e.sim, n))
	e.sim.Close()
	ids := map[string]bool{}
	for _, o := range e.sim.Orders() {
		if o.State != wxpaysim.StateSuccess || ids[o.TransactionID] {
			t.Fatalf("order %s: %s, transaction_id %s (dup %v)", o.OutTradeNo, o.State, o.TransactionID, ids[o.TransactionID])
		}
		ids[o.TransactionID] = true
	}
	if len(ids) != n {
		t.Fatalf("%d paid orders, want %d", len(ids), n)
	}
	if got := len(e.sim.Notifications()); got != n {
		t.Fatalf("%d deliveries, want %d (one per payment)", got, n)
	}
}

func TestFaultsReplayWithSeed(t *testing.T) {
	run := func() []string {
		e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
		if err := e.sim.SetFaults(wxpaysim.Faults{Seed: 42, DropRate: 0.5, DuplicateRate: 0.5}); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			no := fmt.Sprintf("T-SEED-%04d", i)
			e.mustPlaceV2(no, 100)
			if _, err := e.sim.Pay(no); err != nil {
				t.Fatal(err)
			}
		}
		// Each notification ends acked or dropped; then Close waits for
		// the duplicate copies.
		waitFor(t, "every notification settles", func() bool {
			done := 0
			for _, d := range e.sim.Notifications() {
				if !d.Duplicate && (d.Outcome == wxpaysim.OutcomeAcked || d.Outcome == wxpaysim.OutcomeDropped) {
					done++
				}
			}
			return done == 8
		})
		e.sim.Close()
		var out []string
		for i := range 8 {
			no := fmt.Sprintf("T-SEED-%04d", i)
			var outcome string
			dups := 0
			for _, d := range e.sim.Notifications() {
				switch {
				case d.OutTradeNo != no:
				case d.Duplicate:
					dups++
				default:
					outcome = d.Outcome
				}
			}
			out = append(out, fmt.Sprintf("%s:%s+%d", no, outcome, dups))
		}
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	drops := 0
	for _, s := range a {
		if strings.Contains(s, wxpaysim.OutcomeDropped) {
			drops++
		}
	}
	if drops == 0 || drops == len(a) {
		t.Fatalf("drop rate 0.5 dropped %d of %d: %v", drops, len(a), a)
	}
}

// waitFor polls cond until it holds, failing after 10 s. It waits for
// asynchronous deliveries; it asserts nothing about their speed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// acked returns a condition: n deliveries were acknowledged.
func acked(s *wxpaysim.Server, n int) func() bool {
	return func() bool {
		c := 0
		for _, d := range s.Notifications() {
			if d.Outcome == wxpaysim.OutcomeAcked {
				c++
			}
		}
		return c == n
	}
}

// TestDelayFault holds every first attempt back by the configured delay
// (virtual time, scaled): no attempt leaves earlier.
func TestDelayFault(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true; s.TimeScale = 0.0001 })
	if err := e.sim.SetFaults(wxpaysim.Faults{Seed: 3, DelayMinMS: 600_000, DelayMaxMS: 600_000}); err != nil {
		t.Fatal(err)
	}
	e.mustPlaceV2("T-DELAY-01", 100)
	paid, err := e.sim.Pay("T-DELAY-01")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notification is acknowledged", acked(e.sim, 1))
	d := e.sim.Notifications()[0]
	if minWait := 60 * time.Millisecond; d.Time.Sub(paid.PaidAt) < minWait {
		t.Fatalf("first attempt %v after paying, before the 10 min (scaled: %v) delay", d.Time.Sub(paid.PaidAt), minWait)
	}
}

// TestFullScheduleThenGiveUp runs the whole 24h4m schedule at 1/100000
// speed against a receiver that never acknowledges.
func TestFullScheduleThenGiveUp(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true; s.TimeScale = 0.00001 })
	e.rcv.failPosts = 1000
	e.mustPlaceV2("T-FULL-001", 100)
	if _, err := e.sim.Pay("T-FULL-001"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the schedule is exhausted", func() bool {
		ds := e.sim.Notifications()
		return len(ds) > 0 && ds[len(ds)-1].Outcome == wxpaysim.OutcomeGaveUp
	})
	ds := posts(e.sim, "T-FULL-001")
	if len(ds) != 16 {
		t.Fatalf("%d attempts, want 16 (first + 15 retries)", len(ds))
	}
	var offset time.Duration
	for i, d := range ds {
		if i > 0 {
			offset += wxpaysim.RetrySchedule()[i-1]
		}
		if d.ScheduledMS != offset.Milliseconds() || d.Outcome != wxpaysim.OutcomeFailed {
			t.Errorf("attempt %d at %d ms (%s), want %d ms", d.Attempt, d.ScheduledMS, d.Outcome, offset.Milliseconds())
		}
	}
	if offset != 24*time.Hour+4*time.Minute {
		t.Fatalf("last attempt at %v, want 24h4m", offset)
	}
}

// TestDuplicateFault delivers each notification 2 or 3 times at once, with
// identical bodies, as several WeChat Pay senders do.
func TestDuplicateFault(t *testing.T) {
	e := mustEnv(t, func(s *wxpaysim.Server) { s.NoHandshake = true })
	if err := e.sim.SetFaults(wxpaysim.Faults{Seed: 9, DuplicateRate: 1}); err != nil {
		t.Fatal(err)
	}
	e.mustPlaceV2("T-DUP-0001", 100)
	if _, err := e.sim.Pay("T-DUP-0001"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the original is acknowledged", acked(e.sim, 1))
	ackedCopies := func() int {
		n := 0
		for _, d := range e.sim.Notifications() {
			if d.Duplicate && d.Outcome == wxpaysim.OutcomeDuplicateAcked {
				n++
			}
		}
		return n
	}
	// The copies go out at once with the original but may be answered
	// after it: closing before one is would count it as never sent.
	waitFor(t, "a copy is acknowledged", func() bool { return ackedCopies() >= 1 })
	e.sim.Close()
	copies := ackedCopies()
	if copies < 1 || copies > 2 {
		t.Fatalf("%d acknowledged copies, want 1 or 2", copies)
	}
	first := e.rcv.next(t).Body
	for range copies {
		if b := e.rcv.next(t).Body; !bytes.Equal(b, first) {
			t.Fatalf("a copy differs from the original:\n%s\n%s", first, b)
		}
	}
}
