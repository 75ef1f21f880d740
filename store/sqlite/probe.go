package sqlite

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"tollgate"
)

// ProbeWrite proves the database file can be written now, for readiness
// checks: it commits one update of the health_probe row on the writer,
// synced like a payment (a read-only file, a full disk or a failing device
// fails it as it would fail every payment and settle). Errors carry
// EUNAVAILABLE and a message saying which, safe to show. Safe for
// concurrent use; it waits for the writer like any write.
func (s *Store) ProbeWrite(ctx context.Context) error {
	_, err := s.writer.ExecContext(ctx, `INSERT INTO health_probe (id, writes) VALUES (1, 1)
		ON CONFLICT (id) DO UPDATE SET writes = writes + 1`)
	if err == nil {
		return nil
	}
	const op = "sqlite: probe write"
	why := "the database cannot write"
	var se *sqlite.Error
	if errors.Is(err, context.DeadlineExceeded) {
		why = "the database did not answer in time"
	} else if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_READONLY:
			why = "the database file is read-only"
		case sqlite3.SQLITE_FULL:
			why = "the disk is full"
		case sqlite3.SQLITE_IOERR:
			why = "the database file cannot be written (I/O error)"
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			why = "the database file cannot be opened for writing"
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			why = "the database is locked by another writer"
		}
	}
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: why, Err: fmt.Errorf("%s: %w", op, err)}
}
