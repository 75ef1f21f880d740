package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const grantCols = "id, account_id, cap, used, held, status, lot_id, created_at, expires_at, resolved_at, version"

func scanGrant(rows pgx.Rows) (ledger.Grant, error) {
	var g ledger.Grant
	var account, status string
	var capacity, used, held int64
	var lot *int64
	var resolved *time.Time
	err := rows.Scan(&g.ID, &account, &capacity, &used, &held, &status, &lot, &g.CreatedAt, &g.ExpiresAt, &resolved, &g.Version)
	g.Account, g.Cap, g.Used, g.Held = tollgate.AccountID(account), tollgate.Credits(capacity), tollgate.Credits(used), tollgate.Credits(held)
	g.Status = ledger.GrantStatus(status)
	if lot != nil {
		g.LotID = *lot
	}
	g.CreatedAt, g.ExpiresAt, g.ResolvedAt = g.CreatedAt.UTC(), g.ExpiresAt.UTC(), fromNull(resolved)
	return g, err
}

func (t *txn) grants(ctx context.Context, op, sql string, args ...any) ([]ledger.Grant, error) {
	var out []ledger.Grant
	err := t.query(ctx, op, sql, args, func(rows pgx.Rows) error {
		g, err := scanGrant(rows)
		out = append(out, g)
		return err
	})
	return out, err
}

// Grants returns the grants with the given ids, locked in an Update.
func (t *txn) Grants(ctx context.Context, ids []string) ([]ledger.Grant, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return t.grants(ctx, "postgres: read grants",
		"SELECT "+grantCols+" FROM grants WHERE id = ANY($1) ORDER BY id"+t.lockClause(), ids)
}

// LiveGrants returns the live grants of the given accounts, in id order,
// locked in an Update.
func (t *txn) LiveGrants(ctx context.Context, accounts []tollgate.AccountID) ([]ledger.Grant, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	return t.grants(ctx, "postgres: read live grants",
		"SELECT "+grantCols+" FROM grants WHERE account_id = ANY($1) AND status = 'live' ORDER BY id"+t.lockClause(),
		accountStrings(accounts))
}

// ExpiredGrants returns up to limit live grants that expired by now, by
// expiry then id. In an Update it locks them and skips grants another
// transaction has locked.
func (t *txn) ExpiredGrants(ctx context.Context, now time.Time, limit int) ([]ledger.Grant, error) {
	if limit <= 0 {
		return nil, nil
	}
	return t.grants(ctx, "postgres: read expired grants",
		"SELECT "+grantCols+" FROM grants WHERE status = 'live' AND expires_at <= $1 "+
			"ORDER BY expires_at, id LIMIT $2"+t.skipLockedClause(), now.UTC(), limit)
}
