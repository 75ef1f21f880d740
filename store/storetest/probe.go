package storetest

import (
	"context"
	"sync"
	"testing"

	"tollgate"
	"tollgate/ledger"
)

// WriteProber is a store that can prove it writes, for /readyz: store/sqlite
// and store/postgres both are.
type WriteProber interface {
	// ProbeWrite commits one small write outside the money tables. It
	// fails with EUNAVAILABLE, and a message safe to show that says why,
	// when the database does not take writes.
	ProbeWrite(ctx context.Context) error
}

// ProbeOpenFunc returns a fresh, empty, migrated store (the suite closes
// it) and a function that makes its database refuse every write from then
// on, as a read-only file or a revoked privilege does.
type ProbeOpenFunc func(tb testing.TB) (st ledger.Store, refuseWrites func(testing.TB))

// RunWriteProbe checks a store's ProbeWrite: it succeeds on a writable
// store, again and from many goroutines at once, leaving the money tables
// as they were; and once the database refuses writes it fails with
// EUNAVAILABLE, saying why, as the money's own writes then fail.
func RunWriteProbe(t *testing.T, open ProbeOpenFunc) {
	var refuse func(testing.TB)
	env := func(t *testing.T) (*Env, WriteProber) {
		e := NewEnv(t, func(tb testing.TB) ledger.Store {
			st, r := open(tb)
			refuse = r
			return st
		})
		p, ok := e.Store.(WriteProber)
		if !ok {
			t.Fatalf("%T has no ProbeWrite", e.Store)
		}
		return e, p
	}
	t.Run("Writable", func(t *testing.T) {
		e, p := env(t)
		MustAccount(t, e, "probe-acct")
		MustCredit(t, e, "probe-acct", "probe-order", 100, 1000)
		before := Digest(t, e)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for range 8 {
			wg.Go(func() {
				for range 5 {
					errs <- p.ProbeWrite(e.Ctx)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("ProbeWrite on a writable store: %v", err)
			}
		}
		if Digest(t, e) != before {
			t.Fatal("ProbeWrite changed the money tables")
		}
	})
	t.Run("Refused", func(t *testing.T) {
		e, p := env(t)
		if err := p.ProbeWrite(e.Ctx); err != nil {
			t.Fatalf("ProbeWrite before writes were refused: %v", err)
		}
		refuse(t)
		err := p.ProbeWrite(e.Ctx)
		if tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE || tollgate.ErrorMessage(err) == "internal error" {
			t.Fatalf("ProbeWrite on a store refusing writes = %v (%q), want unavailable with a reason", err, tollgate.ErrorMessage(err))
		}
		t.Logf("reason shown: %s", tollgate.ErrorMessage(err))
		if _, err := e.Svc.CreateAccount(e.Ctx, "refused-acct"); err == nil {
			t.Fatal("the probe failed but the store still took a money write")
		}
	})
}
