package payment_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/kv"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/wxpay/wxpaysim"
)

// TestCrashBetweenCreditAndOrderUpdate: if the process dies after the lot
// is created but before the order row says SUCCESS, the poller (and a
// retried notification) finish the order; nothing is credited twice.
func TestCrashBetweenCreditAndOrderUpdate(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, w *world) {
		if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 2, DropRate: 1}); err != nil {
			t.Fatal(err)
		}
		w.mustAccount("alice")
		res := w.mustOrder("alice", "starter")
		so, err := w.sim.Pay(res.OutTradeNo)
		if err != nil {
			t.Fatal(err)
		}
		// The crashed process got as far as the credit transaction.
		if _, _, err := w.ledger.CreditPayment(w.ctx, ledger.Payment{Account: "alice", OutTradeNo: res.OutTradeNo,
			TransactionID: so.TransactionID, Fen: res.AmountFen, Credits: res.Credits, GrantID: res.OutTradeNo}); err != nil {
			t.Fatal(err)
		}
		if w.order(res.OutTradeNo).Status != payment.StatusNotPay {
			t.Fatal("setup")
		}
		w.poll(6 * time.Second)
		if o := w.order(res.OutTradeNo); o.Status != payment.StatusSuccess || o.TransactionID != so.TransactionID {
			t.Fatalf("order after the poller: %+v", o)
		}
		if ls := w.lots("alice"); len(ls) != 1 {
			t.Fatalf("%d lots", len(ls))
		}
	})
}

// nonceSpy records nonces and checks, at each SetNX, that the order named
// in the key's notification is already credited: the nonce must only be
// recorded after the credit commits.
type nonceSpy struct {
	kv.NonceStore
	w     *world
	mu    sync.Mutex
	early []string
	sets  int
}

func (n *nonceSpy) SetNX(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	n.mu.Lock()
	n.sets++
	n.mu.Unlock()
	for _, o := range n.w.sim.Orders() {
		if o.State != wxpaysim.StateSuccess {
			continue
		}
		if _, err := n.w.ledger.LotByOrder(ctx, o.OutTradeNo); err != nil {
			n.mu.Lock()
			n.early = append(n.early, key)
			n.mu.Unlock()
		}
	}
	return n.NonceStore.SetNX(ctx, key, ttl)
}

// TestNonceRecordedAfterCredit: the nonce store is written only once the
// lot exists (a nonce recorded before a crash would make WeChat Pay's retry
// look like a replay).
func TestNonceRecordedAfterCredit(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			spy := &nonceSpy{}
			w := newWorld(t, backends[0], m, func(_ *payment.Config, d *payment.Deps) {
				spy.NonceStore = d.Nonces
				d.Nonces = spy
			})
			spy.w = w
			w.mustAccount("alice")
			res := w.mustOrder("alice", "plus")
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
			w.eventually("the nonce", func() bool { spy.mu.Lock(); defer spy.mu.Unlock(); return spy.sets > 0 })
			w.quiesce()
			spy.mu.Lock()
			defer spy.mu.Unlock()
			if len(spy.early) > 0 {
				t.Fatalf("nonces recorded before the credit committed: %v", spy.early)
			}
		})
	}
}

