package postgres

import (
	"context"

	"tollgate/ledger"
	"tollgate/webhook"
)

// Hooks for the external tests.
var (
	Backoff          = backoff
	MapError         = mapError
	CommitRolledBack = commitRolledBack
)

// MigrateTo is Migrate applying no migration past version upTo: the
// database an older release left. Upgrade tests fill it, then Migrate.
func (s *Store) MigrateTo(ctx context.Context, upTo int) error { return s.migrate(ctx, upTo) }

// AppendEventsInLedgerTx appends evs in one ledger transaction, as the
// ledger's Apply will, then returns fail (non-nil: the transaction rolls
// back with the events).
func (s *Store) AppendEventsInLedgerTx(ctx context.Context, evs []webhook.Event, fail error) error {
	return s.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.(*txn).appendEvents(evs); err != nil {
			return err
		}
		return fail
	})
}
