package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

func reserve(e *Env, id string, acct tollgate.AccountID, amount tollgate.Credits) (ledger.Hold, error) {
	return e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: id, Account: acct, Amount: amount, TTL: time.Minute})
}

func settle(e *Env, id string, cost tollgate.Credits) (ledger.Hold, error) {
	return e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: id, Cost: cost})
}

func testHoldLifecycle(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	h, err := reserve(e, "h1", "alice", 300)
	if err != nil || h.Status != ledger.HoldActive || h.Amount != 300 || !h.ExpiresAt.Equal(Start.Add(time.Minute)) {
		t.Fatalf("reserve = %+v, %v", h, err)
	}
	WantBalance(t, e, "alice", 700, 300, 0)
	again, err := reserve(e, "h1", "alice", 300)
	if err != nil || again.ID != h.ID || again.Status != ledger.HoldActive {
		t.Fatalf("repeated reserve = %+v, %v; want the same hold", again, err)
	}
	WantBalance(t, e, "alice", 700, 300, 0)

	s, err := settle(e, "h1", 120)
	if err != nil || s.Status != ledger.HoldSettled || s.Cost != 120 {
		t.Fatalf("settle = %+v, %v", s, err)
	}
	WantBalance(t, e, "alice", 880, 0, 0)
	if s2, err := settle(e, "h1", 120); err != nil || s2.Status != ledger.HoldSettled {
		t.Fatalf("repeated settle = %+v, %v; want the settled hold", s2, err)
	}
	WantBalance(t, e, "alice", 880, 0, 0)

	if _, err := reserve(e, "h2", "alice", 500); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 380, 500, 0)
	for range 2 {
		r, err := e.Svc.Release(e.Ctx, "h2")
		if err != nil || r.Status != ledger.HoldReleased || r.Cost != 0 {
			t.Fatalf("release = %+v, %v", r, err)
		}
		WantBalance(t, e, "alice", 880, 0, 0)
	}
	// Settling the whole balance exactly is allowed; one more credit is not.
	if _, err := reserve(e, "h3", "alice", 880); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "h3", 880); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 0, 0, 0)
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := reserve(e, "h4", "alice", 1); return err })
	got, err := e.Svc.Hold(e.Ctx, "h1")
	if err != nil || got.Cost != 120 || got.Status != ledger.HoldSettled || !got.ResolvedAt.Equal(Start) {
		t.Fatalf("Hold(h1) = %+v, %v", got, err)
	}
}

func testHoldErrors(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	if _, err := reserve(e, "active", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(e, "settled", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "settled", 50); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(e, "released", "alice", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Release(e.Ctx, "released"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		code string
		fn   func() error
	}{
		{"ReserveTooMuch", tollgate.EINSUFFICIENT, func() error { _, err := reserve(e, "x", "alice", 851); return err }},
		{"ReserveZero", tollgate.EINVALID, func() error { _, err := reserve(e, "x", "alice", 0); return err }},
		{"ReserveNoID", tollgate.EINVALID, func() error { _, err := reserve(e, "", "alice", 1); return err }},
		{"ReserveNoTTL", tollgate.EINVALID, func() error {
			_, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "x", Account: "alice", Amount: 1})
			return err
		}},
		{"ReserveUnknownAccount", tollgate.ENOTFOUND, func() error { _, err := reserve(e, "x", "bob", 1); return err }},
		{"ReserveIDOtherTerms", tollgate.ECONFLICT, func() error { _, err := reserve(e, "active", "alice", 101); return err }},
		{"ReserveUnknownGrant", tollgate.ENOTFOUND, func() error {
			_, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "x", Account: "alice", GrantID: "g", Amount: 1, TTL: time.Minute})
			return err
		}},
		{"SettleAboveHold", tollgate.EINVALID, func() error { _, err := settle(e, "active", 101); return err }},
		{"SettleNegative", tollgate.EINVALID, func() error { _, err := settle(e, "active", -1); return err }},
		{"SettleNegativeTokens", tollgate.EINVALID, func() error {
			_, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: "active", Cost: 1, Usage: ledger.Usage{CacheWrite1hTokens: -1}})
			return err
		}},
		{"SettleUnknown", tollgate.ENOTFOUND, func() error { _, err := settle(e, "nope", 1); return err }},
		{"SettleOtherCost", tollgate.ECONFLICT, func() error { _, err := settle(e, "settled", 51); return err }},
		{"SettleReleased", tollgate.ECONFLICT, func() error { _, err := settle(e, "released", 0); return err }},
		{"SettleUsageIDReused", tollgate.ECONFLICT, func() error {
			_, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: "active", Cost: 1, Usage: ledger.Usage{RequestID: "settled"}})
			return err
		}},
		{"ReleaseSettled", tollgate.ECONFLICT, func() error { _, err := e.Svc.Release(e.Ctx, "settled"); return err }},
		{"ReleaseUnknown", tollgate.ENOTFOUND, func() error { _, err := e.Svc.Release(e.Ctx, "nope"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) { Rejected(t, e, tc.code, tc.fn) })
	}
	WantBalance(t, e, "alice", 850, 100, 0)
}

