package payment_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
)

// The deadlines of the payment path, probed one microsecond before, exactly
// at and one microsecond after each, on the injected clock: what ends at T
// is usable at T−1µs and over at T. The ledger's own deadlines (grants,
// holds) are probed by storetest.RunBoundaries.

// forBackends runs body on every store with WeChat Pay spoken as m.
func forBackends(t *testing.T, m mode, body func(t *testing.T, w *world)) {
	for _, b := range backends {
		t.Run(b.name+"/"+m.name, func(t *testing.T) {
			t.Parallel()
			body(t, newWorld(t, b, m, nil))
		})
	}
}

// wantToken checks what a provisional token authenticates as: the account
// and grant, or EUNAUTHORIZED when grant is "-".
func (w *world) wantToken(t *testing.T, when, tok string, acct tollgate.AccountID, grant string) {
	t.Helper()
	a, g, err := w.svc.AuthenticateAccessToken(w.ctx, tok)
	if grant == "-" {
		if tollgate.ErrorCode(err) != tollgate.EUNAUTHORIZED {
			t.Fatalf("token %s: %q, %q, %v; want it refused (unauthorized)", when, a, g, err)
		}
		return
	}
	if err != nil || a != acct || g != grant {
		t.Fatalf("token %s: %q, %q, %v; want %q, grant %q", when, a, g, err, acct, grant)
	}
}

// TestAccessTokenBoundaries: a provisional token (and the grant behind it)
// spends through its grant until 1µs before its deadline, unpaid; once
// paid, it spends the account's credit until then; after a failed payment
// it is refused at once; at the deadline it is refused in every phase, a
// retried order request no longer hands it out, and the poller revokes the
// unpaid grant, its use becoming debt. The order itself closes at its own
// deadline, not a microsecond before.
func TestAccessTokenBoundaries(t *testing.T) {
	t.Parallel()
	forBackends(t, modes[0], func(t *testing.T, w *world) {
		t0 := w.clock.Now()
		orders := map[tollgate.AccountID]payment.OrderResult{}
		for _, a := range []tollgate.AccountID{"unpaid", "paid", "failed"} {
			w.mustAccount(a)
			res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: a, PackageID: "starter",
				DeviceFingerprint: fp, IdempotencyKey: "key-" + string(a)})
			if err != nil || res.AccessToken == nil {
				t.Fatalf("CreateOrder %s = %+v, %v", a, res, err)
			}
			w.mu.Lock()
			w.tokens = append(w.tokens, res.AccessToken.Token)
			w.mu.Unlock()
			orders[a] = res
			spend(t, w, "h-"+string(a), a, res.OutTradeNo, 70)
		}
		exp := orders["unpaid"].AccessToken.ExpiresAt
		if want := t0.Add(5 * time.Minute); !exp.Equal(want) {
			t.Fatalf("token expires at %v, want %v (GrantTTL after the order)", exp, want)
		}
		if _, err := w.sim.Pay(orders["paid"].OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(orders["paid"].OutTradeNo, payment.StatusSuccess)
		if _, err := w.sim.Fail(orders["failed"].OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.poll(6 * time.Second)
		if st := w.order(orders["failed"].OutTradeNo).Status; st != payment.StatusPayError {
			t.Fatalf("failed order is %s", st)
		}
		tok := func(a tollgate.AccountID) string { return orders[a].AccessToken.Token }
		w.wantToken(t, "just after the payment failed", tok("failed"), "", "-")

		w.clock.Set(exp.Add(-time.Microsecond))
		w.wantToken(t, "1µs before its deadline, unpaid", tok("unpaid"), "unpaid", orders["unpaid"].OutTradeNo)
		w.wantToken(t, "1µs before its deadline, paid", tok("paid"), "paid", "")
		w.wantToken(t, "1µs before its deadline, payment failed", tok("failed"), "", "-")
		if res := w.retryOrder(t, "unpaid"); res.AccessToken == nil || !res.AccessToken.ExpiresAt.Equal(exp) {
			t.Fatalf("retried order 1µs before the token's deadline: token %+v", res.AccessToken)
		}
		if _, err := w.svc.PollOnce(w.ctx); err != nil {
			t.Fatal(err)
		}
		if g, _ := w.ledger.Grant(w.ctx, orders["unpaid"].OutTradeNo); g.Status != ledger.GrantLive {
			t.Fatalf("the poller revoked a grant 1µs before its deadline: %+v", g)
		}

		for _, at := range []time.Duration{0, time.Microsecond} {
			w.clock.Set(exp.Add(at))
			when := fmt.Sprintf("%v past its deadline", at)
			for _, a := range []tollgate.AccountID{"unpaid", "paid", "failed"} {
				w.wantToken(t, when+", "+string(a), tok(a), "", "-")
			}
			if res := w.retryOrder(t, "unpaid"); res.AccessToken != nil {
				t.Fatalf("retried order %s: token handed out again, expiring %v", when, res.AccessToken.ExpiresAt)
			}
			if _, err := w.svc.PollOnce(w.ctx); err != nil {
				t.Fatal(err)
			}
			g, _ := w.ledger.Grant(w.ctx, orders["unpaid"].OutTradeNo)
			b, _ := w.ledger.Balance(w.ctx, "unpaid")
			if g.Status != ledger.GrantRevoked || b.Debt != 70 || b.Provisional != 0 {
				t.Fatalf("unpaid grant %s: %+v, balance %+v; want revoked, debt 70", when, g, b)
			}
		}
		for a, debt := range map[tollgate.AccountID]tollgate.Credits{"paid": 0, "failed": 70} {
			if b, _ := w.ledger.Balance(w.ctx, a); b.Debt != debt {
				t.Fatalf("%s: balance %+v, want debt %d", a, b, debt)
			}
		}

		// The order's own deadline (OrderTTL after it was made).
		no := orders["unpaid"].OutTradeNo
		closeAt := orders["unpaid"].ExpiresAt
		if !closeAt.Equal(t0.Add(30 * time.Minute)) {
			t.Fatalf("order expires at %v", closeAt)
		}
		w.clock.Set(closeAt.Add(-time.Microsecond))
		if _, err := w.svc.PollOnce(w.ctx); err != nil {
			t.Fatal(err)
		}
		if st := w.order(no).Status; st != payment.StatusNotPay {
			t.Fatalf("order 1µs before its deadline: %s", st)
		}
		w.clock.Set(closeAt)
		if _, err := w.svc.PollOnce(w.ctx); err != nil {
			t.Fatal(err)
		}
		if st := w.order(no).Status; st != payment.StatusClosed {
			t.Fatalf("order at its deadline: %s, want it closed", st)
		}
	})
}

