package payment_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/wxpay/wxpaysim"
)

// TestPayCreditedOnce: an order is placed at the emulator over HTTP, the
// provisional token works at once, the user pays, the notification
// arrives over HTTP, and the payment is credited exactly once, the grant
// confirmed; re-delivering the same notification changes nothing.
func TestPayCreditedOnce(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		res := w.mustOrder("alice", "plus")
		if res.CodeURL == "" || res.AmountFen != 5000 || res.Credits != 7_200_000 || res.Status != payment.StatusNotPay ||
			res.AccessToken == nil || res.AccessToken.Credits != 20000 || len(res.OutTradeNo) < 6 || len(res.OutTradeNo) > 32 {
			t.Fatalf("CreateOrder = %+v", res)
		}
		so, err := w.sim.Order(res.OutTradeNo)
		if err != nil || so.Total != 5000 || so.DeviceInfo != fp || so.CodeURL != res.CodeURL {
			t.Fatalf("emulator order = %+v, %v", so, err)
		}
		if w.mode.version == payment.APIv2 && so.SignType != w.mode.signType {
			t.Fatalf("placed with sign type %q, want %q", so.SignType, w.mode.signType)
		}
		acct, grant, err := w.svc.AuthenticateAccessToken(w.ctx, res.AccessToken.Token)
		if err != nil || acct != "alice" || grant != res.OutTradeNo {
			t.Fatalf("AuthenticateAccessToken = %q, %q, %v", acct, grant, err)
		}
		// Spend through the grant before paying.
		spend(t, w, "h1", "alice", grant, 1000)
		png, err := w.svc.QRCodePNG(w.ctx, "alice", res.OutTradeNo, 0)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("QRCodePNG: %v", err)
		}

		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		ls := w.lots("alice")
		if len(ls) != 1 || ls[0].Fen != 5000 || ls[0].Granted != 7_200_000 || ls[0].Used != 1000 {
			t.Fatalf("lots = %+v", ls)
		}
		if g, _ := w.ledger.Grant(w.ctx, res.OutTradeNo); g.Status != ledger.GrantConfirmed {
			t.Fatalf("grant = %+v", g)
		}
		o := w.order(res.OutTradeNo)
		if o.TransactionID == "" || o.TransactionID != ls[0].TransactionID || o.FeeFen != 30 {
			t.Fatalf("order = %+v (fee 0.6%% of 5000 = 30)", o)
		}
		// Paid: the token now spends the account's own credit.
		if acct, grant, err := w.svc.AuthenticateAccessToken(w.ctx, res.AccessToken.Token); err != nil || acct != "alice" || grant != "" {
			t.Fatalf("token after payment = %q, %q, %v", acct, grant, err)
		}
		w.eventually("the delivery to be acked", func() bool { return acked(w.sim, res.OutTradeNo) > 0 })
		w.quiesce()

		// The same notification again, any number of times: success, no change.
		before := w.digest("alice")
		for range 3 {
			w.redeliverLast(t, http.StatusOK)
		}
		if w.digest("alice") != before {
			t.Fatal("a repeated notification changed something")
		}
		if w.metrics.Get(payment.EventNotificationAcked, "already_credited") < 3 {
			t.Fatalf("metrics: %v", w.metrics.Snapshot())
		}
		// Replayed 25 h later (the nonce forgotten): v2 is acknowledged and
		// changes nothing; v3 is refused by its 5-minute window.
		w.clock.Advance(25 * time.Hour)
		want := http.StatusOK
		if w.mode.version == payment.APIv3 {
			want = http.StatusBadRequest
		}
		w.redeliverLast(t, want)
		if w.digest("alice") != before {
			t.Fatal("a replay after 25 h changed something")
		}
	})
}