func testDrawDownOrder(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	l1 := MustCredit(t, e, "alice", "o1", 100, 100)
	l2 := MustCredit(t, e, "alice", "o2", 200, 200)
	l3 := MustCredit(t, e, "alice", "o3", 300, 300)
	if _, err := reserve(e, "h", "alice", 250); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "h", 250); err != nil {
		t.Fatal(err)
	}
	lots, err := e.Svc.Lots(e.Ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64][2]tollgate.Credits{l1.ID: {100, 0}, l2.ID: {150, 50}, l3.ID: {0, 300}}
	for _, l := range lots {
		if w := want[l.ID]; l.Used != w[0] || l.Left != w[1] {
			t.Errorf("lot %s used %d left %d, want %d/%d (oldest first)", l.OutTradeNo, l.Used, l.Left, w[0], w[1])
		}
	}
}

// testHoldContention runs 200 goroutines that each reserve and settle from
// one account holding less than they ask for in total: no credit is spent
// twice, available never goes below zero, and every settle lands.
func testHoldContention(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	const balance, workers, ask = 10_000, 200, 70
	MustCredit(t, e, "alice", "o1", 100, balance)
	var wg sync.WaitGroup
	var reserved, settledCost, refused atomic.Int64
	var negative atomic.Bool
	for i := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("h%03d", i)
			_, err := reserve(e, id, "alice", ask)
			if tollgate.ErrorCode(err) == tollgate.EINSUFFICIENT {
				refused.Add(1)
				return
			}
			if err != nil {
				t.Errorf("reserve %s: %v", id, err)
				return
			}
			reserved.Add(1)
			if b, err := e.Svc.Balance(e.Ctx, "alice"); err != nil || b.Credits < 0 {
				negative.Store(true)
			}
			cost := tollgate.Credits(i%ask + 1)
			if _, err := settle(e, id, cost); err != nil {
				t.Errorf("settle %s: %v", id, err)
				return
			}
			settledCost.Add(int64(cost))
		})
	}
	wg.Wait()
	if negative.Load() {
		t.Fatal("available credit went below zero")
	}
	if reserved.Load()+refused.Load() != workers {
		t.Fatalf("%d reserved + %d refused ≠ %d", reserved.Load(), refused.Load(), workers)
	}
	if reserved.Load() < balance/ask {
		t.Fatalf("only %d reserves succeeded; at least %d fit", reserved.Load(), balance/ask)
	}
	WantBalance(t, e, "alice", balance-tollgate.Credits(settledCost.Load()), 0, 0)
	usage, err := e.Svc.ListUsage(e.Ctx, "alice", 1000)
	if err != nil || int64(len(usage)) != reserved.Load() {
		t.Fatalf("%d usage records (%v), want one per settled hold (%d)", len(usage), err, reserved.Load())
	}
}

func testHoldExpiry(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	for _, id := range []string{"early", "late"} {
		if _, err := reserve(e, id, "alice", 100); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(30 * time.Second)
	}
	WantBalance(t, e, "alice", 800, 200, 0)
	// "early" expires at +60s; it is now +60s: at its expiry it is swept.
	n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("ExpireHolds = %d, %v; want 1", n, err)
	}
	WantBalance(t, e, "alice", 900, 100, 0)
	h, err := e.Svc.Hold(e.Ctx, "early")
	if err != nil || h.Status != ledger.HoldExpired || h.Cost != 0 {
		t.Fatalf("expired hold = %+v, %v", h, err)
	}
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != 0 {
		t.Fatalf("second ExpireHolds = %d, %v; want 0", n, err)
	}
	if r, err := e.Svc.Release(e.Ctx, "early"); err != nil || r.Status != ledger.HoldExpired {
		t.Fatalf("release of an expired hold = %+v, %v; want it unchanged", r, err)
	}
	if _, err := settle(e, "late", 100); err != nil {
		t.Fatalf("settle before expiry: %v", err)
	}
	WantBalance(t, e, "alice", 900, 0, 0)
	// Many expired holds are swept in chunks.
	const bulk = 600
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Go(func() {
			for i := w; i < bulk; i += 20 {
				if _, err := reserve(e, fmt.Sprintf("bulk%04d", i), "alice", 1); err != nil {
					t.Errorf("reserve: %v", err)
				}
			}
		})
	}
	wg.Wait()
	WantBalance(t, e, "alice", 900-bulk, bulk, 0)
	e.Clock.Advance(2 * time.Minute)
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != bulk {
		t.Fatalf("bulk ExpireHolds = %d, %v; want %d", n, err, bulk)
	}
	WantBalance(t, e, "alice", 900, 0, 0)
}
