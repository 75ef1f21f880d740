package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

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

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// TestConformanceMemoryHolds runs the suite with lot-funded holds kept in
// memory, as serve does on SQLite (the Service is the store's one writer).
func TestConformanceMemoryHolds(t *testing.T) {
	storetest.RunWith(t, open, ledger.Options{MemoryHolds: true})
}

func BenchmarkHoldSettle(b *testing.B) { storetest.BenchmarkHoldSettle(b, open) }
