package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"tollgate/ledger"
)

// The statements that open the two kinds of transaction. Update runs at
// READ COMMITTED on purpose: every row it changes is locked by its read, so
// each statement sees the latest committed row and a waiting locker never
// fails with a serialization error. View needs one snapshot for all its
// reads, so it runs at REPEATABLE READ.
const (
	beginUpdate = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
	beginView   = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
)

// genericPlans follows BEGIN in an Update. The ledger's statements are
// cached prepared statements whose parameters are key arrays; for those
// PostgreSQL keeps choosing a custom plan, so it planned every statement
// of every batch again (a sixth of its CPU under the gateway's load,
// docs/BENCHMARKS.md §2). Their generic plans are the same key and index
// lookups (enable_seqscan is off), planned once per connection.
const genericPlans = "SET LOCAL plan_cache_mode = force_generic_plan"

// Bounds of the pause between attempts of a retried transaction.
const (
	backoffBase = 2 * time.Millisecond
	backoffMax  = 200 * time.Millisecond
	// endTimeout bounds COMMIT and ROLLBACK, which run even when the
	// caller's context has ended, so that their outcome is known.
	endTimeout = 15 * time.Second
)

// txn is one transaction on one pooled connection. BEGIN is not sent on
// its own: it goes out in the same pipeline as the first statement, saving a
// round trip. txn implements ledger.Tx; it is not safe for concurrent use.
type txn struct {
	conn    *pgx.Conn
	begin   string
	begun   bool       // BEGIN has been sent
	lock    bool       // reads take row locks (Update)
	pending *pgx.Batch // writes queued by Apply, not yet sent
	pre     prefetch   // rows read ahead; see prefetch.go
	ahead   *readAhead // what the next lockHolds reads ahead (ReadAhead)
	// spendAhead, when not nil, are the accounts lockAccounts reads
	// spendable lots ahead of (SpendableAhead); nil reads every one's.
	spendAhead map[string]bool
	relaxed    bool // commit without waiting for the WAL flush
	scans      bool // wholeTableSettings applied (audit.go)
}

// retryable reports whether a transaction that failed with err is known not
// to have committed and may succeed if run again.
func retryable(err error) bool {
	return errors.Is(err, ledger.ErrRetry) && !errors.Is(err, ErrCommitUnknown)
}

