package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"tollgate/ledger"
)

// Apply implements ledger.Tx: inserts first, then version-conditional
// updates; an update that matches no row wraps ledger.ErrRetry.
func (t *txn) Apply(ctx context.Context, c *ledger.Changes) error {
	for _, a := range c.NewAccounts {
		if err := t.exec(ctx, "insert account", `INSERT INTO accounts (id, left_credits, held, debt, created_at, version, low_balance_credits)
			VALUES (?, ?, ?, ?, ?, 1, ?)`, a.ID, a.Left, a.Held, a.Debt, micros(a.CreatedAt), lowBalance(a)); err != nil {
			return err
		}
	}
	for _, l := range c.NewLots {
		res, err := t.q.ExecContext(ctx, `INSERT INTO lots (account_id, out_trade_no, transaction_id, fen, granted, used,
			left_credits, refunding, refunded, refunded_fen, created_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			l.Account, l.OutTradeNo, l.TransactionID, l.Fen, l.Granted, l.Used, l.Left, l.Refunding, l.Refunded, l.RefundedFen, micros(l.CreatedAt))
		if err != nil {
			return mapErr("insert lot", err)
		}
		if l.ID, err = res.LastInsertId(); err != nil {
			return mapErr("insert lot", err)
		}
	}
	for _, g := range c.NewGrants {
		if err := t.exec(ctx, "insert grant", `INSERT INTO grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			g.ID, g.Account, g.Cap, g.Used, g.Held, g.Status, nullID(g.LotID), micros(g.CreatedAt), micros(g.ExpiresAt), nullMicros(g.ResolvedAt)); err != nil {
			return err
		}
	}
	if err := t.insertHolds(ctx, c.NewHolds); err != nil {
		return err
	}
	for _, r := range c.NewRefunds {
		if err := t.exec(ctx, "insert refund", `INSERT INTO refunds (`+refundCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			r.OutRefundNo, r.LotID, r.Account, r.Credits, r.Fen, r.Status, micros(r.CreatedAt), nullMicros(r.ResolvedAt)); err != nil {
			return err
		}
	}
	if err := t.insertUsage(ctx, c.NewUsage); err != nil {
		return err
	}
	if err := t.insertAdjustments(ctx, c.NewAdjustments); err != nil {
		return err
	}
	if err := t.applyUpdates(ctx, c); err != nil {
		return err
	}
	if len(c.NewEvents) > 0 {
		if _, err := t.appendEvents(ctx, c.NewEvents); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) applyUpdates(ctx context.Context, c *ledger.Changes) error {
	if err := t.updateAccounts(ctx, c.Accounts); err != nil {
		return err
	}
	if err := t.updateLots(ctx, c.Lots); err != nil {
		return err
	}
	for _, g := range c.Grants {
		if err := t.update(ctx, "grant "+g.ID, `UPDATE grants SET used = ?, held = ?, status = ?, lot_id = ?, resolved_at = ?,
			version = version + 1 WHERE id = ? AND version = ?`,
			g.Used, g.Held, g.Status, nullID(g.LotID), nullMicros(g.ResolvedAt), g.ID, g.Version); err != nil {
			return err
		}
	}
	if err := t.updateHolds(ctx, c.Holds); err != nil {
		return err
	}
	for _, r := range c.Refunds {
		if err := t.update(ctx, "refund "+r.OutRefundNo, `UPDATE refunds SET status = ?, resolved_at = ?, version = version + 1
			WHERE out_refund_no = ? AND version = ?`, r.Status, nullMicros(r.ResolvedAt), r.OutRefundNo, r.Version); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) exec(ctx context.Context, what, query string, args ...any) error {
	if _, err := t.q.ExecContext(ctx, query, args...); err != nil {
		return mapErr(what, err)
	}
	return nil
}

// update runs a version-conditional UPDATE; no matching row means another
// writer changed the row since it was read.
func (t *txn) update(ctx context.Context, what, query string, args ...any) error {
	res, err := t.q.ExecContext(ctx, query, args...)
	if err != nil {
		return mapErr("update "+what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr("update "+what, err)
	}
	if n != 1 {
		return fmt.Errorf("sqlite: update %s: stale version: %w", what, ledger.ErrRetry)
	}
	return nil
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// The hot tables are written set-based: all rows of a batch go into one
// multi-row VALUES statement, one driver round trip instead of one per row.
// Statement texts depend only on the row count, so the prepared-statement
// cache keeps them (binding parameters proved much cheaper than passing the
// rows as JSON and extracting every column).

// values returns "(?,?,?),(?,?,?)" for n rows of cols columns.
func values(n, cols int) string {
	row := "(" + strings.Repeat("?,", cols-1) + "?)"
	var b strings.Builder
	b.Grow(n * (len(row) + 1))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

func flatten[T any](rows []T, cols int, row func(T) []any) []any {
	out := make([]any, 0, len(rows)*cols)
	for _, r := range rows {
		out = append(out, row(r)...)
	}
	return out
}

func nullable(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (t *txn) insertHolds(ctx context.Context, hs []ledger.Hold) error {
	if len(hs) == 0 {
		return nil
	}
	return t.exec(ctx, "insert holds", `INSERT INTO holds (`+holdCols+`) VALUES `+values(len(hs), 10),
		flatten(hs, 10, func(h ledger.Hold) []any {
			return []any{h.ID, h.Account, optString(h.GrantID), h.Amount, h.Cost, h.Status, micros(h.CreatedAt),
				micros(h.ExpiresAt), nullable(h.ResolvedAt), 1}
		})...)
}

func (t *txn) insertUsage(ctx context.Context, us []ledger.Usage) error {
	if len(us) == 0 {
		return nil
	}
	return t.exec(ctx, "insert usage", `INSERT INTO usage_records (`+usageCols+`) VALUES `+values(len(us), 17),
		flatten(us, 17, func(u ledger.Usage) []any {
			return []any{u.RequestID, u.Account, u.KeyID, u.Model, u.Provider, u.Deployment, u.InputTokens, u.CachedTokens,
				u.CacheWriteTokens, u.CacheWrite1hTokens, u.OutputTokens, u.Credits, u.Latency.Microseconds(), u.Status, micros(u.CreatedAt),
				u.UpstreamID, ledger.EncodeUnits(u.Units)}
		})...)
}

func (t *txn) updateAccounts(ctx context.Context, as []ledger.Account) error {
	if len(as) == 0 {
		return nil
	}
	return t.updateSet(ctx, "accounts", len(as), `UPDATE accounts SET left_credits = j.column2, held = j.column3,
		debt = j.column4, low_balance_credits = j.column6, version = version + 1
		FROM (VALUES `+values(len(as), 6)+`) AS j WHERE accounts.id = j.column1 AND accounts.version = j.column5`,
		flatten(as, 6, func(a ledger.Account) []any { return []any{a.ID, a.Left, a.Held, a.Debt, a.Version, lowBalance(a)} }))
}

// lowBalance is the account's low_balance_credits as a column value.
func lowBalance(a ledger.Account) any {
	if a.LowBalance == nil {
		return nil
	}
	return int64(*a.LowBalance)
}

func (t *txn) updateLots(ctx context.Context, ls []ledger.Lot) error {
	if len(ls) == 0 {
		return nil
	}
	return t.updateSet(ctx, "lots", len(ls), `UPDATE lots SET used = j.column2, left_credits = j.column3,
		refunding = j.column4, refunded = j.column5, refunded_fen = j.column6, version = version + 1
		FROM (VALUES `+values(len(ls), 7)+`) AS j WHERE lots.id = j.column1 AND lots.version = j.column7`,
		flatten(ls, 7, func(l ledger.Lot) []any {
			return []any{l.ID, l.Used, l.Left, l.Refunding, l.Refunded, l.RefundedFen, l.Version}
		}))
}

func (t *txn) updateHolds(ctx context.Context, hs []ledger.Hold) error {
	if len(hs) == 0 {
		return nil
	}
	return t.updateSet(ctx, "holds", len(hs), `UPDATE holds SET cost = j.column2, status = j.column3,
		resolved_at = j.column4, expires_at = j.column5, version = version + 1
		FROM (VALUES `+values(len(hs), 6)+`) AS j WHERE holds.id = j.column1 AND holds.version = j.column6`,
		flatten(hs, 6, func(h ledger.Hold) []any {
			return []any{h.ID, h.Cost, h.Status, nullable(h.ResolvedAt), micros(h.ExpiresAt), h.Version}
		}))
}

// updateSet runs a set-based, version-conditional UPDATE of want rows;
// fewer rows changed means another writer changed one since it was read.
func (t *txn) updateSet(ctx context.Context, table string, want int, query string, args []any) error {
	res, err := t.q.ExecContext(ctx, query, args...)
	if err != nil {
		return mapErr("update "+table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr("update "+table, err)
	}
	if n != int64(want) {
		return fmt.Errorf("sqlite: update %s: %d of %d rows had a stale version: %w", table, int64(want)-n, want, ledger.ErrRetry)
	}
	return nil
}
