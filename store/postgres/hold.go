package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const holdCols = "id, account_id, grant_id, amount, cost, status, created_at, expires_at, resolved_at, version"

func scanHold(rows pgx.Rows) (ledger.Hold, error) {
	var h ledger.Hold
	var account, status string
	var grant *string
	var amount, cost int64
	var resolved *time.Time
	err := rows.Scan(&h.ID, &account, &grant, &amount, &cost, &status, &h.CreatedAt, &h.ExpiresAt, &resolved, &h.Version)
	h.Account, h.Amount, h.Cost, h.Status = tollgate.AccountID(account), tollgate.Credits(amount), tollgate.Credits(cost), ledger.HoldStatus(status)
	if grant != nil {
		h.GrantID = *grant
	}
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = h.CreatedAt.UTC(), h.ExpiresAt.UTC(), fromNull(resolved)
	return h, err
}

func (t *txn) holds(ctx context.Context, op, sql string, args ...any) ([]ledger.Hold, error) {
	var out []ledger.Hold
	err := t.query(ctx, op, sql, args, func(rows pgx.Rows) error {
		h, err := scanHold(rows)
		out = append(out, h)
		return err
	})
	return out, err
}

// Holds returns the holds with the given ids. In an Update it locks them,
// and reads ahead the usage records of the same request ids.
func (t *txn) Holds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if t.lock {
		return t.lockHolds(ctx, ids)
	}
	return t.holds(ctx, "postgres: read holds",
		"SELECT "+holdCols+" FROM holds WHERE id = ANY($1) ORDER BY id"+t.lockClause(), ids)
}

// ExpiredHolds returns up to limit active holds that expired by now, oldest
// expiry first. In an Update it locks them and skips holds another
// transaction has locked: those are being resolved right now.
func (t *txn) ExpiredHolds(ctx context.Context, now time.Time, limit int) ([]ledger.Hold, error) {
	if limit <= 0 {
		return nil, nil
	}
	return t.holds(ctx, "postgres: read expired holds",
		"SELECT "+holdCols+" FROM holds WHERE status = 'active' AND expires_at <= $1 "+
			"ORDER BY expires_at, id LIMIT $2"+t.skipLockedClause(), now.UTC(), limit)
}

// skipLockedClause is lockClause for sweeps that must not wait.
func (t *txn) skipLockedClause() string {
	if t.lock {
		return " FOR NO KEY UPDATE SKIP LOCKED"
	}
	return ""
}
