package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

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

// spendRow is one account's sums over one chunk.
type spendRow struct {
	account      string
	amount, late int64
}

// spendChunk is how many rows one GROUP BY of SpendSums sorts.
const spendChunk = 250000

// SpendSums implements ledger.ReadTx. SQLite aggregates by sorting (holds
// have no account index), and with temp_store MEMORY the sort of every
// usage record or settled hold at once would be in RAM; so each table is
// summed in key ranges of spendChunk rows (bounds found by walking the
// primary key), and the per-account sums added up here, in memory
// proportional to the number of accounts. Reading the rows into Go instead
// costs several times more per row. The usage of the days before the
// rollup's pruned_before is usage_daily's (prunedUsage).
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
	st, err := t.rollupState(ctx)
	if err != nil {
		return err
	}
	err = t.chunkedSums(ctx, "usage_records", "request_id", "SUM(credits), 0", "created_at >= ?", []any{micros(st.PrunedBefore)},
		func(x spendRow) { get(x.account).Usage += tollgate.Credits(x.amount) })
	if err != nil {
		return err
	}
	pruned, err := t.prunedUsage(ctx, st)
	if err != nil {
		return err
	}
	for _, p := range pruned {
		get(string(p.Account)).Usage += p.Credits
	}
	err = t.chunkedSums(ctx, "holds", "id", "SUM(cost), SUM(CASE WHEN resolved_at >= expires_at THEN cost ELSE 0 END)",
		"status = 'settled'", nil, func(x spendRow) {
			s := get(x.account)
			s.Settled += tollgate.Credits(x.amount)
			s.Late += tollgate.Credits(x.late)
		})
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

// prunedUsage returns, by account, usage_daily's credits of the days
// before st.PrunedBefore: the usage whose per-call records the retention
// may have deleted.
func (t *txn) prunedUsage(ctx context.Context, st ledger.RollupState) ([]ledger.AccountCredits, error) {
	return queryRows(ctx, t.q, "pruned usage", func(r *sql.Rows) (ledger.AccountCredits, error) {
		var a ledger.AccountCredits
		return a, r.Scan(&a.Account, &a.Credits)
	}, `SELECT account_id, SUM(credits) FROM usage_daily WHERE day < ? GROUP BY account_id ORDER BY account_id`,
		st.PrunedBefore.In(tollgate.Beijing).Format(time.DateOnly))
}

// chunkedSums runs "SELECT account_id, sums FROM table WHERE where GROUP BY
// account_id" (where's arguments: args) over key ranges of spendChunk rows
// and passes each result row to add. +account_id keeps SQLite from walking
// an account index with a table lookup per row (usage_account): a scan and
// a small sort is faster.
func (t *txn) chunkedSums(ctx context.Context, table, key, sums, where string, whereArgs []any, add func(spendRow)) error {
	next := `SELECT ` + key + ` FROM ` + table + ` WHERE ` + key + ` >= ? ORDER BY ` + key + ` LIMIT 1 OFFSET ` + fmt.Sprint(spendChunk)
	lo := ""
	for {
		var hi []string
		err := eachRow(ctx, t.q, table+" chunk", func(r *sql.Rows) (string, error) {
			var k string
			return k, r.Scan(&k)
		}, func(k string) error { hi = append(hi, k); return nil }, next, lo)
		if err != nil {
			return err
		}
		q := `SELECT account_id, ` + sums + ` FROM ` + table + ` WHERE ` + key + ` >= ?`
		args := []any{lo}
		if len(hi) > 0 {
			q += ` AND ` + key + ` < ?`
			args = append(args, hi[0])
		}
		q += ` AND ` + where + ` GROUP BY +account_id`
		args = append(args, whereArgs...)
		err = eachRow(ctx, t.q, table+" sums", func(r *sql.Rows) (spendRow, error) {
			var x spendRow
			return x, r.Scan(&x.account, &x.amount, &x.late)
		}, func(x spendRow) error { add(x); return nil }, q, args...)
		if err != nil || len(hi) == 0 {
			return err
		}
		lo = hi[0]
	}
}

// Constraints implements ledger.ReadTx.
func (t *txn) Constraints(ctx context.Context) ([]string, error) { return t.uniqueConstraints(ctx) }
