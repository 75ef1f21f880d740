package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

func open(tb testing.TB) ledger.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatalf("open sqlite store: %v", err)
	}
	return s
}

// TestConformance runs the suite as serve uses SQLite: the Service is the
// store's one writer and keeps lot-funded holds in memory. The hold rules
// are the same code as for stored holds (ledger.holdBook), which
// store/postgres's suite runs.
func TestConformance(t *testing.T) {
	storetest.RunWith(t, open, ledger.Options{MemoryHolds: true})
}

func BenchmarkHoldSettle(b *testing.B) { storetest.BenchmarkHoldSettle(b, open) }

// TestWriteProbe runs the probe's conformance test; writes are refused by
// making the database file and its WAL immutable (chattr +i), which stops
// root and the store's open descriptors alike.
func TestWriteProbe(t *testing.T) {
	storetest.RunWriteProbe(t, func(tb testing.TB) (ledger.Store, func(testing.TB)) {
		st := open(tb).(*sqlite.Store)
		return st, func(tb testing.TB) { testenv.MustFreeze(tb, st.Path(), st.Path()+"-wal") }
	})
}
