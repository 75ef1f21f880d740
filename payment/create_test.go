package payment_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
	"tollgate/wxpay/wxpaysim"
)

// TestIdempotencyKey: the same key and body return the same order (and the
// same token); the same key with another body is refused and creates
// nothing; concurrent requests with one key make one order.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "key-1", PackageID: "plus", DeviceFingerprint: fp}
		first, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || again.OutTradeNo != first.OutTradeNo || !again.Replayed || again.AccessToken == nil ||
			again.AccessToken.Token != first.AccessToken.Token || again.CodeURL != first.CodeURL {
			t.Fatalf("replay = %+v, %v; first %+v", again, err, first)
		}
		other := req
		other.PackageID = "pro"
		_, err = w.svc.CreateOrder(w.ctx, other)
		wantCode(t, err, tollgate.ECONFLICT)
		other = req
		other.DeviceFingerprint = "ffffffffffffffffffff"
		_, err = w.svc.CreateOrder(w.ctx, other)
		wantCode(t, err, tollgate.ECONFLICT)
		// Another account's key space is separate.
		w.mustAccount("bob")
		bob := req
		bob.Account = "bob"
		b, err := w.svc.CreateOrder(w.ctx, bob)
		if err != nil || b.OutTradeNo == first.OutTradeNo {
			t.Fatalf("bob = %+v, %v", b, err)
		}
		// Concurrent requests with one new key: one order.
		var wg sync.WaitGroup
		nos := make([]string, 6)
		for i := range nos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "key-2",
					AmountFen: 300, DeviceFingerprint: fp})
				if err != nil {
					t.Error(err)
				}
				nos[i] = r.OutTradeNo
			}()
		}
		wg.Wait()
		for _, no := range nos {
			if no != nos[0] {
				t.Fatalf("one key, several orders: %v", nos)
			}
		}
		if n := len(w.sim.Orders()); n != 3 {
			t.Fatalf("the emulator has %d orders, want 3", n)
		}
		// After 24 h the key is forgotten.
		w.clock.Advance(payment.IdempotencyTTL + time.Minute)
		late, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || late.OutTradeNo == first.OutTradeNo {
			t.Fatalf("after 24h = %+v, %v", late, err)
		}
	})
}

// TestCreateRetriesSameOutTradeNo: SYSTEMERROR on order placement is
// retried with the same out_trade_no; when every attempt fails the caller
// gets EUNAVAILABLE, and a retry with the same Idempotency-Key resumes the
// recorded order instead of making another.
func TestCreateRetriesSameOutTradeNo(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 1, SystemError: map[string]float64{"order": 1}}); err != nil {
			t.Fatal(err)
		}
		req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k", PackageID: "starter", DeviceFingerprint: fp}
		var err error
		start := w.clock.Now()
		w.clock.Run(func() { _, err = w.svc.CreateOrder(w.ctx, req) })
		wantCode(t, err, tollgate.EUNAVAILABLE)
		if got := w.sim.Stats().SystemErrors["order"]; got != 3 {
			t.Fatalf("%d placement attempts, want 3", got)
		}
		if waited := w.clock.Now().Sub(start); waited != 300*time.Millisecond {
			t.Fatalf("waited %v between attempts, want 100 ms + 200 ms", waited)
		}
		os, _ := w.store.ListOrders(w.ctx, "alice", 10)
		if len(os) != 1 || os[0].CodeURL != "" || os[0].Status != payment.StatusNotPay {
			t.Fatalf("recorded orders %+v", os)
		}
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 1}); err != nil {
			t.Fatal(err)
		}
		res, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || res.OutTradeNo != os[0].OutTradeNo || res.CodeURL == "" || res.AccessToken == nil {
			t.Fatalf("resumed = %+v, %v", res, err)
		}
		if n := len(w.sim.Orders()); n != 1 {
			t.Fatalf("the emulator has %d orders", n)
		}
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
	})
}

