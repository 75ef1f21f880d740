package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/webhook"
)

// PruneEvents deletes old finished events and their deliveries. See
// webhook.Store.
//
// One READ COMMITTED transaction: the candidate events are locked (SKIP
// LOCKED: two instances pruning at once take different ones, and an
// event another transaction holds is left for later); then every
// delivery of theirs is locked and its status read again, so an event one
// of whose deliveries became pending meanwhile (an admin's retry,
// committed after the first read) is kept, and a retry that comes after
// the lock waits for this transaction and then finds its delivery gone
// (ENOTFOUND).
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	const op = "postgres: prune webhook events"
	if limit <= 0 || limit > webhook.MaxPruneBatch {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "limit must be within 1..MaxPruneBatch"}
	}
	var n int
	err := s.writeTx(ctx, op, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT e.id FROM webhook_events e
			WHERE e.fanned_out AND e.created_at < $1
			  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
			ORDER BY e.created_at, e.id LIMIT $2
			FOR UPDATE OF e SKIP LOCKED`, before, limit)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		// Lock them all, then look: a row locked FOR UPDATE is read as
		// last committed, and stays so until this transaction ends.
		rows, err = tx.Query(ctx, `SELECT event_id, status FROM webhook_deliveries
			WHERE event_id = ANY($1) FOR UPDATE`, ids)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		var id, status string
		if _, err := pgx.ForEachRow(rows, []any{&id, &status}, func() error {
			if status == webhook.StatusPending {
				keep[id] = true
			}
			return nil
		}); err != nil {
			return err
		}
		if len(keep) > 0 {
			var rest []string
			for _, id := range ids {
				if !keep[id] {
					rest = append(rest, id)
				}
			}
			if ids = rest; len(ids) == 0 {
				return nil
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE event_id = ANY($1)`, ids); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_events WHERE id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return nil
	})
	return n, err
}
