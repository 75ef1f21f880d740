package postgres

// Hooks for the external tests.
var (
	Backoff          = backoff
	MapError         = mapError
	CommitRolledBack = commitRolledBack
)
