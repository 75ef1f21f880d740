//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"tollgate"
)

// LockWriter takes the one-writer lock of the database file at path (an
// advisory lock on path+".lock"), held until unlock or the process ends,
// a crash included. A second process asking for it gets ECONFLICT. serve
// takes it because it keeps account balances in memory (ledger
// Options.MemoryHolds); short commands such as `tollgate accounts create`
// do not need it.
func LockWriter(path string) (unlock func() error, err error) {
	name := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, tollgate.Errorf(tollgate.ECONFLICT, "another tollgate serve is using %s (it holds %s)", path, name)
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", name, err)
	}
	return f.Close, nil
}
