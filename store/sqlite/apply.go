package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"tollgate/ledger"
)

// Apply implements ledger.Tx: inserts first, then version-conditional
// updates; an update that matches no row wraps ledger.ErrRetry.
func (t *txn) Apply(ctx context.Context, c *ledger.Changes) error {
	for _, a := range c.NewAccounts {
		if err := t.exec(ctx, "insert account", `INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, 1)`,
			a.ID, a.Left, a.Held, a.Debt, micros(a.CreatedAt)); err != nil {
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
	return t.applyUpdates(ctx, c)
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

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// The hot tables are written set-based: all rows of a batch go in one JSON
// array parameter to one statement, which costs one driver round trip
// instead of one per row.

func jsonRows[T any](rows []T, row func(T) []any) string {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = row(r)
	}
	return jsonSet(out)
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
	return t.exec(ctx, "insert holds", `INSERT INTO holds (`+holdCols+`)
		SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, 1
		FROM json_each(?)`, jsonRows(hs, func(h ledger.Hold) []any {
		return []any{h.ID, h.Account, optString(h.GrantID), h.Amount, h.Cost, h.Status, micros(h.CreatedAt), micros(h.ExpiresAt), nullable(h.ResolvedAt)}
	}))
}

func (t *txn) insertUsage(ctx context.Context, us []ledger.Usage) error {
	if len(us) == 0 {
		return nil
	}
	return t.exec(ctx, "insert usage", `INSERT INTO usage_records (`+usageCols+`)
		SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8,
		       value->>9, value->>10, value->>11, value->>12
		FROM json_each(?)`, jsonRows(us, func(u ledger.Usage) []any {
		return []any{u.RequestID, u.Account, u.KeyID, u.Model, u.Provider, u.Deployment, u.InputTokens, u.CachedTokens,
			u.OutputTokens, u.Credits, u.Latency.Microseconds(), u.Status, micros(u.CreatedAt)}
	}))
}

func (t *txn) updateAccounts(ctx context.Context, as []ledger.Account) error {
	if len(as) == 0 {
		return nil
	}
	return t.updateSet(ctx, "accounts", len(as), `UPDATE accounts SET left_credits = j.value->>1, held = j.value->>2,
		debt = j.value->>3, version = version + 1
		FROM json_each(?) AS j WHERE accounts.id = j.value->>0 AND accounts.version = j.value->>4`,
		jsonRows(as, func(a ledger.Account) []any { return []any{a.ID, a.Left, a.Held, a.Debt, a.Version} }))
}

func (t *txn) updateLots(ctx context.Context, ls []ledger.Lot) error {
	if len(ls) == 0 {
		return nil
	}
	return t.updateSet(ctx, "lots", len(ls), `UPDATE lots SET used = j.value->>1, left_credits = j.value->>2,
		refunding = j.value->>3, refunded = j.value->>4, refunded_fen = j.value->>5, version = version + 1
		FROM json_each(?) AS j WHERE lots.id = j.value->>0 AND lots.version = j.value->>6`,
		jsonRows(ls, func(l ledger.Lot) []any {
			return []any{l.ID, l.Used, l.Left, l.Refunding, l.Refunded, l.RefundedFen, l.Version}
		}))
}

func (t *txn) updateHolds(ctx context.Context, hs []ledger.Hold) error {
	if len(hs) == 0 {
		return nil
	}
	return t.updateSet(ctx, "holds", len(hs), `UPDATE holds SET cost = j.value->>1, status = j.value->>2,
		resolved_at = j.value->>3, version = version + 1
		FROM json_each(?) AS j WHERE holds.id = j.value->>0 AND holds.version = j.value->>4`,
		jsonRows(hs, func(h ledger.Hold) []any { return []any{h.ID, h.Cost, h.Status, nullable(h.ResolvedAt), h.Version} }))
}

// updateSet runs a set-based, version-conditional UPDATE of want rows;
// fewer rows changed means another writer changed one since it was read.
func (t *txn) updateSet(ctx context.Context, table string, want int, query string, arg string) error {
	res, err := t.q.ExecContext(ctx, query, arg)
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
