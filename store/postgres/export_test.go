package postgres

import "context"

// Hooks for the external tests.
var (
	Backoff          = backoff
	MapError         = mapError
	CommitRolledBack = commitRolledBack
)

// MigrateTo is Migrate applying no migration past version upTo: the
// database an older release left. Upgrade tests fill it, then Migrate.
func (s *Store) MigrateTo(ctx context.Context, upTo int) error { return s.migrate(ctx, upTo) }
