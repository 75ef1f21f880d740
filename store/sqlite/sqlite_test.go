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

func BenchmarkHoldSettle(b *testing.B) { storetest.BenchmarkHoldSettle(b, open) }