// spend reserves and settles cost credits for account (through grant if set).
func spend(t *testing.T, w *world, hold string, account tollgate.AccountID, grant string, cost tollgate.Credits) {
	t.Helper()
	if _, err := w.ledger.Reserve(w.ctx, ledger.ReserveRequest{HoldID: hold, Account: account, GrantID: grant,
		Amount: cost, TTL: time.Minute}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if _, err := w.ledger.Settle(w.ctx, ledger.SettleRequest{HoldID: hold, Cost: cost}); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// acked counts acknowledged payment deliveries of an order.
func acked(sim *wxpaysim.Server, no string) int {
	n := 0
	for _, d := range sim.Notifications() {
		if d.OutTradeNo == no && d.Kind == "payment" && (d.Outcome == wxpaysim.OutcomeAcked || d.Outcome == wxpaysim.OutcomeDuplicateAcked) {
			n++
		}
	}
	return n
}

// redeliverLast posts the last notification the receiver got, as received,
// straight to the service, and checks the status.
func (w *world) redeliverLast(t *testing.T, want int) []byte {
	t.Helper()
	w.mu.Lock()
	body, h := w.received[len(w.received)-1], w.headers[len(w.headers)-1]
	w.mu.Unlock()
	return w.deliver(t, h, body, want)
}

func (w *world) deliver(t *testing.T, h http.Header, body []byte, want int) []byte {
	t.Helper()
	var status int
	var reply []byte
	if w.mode.version == payment.APIv3 {
		status, reply = w.svc.HandleV3Notification(w.ctx, h, body)
	} else {
		status, reply = w.svc.HandleV2Notification(w.ctx, body)
	}
	if status != want {
		t.Fatalf("notification answered %d %s, want %d", status, reply, want)
	}
	return reply
}

// TestNotificationFaults: duplicated (concurrent copies), delayed and
// reordered notifications for several orders: each order credited once.
func TestNotificationFaults(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 7, DuplicateRate: 1, DelayMinMS: 0, DelayMaxMS: 20000, ReorderRate: 0.5}); err != nil {
			t.Fatal(err)
		}
		const n = 6
		var nos []string
		for i := range n {
			a := tollgate.AccountID([]string{"a", "b", "c"}[i%3])
			if i < 3 {
				w.mustAccount(a)
			}
			nos = append(nos, w.mustOrder(a, "starter").OutTradeNo)
		}
		for _, no := range nos {
			if _, err := w.sim.Pay(no); err != nil {
				t.Fatal(err)
			}
		}
		// The delays (up to 20 s, and 40 s more for a reordered one) pass.
		w.clock.Advance(time.Minute)
		for _, no := range nos {
			w.waitStatus(no, payment.StatusSuccess)
			w.eventually("acks", func() bool { return acked(w.sim, no) > 0 })
		}
		w.quiesce()
		total := 0
		for _, a := range []tollgate.AccountID{"a", "b", "c"} {
			for _, l := range w.lots(a) {
				total++
				if l.Fen != 1000 || l.Granted != 1_400_000 {
					t.Errorf("lot %+v", l)
				}
			}
		}
		dups := 0
		for _, d := range w.sim.Notifications() {
			if d.Duplicate {
				dups++
			}
		}
		if total != n || dups == 0 {
			t.Fatalf("%d lots for %d paid orders; %d duplicate deliveries", total, n, dups)
		}
	})
}

// TestDroppedNotificationsPollerCredits: every notification is dropped;
// the poller queries the orders and credits them, once.
func TestDroppedNotificationsPollerCredits(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 1, DropRate: 1}); err != nil {
			t.Fatal(err)
		}
		w.mustAccount("alice")
		a, b := w.mustOrder("alice", "starter"), w.mustOrder("alice", "plus")
		if b.AccessToken != nil {
			t.Fatal("a second live grant was issued")
		}
		if n := w.poll(6 * time.Second); n != 2 { // both due, both still NOTPAY
			t.Fatalf("first round looked at %d orders", n)
		}
		if _, err := w.sim.Pay(a.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		if _, err := w.sim.Pay(b.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		if w.order(a.OutTradeNo).Status != payment.StatusNotPay {
			t.Fatal("credited without a notification or a query")
		}
		w.poll(time.Minute)
		w.poll(time.Minute) // nothing left to do
		for _, no := range []string{a.OutTradeNo, b.OutTradeNo} {
			if st := w.order(no).Status; st != payment.StatusSuccess {
				t.Fatalf("order %s is %s", no, st)
			}
		}
		if ls := w.lots("alice"); len(ls) != 2 {
			t.Fatalf("%d lots", len(ls))
		}
		if got := w.metrics.Get(payment.EventPollerCredited, "query"); got != 2 {
			t.Fatalf("poller credited %d", got)
		}
		if w.sim.Stats().Calls["query"] < 4 {
			t.Fatalf("stats %+v", w.sim.Stats())
		}
	})
}

