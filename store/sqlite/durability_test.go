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

// walFrames returns the frames in the WAL after a PASSIVE checkpoint.
func walFrames(t *testing.T, s *Store) int {
	t.Helper()
	var busy, frames, copied int
	if err := s.ckpt.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	return frames
}

// While readers or the writer keep the WAL busy, a PASSIVE checkpoint
// cannot copy all of it, and SQLite rewinds the WAL only after one has: so
// under load the WAL grew without bound (400 MB in 10 s). The checkpointer
// restarts a long WAL: it waits for the readers and the writer, copies the
// rest, and the next commit writes from the WAL's start again. A reader
// holding an old snapshot for 200 ms stands in for the load here.
func TestCheckpointRestartsALongWAL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart int
		rewound bool
	}{
		{"restart past 50 frames", 50, true},
		{"control: PASSIVE only", 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(n int) { restartFrames = n }(restartFrames)
			restartFrames = tc.restart
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), FileName)
			s, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			close(s.stopCkpt) // only this test's checkpoints run
			<-s.ckptDone
			insert := func(from, n int) {
				t.Helper()
				if err := s.ExecRaw(ctx, `WITH RECURSIVE k(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM k WHERE i < ?)
					INSERT INTO accounts (id, left_credits, held, debt, created_at, version)
					SELECT printf('acct-%08d', i), 0, 0, 0, 0, 1 FROM k`, from, from+n-1); err != nil {
					t.Fatal(err)
				}
			}
			insert(0, 1)
			reader, err := sql.Open("sqlite", dsn(path, true))
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			rtx, err := reader.Begin()
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := rtx.QueryRow("SELECT count(*) FROM accounts").Scan(&n); err != nil { // the snapshot starts here
				t.Fatal(err)
			}
			insert(1, 20000) // hundreds of frames the reader's snapshot predates
			go func() { time.Sleep(200 * time.Millisecond); rtx.Rollback() }()
			before := walFrames(t, s)
			s.checkpointOnce()
			time.Sleep(300 * time.Millisecond) // the reader is gone in either case
			insert(30000, 1)
			after := walFrames(t, s)
			if rewound := after < before; rewound != tc.rewound {
				t.Fatalf("WAL frames %d before the checkpoint, %d after one more commit: rewound = %v, want %v", before, after, rewound, tc.rewound)
			}
		})
	}
}
