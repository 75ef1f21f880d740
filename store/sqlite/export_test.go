package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"tollgate/ledger"
	"tollgate/webhook"
)

// MigrateFileTo applies to the database at path, as Open would, the
// embedded migrations up to version upTo and no further: the database an
// older release left. Upgrade tests fill it, then Open it.
func MigrateFileTo(ctx context.Context, path string, upTo int) error {
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{path: path, writer: w, wstmt: stmtCache{db: w}}
	defer s.Close()
	_, err = s.migrate(ctx, upTo)
	return err
}

// AppendEventsInLedgerTx appends evs in one ledger transaction, as the
// ledger's Apply will, then returns fail (non-nil: the transaction rolls
// back with the events).
func (s *Store) AppendEventsInLedgerTx(ctx context.Context, evs []webhook.Event, fail error) error {
	return s.Update(ctx, func(tx ledger.Tx) error {
		if _, err := tx.(*txn).appendEvents(ctx, evs); err != nil {
			return err
		}
		return fail
	})
}