// TestLostPlacementWriteReplaysSameOrder: the write that stores what WeChat
// Pay gave (code_url) commits relaxed, so a power cut may lose it. The order
// is then recorded but unplaced, as after a crash before the write, and a
// retry with the same Idempotency-Key places the same out_trade_no again:
// WeChat Pay answers the same order (same code_url), and nothing new is
// made there.
func TestLostPlacementWriteReplaysSameOrder(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k", PackageID: "starter", DeviceFingerprint: fp}
		first, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || first.CodeURL == "" && first.JSAPI == nil && first.H5URL == "" {
			t.Fatalf("first = %+v, %v", first, err)
		}
		// The relaxed write lost: what WeChat Pay gave is gone.
		if _, err := w.store.UpdateOrder(w.ctx, first.OutTradeNo, func(o *payment.Order) error {
			o.CodeURL, o.H5URL, o.PrepayID, o.H5IssuedAt = "", "", "", time.Time{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if o := w.order(first.OutTradeNo); o.Placed() {
			t.Fatalf("order still placed: %+v", o)
		}
		again, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || again.OutTradeNo != first.OutTradeNo || again.CodeURL != first.CodeURL || !again.Replayed {
			t.Fatalf("replay = %+v, %v; first %+v", again, err, first)
		}
		if o := w.order(first.OutTradeNo); !o.Placed() || o.CodeURL != first.CodeURL {
			t.Fatalf("order after the replay: %+v", o)
		}
		if n := len(w.sim.Orders()); n != 1 {
			t.Fatalf("the emulator has %d orders, want 1", n)
		}
		if _, err := w.sim.Pay(first.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(first.OutTradeNo, payment.StatusSuccess)
	})
}

// TestConcurrentNotificationAndPoller: the notification handler and the
// poller race to credit the same payment; one lot results.
func TestConcurrentNotificationAndPoller(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 5, DuplicateRate: 1}); err != nil {
			t.Fatal(err)
		}
		res := w.mustOrder("alice", "starter")
		if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := w.svc.PollOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}()
		}
		w.clock.Advance(10 * time.Second)
		wg.Wait()
		w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
		w.eventually("the ack", func() bool { return acked(w.sim, res.OutTradeNo) > 0 })
		w.quiesce()
		if ls := w.lots("alice"); len(ls) != 1 {
			t.Fatalf("%d lots", len(ls))
		}
	})
}

// TestAccessToken: tokens are opaque, checked against a stored hash, and
// refused when unknown, malformed or expired.
func TestAccessToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	w.mustAccount("alice")
	res := w.mustOrder("alice", "starter")
	o := w.order(res.OutTradeNo)
	if o.TokenHash == "" || o.TokenHash == res.AccessToken.Token || !payment.IsAccessToken(res.AccessToken.Token) {
		t.Fatalf("token %q stored as %q", res.AccessToken.Token, o.TokenHash)
	}
	tok := []byte(res.AccessToken.Token)
	tok[10] ^= 1
	for _, bad := range []string{"", "sk-123", string(tok), res.AccessToken.Token + "x"} {
		_, _, err := w.svc.AuthenticateAccessToken(w.ctx, bad)
		wantCode(t, err, tollgate.EUNAUTHORIZED)
	}
	w.clock.Advance(5 * time.Minute)
	_, _, err := w.svc.AuthenticateAccessToken(w.ctx, res.AccessToken.Token)
	wantCode(t, err, tollgate.EUNAUTHORIZED)
}

// TestCreateUnknownAccount: an order for an account the ledger does not
// know is refused before anything is recorded or sent.
func TestCreateUnknownAccount(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	_, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "ghost", PackageID: "plus", DeviceFingerprint: fp})
	wantCode(t, err, tollgate.ENOTFOUND)
	if len(w.sim.Orders()) != 0 {
		t.Fatal("an order reached the emulator")
	}
	if c := w.svc.Config(); c.MchID != wxpaysim.DefaultMchID || c.TokenSecret != nil {
		t.Fatalf("config %+v", c)
	}
}
