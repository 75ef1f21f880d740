package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// TestHoldRulesSameInBothPlaces runs one script of reserves, settles,
// releases and expiries, with repeats and refusals among them, against a
// Service keeping holds in the store and one keeping them in memory (the
// single writer's mode): every answer, and the balance after it, is the
// same, and both stores audit clean.
func TestHoldRulesSameInBothPlaces(t *testing.T) {
	stored := holdScript(t, false)
	memory := holdScript(t, true)
	if len(stored) != len(memory) {
		t.Fatalf("%d answers stored, %d in memory", len(stored), len(memory))
	}
	for i := range stored {
		if stored[i] != memory[i] {
			t.Errorf("step %d:\n stored: %s\n memory: %s", i, stored[i], memory[i])
		}
	}
}

func holdScript(t *testing.T, memory bool) []string {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	svc := ledger.New(st, ledger.Options{MemoryHolds: memory, Clock: tollgate.ClockFunc(clock)})
	t.Cleanup(func() {
		svc.Close()
		vs, err := ledger.Audit(ctx, st, ledger.AuditOptions{Now: clock(), Grace: time.Minute})
		if err != nil || len(vs) > 0 {
			t.Errorf("memory %v: audit: %v %v", memory, vs, err)
		}
	})
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 5000, Credits: 1000}); err != nil {
		t.Fatal(err)
	}
	var out []string
	note := func(step string, h ledger.Hold, err error) {
		b, berr := svc.Balance(ctx, "alice")
		if berr != nil {
			t.Fatal(berr)
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		out = append(out, fmt.Sprintf("%-22s %-8s amount %d cost %d created %s expires %s resolved %s err %q %q | credits %d held %d debt %d",
			step, h.Status, h.Amount, h.Cost, h.CreatedAt.Format(time.TimeOnly), h.ExpiresAt.Format(time.TimeOnly),
			h.ResolvedAt.Format(time.TimeOnly), tollgate.ErrorCode(err), msg, b.Credits, b.Held, b.Debt))
	}
	reserve := func(id string, acct tollgate.AccountID, amount tollgate.Credits, ttl time.Duration) {
		h, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: acct, Amount: amount, TTL: ttl})
		note(fmt.Sprintf("reserve %s %s %d", id, acct, amount), h, err)
	}
	settle := func(id string, cost tollgate.Credits) {
		h, err := svc.Settle(ctx, ledger.SettleRequest{HoldID: id, Cost: cost})
		note(fmt.Sprintf("settle %s %d", id, cost), h, err)
	}
	release := func(id string) {
		h, err := svc.Release(ctx, id)
		note("release "+id, h, err)
	}
	renew := func(id string, ttl time.Duration) {
		h, err := svc.Renew(ctx, id, ttl)
		note(fmt.Sprintf("renew %s %s", id, ttl), h, err)
	}

	reserve("h1", "alice", 300, time.Minute)
	reserve("h1", "alice", 300, time.Minute) // repeat: the same hold
	reserve("h1", "alice", 200, time.Minute) // other terms
	reserve("h2", "alice", 800, time.Minute) // 700 available
	reserve("", "alice", 1, time.Minute)
	reserve("h2", "alice", 1, 0)
	reserve("h2", "bob", 1, time.Minute) // no such account
	settle("h1", 301)                    // above the hold
	settle("h1", -1)
	settle("nope", 1)
	settle("h1", 120)
	settle("h1", 120) // repeat
	settle("h1", 100) // another cost
	release("h1")     // settled
	reserve("h1", "alice", 300, time.Minute)
	reserve("h2", "alice", 500, time.Minute)
	release("h2")
	release("h2") // repeat
	settle("h2", 10)
	reserve("h2", "alice", 500, time.Minute) // repeat of a released hold
	release("nope")
	reserve("h3", "alice", 880, time.Minute) // all of it
	reserve("h4", "alice", 1, time.Minute)
	advance(time.Minute)
	settle("h3", 10) // past its expiry, not swept yet: settled as usual
	n, err := svc.ExpireHolds(ctx, clock())
	note(fmt.Sprintf("expire %d", n), ledger.Hold{}, err)
	release("h3") // repeat of an expired hold
	settle("h3", 10)
	reserve("h5", "alice", 880, time.Minute)
	settle("h5", 880)
	reserve("h6", "alice", 1, time.Minute)
	reserve("h7", "alice", 100, time.Minute)
	renew("h7", 2*time.Minute)
	renew("h7", 2*time.Minute) // repeat
	renew("h7", 0)
	renew("h3", time.Minute) // settled
	renew("nope", time.Minute)
	advance(time.Minute)
	n, err = svc.ExpireHolds(ctx, clock())
	note(fmt.Sprintf("expire %d", n), ledger.Hold{}, err) // h6 only: h7 was renewed
	advance(time.Minute)
	n, err = svc.ExpireHolds(ctx, clock())
	note(fmt.Sprintf("expire %d", n), ledger.Hold{}, err)
	renew("h7", time.Minute) // expired
	settle("h7", 40)         // late: charged all the same
	settle("h7", 40)         // repeat
	settle("h7", 41)         // another cost
	release("h7")            // settled
	for _, id := range []string{"h1", "h2", "h3", "h5", "h7", "nope"} {
		h, err := svc.Hold(ctx, id)
		note("hold "+id, h, err)
	}
	return out
}
