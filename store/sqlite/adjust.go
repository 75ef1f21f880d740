package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"tollgate"
	"tollgate/ledger"
)

const adjustCols = `id, account_id, idempotency_key, request_hash, credits, debt, lot_id, reason, actor, created_at, debt_paid`

func scanAdjustment(r *sql.Rows) (ledger.Adjustment, error) {
	var a ledger.Adjustment
	var lot sql.NullInt64
	var created int64
	err := r.Scan(&a.ID, &a.Account, &a.IdempotencyKey, &a.RequestHash, &a.Credits, &a.Debt, &lot, &a.Reason, &a.Actor, &created, &a.DebtPaid)
	a.LotID, a.CreatedAt = lot.Int64, fromMicros(created)
	return a, err
}

// insertAdjustments writes new adjustments; a positive one's lot was
// inserted before it, under its ID as out_trade_no.
func (t *txn) insertAdjustments(ctx context.Context, as []ledger.Adjustment) error {
	for _, a := range as {
		if err := t.exec(ctx, "insert adjustment", `INSERT INTO adjustments (`+adjustCols+`)
			VALUES (?, ?, ?, ?, ?, ?, CASE WHEN ? > 0 THEN (SELECT id FROM lots WHERE out_trade_no = ?) END, ?, ?, ?, ?)`,
			a.ID, a.Account, a.IdempotencyKey, a.RequestHash, a.Credits, a.Debt, a.Credits, a.ID, a.Reason, a.Actor, micros(a.CreatedAt), a.DebtPaid); err != nil {
			return err
		}
	}
	return nil
}

// Adjustments implements ledger.ReadTx.
func (t *txn) Adjustments(ctx context.Context, ids []string) ([]ledger.Adjustment, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "adjustments", scanAdjustment,
		`SELECT `+adjustCols+` FROM adjustments WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonSet(ids))
}

// AccountAdjustments implements ledger.ReadTx.
func (t *txn) AccountAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Adjustment, error) {
	return queryRows(ctx, t.q, "adjustments of account", scanAdjustment,
		`SELECT `+adjustCols+` FROM adjustments WHERE account_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, account, limit)
}

// AdjustmentTotals implements ledger.ReadTx.
func (t *txn) AdjustmentTotals(ctx context.Context, from, to time.Time) (ledger.AdjustmentTotal, error) {
	v, err := queryRows(ctx, t.q, "adjustment totals", func(r *sql.Rows) (ledger.AdjustmentTotal, error) {
		var a ledger.AdjustmentTotal
		return a, r.Scan(&a.Count, &a.Added, &a.Removed)
	}, `SELECT count(*), coalesce(sum(CASE WHEN credits > 0 THEN credits END), 0), coalesce(sum(CASE WHEN credits < 0 THEN -credits END), 0)
		FROM adjustments WHERE created_at >= ? AND created_at < ?`, micros(from), micros(to))
	if err != nil {
		return ledger.AdjustmentTotal{}, err
	}
	return v[0], nil
}

// ActiveHolds implements ledger.ReadTx: the active holds are few (one per
// request in flight), so the partial index of active holds is walked.
func (t *txn) ActiveHolds(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Hold, error) {
	return queryRows(ctx, t.q, "active holds", scanHold,
		`SELECT `+holdCols+` FROM holds WHERE status = 'active' AND account_id = ? ORDER BY created_at, id LIMIT ?`, account, limit)
}

// UsageReport implements ledger.ReadTx: as UsageTotals, grouped by day or
// model.
func (t *txn) UsageReport(ctx context.Context, q ledger.UsageQuery) ([]ledger.UsageGroup, error) {
	sp, err := t.usageSplit(ctx, q.From, q.To)
	if err != nil {
		return nil, err
	}
	dailyKey, rawKey := `model`, `model`
	if q.GroupBy == ledger.UsageByDay {
		dailyKey, rawKey = `day`, `strftime('%Y-%m-%d', created_at / 1000000 + 28800, 'unixepoch')` // Beijing is UTC+8, without DST
	}
	var where string
	var args []any
	if q.Account != "" {
		where, args = where+` AND account_id = ?`, append(args, string(q.Account))
	}
	if q.Model != "" {
		where, args = where+` AND model = ?`, append(args, q.Model)
	}
	union, args := usageUnion(sp, dailyKey, rawKey, where, args)
	return queryRows(ctx, t.q, "usage report", func(r *sql.Rows) (ledger.UsageGroup, error) {
		var g ledger.UsageGroup
		return g, r.Scan(&g.Key, &g.Requests, &g.Credits, &g.InputTokens, &g.CachedTokens, &g.OutputTokens)
	}, `SELECT k, sum(requests), sum(credits), sum(input_tokens), sum(cached_tokens), sum(output_tokens)
		FROM `+union+` GROUP BY k ORDER BY k LIMIT `+fmt.Sprint(ledger.MaxUsageGroups), args...)
}
