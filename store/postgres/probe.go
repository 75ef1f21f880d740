package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"tollgate"
)

// SQLSTATEs that say the database answers but will not write.
const (
	codeReadOnlyTransaction   = "25006" // read_only_sql_transaction: a standby, or read-only by setting
	codeInsufficientPrivilege = "42501"
	codeDiskFull              = "53100"
)

// ProbeWrite proves the database can write now, for readiness checks: it
// commits one update of the health_probe row in a read-write transaction
// like every ledger change (a standby, a revoked privilege or a full disk
// fails it as it would fail every payment and settle). Errors carry
// EUNAVAILABLE and a message saying which, safe to show. Safe for
// concurrent use; instances sharing the database update the same row.
func (s *Store) ProbeWrite(ctx context.Context) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO health_probe (id, writes) VALUES (1, 1)
			ON CONFLICT (id) DO UPDATE SET writes = health_probe.writes + 1`)
		return err
	})
	if err == nil {
		return nil
	}
	const op = "postgres: probe write"
	why := "the database cannot write"
	switch code := sqlState(err); {
	case errors.Is(err, context.DeadlineExceeded):
		why = "the database did not answer in time"
	case code == codeReadOnlyTransaction:
		why = "the database is read-only"
	case code == codeInsufficientPrivilege:
		why = "the database user may not write"
	case code == codeDiskFull:
		why = "the database server's disk is full"
	case code != "" && code[:2] == "53":
		why = "the database server is out of resources"
	case isUnavailable(err):
		why = "the database does not answer"
	}
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: why, Err: fmt.Errorf("%s: %w", op, err)}
}
