package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// testConcurrentMachine runs many clients doing random operations on a few
// shared accounts at once, with several group committers, so transactions
// that touch the same rows overlap in every order. There is no oracle: it
// requires that nothing deadlocks or fails unexpectedly, that every error
// is a domain answer, and that Audit (run when the test ends) is clean and
// the books balance.
func testConcurrentMachine(t *testing.T, e *Env) {
	accounts := []tollgate.AccountID{"a", "b", "c", "d", "e", "f"}
	for _, a := range accounts {
		MustAccount(t, e, a)
		MustCredit(t, e, a, "seed-"+string(a), 1000, 5000)
	}
	s := seed(t)
	t.Logf("seed %d (replay the schedule's choices with STORETEST_SEED=%d)", s, s)
	const clients, ops = 16, 50
	var wg sync.WaitGroup
	for c := range clients {
		r := rand.New(rand.NewPCG(s, uint64(c)))
		wg.Go(func() {
			for i := range ops {
				if err := machineStep(e, r, accounts, fmt.Sprintf("c%d-%d", c, i)); err != nil {
					t.Errorf("client %d op %d: %v", c, i, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("clients still running after 2 minutes: deadlock?")
	}
	if _, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		if b := MustBalance(t, e, a); b.Held != 0 || b.Credits < 0 && b.Debt == 0 {
			t.Errorf("balance of %s after the run: %+v", a, b)
		}
	}
}

// expected are the domain answers a random operation may get.
var expected = map[string]bool{"": true, tollgate.EINSUFFICIENT: true, tollgate.ECONFLICT: true, tollgate.ENOTFOUND: true}

func machineStep(e *Env, r *rand.Rand, accounts []tollgate.AccountID, id string) error {
	acct := accounts[r.IntN(len(accounts))]
	var err error
	switch k := r.IntN(10); {
	case k < 6:
		if _, err = reserve(e, id, acct, tollgate.Credits(1+r.IntN(300))); err != nil {
			break
		}
		if r.IntN(5) == 0 {
			_, err = e.Svc.Release(e.Ctx, id)
		} else {
			_, err = settle(e, id, tollgate.Credits(r.IntN(2)))
		}
	case k < 8:
		_, _, err = e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: acct, OutTradeNo: "o-" + id,
			TransactionID: "wx-" + id, Fen: 100, Credits: 300})
	case k < 9:
		var ref ledger.Refund
		ref, err = beginRefund(e, "r-"+id, acct, "seed-"+string(acct))
		if err == nil && r.IntN(2) == 0 {
			_, err = e.Svc.CompleteRefund(e.Ctx, ref.OutRefundNo)
		} else if err == nil {
			_, err = e.Svc.FailRefund(e.Ctx, ref.OutRefundNo)
		}
	default:
		_, err = e.Svc.ExpireHolds(e.Ctx, e.Clock.Now())
	}
	if !expected[tollgate.ErrorCode(err)] {
		return err
	}
	return nil
}
