//go:build unix

package sqlite_test

import (
	"path/filepath"
	"testing"

	"tollgate"
	"tollgate/store/sqlite"
)

// One process at a time may be the database's writer: the second gets a
// clear conflict, and the lock is free again once released.
func TestLockWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", sqlite.FileName) // the directory does not exist yet
	unlock, err := sqlite.LockWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.LockWriter(path)
	if tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("second LockWriter: %v, want a conflict", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = sqlite.LockWriter(path)
	if err != nil {
		t.Fatalf("LockWriter after unlock: %v", err)
	}
	unlock()
}
