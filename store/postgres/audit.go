package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

// each runs sql and calls fn with each row scanned, as pgx reads it from
// the connection: the audit's scans never hold a table in memory.
func each[T any](t *txn, ctx context.Context, what, sql string, args []any, scan func(pgx.Rows) (T, error), fn func(T) error) error {
	return t.query(ctx, "postgres: scan "+what, sql, args, func(rows pgx.Rows) error {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("scan %s: %w", what, err)
		}
		return fn(v)
	})
}

// wholeTableSettings are the settings, for the rest of the transaction
// (set_config's is_local), of the audit's passes over whole tables: the
// store's sessions run with enable_seqscan off (postgres.go: every ledger
// query is a lookup), which turns a pass over ten million holds into an
// index walk and the spend sums into sorts of every row on disk; a hash
// aggregate of every account needs more than the default 4 MB work_mem;
// and JIT compiling these plans cost seconds of the two cores (8 s of 35 s
// for the spend sums at 10,000,000 records, measured).
const wholeTableSettings = `SELECT set_config('enable_seqscan', 'on', true), set_config('jit', 'off', true),
	set_config('work_mem', '64MB', true)`

// wholeTables applies wholeTableSettings to t, once.
func (t *txn) wholeTables(ctx context.Context) error {
	if t.scans {
		return nil
	}
	t.scans = true
	return t.query(ctx, "postgres: settings of a whole-table scan", wholeTableSettings, nil, func(pgx.Rows) error { return nil })
}

func periodArgs(p ledger.Period) []any {
	from, to := p.Bounds()
	return []any{from.UTC(), to.UTC()}
}

// ScanAccounts implements ledger.ReadTx.
func (t *txn) ScanAccounts(ctx context.Context, fn func(ledger.Account) error) error {
	return each(t, ctx, "accounts", "SELECT "+accountCols+" FROM accounts ORDER BY id", nil, scanAccount, fn)
}

// ScanLots implements ledger.ReadTx.
func (t *txn) ScanLots(ctx context.Context, p ledger.Period, fn func(ledger.Lot) error) error {
	if p.All() {
		if err := t.wholeTables(ctx); err != nil {
			return err
		}
		return each(t, ctx, "lots", "SELECT "+lotCols+" FROM lots ORDER BY id", nil, scanLot, fn)
	}
	return each(t, ctx, "lots", "SELECT "+lotCols+" FROM lots WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
		periodArgs(p), scanLot, fn)
}

// ScanRefunds implements ledger.ReadTx.
func (t *txn) ScanRefunds(ctx context.Context, p ledger.Period, fn func(ledger.Refund) error) error {
	return each(t, ctx, "refunds", "SELECT "+refundCols+" FROM refunds WHERE created_at >= $1 AND created_at < $2 ORDER BY out_refund_no",
		periodArgs(p), scanRefund, fn)
}

// ScanGrants implements ledger.ReadTx.
func (t *txn) ScanGrants(ctx context.Context, p ledger.Period, fn func(ledger.Grant) error) error {
	return each(t, ctx, "grants", "SELECT "+grantCols+" FROM grants WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
		periodArgs(p), scanGrant, fn)
}

// ScanAdjustments implements ledger.ReadTx.
func (t *txn) ScanAdjustments(ctx context.Context, p ledger.Period, fn func(ledger.Adjustment) error) error {
	return each(t, ctx, "adjustments", "SELECT "+adjustCols+" FROM adjustments WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
		periodArgs(p), scanAdjustment, fn)
}

// ScanAuditHolds implements ledger.ReadTx: the filter is in SQL, so a
// sound ledger sends only its active holds.
func (t *txn) ScanAuditHolds(ctx context.Context, p ledger.Period, fn func(ledger.Hold) error) error {
	if err := t.wholeTables(ctx); err != nil {
		return err
	}
	return each(t, ctx, "holds", "SELECT "+holdCols+` FROM holds
		WHERE status = 'active'
		   OR (created_at >= $1 AND created_at < $2
		       AND (amount <= 0 OR cost < 0 OR cost > amount OR (status <> 'settled' AND cost <> 0) OR resolved_at IS NULL))
		ORDER BY id`, periodArgs(p), scanHold, fn)
}

// spendSumsSQL aggregates usage and settled holds per account in the
// database (hash aggregates; one row per account reaches Go): the usage
// records from $1 (the rollup's pruned_before) on, and usage_daily's
// credits of the days before $2 (its Beijing date), whose records the
// retention may have deleted.
const spendSumsSQL = `
SELECT COALESCE(u.account_id, h.account_id), COALESCE(u.credits, 0)::BIGINT,
       COALESCE(h.settled, 0)::BIGINT, COALESCE(h.late, 0)::BIGINT
FROM (SELECT account_id, SUM(credits) AS credits FROM (
          SELECT account_id, credits FROM usage_records WHERE created_at >= $1
          UNION ALL
          SELECT account_id, credits FROM usage_daily WHERE day < $2::text::date) x
      GROUP BY account_id) u
FULL JOIN (SELECT account_id, SUM(cost) AS settled,
                  SUM(CASE WHEN resolved_at >= expires_at THEN cost ELSE 0 END) AS late
           FROM holds WHERE status = 'settled' GROUP BY account_id) h
  ON u.account_id = h.account_id
ORDER BY 1`

// SpendSums implements ledger.ReadTx. The rollup's state is read in the
// same snapshot.
func (t *txn) SpendSums(ctx context.Context, fn func(ledger.SpendSum) error) error {
	if err := t.wholeTables(ctx); err != nil {
		return err
	}
	st, err := t.rollupState(ctx)
	if err != nil {
		return err
	}
	args := []any{st.PrunedBefore, st.PrunedBefore.In(tollgate.Beijing).Format(time.DateOnly)}
	return each(t, ctx, "spend sums", spendSumsSQL, args, func(rows pgx.Rows) (ledger.SpendSum, error) {
		var s ledger.SpendSum
		var account string
		var usage, settled, late int64
		err := rows.Scan(&account, &usage, &settled, &late)
		s.Account, s.Usage, s.Settled, s.Late = tollgate.AccountID(account), tollgate.Credits(usage),
			tollgate.Credits(settled), tollgate.Credits(late)
		return s, err
	}, fn)
}

// Constraints implements ledger.ReadTx.
func (t *txn) Constraints(ctx context.Context) ([]string, error) { return t.uniqueConstraints(ctx) }
