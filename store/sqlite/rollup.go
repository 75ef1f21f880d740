package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// The daily rollup of usage (ledger.UsageRollupStore; migration 0020).
//
// A day is rolled in three steps, so the single writer is held only for
// instants, never for the scan of a day's records:
//  1. a write transaction moves route_before to the day's end: from then
//     on every record inserted before it is added to usage_daily (and to
//     usage_late) by the trigger, in the insert's transaction;
//  2. a read snapshot taken after that sums the day's records not in
//     usage_late: every record not routed committed before step 1 (one
//     writer), so the snapshot holds them all;
//  3. a write transaction adds those sums to usage_daily, forgets the
//     usage_late rows before the day's end and moves rolled_before to it,
//     if no one moved it meanwhile.

var _ ledger.UsageRollupStore = (*Store)(nil)

const rollupCols = `requests, credits, input_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens`

type rollupRow struct {
	day, account, model, deployment string
	sums                            [7]int64
}

// UsageRollupState implements ledger.UsageRollupStore.
func (s *Store) UsageRollupState(ctx context.Context) (ledger.RollupState, error) {
	var st ledger.RollupState
	err := s.View(ctx, func(tx ledger.ReadTx) (err error) {
		st, err = tx.(*txn).rollupState(ctx)
		return err
	})
	return st, err
}

func (t *txn) rollupState(ctx context.Context) (ledger.RollupState, error) {
	v, err := queryRows(ctx, t.q, "usage rollup state", func(r *sql.Rows) (ledger.RollupState, error) {
		var rolled, pruned int64
		err := r.Scan(&rolled, &pruned)
		return ledger.RollupState{RolledBefore: time.UnixMicro(rolled).UTC(), PrunedBefore: time.UnixMicro(pruned).UTC()}, err
	}, `SELECT rolled_before, pruned_before FROM usage_rollup_state WHERE id = 1`)
	if err != nil {
		return ledger.RollupState{}, err
	}
	if len(v) != 1 {
		return ledger.RollupState{}, &tollgate.Error{Code: tollgate.EINTERNAL, Op: "sqlite: read usage rollup state", Message: "no state row (migration 0020)"}
	}
	return v[0], nil
}

// RollUsage implements ledger.UsageRollupStore.
func (s *Store) RollUsage(ctx context.Context, closedBefore time.Time) (ledger.RollupState, bool, error) {
	const op = "sqlite: roll up usage"
	limit := micros(ledger.BeijingMidnight(closedBefore))
	var from, route, target int64
	var next sql.NullInt64
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT rolled_before, route_before FROM usage_rollup_state WHERE id = 1`).Scan(&from, &route); err != nil {
			return err
		}
		target = route
		if route == from {
			// The next day with records, over the empty ones.
			if err := tx.QueryRowContext(ctx, `SELECT min(created_at) FROM usage_records WHERE created_at >= ?`, from).Scan(&next); err != nil {
				return err
			}
			target = limit
			if next.Valid {
				end := micros(ledger.BeijingMidnight(time.UnixMicro(next.Int64)).AddDate(0, 0, 1))
				target = min(end, limit)
			}
		}
		if target <= from {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE usage_rollup_state SET route_before = max(route_before, ?) WHERE id = 1`, target)
		return err
	})
	if err != nil || target <= from {
		st, serr := s.UsageRollupState(ctx)
		if err == nil {
			err = serr
		}
		return st, false, err
	}
	var rows []rollupRow
	err = s.View(ctx, func(rtx ledger.ReadTx) (err error) {
		rows, err = queryRows(ctx, rtx.(*txn).q, "usage of a day to roll up", scanRollupRow,
			`SELECT strftime('%Y-%m-%d', created_at / 1000000 + 28800, 'unixepoch') AS d, account_id, model, deployment,
				count(*), sum(credits), sum(input_tokens), sum(cached_tokens), sum(cache_write_tokens),
				sum(cache_write_1h_tokens), sum(output_tokens)
			FROM usage_records u WHERE created_at >= ? AND created_at < ?
			  AND NOT EXISTS (SELECT 1 FROM usage_late l WHERE l.request_id = u.request_id)
			GROUP BY d, account_id, model, deployment`, from, target)
		return err
	})
	if err != nil {
		return ledger.RollupState{}, false, err
	}
	moved := false
	err = s.writeTx(ctx, op, func(tx *sql.Tx) error {
		var now int64
		if err := tx.QueryRowContext(ctx, `SELECT rolled_before FROM usage_rollup_state WHERE id = 1`).Scan(&now); err != nil {
			return err
		}
		if now != from {
			return nil // rolled by another run meanwhile
		}
		for _, r := range rows {
			if err := upsertRollup(ctx, tx, r); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM usage_late WHERE created_at < ?`, target); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE usage_rollup_state SET rolled_before = ? WHERE id = 1`, target); err != nil {
			return err
		}
		moved = true
		return nil
	})
	if err != nil {
		return ledger.RollupState{}, false, err
	}
	st, err := s.UsageRollupState(ctx)
	return st, moved, err
}

