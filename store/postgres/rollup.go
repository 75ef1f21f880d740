package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

// The daily rollup of usage (ledger.UsageRollupStore; migration 0020).
//
// A day is rolled in three steps, none of which blocks the gateway's
// inserts, each safe with several instances rolling at once:
//  1. a transaction moves route_before to the day's end (never back):
//     from then on every record inserted before it is added to
//     usage_daily (and to usage_late) by the trigger, in the insert's
//     transaction;
//  2. the roller waits until every transaction in progress when step 1
//     committed has ended (the oldest running xid passes the snapshot's
//     xmax): a transaction whose trigger read the old route_before had an
//     xid already, since the trigger runs after its insert;
//  3. a transaction locks the state row, and if rolled_before is still
//     where step 1 found it, sums the day's records not in usage_late (every
//     record not routed is committed by now), adds the sums to usage_daily,
//     forgets the usage_late rows before the day's end and moves
//     rolled_before to it. A second instance waits for the lock and then
//     finds the day rolled.

var _ ledger.UsageRollupStore = (*Store)(nil)

const rollupCols = "requests, credits, input_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens"

// rollupWaitPoll is how often step 2 looks at the running transactions.
const rollupWaitPoll = 20 * time.Millisecond

// rollupWaitMax bounds step 2: a transaction left open longer (an idle
// session in a transaction) fails this roll, tried again at the roller's
// next interval, route_before already moved.
const rollupWaitMax = time.Minute

// UsageRollupState implements ledger.UsageRollupStore.
func (s *Store) UsageRollupState(ctx context.Context) (ledger.RollupState, error) {
	var st ledger.RollupState
	err := s.pool.QueryRow(ctx, "SELECT rolled_before, pruned_before FROM usage_rollup_state WHERE id = 1").
		Scan(&st.RolledBefore, &st.PrunedBefore)
	if err != nil {
		return ledger.RollupState{}, mapError("postgres: read usage rollup state", err)
	}
	st.RolledBefore, st.PrunedBefore = st.RolledBefore.UTC(), st.PrunedBefore.UTC()
	return st, nil
}