// TestTwoInstancesShareLeasesAndBudget: two services over one database and
// one limiter poll at once: no order is queried twice in a round, and the
// merchant's query budget is shared.
func TestTwoInstancesShareLeasesAndBudget(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			limit := kv.Limit{Rate: 6, Per: time.Hour, Burst: 6}
			w := newWorld(t, b, modes[0], func(c *payment.Config, _ *payment.Deps) {
				c.QueryLimit, c.InstanceID = limit, "one"
			})
			cfg := w.svc.Config()
			cfg.InstanceID = "two"
			cfg.TokenSecret = []byte("test secret")
			pr := mustPricer(t)
			other, err := payment.New(cfg, payment.Deps{Ledger: w.ledger, Store: w.store, Pricer: pr, Nonces: w.nonces,
				Limiter: w.nonces, V2: w.v2, V3: w.v3, Clock: w.clock})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				a := tollgate.AccountID(string(rune('a' + i)))
				w.mustAccount(a)
				w.mustOrder(a, "starter")
			}
			w.clock.Advance(time.Minute)
			var wg sync.WaitGroup
			for _, s := range []*payment.Service{w.svc, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.PollOnce(w.ctx); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if q := w.sim.Stats().Calls["query"]; q != 6 {
				t.Fatalf("%d queries, want exactly the shared budget of 6", q)
			}
			// The 4 refused orders were rescheduled, not lost.
			w.clock.Advance(2 * time.Hour)
			if _, err := other.PollOnce(w.ctx); err != nil {
				t.Fatal(err)
			}
			if q := w.sim.Stats().Calls["query"]; q < 10 {
				t.Fatalf("%d queries after the budget refilled", q)
			}
		})
	}
}

// hidingGateway answers NOTPAY to order queries until the order is closed,
// as a query that raced the payer's last-second payment would.
type hidingGateway struct {
	payment.Gateway
	mu     sync.Mutex
	closed bool
}

func (g *hidingGateway) QueryOrder(ctx context.Context, no string) (payment.Trade, error) {
	g.mu.Lock()
	hide := !g.closed
	g.mu.Unlock()
	if hide {
		return payment.Trade{State: payment.StatusNotPay}, nil
	}
	return g.Gateway.QueryOrder(ctx, no)
}

func (g *hidingGateway) CloseOrder(ctx context.Context, no string) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return g.Gateway.CloseOrder(ctx, no)
}

// TestCloseSaysPaid: closing an expired order answers ORDERPAID (the payer
// paid at the last moment): the poller queries and credits instead of
// closing, and keeps the provisional usage (the grant was revoked at
// expiry, so it became debt, which the payment then pays).
func TestCloseSaysPaid(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backends[0], m, func(_ *payment.Config, d *payment.Deps) {
				var inner payment.Gateway = &payment.V2Gateway{Client: d.V2}
				if m.version == payment.APIv3 {
					inner = &payment.V3Gateway{Client: d.V3}
				}
				d.Gateway = &hidingGateway{Gateway: inner}
			})
			if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 4, DropRate: 1}); err != nil {
				t.Fatal(err)
			}
			w.mustAccount("alice")
			res := w.mustOrder("alice", "starter")
			spend(t, w, "h", "alice", res.OutTradeNo, 99)
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			w.poll(31 * time.Minute)
			if st := w.order(res.OutTradeNo).Status; st != payment.StatusSuccess {
				t.Fatalf("status %s", st)
			}
			if w.metrics.Get(payment.EventPollerCredited, "close_orderpaid") != 1 {
				t.Fatalf("metrics %v", w.metrics.Snapshot())
			}
			if b, _ := w.ledger.Balance(w.ctx, "alice"); b.Debt != 0 || b.Credits != 1_400_000-99 {
				t.Fatalf("balance %+v", b)
			}
		})
	}
}

// TestRunPoller: the background loop finishes a payment whose notification
// was dropped, and stops when its context ends.
func TestRunPoller(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[2], func(c *payment.Config, _ *payment.Deps) { c.PollEvery = 10 * time.Millisecond })
	if err := w.sim.SetFaults(wxpaysim.Faults{Seed: 9, DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	w.mustAccount("alice")
	res := w.mustOrder("alice", "starter")
	if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	go func() { done <- w.svc.RunPoller(ctx) }()
	// Once the poller waits for its next round, a minute passes.
	if !w.clock.WaitTimers(1, time.Minute) {
		t.Fatal("the poller never waited for its next round")
	}
	w.clock.Advance(time.Minute)
	w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("RunPoller returned %v", err)
	}
}
