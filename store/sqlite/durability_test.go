package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"tollgate/ledger"
)

// synchronous reads the writer connection's synchronous level inside a
// ledger transaction (1 NORMAL, 2 FULL).
func synchronous(t *testing.T, tx ledger.Tx) int {
	t.Helper()
	var level int
	if err := tx.(*txn).q.(cachedTx).tx.QueryRow("PRAGMA synchronous").Scan(&level); err != nil {
		t.Fatal(err)
	}
	return level
}

// Metering batches commit without an fsync; everything else, payments
// above all, keeps waiting for the disk — also right after a relaxed one.
func TestRelaxedCommitOnlyForMarkedTransactions(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want int
	}{
		{"strict", ctx, 2},
		{"relaxed", ledger.WithRelaxedCommit(ctx), 1},
		{"strict after relaxed", ctx, 2},
		{"relaxed again", ledger.WithRelaxedCommit(ctx), 1},
		{"strict again", ctx, 2},
	} {
		var got int
		if err := s.Update(tc.ctx, func(tx ledger.Tx) error {
			got = synchronous(t, tx)
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: synchronous = %d, want %d", tc.name, got, tc.want)
		}
	}
}
