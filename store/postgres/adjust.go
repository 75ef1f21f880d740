package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const adjustCols = "id, account_id, idempotency_key, request_hash, credits, debt, lot_id, reason, actor, created_at, debt_paid"

func scanAdjustment(rows pgx.Rows) (ledger.Adjustment, error) {
	var a ledger.Adjustment
	var account string
	var credits, debt, paid int64
	var lot *int64
	err := rows.Scan(&a.ID, &account, &a.IdempotencyKey, &a.RequestHash, &credits, &debt, &lot, &a.Reason, &a.Actor, &a.CreatedAt, &paid)
	a.DebtPaid = tollgate.Credits(paid)
	a.Account, a.Credits, a.Debt, a.CreatedAt = tollgate.AccountID(account), tollgate.Credits(credits), tollgate.Credits(debt), a.CreatedAt.UTC()
	if lot != nil {
		a.LotID = *lot
	}
	return a, err
}

// insertAdjustments queues the new adjustments, after the lots: a positive
// one's lot is the lot whose out_trade_no is its ID.
func (w *writer) insertAdjustments(rows []ledger.Adjustment) {
	for _, a := range rows {
		w.b.Queue(`INSERT INTO adjustments (`+adjustCols+`)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $5::int8 > 0 THEN (SELECT id FROM lots WHERE out_trade_no = $1) END, $7, $8, $9, $10)`,
			a.ID, string(a.Account), a.IdempotencyKey, a.RequestHash, int64(a.Credits), int64(a.Debt), a.Reason, a.Actor, a.CreatedAt.UTC(), int64(a.DebtPaid))
	}
}

func (t *txn) adjustments(ctx context.Context, op, sql string, args ...any) ([]ledger.Adjustment, error) {
	var out []ledger.Adjustment
	err := t.query(ctx, op, sql, args, func(rows pgx.Rows) error {
		a, err := scanAdjustment(rows)
		out = append(out, a)
		return err
	})
	return out, err
}

// Adjustments implements ledger.ReadTx. Adjustments are never updated, so
// they are not locked.
func (t *txn) Adjustments(ctx context.Context, ids []string) ([]ledger.Adjustment, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return t.adjustments(ctx, "postgres: read adjustments", "SELECT "+adjustCols+" FROM adjustments WHERE id = ANY($1) ORDER BY id", ids)
}

// AccountAdjustments implements ledger.ReadTx.
func (t *txn) AccountAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Adjustment, error) {
	return t.adjustments(ctx, "postgres: adjustments of account",
		"SELECT "+adjustCols+" FROM adjustments WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", string(account), limit)
}

// AdjustmentTotals implements ledger.ReadTx.
func (t *txn) AdjustmentTotals(ctx context.Context, from, to time.Time) (ledger.AdjustmentTotal, error) {
	var out ledger.AdjustmentTotal
	err := t.query(ctx, "postgres: adjustment totals",
		`SELECT count(*), coalesce(sum(credits) FILTER (WHERE credits > 0), 0)::BIGINT, coalesce(-sum(credits) FILTER (WHERE credits < 0), 0)::BIGINT
		FROM adjustments WHERE created_at >= $1 AND created_at < $2`, []any{from.UTC(), to.UTC()},
		func(rows pgx.Rows) error { return rows.Scan(&out.Count, &out.Added, &out.Removed) })
	return out, err
}

// ActiveHolds implements ledger.ReadTx: active holds are few (one per
// request in flight), walked by the partial index of active holds.
func (t *txn) ActiveHolds(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Hold, error) {
	var out []ledger.Hold
	err := t.query(ctx, "postgres: active holds",
		"SELECT "+holdCols+" FROM holds WHERE status = 'active' AND account_id = $1 ORDER BY created_at, id LIMIT $2",
		[]any{string(account), limit}, func(rows pgx.Rows) error {
			h, err := scanHold(rows)
			out = append(out, h)
			return err
		})
	return out, err
}

// UsageReport implements ledger.ReadTx: as UsageTotals, grouped by day or
// model.
func (t *txn) UsageReport(ctx context.Context, q ledger.UsageQuery) ([]ledger.UsageGroup, error) {
	sp, err := t.usageSplit(ctx, q.From, q.To)
	if err != nil {
		return nil, err
	}
	dailyKey, rawKey := "model", "model"
	if q.GroupBy == ledger.UsageByDay {
		dailyKey = "to_char(day, 'YYYY-MM-DD')"
		rawKey = "to_char((created_at + interval '8 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD')" // Beijing, UTC+8 without DST
	}
	var args []any
	if q.Account != "" {
		args = append(args, string(q.Account))
	}
	if q.Model != "" {
		args = append(args, q.Model)
	}
	where := func(n int) string {
		w := ""
		if q.Account != "" {
			w += fmt.Sprintf(" AND account_id = $%d", n)
			n++
		}
		if q.Model != "" {
			w += fmt.Sprintf(" AND model = $%d", n)
		}
		return w
	}
	union, args := usageUnion(sp, dailyKey, rawKey, where, args)
	var out []ledger.UsageGroup
	err = t.query(ctx, "postgres: usage report",
		"SELECT k, sum(requests)::BIGINT, sum(credits)::BIGINT, sum(input_tokens)::BIGINT, sum(cached_tokens)::BIGINT, sum(output_tokens)::BIGINT "+
			"FROM "+union+" GROUP BY k ORDER BY k LIMIT "+fmt.Sprint(ledger.MaxUsageGroups), args,
		func(rows pgx.Rows) error {
			var g ledger.UsageGroup
			var credits int64
			err := rows.Scan(&g.Key, &g.Requests, &credits, &g.InputTokens, &g.CachedTokens, &g.OutputTokens)
			g.Credits = tollgate.Credits(credits)
			out = append(out, g)
			return err
		})
	return out, err
}
