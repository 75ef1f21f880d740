package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

func pgErr(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }

func TestMapErrorBySQLState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantCode  string
		wantRetry bool
	}{
		{"UniqueViolation", pgErr("23505"), tollgate.ECONFLICT, true},
		{"SerializationFailure", pgErr("40001"), tollgate.EINTERNAL, true},
		{"DeadlockDetected", pgErr("40P01"), tollgate.EINTERNAL, true},
		{"AdminShutdown", pgErr("57P01"), tollgate.EUNAVAILABLE, true},
		{"CannotConnectNow", pgErr("57P03"), tollgate.EUNAVAILABLE, true},
		{"ConnectionFailure", pgErr("08006"), tollgate.EUNAVAILABLE, true},
		{"TooManyConnections", pgErr("53300"), tollgate.EUNAVAILABLE, true},
		{"CheckViolation", pgErr("23514"), tollgate.EINTERNAL, false},
		{"ForeignKeyViolation", pgErr("23503"), tollgate.EINTERNAL, false},
		{"UnexpectedEOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), tollgate.EUNAVAILABLE, true},
		{"NetworkError", &net.OpError{Op: "read", Err: errors.New("connection reset")}, tollgate.EUNAVAILABLE, true},
		{"Cancelled", fmt.Errorf("query: %w", context.Canceled), tollgate.EINTERNAL, false},
		{"DomainErrorUntouched", tollgate.Errorf(tollgate.EINSUFFICIENT, "no"), tollgate.EINSUFFICIENT, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := postgres.MapError("op", tc.err)
			if got := tollgate.ErrorCode(err); got != tc.wantCode {
				t.Errorf("code = %s, want %s (%v)", got, tc.wantCode, err)
			}
			if got := errors.Is(err, ledger.ErrRetry); got != tc.wantRetry {
				t.Errorf("wraps ErrRetry = %v, want %v (%v)", got, tc.wantRetry, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the cause is lost: %v", err)
			}
		})
	}
}

func TestCommitRolledBackOnlyOnDefiniteAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"SerializationFailure", pgErr("40001"), true},
		{"DeferredUnique", pgErr("23505"), true},
		{"CommitSaidRollback", pgx.ErrTxCommitRollback, true},
		{"AdminShutdown", pgErr("57P01"), false},
		{"ConnectionLost", io.ErrUnexpectedEOF, false},
		{"Timeout", context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := postgres.CommitRolledBack(tc.err); got != tc.want {
				t.Errorf("CommitRolledBack(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
