package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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
	for _, h := range c.NewHolds {
		if err := t.exec(ctx, "insert hold", `INSERT INTO holds (`+holdCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			h.ID, h.Account, nullString(h.GrantID), h.Amount, h.Cost, h.Status, micros(h.CreatedAt), micros(h.ExpiresAt), nullMicros(h.ResolvedAt)); err != nil {
			return err
		}
	}
	for _, r := range c.NewRefunds {
		if err := t.exec(ctx, "insert refund", `INSERT INTO refunds (`+refundCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			r.OutRefundNo, r.LotID, r.Account, r.Credits, r.Fen, r.Status, micros(r.CreatedAt), nullMicros(r.ResolvedAt)); err != nil {
			return err
		}
	}
	for _, u := range c.NewUsage {
		if err := t.exec(ctx, "insert usage", `INSERT INTO usage_records (`+usageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.RequestID, u.Account, u.KeyID, u.Model, u.Provider, u.Deployment, u.InputTokens, u.CachedTokens, u.OutputTokens,
			u.Credits, u.Latency.Microseconds(), u.Status, micros(u.CreatedAt)); err != nil {
			return err
		}
	}
	return t.applyUpdates(ctx, c)
}

func (t *txn) applyUpdates(ctx context.Context, c *ledger.Changes) error {
	for _, a := range c.Accounts {
		if err := t.update(ctx, "account "+string(a.ID), `UPDATE accounts SET left_credits = ?, held = ?, debt = ?, version = version + 1
			WHERE id = ? AND version = ?`, a.Left, a.Held, a.Debt, a.ID, a.Version); err != nil {
			return err
		}
	}
	for _, l := range c.Lots {
		if err := t.update(ctx, fmt.Sprintf("lot %d", l.ID), `UPDATE lots SET used = ?, left_credits = ?, refunding = ?, refunded = ?,
			refunded_fen = ?, version = version + 1 WHERE id = ? AND version = ?`,
			l.Used, l.Left, l.Refunding, l.Refunded, l.RefundedFen, l.ID, l.Version); err != nil {
			return err
		}
	}
	for _, g := range c.Grants {
		if err := t.update(ctx, "grant "+g.ID, `UPDATE grants SET used = ?, held = ?, status = ?, lot_id = ?, resolved_at = ?,
			version = version + 1 WHERE id = ? AND version = ?`,
			g.Used, g.Held, g.Status, nullID(g.LotID), nullMicros(g.ResolvedAt), g.ID, g.Version); err != nil {
			return err
		}
	}
	for _, h := range c.Holds {
		if err := t.update(ctx, "hold "+h.ID, `UPDATE holds SET cost = ?, status = ?, resolved_at = ?, version = version + 1
			WHERE id = ? AND version = ?`, h.Cost, h.Status, nullMicros(h.ResolvedAt), h.ID, h.Version); err != nil {
			return err
		}
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