// TestExpiryRevokesGrantThenLatePayment: an unpaid order expires; the
// poller closes it at WeChat Pay and locally, revokes the provisional
// token at once and what it used becomes debt. A late payment is still
// credited (WeChat Pay is the truth), flagged for review, and pays the debt.
func TestExpiryRevokesGrantThenLatePayment(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		res := w.mustOrder("alice", "starter")
		spend(t, w, "h1", "alice", res.OutTradeNo, 700)
		w.poll(time.Minute)
		if w.order(res.OutTradeNo).Status != payment.StatusNotPay {
			t.Fatal("closed too early")
		}
		w.poll(31 * time.Minute)
		if st := w.order(res.OutTradeNo).Status; st != payment.StatusClosed {
			t.Fatalf("after expiry: %s", st)
		}
		if so, _ := w.sim.Order(res.OutTradeNo); so.State != wxpaysim.StateClosed {
			t.Fatalf("emulator order %s", so.State)
		}
		if g, _ := w.ledger.Grant(w.ctx, res.OutTradeNo); g.Status != ledger.GrantRevoked {
			t.Fatalf("grant %+v", g)
		}
		if _, _, err := w.svc.AuthenticateAccessToken(w.ctx, res.AccessToken.Token); tollgate.ErrorCode(err) != tollgate.EUNAUTHORIZED {
			t.Fatalf("token after expiry: %v", err)
		}
		if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Debt != 700 {
			t.Fatalf("balance %+v, want debt 700", b)
		}
		// Debt blocks a new grant but not a new order.
		again := w.mustOrder("alice", "starter")
		if again.AccessToken != nil {
			t.Fatal("grant issued despite debt")
		}

		if _, err := w.sim.PayLate(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		w.eventually("the late success to be counted", func() bool {
			return w.metrics.Get(payment.EventLateSuccess, string(payment.StatusClosed)) == 1
		})
		if o := w.order(res.OutTradeNo); o.Review == "" {
			t.Fatalf("late success not flagged: %+v", o)
		}
		if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Debt != 0 || b.Credits != 1_400_000-700 {
			t.Fatalf("balance after late payment %+v", b)
		}
	})
}

// TestPayErrorRevokes: a failed payment (PAYERROR) found by the poller
// revokes the grant at once.
func TestPayErrorRevokes(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		res := w.mustOrder("alice", "starter")
		spend(t, w, "h1", "alice", res.OutTradeNo, 50)
		if _, err := w.sim.Fail(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.poll(6 * time.Second)
		if st := w.order(res.OutTradeNo).Status; st != payment.StatusPayError {
			t.Fatalf("status %s", st)
		}
		if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Debt != 50 {
			t.Fatalf("balance %+v", b)
		}
	})
}

// TestFingerprintRequired: a missing or malformed device fingerprint is
// PARAM_ERROR and nothing reaches WeChat Pay.
func TestFingerprintRequired(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	w.mustAccount("alice")
	for _, f := range []string{"", "short", "has spaces in it!!", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"} {
		_, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "plus", DeviceFingerprint: f})
		var pe *payment.ParamError
		if !errors.As(err, &pe) || pe.PublicCode() != "PARAM_ERROR" || tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Fatalf("fingerprint %q: %v", f, err)
		}
	}
	for _, r := range []payment.CreateOrderRequest{
		{Account: "alice", DeviceFingerprint: fp},
		{Account: "alice", DeviceFingerprint: fp, PackageID: "plus", AmountFen: 100},
		{Account: "alice", DeviceFingerprint: fp, AmountFen: 1},
		{Account: "alice", DeviceFingerprint: fp, PackageID: "nosuch"},
	} {
		_, err := w.svc.CreateOrder(w.ctx, r)
		wantCode(t, err, tollgate.EINVALID)
	}
	if n := len(w.sim.Orders()); n != 0 || w.sim.Stats().Calls["order"] != 0 {
		t.Fatalf("the emulator received %d orders", n)
	}
	// A 64-character fingerprint is accepted and sent as 32 characters.
	long := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", AmountFen: 1000, DeviceFingerprint: long})
	if err != nil {
		t.Fatal(err)
	}
	if so, _ := w.sim.Order(res.OutTradeNo); len(so.DeviceInfo) != 32 || res.Credits != 1_388_888 {
		t.Fatalf("device_info %q, credits %d", so.DeviceInfo, res.Credits)
	}
}
