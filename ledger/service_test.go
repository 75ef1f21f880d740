package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/sqlite"
)

// faultyStore wraps a real store and fails Apply for chosen changes: the
// way a store bug or a lost race looks to the Service.
type faultyStore struct {
	ledger.Store
	fail func(c *ledger.Changes) error
}

func (f *faultyStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return f.Store.Update(ctx, func(tx ledger.Tx) error { return fn(&faultyTx{tx, f.fail}) })
}

type faultyTx struct {
	ledger.Tx
	fail func(c *ledger.Changes) error
}

func (t *faultyTx) Apply(ctx context.Context, c *ledger.Changes) error {
	if err := t.fail(c); err != nil {
		return err
	}
	return t.Tx.Apply(ctx, c)
}

func mustService(t *testing.T, fail func(c *ledger.Changes) error, opt ledger.Options) *ledger.Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	svc := ledger.New(&faultyStore{Store: st, fail: fail}, opt)
	t.Cleanup(func() { svc.Close(); st.Close() })
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 1, Credits: 1000}); err != nil {
		t.Fatal(err)
	}
	return svc
}

func newHolds(c *ledger.Changes) []string {
	var ids []string
	for _, h := range c.NewHolds {
		ids = append(ids, h.ID)
	}
	return ids
}

// One operation that breaks the store's transaction must not fail the
// operations batched with it: the batch is run again one op at a time.
func TestBatchIsolatesAFailingOp(t *testing.T) {
	svc := mustService(t, func(c *ledger.Changes) error {
		if slices.Contains(newHolds(c), "poison") {
			return errors.New("store rejects this row")
		}
		return nil
	}, ledger.Options{MaxBatch: 10, BatchWindow: time.Minute}) // the batch closes when all 10 are in
	ctx := context.Background()
	base := svc.Stats() // mustService's credit went through the committer
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for i := range 10 {
		id := fmt.Sprintf("h%d", i)
		if i == 5 {
			id = "poison"
		}
		wg.Go(func() {
			_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 10, TTL: time.Minute})
			mu.Lock()
			errs[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	for id, err := range errs {
		if (id == "poison") != (err != nil) {
			t.Errorf("reserve %s: %v", id, err)
		}
	}
	if st := svc.Stats(); st.Batches-base.Batches != 1 || st.BatchedOps-base.BatchedOps != 10 {
		t.Fatalf("stats %+v (before the reserves %+v): want the 10 reserves in one batch", st, base)
	}
	b, err := svc.Balance(ctx, "alice")
	if err != nil || b.Credits != 910 || b.Held != 90 {
		t.Fatalf("balance = %+v, %v; want 910 available, 90 held", b, err)
	}
}

// A transaction that lost a race (ErrRetry) runs again and succeeds; one
// that keeps losing ends in EUNAVAILABLE without writing anything.
func TestRetryOnLostRace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int64
		code     string
		held     tollgate.Credits
	}{
		{"RetriedThenCommitted", 3, "", 10},
		{"GivesUp", 1 << 30, tollgate.EUNAVAILABLE, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var left atomic.Int64
			svc := mustService(t, func(c *ledger.Changes) error {
				if len(c.NewHolds) > 0 && left.Add(-1) >= 0 {
					return fmt.Errorf("stale version: %w", ledger.ErrRetry)
				}
				return nil
			}, ledger.Options{})
			left.Store(tc.failures)
			ctx := context.Background()
			_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "h", Account: "alice", Amount: 10, TTL: time.Minute})
			if got := tollgate.ErrorCode(err); got != tc.code {
				t.Fatalf("reserve: code %q (%v), want %q", got, err, tc.code)
			}
			b, err := svc.Balance(ctx, "alice")
			if err != nil || b.Held != tc.held {
				t.Fatalf("balance = %+v, %v; want held %d", b, err, tc.held)
			}
		})
	}
}
