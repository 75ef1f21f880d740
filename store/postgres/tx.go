package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

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
	conn  *pgx.Conn
	begin string
	begun bool // BEGIN has been sent
	lock  bool // reads take row locks (Update)
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
	if err := fn(t); err != nil {
		t.rollback(ctx)
		return mapError("postgres: transaction", err)
	}
	if !t.begun {
		return nil // nothing was read or written
	}
	if err := ctx.Err(); err != nil {
		t.rollback(ctx)
		return fmt.Errorf("postgres: transaction not committed: %w", err)
	}
	return t.commit(ctx)
}

// commit sends COMMIT and classifies its failure: a definite rollback from
// the server is mapped like any other error; anything else (a dropped
// connection, a timeout) means the outcome is unknown.
func (t *txn) commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() == "ROLLBACK" {
		// The transaction had failed and the caller did not notice.
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	if err == nil {
		return nil
	}
	if commitRolledBack(err) {
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

// query runs sql and calls scan once per row. op names the read in errors.
func (t *txn) query(ctx context.Context, op, sql string, args []any, scan func(pgx.Rows) error) error {
	each := func(rows pgx.Rows) error {
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		return rows.Err()
	}
	var err error
	if !t.begun {
		b := &pgx.Batch{}
		b.Queue(sql, args...).Query(each)
		err = t.send(ctx, b)
	} else {
		var rows pgx.Rows
		rows, err = t.conn.Query(ctx, sql, args...)
		if err == nil {
			err = each(rows)
		}
	}
	if err != nil {
		return mapError(op, err)
	}
	return nil
}

// send sends b as one pipeline, preceded by BEGIN if the transaction has
// not started yet, and runs the callbacks queued on it.
func (t *txn) send(ctx context.Context, b *pgx.Batch) error {
	if !t.begun {
		b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: t.begin}}, b.QueuedQueries...)
		t.begun = true
	}
	return t.conn.SendBatch(ctx, b).Close()
}
