package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// PruneEvents deletes old finished events and their deliveries, in one
// write transaction of the single writer, so no fan-out, claim, outcome
// or retry runs between the check and the delete. See webhook.Store.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	const op = "sqlite: prune webhook events"
	if limit <= 0 || limit > webhook.MaxPruneBatch {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "limit must be within 1..MaxPruneBatch"}
	}
	var n int
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT e.id FROM webhook_events e
			WHERE e.fanned_out = 1 AND e.created_at < ?
			  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
			ORDER BY e.created_at, e.id LIMIT ?`, before.UnixMicro(), limit)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		in := "(" + strings.Repeat("?,", len(ids)-1) + "?)"
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE event_id IN `+in, ids...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE id IN `+in, ids...); err != nil {
			return err
		}
		n = len(ids)
		return nil
	})
	return n, err
}
