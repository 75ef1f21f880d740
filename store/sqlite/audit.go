package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"tollgate"
	"tollgate/ledger"
)

// eachRow runs query and calls fn with each row scanned, one at a time: the
// streaming form of queryRows, for the audit's scans of big tables.
func eachRow[T any](ctx context.Context, q querier, what string, scan func(*sql.Rows) (T, error), fn func(T) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return mapErr("read "+what, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return mapErr("read "+what, err)
	}
	return nil
}

// period returns p's bounds as the microseconds created_at is stored in.
func period(p ledger.Period) (from, to int64) {
	f, t := p.Bounds()
	return micros(f), micros(t)
}

// ScanAccounts implements ledger.ReadTx.
func (t *txn) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	return eachRow(ctx, t.q, "accounts", scanAccount, fn, `SELECT `+accountCols+` FROM accounts ORDER BY id`)
}

// ScanLots implements ledger.ReadTx. A period walks lots_created.
func (t *txn) ScanLots(ctx context.Context, p ledger.Period, fn func(ledger.Lot) error) error {
	if p.All() {
		return eachRow(ctx, t.q, "lots", scanLot, fn, `SELECT `+lotCols+` FROM lots ORDER BY id`)
	}
	from, to := period(p)
	return eachRow(ctx, t.q, "lots", scanLot, fn,
		`SELECT `+lotCols+` FROM lots WHERE created_at >= ? AND created_at < ? ORDER BY id`, from, to)
}

// ScanRefunds implements ledger.ReadTx.
func (t *txn) ScanRefunds(ctx context.Context, p ledger.Period, fn func(ledger.Refund) error) error {
	from, to := period(p)
	return eachRow(ctx, t.q, "refunds", scanRefund, fn,
		`SELECT `+refundCols+` FROM refunds WHERE created_at >= ? AND created_at < ? ORDER BY out_refund_no`, from, to)
}

// ScanGrants implements ledger.ReadTx.
func (t *txn) ScanGrants(ctx context.Context, p ledger.Period, fn func(ledger.Grant) error) error {
	from, to := period(p)
	return eachRow(ctx, t.q, "grants", scanGrant, fn,
		`SELECT `+grantCols+` FROM grants WHERE created_at >= ? AND created_at < ? ORDER BY id`, from, to)
}

// ScanAdjustments implements ledger.ReadTx.
func (t *txn) ScanAdjustments(ctx context.Context, p ledger.Period, fn func(ledger.Adjustment) error) error {
	from, to := period(p)
	return eachRow(ctx, t.q, "adjustments", scanAdjustment, fn,
		`SELECT `+adjustCols+` FROM adjustments WHERE created_at >= ? AND created_at < ? ORDER BY id`, from, to)
}

// ScanAuditHolds implements ledger.ReadTx: one pass over holds, the filter
// in SQL, so only the few active holds and suspect rows reach Go.
func (t *txn) ScanAuditHolds(ctx context.Context, p ledger.Period, fn func(ledger.Hold) error) error {
	from, to := period(p)
	return eachRow(ctx, t.q, "holds", scanHold, fn, `SELECT `+holdCols+` FROM holds
		WHERE status = 'active'
		   OR (created_at >= ? AND created_at < ?
		       AND (amount <= 0 OR cost < 0 OR cost > amount OR (status <> 'settled' AND cost <> 0) OR resolved_at IS NULL))
		ORDER BY id`, from, to)
}

// SpendSums implements ledger.ReadTx. SQLite would GROUP BY account with a
// sort of every usage record and settled hold (temp_store is MEMORY, so in
// RAM) or through usage_account with a table lookup per row; instead the
// two tables are read once in storage order and summed per account here,
// in memory proportional to the number of accounts.
func (t *txn) SpendSums(ctx context.Context, fn func(ledger.SpendSum) error) error {
	sums := map[tollgate.AccountID]*ledger.SpendSum{}
	get := func(id string) *ledger.SpendSum {
		s := sums[tollgate.AccountID(id)]
		if s == nil {
			s = &ledger.SpendSum{Account: tollgate.AccountID(id)}
			sums[s.Account] = s
		}
		return s
	}
	type row struct {
		account      string
		amount, late int64
	}
	err := eachRow(ctx, t.q, "usage sums", func(r *sql.Rows) (row, error) {
		var x row
		return x, r.Scan(&x.account, &x.amount)
	}, func(x row) error {
		get(x.account).Usage += tollgate.Credits(x.amount)
		return nil
	}, `SELECT account_id, credits FROM usage_records`)
	if err != nil {
		return err
	}
	err = eachRow(ctx, t.q, "settled hold sums", func(r *sql.Rows) (row, error) {
		var x row
		return x, r.Scan(&x.account, &x.amount, &x.late)
	}, func(x row) error {
		s := get(x.account)
		s.Settled += tollgate.Credits(x.amount)
		s.Late += tollgate.Credits(x.late)
		return nil
	}, `SELECT account_id, cost, CASE WHEN resolved_at >= expires_at THEN cost ELSE 0 END
		FROM holds WHERE status = 'settled'`)
	if err != nil {
		return err
	}
	out := make([]ledger.SpendSum, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	clear(sums)
	slices.SortFunc(out, func(a, b ledger.SpendSum) int { return cmp.Compare(a.Account, b.Account) })
	for _, s := range out {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// Constraints implements ledger.ReadTx.
func (t *txn) Constraints(ctx context.Context) ([]string, error) { return t.uniqueConstraints(ctx) }