// backoff returns the pause before attempt n+1: exponential from
// backoffBase, capped at backoffMax, with jitter over its upper half so
// that transactions that collided do not collide again in step.
func backoff(n int) time.Duration {
	d := backoffBase << min(n-1, 16)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// run runs fn in a transaction opened with begin, up to attempts times
// while it fails in a way that is known not to have committed (see
// retryable). A failure during COMMIT is never retried.
func (s *Store) run(ctx context.Context, begin string, lock bool, attempts int, fn func(*txn) error) error {
	for n := 1; ; n++ {
		err := s.runOnce(ctx, begin, lock, fn)
		if err == nil || n >= attempts || !retryable(err) {
			return err
		}
		t := time.NewTimer(backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (s *Store) runOnce(ctx context.Context, begin string, lock bool, fn func(*txn) error) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapError("postgres: acquire connection", err)
	}
	// Release destroys the connection if it is closed, busy or still
	// inside a transaction, so a failed ROLLBACK cannot leak a tx.
	defer pc.Release()
	t := &txn{conn: pc.Conn(), begin: begin, lock: lock}
	err = t.finish(ctx, fn(t))
	if err != nil && t.conn.IsClosed() && isUnavailable(err) && ctx.Err() == nil &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// The server dropped this connection (restart, failover,
		// pg_terminate_backend); the idle ones are most likely gone too.
		// Replace them all now rather than fail one request on each.
		s.pool.Reset()
	}
	return err
}

// finish ends the transaction after fn returned fnErr: it rolls back on an
// error or a cancelled context, and commits otherwise.
func (t *txn) finish(ctx context.Context, fnErr error) error {
	if fnErr != nil {
		t.rollback(ctx)
		return mapError("postgres: transaction", fnErr)
	}
	if !t.begun && t.pending == nil {
		return nil // nothing was read or written
	}
	if err := ctx.Err(); err != nil {
		t.rollback(ctx)
		return fmt.Errorf("postgres: transaction not committed: %w", err)
	}
	return t.commit(ctx)
}

// commit sends the pending writes and COMMIT in one pipeline, and
// classifies a failure by what the server is known to have done:
//
//   - COMMIT answered "COMMIT": committed, whatever broke afterwards;
//   - nothing was sent, or the server answered a statement before COMMIT
//     with an error: it never ran COMMIT, so nothing committed;
//   - COMMIT itself failed with a constraint (23xxx) or rollback (40xxx)
//     error: rolled back;
//   - anything else (the connection broke with COMMIT in flight, a timeout,
//     a shutdown notice in answer to COMMIT): the outcome is unknown, and
//     the error wraps ErrCommitUnknown.
func (t *txn) commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	b := t.pending
	t.pending = nil
	if b == nil {
		b = &pgx.Batch{}
	}
	writesDone := len(b.QueuedQueries) == 0
	if n := len(b.QueuedQueries); n > 0 {
		last := b.QueuedQueries[n-1]
		fn := last.Fn
		last.Fn = func(br pgx.BatchResults) error {
			var err error
			if fn != nil {
				err = fn(br)
			} else {
				_, err = br.Exec()
			}
			writesDone = err == nil
			return err
		}
	}
	if t.relaxed {
		// Metering only (ledger.WithRelaxedCommit): COMMIT returns before
		// the WAL is flushed; a server crash may lose the last of these,
		// never a strict commit or anything before one.
		b.Queue("SET LOCAL synchronous_commit TO OFF")
	}
	var tag string
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
		tag = ct.String()
		return nil
	})
	err := t.send(ctx, b)
	var pgErr *pgconn.PgError
	switch {
	case tag == "COMMIT":
		return nil
	case err == nil:
		// COMMIT answered ROLLBACK: the transaction had already failed.
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	case pgconn.SafeToRetry(err),
		errors.As(err, &pgErr) && !writesDone,
		errors.As(err, &pgErr) && commitRolledBack(err):
		t.rollback(ctx)
		return mapError("postgres: commit", err)
	}
	_ = t.conn.Close(ctx)
	return unknownCommit("postgres: commit", err)
}

// rollback ends a failed transaction. If ROLLBACK itself fails the
// connection is closed, so the pool discards it.
func (t *txn) rollback(ctx context.Context) {
	if !t.begun || t.conn.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Close(ctx)
	}
}

// lockClause is appended to a read that must lock what it returns.
func (t *txn) lockClause() string {
	if t.lock {
		return " FOR NO KEY UPDATE"
	}
	return ""
}

// read is one query of a pipeline of reads.
type read struct {
	sql  string
	args []any
	scan func(pgx.Rows) error // called once per row
}

// query runs sql and calls scan once per row. op names the read in errors.
func (t *txn) query(ctx context.Context, op, sql string, args []any, scan func(pgx.Rows) error) error {
	return t.reads(ctx, op, read{sql, args, scan})
}

// reads runs rs in one pipeline, behind BEGIN if the transaction has not
// started and behind the pending writes if there are any, so a read always
// sees the transaction's own writes.
func (t *txn) reads(ctx context.Context, op string, rs ...read) error {
	b := t.pending
	t.pending = nil
	if b == nil {
		b = &pgx.Batch{}
	}
	for _, r := range rs {
		scan := r.scan
		b.Queue(r.sql, r.args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := scan(rows); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	if err := t.send(ctx, b); err != nil {
		return mapError(op, err)
	}
	return nil
}

// flush sends the pending writes, if any.
func (t *txn) flush(ctx context.Context, op string) error {
	b := t.pending
	t.pending = nil
	if b == nil {
		return nil
	}
	if err := t.send(ctx, b); err != nil {
		return mapError(op, err)
	}
	return nil
}

// send sends b as one pipeline, preceded by BEGIN if the transaction has
// not started yet, and runs the callbacks queued on it.
func (t *txn) send(ctx context.Context, b *pgx.Batch) error {
	if !t.begun {
		first := []*pgx.QueuedQuery{{SQL: t.begin}}
		if t.lock {
			first = append(first, &pgx.QueuedQuery{SQL: genericPlans})
		}
		b.QueuedQueries = append(first, b.QueuedQueries...)
		t.begun = true
	}
	return t.conn.SendBatch(ctx, b).Close()
}
