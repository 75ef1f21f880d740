package postgres_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

func TestBackoffBounded(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := postgres.Backoff(n)
		if d <= 0 || d > 200*time.Millisecond {
			t.Fatalf("backoff(%d) = %v, want in (0, 200ms]", n, d)
		}
	}
}

// deadlock makes two Update transactions lock accounts a and b in opposite
// orders (which the ledger never does) on their first attempt, so
// PostgreSQL must abort one with deadlock_detected.
func deadlock(t *testing.T, s *postgres.Store) [2]error {
	t.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx ledger.Tx) error {
		return tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{
			{ID: "a", CreatedAt: time.Now()}, {ID: "b", CreatedAt: time.Now()}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var both sync.WaitGroup
	both.Add(2)
	var errs [2]error
	var wg sync.WaitGroup
	for i, order := range [2][2]tollgate.AccountID{{"a", "b"}, {"b", "a"}} {
		var attempts atomic.Int32
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx ledger.Tx) error {
				if _, err := tx.Accounts(ctx, order[:1]); err != nil {
					return err
				}
				if attempts.Add(1) == 1 {
					both.Done()
					both.Wait() // both hold their first lock
				}
				_, err := tx.Accounts(ctx, order[1:])
				return err
			})
		})
	}
	wg.Wait()
	return errs
}

// mustOpenFastDeadlocks opens a store whose sessions look for deadlocks
// after 50 ms instead of the server's default second.
func mustOpenFastDeadlocks(t *testing.T, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testenv.MustPostgres(t)+"&deadlock_timeout=50ms", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDeadlockIsRetry(t *testing.T) {
	t.Run("ReportedAsErrRetry", func(t *testing.T) {
		s := mustOpenFastDeadlocks(t)
		errs := deadlock(t, s)
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("errors = %v; want exactly one transaction aborted", errs)
		}
		err := errors.Join(errs[0], errs[1])
		if !errors.Is(err, ledger.ErrRetry) {
			t.Fatalf("deadlock error %v does not wrap ErrRetry", err)
		}
	})
	t.Run("RetriedWithUpdateAttempts", func(t *testing.T) {
		s := mustOpenFastDeadlocks(t, postgres.WithUpdateAttempts(3))
		if errs := deadlock(t, s); errs[0] != nil || errs[1] != nil {
			t.Fatalf("errors = %v; want the aborted transaction retried", errs)
		}
	})
}

// TestCancelledBeforeCommit shows that a context ended before COMMIT rolls
// the transaction back and says so, and that the pool keeps serving.
func TestCancelledBeforeCommit(t *testing.T) {
	s, _ := MustOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := s.Update(ctx, func(tx ledger.Tx) error {
		if _, err := tx.Accounts(ctx, []tollgate.AccountID{"x"}); err != nil {
			return err
		}
		err := tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "x", CreatedAt: time.Now()}}})
		cancel()
		return err
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, postgres.ErrCommitUnknown) {
		t.Fatalf("err = %v, want context.Canceled, known not committed", err)
	}
	bg := context.Background()
	err = s.View(bg, func(tx ledger.ReadTx) error {
		got, err := tx.Accounts(bg, []tollgate.AccountID{"x"})
		if len(got) != 0 {
			t.Errorf("a cancelled transaction committed: %+v", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