// RollUsage implements ledger.UsageRollupStore.
func (s *Store) RollUsage(ctx context.Context, closedBefore time.Time) (ledger.RollupState, bool, error) {
	const op = "postgres: roll up usage"
	limit := ledger.BeijingMidnight(closedBefore)
	var from, route, target time.Time
	err := s.writeTx(ctx, op, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT rolled_before, route_before FROM usage_rollup_state WHERE id = 1").Scan(&from, &route); err != nil {
			return err
		}
		target = route
		if route.Equal(from) {
			// The next day with records, over the empty ones.
			var next *time.Time
			if err := tx.QueryRow(ctx, "SELECT min(created_at) FROM usage_records WHERE created_at >= $1", from).Scan(&next); err != nil {
				return err
			}
			target = limit
			if next != nil {
				if end := ledger.BeijingMidnight(*next).AddDate(0, 0, 1); end.Before(limit) {
					target = end
				}
			}
		}
		if !target.After(from) {
			return nil
		}
		_, err := tx.Exec(ctx, "UPDATE usage_rollup_state SET route_before = greatest(route_before, $1) WHERE id = 1", target)
		return err
	})
	if err != nil || !target.After(from) {
		st, serr := s.UsageRollupState(ctx)
		if err == nil {
			err = serr
		}
		return st, false, err
	}
	wctx, cancel := context.WithTimeout(ctx, rollupWaitMax)
	err = s.waitRunning(wctx)
	cancel()
	if err != nil {
		return ledger.RollupState{}, false, mapError(op, err)
	}
	moved := false
	err = s.writeTx(ctx, op, func(tx pgx.Tx) error {
		var now time.Time
		if err := tx.QueryRow(ctx, "SELECT rolled_before FROM usage_rollup_state WHERE id = 1 FOR UPDATE").Scan(&now); err != nil {
			return err
		}
		if !now.Equal(from) {
			return nil // rolled by another instance meanwhile
		}
		if _, err := tx.Exec(ctx, `INSERT INTO usage_daily AS d (day, account_id, model, deployment, `+rollupCols+`)
			SELECT ((created_at AT TIME ZONE 'UTC') + interval '8 hours')::date, account_id, model, deployment, count(*),
				sum(credits), sum(input_tokens), sum(cached_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens),
				sum(output_tokens)
			FROM usage_records u WHERE created_at >= $1 AND created_at < $2
			  AND NOT EXISTS (SELECT 1 FROM usage_late l WHERE l.request_id = u.request_id)
			GROUP BY 1, 2, 3, 4
			ON CONFLICT (day, account_id, model, deployment) DO UPDATE SET
				requests = d.requests + EXCLUDED.requests, credits = d.credits + EXCLUDED.credits,
				input_tokens = d.input_tokens + EXCLUDED.input_tokens, cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens,
				cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
				cache_write_1h_tokens = d.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
				output_tokens = d.output_tokens + EXCLUDED.output_tokens`, from, target); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM usage_late WHERE created_at < $1", target); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE usage_rollup_state SET rolled_before = $1 WHERE id = 1", target); err != nil {
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

// waitRunning returns when every transaction that held an xid when it was
// called has ended.
func (s *Store) waitRunning(ctx context.Context) error {
	var xmax string
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text").Scan(&xmax); err != nil {
		return err
	}
	for {
		var done bool
		if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8", xmax).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		t := time.NewTimer(rollupWaitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// PruneUsage implements ledger.UsageRollupStore: pruned_before moves
// first, in the same transaction, so a report never reads a day half
// deleted from its per-call records. Two instances may pick the same
// records: the second finds them gone and deletes fewer.
func (s *Store) PruneUsage(ctx context.Context, before time.Time, limit int) (int, error) {
	const op = "postgres: prune usage"
	if limit <= 0 || limit > ledger.MaxUsagePruneBatch {
		return 0, &tollgate.Error{Code: tollgate.EINVALID, Op: op, Message: "limit must be within 1..MaxUsagePruneBatch"}
	}
	var n int
	err := s.writeTx(ctx, op, func(tx pgx.Tx) error {
		var cut time.Time
		if err := tx.QueryRow(ctx, `UPDATE usage_rollup_state SET pruned_before = greatest(pruned_before, least($1, rolled_before))
			WHERE id = 1 RETURNING pruned_before`, ledger.BeijingMidnight(before)).Scan(&cut); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM usage_records WHERE request_id = ANY(ARRAY(
			SELECT request_id FROM usage_records WHERE created_at < $1 ORDER BY created_at LIMIT $2))`, cut, limit)
		n = int(tag.RowsAffected())
		return err
	})
	return n, err
}

// rollupState reads the rollup's state in t's snapshot.
func (t *txn) rollupState(ctx context.Context) (ledger.RollupState, error) {
	var st ledger.RollupState
	n := 0
	err := t.query(ctx, "postgres: read usage rollup state", "SELECT rolled_before, pruned_before FROM usage_rollup_state WHERE id = 1", nil,
		func(rows pgx.Rows) error {
			n++
			return rows.Scan(&st.RolledBefore, &st.PrunedBefore)
		})
	if err != nil {
		return ledger.RollupState{}, err
	}
	if n != 1 {
		return ledger.RollupState{}, &tollgate.Error{Code: tollgate.EINTERNAL, Op: "postgres: read usage rollup state", Message: "no state row (migration 0020)"}
	}
	st.RolledBefore, st.PrunedBefore = st.RolledBefore.UTC(), st.PrunedBefore.UTC()
	return st, nil
}

// usageSplit reads the rollup's state in t's snapshot and splits [from, to).
func (t *txn) usageSplit(ctx context.Context, from, to time.Time) (ledger.UsageSplit, error) {
	st, err := t.rollupState(ctx)
	if err != nil {
		return ledger.UsageSplit{}, err
	}
	return ledger.SplitUsage(from, to, st)
}

// prunedUsage returns, by account, usage_daily's credits of the days
// before st.PrunedBefore: the usage whose per-call records the retention
// may have deleted.
func (t *txn) prunedUsage(ctx context.Context, st ledger.RollupState) ([]ledger.AccountCredits, error) {
	var out []ledger.AccountCredits
	err := t.query(ctx, "postgres: read pruned usage", `SELECT account_id, SUM(credits)::BIGINT FROM usage_daily
		WHERE day < $1::text::date GROUP BY account_id ORDER BY account_id`,
		[]any{st.PrunedBefore.In(tollgate.Beijing).Format(time.DateOnly)}, func(rows pgx.Rows) error {
			var a ledger.AccountCredits
			var account string
			var credits int64
			err := rows.Scan(&account, &credits)
			a.Account, a.Credits = tollgate.AccountID(account), tollgate.Credits(credits)
			out = append(out, a)
			return err
		})
	return out, err
}

// usageUnion is a FROM clause of the usage in sp, as rows of key (the
// given expressions over the rollup and over the records) and the seven
// sums, filtered by the conditions where makes of its first parameter's
// number (over columns both tables have), with its arguments.
func usageUnion(sp ledger.UsageSplit, dailyKey, rawKey string, where func(n int) string, whereArgs []any) (string, []any) {
	var args []any
	arg := func(v ...any) int { args = append(args, v...); return len(args) - len(v) + 1 }
	dayFrom, dayTo := sp.DayFrom, sp.DayTo
	if dayFrom == "" {
		dayFrom, dayTo = "1970-01-01", "1970-01-01"
	}
	n := arg(dayFrom, dayTo)
	w := where(arg(whereArgs...))
	q := fmt.Sprintf("(SELECT %s AS k, %s FROM usage_daily WHERE day >= $%d::text::date AND day < $%d::text::date%s", dailyKey, rollupCols, n, n+1, w)
	for _, r := range sp.Raw {
		n := arg(r[0], r[1])
		q += fmt.Sprintf(" UNION ALL SELECT %s, 1, credits, input_tokens, cached_tokens, cache_write_tokens, "+
			"cache_write_1h_tokens, output_tokens FROM usage_records WHERE created_at >= $%d AND created_at < $%d%s", rawKey, n, n+1, w)
	}
	return q + ") AS u", args
}