// retryOrder repeats account a's order request with its Idempotency-Key.
func (w *world) retryOrder(t *testing.T, a tollgate.AccountID) payment.OrderResult {
	t.Helper()
	res, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: a, PackageID: "starter",
		DeviceFingerprint: fp, IdempotencyKey: "key-" + string(a)})
	if err != nil || !res.Replayed {
		t.Fatalf("retried CreateOrder %s = %+v, %v", a, res, err)
	}
	return res
}

// TestRefundOnlyOfPaidOrders: a refund is refused, with nothing recorded
// and nothing sent, before the order is paid, after its payment failed and
// after it expired unpaid; an order paid later refunds nothing the user
// did not ask for once it was paid.
func TestRefundOnlyOfPaidOrders(t *testing.T) {
	t.Parallel()
	forBackends(t, modes[2], func(t *testing.T, w *world) {
		refused := func(a tollgate.AccountID, no, when string) {
			t.Helper()
			_, err := w.svc.Refund(w.ctx, a, no)
			if tollgate.ErrorCode(err) != tollgate.ECONFLICT {
				t.Fatalf("refund %s: %v, want a conflict (order not paid)", when, err)
			}
			if recs, err := w.store.RefundsByOrder(w.ctx, no); err != nil || len(recs) != 0 {
				t.Fatalf("refund %s left records %+v, %v", when, recs, err)
			}
		}
		for _, a := range []tollgate.AccountID{"unpaid", "failed", "expired"} {
			w.mustAccount(a)
		}
		unpaid, failed, expired := w.mustOrder("unpaid", "starter"), w.mustOrder("failed", "starter"), w.mustOrder("expired", "starter")
		refused("unpaid", unpaid.OutTradeNo, "before payment")
		if _, err := w.sim.Fail(failed.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.poll(6 * time.Second)
		refused("failed", failed.OutTradeNo, "after the payment failed")
		w.clock.Set(expired.ExpiresAt)
		if _, err := w.svc.PollOnce(w.ctx); err != nil {
			t.Fatal(err)
		}
		if st := w.order(expired.OutTradeNo).Status; st != payment.StatusClosed {
			t.Fatalf("expired order is %s", st)
		}
		refused("expired", expired.OutTradeNo, "after the order expired")

		// The unpaid order is paid late: credited whole, and the poller
		// finds no refund to send.
		if _, err := w.sim.PayLate(unpaid.OutTradeNo); err != nil {
			t.Fatal(err)
		}
		w.waitStatus(unpaid.OutTradeNo, payment.StatusSuccess)
		w.poll(time.Minute)
		w.poll(time.Hour)
		lot, err := w.ledger.LotByOrder(w.ctx, unpaid.OutTradeNo)
		if err != nil || lot.Refunding != 0 || lot.Refunded != 0 || lot.Left != lot.Granted {
			t.Fatalf("lot of the order paid late: %+v, %v; want it whole", lot, err)
		}
		if so, _ := w.sim.Order(unpaid.OutTradeNo); len(so.Refunds) != 0 {
			t.Fatalf("refunds reached WeChat Pay: %+v", so.Refunds)
		}
	})
}

// TestNotificationNonceWindow: API v2's replay window. A nonce_str is
// remembered 24 h after the notification that carried it was credited:
// until 1µs before that, a notification of another order carrying it is
// refused as a replay and credits nothing; from then on it is a nonce like
// any other and the (validly signed) payment is credited.
func TestNotificationNonceWindow(t *testing.T) {
	t.Parallel()
	forBackends(t, modes[1], func(t *testing.T, w *world) {
		cfg := w.sim.Config()
		w.mustAccount("alice")
		w.mustAccount("bob")
		a, b := w.mustOrder("alice", "starter"), w.mustOrder("bob", "starter")
		notify := func(no string, fen tollgate.Fen) []byte {
			return signedV2(t, v2Payment(cfg, no, int64(fen), "nonce-window-0001"), w.mode.signType, cfg.APIKey)
		}
		t0 := w.clock.Now()
		w.deliver(t, nil, notify(a.OutTradeNo, a.AmountFen), http.StatusOK)
		if len(w.lots("alice")) != 1 {
			t.Fatal("alice's payment was not credited")
		}
		w.clock.Set(t0.Add(24*time.Hour - time.Microsecond))
		if reply := w.deliver(t, nil, notify(b.OutTradeNo, b.AmountFen), http.StatusBadRequest); !bytes.Contains(reply, []byte(payment.ReasonReplay)) {
			t.Fatalf("nonce reused 1µs before 24 h: %s, want refused as a replay", reply)
		}
		if n := len(w.lots("bob")); n != 0 {
			t.Fatalf("a replayed nonce credited %d lots", n)
		}
		w.clock.Set(t0.Add(24 * time.Hour))
		w.deliver(t, nil, notify(b.OutTradeNo, b.AmountFen), http.StatusOK)
		if ls := w.lots("bob"); len(ls) != 1 || ls[0].Fen != b.AmountFen {
			t.Fatalf("the nonce forgotten after 24 h: lots %+v, want bob's payment credited", ls)
		}
	})
}

// TestV3TimestampWindow: API v3's replay window is the signature's
// timestamp: a notification is accepted while the clock is less than 5
// minutes from Wechatpay-Timestamp, either way, and refused from 5 minutes
// on, to the microsecond.
func TestV3TimestampWindow(t *testing.T) {
	t.Parallel()
	forBackends(t, modes[2], func(t *testing.T, w *world) {
		cfg := w.sim.Config()
		var orders []payment.OrderResult
		for i := range 4 {
			a := tollgate.AccountID(fmt.Sprintf("user%d", i))
			w.mustAccount(a)
			orders = append(orders, w.mustOrder(a, "starter"))
		}
		notify := func(i int, ts time.Time) (http.Header, []byte) {
			o := orders[i]
			body := v3Body(t, cfg.APIv3Key, map[string]any{"appid": cfg.AppID, "mchid": cfg.MchID, "out_trade_no": o.OutTradeNo,
				"transaction_id": "42000000000000000000000000" + strconv.Itoa(10+i), "trade_type": "NATIVE", "trade_state": "SUCCESS",
				"trade_state_desc": "ok", "bank_type": "OTHERS", "success_time": "2026-11-27T12:00:00+08:00",
				"payer":  map[string]string{"openid": "o1"},
				"amount": map[string]any{"total": o.AmountFen, "payer_total": o.AmountFen, "currency": "CNY", "payer_currency": "CNY"}}, false)
			return v3Headers(t, body, ts, fmt.Sprintf("nonce-ts-%d", i), cfg.PlatformKeyID), body
		}
		credited := func(i int) bool {
			_, err := w.ledger.LotByOrder(w.ctx, orders[i].OutTradeNo)
			return err == nil
		}
		ts := w.clock.Now().Truncate(time.Second)
		for _, c := range []struct {
			name   string
			at     time.Duration // the clock, from the timestamp
			stamp  time.Duration // the timestamp, from ts
			accept bool
		}{
			{"Stale5mLess1µs", 5*time.Minute - time.Microsecond, 0, true},
			{"Stale5m", 5 * time.Minute, 0, false},
			// A timestamp ahead of the clock (WeChat Pay's clock is fast).
			{"Ahead5mLess1µs", -(5*time.Minute - time.Microsecond), 10 * time.Minute, true},
			{"Ahead5m", -5 * time.Minute, 15 * time.Minute, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				i := map[bool]int{true: 0, false: 1}[c.accept]
				if c.stamp > 0 {
					i += 2
				}
				stamp := ts.Add(c.stamp)
				w.clock.Set(stamp.Add(c.at))
				h, body := notify(i, stamp)
				want := http.StatusBadRequest
				if c.accept {
					want = http.StatusOK
				}
				reply := w.deliver(t, h, body, want)
				if !c.accept && !bytes.Contains(reply, []byte(payment.ReasonTooOld)) {
					t.Fatalf("%s: want refused as too old", reply)
				}
				if credited(i) != c.accept {
					t.Fatalf("credited %v, want %v", credited(i), c.accept)
				}
			})
		}
	})
}

