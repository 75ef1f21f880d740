package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// The writer never checkpoints (wal_autocheckpoint is off so no commit
// stalls on one); the background checkpointer copies the WAL back into
// the database file: a copy of that file alone soon holds every row.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.writer.QueryRow("PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	const n = 200
	for i := range n {
		if err := s.ExecRaw(ctx, "INSERT INTO accounts (id, left_credits, held, debt, created_at, version) VALUES (?, 0, 0, 0, 0, 1)",
			fmt.Sprintf("acct-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		main, err := os.ReadFile(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(t.TempDir(), "copy.db") // the main file without its WAL
		if err := os.WriteFile(cp, main, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+cp)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		err = db.QueryRow("SELECT count(*) FROM accounts").Scan(&rows)
		db.Close()
		if err == nil && rows == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file alone has %d of %d rows (%v) after 10 s: no checkpoint ran", rows, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
