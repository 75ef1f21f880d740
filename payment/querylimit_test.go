package payment_test

import (
	"context"
	"testing"
	"time"

	"tollgate/kv"
	"tollgate/kv/kvtest"
	"tollgate/payment"
)

// TestQueryLimitKeepsTheMerchantBudget: the poller's configured query limit
// admits at most QueryBudget order queries in any sliding minute, across
// all instances, even to pollers that idle until the bucket is full and
// then query as fast as the limit lets them. (Issue 17: a bucket holding a
// whole minute's worth let up to 11,999 through; the harness saw 7,240.)
func TestQueryLimitKeepsTheMerchantBudget(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	cfg := w.svc.Config()
	clock := kvtest.NewFakeClock()
	lim := kv.NewMemory(kv.MemoryOptions{Clock: clock})
	l := cfg.QueryLimit
	events := kvtest.Drive(t, clock, time.Minute, time.Duration(l.Burst)*l.Interval(), 3*time.Minute, func() (kv.Result, int64, error) {
		r, err := lim.Allow(context.Background(), "wxpay:query:"+cfg.MchID, l)
		return r, 1, err
	})
	if got := kvtest.MaxInWindow(events, time.Minute); got > payment.QueryBudget {
		t.Fatalf("%d order queries in one sliding minute under QueryLimit %+v, over the merchant's budget of %d", got, l, payment.QueryBudget)
	}
}

// TestNewRefusesAQueryLimitOverTheBudget: a configured QueryLimit that could
// exceed the merchant's budget in some sliding minute is refused at start.
func TestNewRefusesAQueryLimitOverTheBudget(t *testing.T) {
	t.Parallel()
	w := newWorld(t, backends[0], modes[0], nil)
	cfg := w.svc.Config()
	cfg.TokenSecret = []byte("test secret")
	deps := payment.Deps{Ledger: w.ledger, Store: w.store, Pricer: mustPricer(t), Nonces: w.nonces, Limiter: w.nonces,
		V2: w.v2, V3: w.v3, Clock: w.clock}
	for _, l := range []kv.Limit{
		{Rate: payment.QueryBudget, Per: time.Minute, Burst: payment.QueryBudget}, // the default before issue 17
		kv.WindowLimit(payment.QueryBudget+1, time.Minute, 1),
		{Rate: 0, Per: time.Minute, Burst: 1},
	} {
		cfg.QueryLimit = l
		if _, err := payment.New(cfg, deps); err == nil {
			t.Errorf("New with QueryLimit %+v succeeded, want an error", l)
		}
	}
	cfg.QueryLimit = kv.WindowLimit(payment.QueryBudget, time.Minute, 60)
	if _, err := payment.New(cfg, deps); err != nil {
		t.Fatalf("New with a QueryLimit of exactly the budget: %v", err)
	}
}
