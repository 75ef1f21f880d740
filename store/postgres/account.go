package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const accountCols = "id, left_credits, held, debt, created_at, version, low_balance_credits"

func scanAccount(rows pgx.Rows) (ledger.Account, error) {
	var a ledger.Account
	var id string
	var left, held, debt int64
	var low *int64
	err := rows.Scan(&id, &left, &held, &debt, &a.CreatedAt, &a.Version, &low)
	a.ID, a.Left, a.Held, a.Debt = tollgate.AccountID(id), tollgate.Credits(left), tollgate.Credits(held), tollgate.Credits(debt)
	if low != nil {
		v := tollgate.Credits(*low)
		a.LowBalance = &v
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

// Accounts returns the accounts with the given ids, in id order. In an
// Update it locks them, and reads ahead their spendable lots.
func (t *txn) Accounts(ctx context.Context, ids []tollgate.AccountID) ([]ledger.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if t.lock {
		if accounts, ok := t.pre.lockedAccounts(ids); ok {
			return accounts, nil
		}
		return t.lockAccounts(ctx, ids)
	}
	var out []ledger.Account
	err := t.query(ctx, "postgres: read accounts",
		"SELECT "+accountCols+" FROM accounts WHERE id = ANY($1) ORDER BY id"+t.lockClause(),
		[]any{accountStrings(ids)}, func(rows pgx.Rows) error {
			a, err := scanAccount(rows)
			out = append(out, a)
			return err
		})
	return out, err
}

func accountStrings(ids []tollgate.AccountID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// nullTime is the database value of an optional time: NULL for zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// fromNull is the inverse of nullTime, in UTC.
func fromNull(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// nullString is the database value of an optional reference: NULL for "".
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nullID is the database value of an optional lot reference: NULL for 0.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// DebtOutstanding implements ledger.DebtReporter.
func (s *Store) DebtOutstanding(ctx context.Context) (ledger.DebtTotal, error) {
	var d ledger.DebtTotal
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(SUM(debt), 0)::bigint, count(*) FROM accounts WHERE debt > 0`).Scan(&d.Credits, &d.Accounts); err != nil {
		return ledger.DebtTotal{}, mapError("postgres: debt outstanding", err)
	}
	return d, nil
}
