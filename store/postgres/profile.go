package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/auth"
)

var _ auth.ProfileStore = (*Store)(nil)

// profileColumns are the columns scanProfile reads, in its order.
const profileColumns = `id, label, external_id, metadata, disabled_at, created_at, left_credits, held, debt, platform_id, low_balance_credits`

func scanProfile(row pgx.Row) (auth.Profile, error) {
	var (
		p                 auth.Profile
		id, meta          string
		ext, plat         *string
		disabled          *time.Time
		left, held, debts int64
		low               *int64
	)
	if err := row.Scan(&id, &p.Label, &ext, &meta, &disabled, &p.CreatedAt, &left, &held, &debts, &plat, &low); err != nil {
		return auth.Profile{}, err
	}
	p.Account, p.Metadata = tollgate.AccountID(id), []byte(meta)
	if plat != nil {
		p.Platform = *plat
	}
	if ext != nil {
		p.ExternalID = *ext
	}
	if disabled != nil {
		p.DisabledAt = disabled.UTC()
	}
	p.CreatedAt = p.CreatedAt.UTC()
	p.Left, p.Held, p.Debt = tollgate.Credits(left), tollgate.Credits(held), tollgate.Credits(debts)
	if low != nil {
		v := tollgate.Credits(*low)
		p.LowBalance = &v
	}
	return p, nil
}

// AccountProfile implements auth.ProfileStore.
func (s *Store) AccountProfile(ctx context.Context, id tollgate.AccountID) (auth.Profile, error) {
	const op = "postgres: account profile"
	p, err := scanProfile(s.pool.QueryRow(ctx, `SELECT `+profileColumns+` FROM accounts WHERE id = $1`, string(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Profile{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
	}
	if err != nil {
		return auth.Profile{}, mapError(op, err)
	}
	return p, nil
}

// UpdateAccountProfile implements auth.ProfileStore. The account's row is
// locked for the change; the ledger's own columns and version are not
// written, so a concurrent ledger update is neither lost nor retried.
func (s *Store) UpdateAccountProfile(ctx context.Context, id tollgate.AccountID, fn func(*auth.Profile) error) (auth.Profile, error) {
	const op = "postgres: update account profile"
	var out auth.Profile
	err := s.pgPayTx(ctx, op, func(tx pgx.Tx) error {
		p, err := scanProfile(tx.QueryRow(ctx, `SELECT `+profileColumns+` FROM accounts WHERE id = $1 FOR UPDATE`, string(id)))
		if errors.Is(err, pgx.ErrNoRows) {
			return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
		}
		if err != nil {
			return mapError(op, err)
		}
		if err := fn(&p); err != nil {
			return err
		}
		p.Account = id
		var ext *string
		if p.ExternalID != "" {
			ext = &p.ExternalID
		}
		var disabled *time.Time
		if !p.DisabledAt.IsZero() {
			p.DisabledAt = p.DisabledAt.UTC().Truncate(time.Microsecond)
			disabled = &p.DisabledAt
		}
		_, err = tx.Exec(ctx, `UPDATE accounts SET label = $1, external_id = $2, metadata = $3, disabled_at = $4 WHERE id = $5`,
			p.Label, ext, string(p.Metadata), disabled, string(id))
		if sqlState(err) == codeUniqueViolation {
			return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Err: err,
				Message: fmt.Sprintf("external_id %q belongs to another account", p.ExternalID)}
		}
		if err != nil {
			return mapError(op, err)
		}
		out = p
		return nil
	})
	return out, err
}

// ListAccounts implements auth.ProfileStore: a keyset page over the
// accounts' primary key. A search by label walks the index from the
// cursor and stops at the page's limit (having read every row it passed:
// a rare label costs a long walk, never memory).
func (s *Store) ListAccounts(ctx context.Context, q auth.AccountQuery) ([]auth.Profile, error) {
	const op = "postgres: list accounts"
	where, args := `id > $1`, []any{string(q.After), q.Limit}
	switch {
	case q.Q != "" && q.Exact:
		where += ` AND (id = $3 OR external_id = $3)`
		args = append(args, q.Q)
	case q.Q != "":
		// ASCII letters folded and nothing else, as SQLite's lower()
		// and auth.FoldASCII do.
		where += ` AND strpos(translate(label, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), $3) > 0` +
			` AND id <> $4 AND external_id IS DISTINCT FROM $4`
		args = append(args, auth.FoldASCII(q.Q), q.Q)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+profileColumns+` FROM accounts WHERE `+where+` ORDER BY id LIMIT $2`, args...)
	if err != nil {
		return nil, mapError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Profile, error) { return scanProfile(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	if out == nil {
		out = []auth.Profile{}
	}
	return out, nil
}