// TestTokenSecretAcrossInstances: instances whose token secrets derive
// from one master secret (TokenSecretFrom) hand out the same provisional
// token for an order; any instance accepts a token, since only its hash is
// stored; an instance with another secret hands out no token on a retried
// order request rather than one that would not verify.
func TestTokenSecretAcrossInstances(t *testing.T) {
	t.Parallel()
	var cfg payment.Config
	var deps payment.Deps
	w := newWorld(t, backends[0], modes[0], func(c *payment.Config, d *payment.Deps) {
		c.TokenSecret = payment.TokenSecretFrom("master secret one")
		cfg, deps = *c, *d
	})
	instance := func(master string) *payment.Service {
		c := cfg
		c.TokenSecret = payment.TokenSecretFrom(master)
		s, err := payment.New(c, deps)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	w.mustAccount("alice")
	req := payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp, IdempotencyKey: "key-alice"}
	res, err := w.svc.CreateOrder(w.ctx, req)
	if err != nil || res.AccessToken == nil {
		t.Fatalf("CreateOrder = %+v, %v", res, err)
	}
	w.mu.Lock()
	w.tokens = append(w.tokens, res.AccessToken.Token)
	w.mu.Unlock()
	same, other := instance("master secret one"), instance("master secret two")
	for name, s := range map[string]*payment.Service{"same master": same, "other master": other} {
		if a, g, err := s.AuthenticateAccessToken(w.ctx, res.AccessToken.Token); err != nil || a != "alice" || g != res.OutTradeNo {
			t.Fatalf("token on an instance with the %s: %q, %q, %v", name, a, g, err)
		}
	}
	if again, err := same.CreateOrder(w.ctx, req); err != nil || again.AccessToken == nil || again.AccessToken.Token != res.AccessToken.Token {
		t.Fatalf("retry on an instance with the same master: %+v, %v; want the same token", again.AccessToken, err)
	}
	if again, err := other.CreateOrder(w.ctx, req); err != nil || again.AccessToken != nil {
		t.Fatalf("retry on an instance with another master: %+v, %v; want no token", again.AccessToken, err)
	}
}