func scanRollupRow(r *sql.Rows) (rollupRow, error) {
	var x rollupRow
	s := &x.sums
	err := r.Scan(&x.day, &x.account, &x.model, &x.deployment, &s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6])
	return x, err
}

func upsertRollup(ctx context.Context, tx *sql.Tx, r rollupRow) error {
	s := r.sums
	_, err := tx.ExecContext(ctx, `INSERT INTO usage_daily (day, account_id, model, deployment, `+rollupCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (day, account_id, model, deployment) DO UPDATE SET
			requests = requests + excluded.requests, credits = credits + excluded.credits,
			input_tokens = input_tokens + excluded.input_tokens, cached_tokens = cached_tokens + excluded.cached_tokens,
			cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
			cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
			output_tokens = output_tokens + excluded.output_tokens`,
		r.day, r.account, r.model, r.deployment, s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	return err
}

// PruneUsage implements ledger.UsageRollupStore: pruned_before moves
// first, in the same transaction, so a report never reads a day half
// deleted from its per-call records.
func (s *Store) PruneUsage(ctx context.Context, before time.Time, limit int) (int, error) {
	const op = "sqlite: prune usage"
	if limit <= 0 || limit > ledger.MaxUsagePruneBatch {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "limit must be within 1..MaxUsagePruneBatch"}
	}
	var n int
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		var cut int64
		if err := tx.QueryRowContext(ctx, `UPDATE usage_rollup_state SET pruned_before = max(pruned_before, min(?, rolled_before))
			WHERE id = 1 RETURNING pruned_before`, micros(ledger.BeijingMidnight(before))).Scan(&cut); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM usage_records WHERE request_id IN
			(SELECT request_id FROM usage_records WHERE created_at < ? ORDER BY created_at LIMIT ?)`, cut, limit)
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}

// usageSplit reads the rollup's state in t's snapshot and splits [from, to).
func (t *txn) usageSplit(ctx context.Context, from, to time.Time) (ledger.UsageSplit, error) {
	st, err := t.rollupState(ctx)
	if err != nil {
		return ledger.UsageSplit{}, err
	}
	return ledger.SplitUsage(from, to, st)
}

// usageUnion is a FROM clause of the usage in sp, as rows of key (the
// given expressions over the rollup and over the records) and the seven
// sums, filtered by where (over columns both tables have), with its
// arguments.
func usageUnion(sp ledger.UsageSplit, dailyKey, rawKey, where string, whereArgs []any) (string, []any) {
	q := fmt.Sprintf(`(SELECT %s AS k, %s FROM usage_daily WHERE day >= ? AND day < ?%s`, dailyKey, rollupCols, where)
	args := append([]any{sp.DayFrom, sp.DayTo}, whereArgs...)
	for _, r := range sp.Raw {
		q += fmt.Sprintf(` UNION ALL SELECT %s, 1, credits, input_tokens, cached_tokens, cache_write_tokens,
			cache_write_1h_tokens, output_tokens FROM usage_records WHERE created_at >= ? AND created_at < ?%s`, rawKey, where)
		args = append(append(args, micros(r[0]), micros(r[1])), whereArgs...)
	}
	return q + `)`, args
}
