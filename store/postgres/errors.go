package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"tollgate"
	"tollgate/ledger"
)

// ErrCommitUnknown is wrapped by the error Update returns when the
// connection failed while COMMIT was in flight: the transaction may or may
// not have committed. Callers must not report success, and must not re-run
// the work blindly; they resolve it by retrying an idempotent operation
// with the same key (hold id, out_trade_no, out_refund_no) or by reading.
var ErrCommitUnknown = errors.New("postgres: commit outcome unknown")

// SQLSTATE codes the store maps. Errors are always classified by code, never
// by message text.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeTooManyConnections   = "53300"
)

// sqlState returns the SQLSTATE of the server error in err's chain, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// isConflict reports whether err means the transaction lost a race and a
// fresh attempt may succeed: a unique key that already exists, a
// serialization failure, a deadlock, or a lock that was not available.
func isConflict(err error) bool {
	switch sqlState(err) {
	case codeUniqueViolation, codeSerializationFailure, codeDeadlockDetected, codeLockNotAvailable:
		return true
	}
	return false
}

// isUnavailable reports whether err means the database could not be
// reached or dropped the connection: network errors, a closed or broken
// connection, a server shutting down or refusing connections.
func isUnavailable(err error) bool {
	if code := sqlState(err); code != "" {
		switch code {
		case codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow, codeTooManyConnections:
			return true
		}
		return code[:2] == "08" // connection exception
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	var pgconnErr interface{ SafeToRetry() bool } // pgconn's own I/O and lock errors
	return errors.As(err, &netErr) || errors.As(err, &connectErr) || errors.As(err, &pgconnErr) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// commitRolledBack reports whether a COMMIT that returned err is known
// to have rolled back. Only a definite answer from the server counts:
// constraint (class 23) and transaction-rollback (class 40) errors.
// Anything else — a dropped connection, a shutdown notice, a timeout — leaves
// the outcome unknown.
func commitRolledBack(err error) bool {
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return true
	}
	code := sqlState(err)
	return len(code) == 5 && (code[:2] == "23" || code[:2] == "40")
}

// mapError turns a database error met inside a transaction that is known
// not to have committed into the error the ledger expects: conflicts wrap
// ledger.ErrRetry (the Service runs the transaction again), a unique
// violation also carries ECONFLICT, connection failures carry EUNAVAILABLE
// and wrap ErrRetry too (nothing committed, a new connection may work).
// Other errors are wrapped with op as context.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *tollgate.Error
	if errors.As(err, &te) || errors.Is(err, ledger.ErrRetry) {
		return err // already classified
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case sqlState(err) == codeUniqueViolation:
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "already exists",
			Err: fmt.Errorf("%w: %w", ledger.ErrRetry, err)}
	case isConflict(err):
		return fmt.Errorf("%s: %w: %w", op, ledger.ErrRetry, err)
	case isUnavailable(err):
		return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: "database unavailable",
			Err: fmt.Errorf("%w: %w", ledger.ErrRetry, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unknownCommit wraps a COMMIT failure whose outcome is unknown.
func unknownCommit(op string, err error) error {
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op,
		Message: "database connection lost during commit; the outcome is unknown",
		Err:     fmt.Errorf("%w: %w", ErrCommitUnknown, err)}
}
