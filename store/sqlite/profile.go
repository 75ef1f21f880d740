package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"tollgate"
	"tollgate/auth"
)

var _ auth.ProfileStore = (*Store)(nil)

// profileColumns are the columns scanProfile reads, in its order.
const profileColumns = `id, label, external_id, metadata, disabled_at, created_at, left_credits, held, debt, platform_id, low_balance_credits`

func scanProfile(row interface{ Scan(...any) error }) (auth.Profile, error) {
	var (
		p                 auth.Profile
		id, meta          string
		ext, plat         sql.NullString
		disabled          sql.NullInt64
		created           int64
		left, held, debts int64
		low               sql.NullInt64
	)
	if err := row.Scan(&id, &p.Label, &ext, &meta, &disabled, &created, &left, &held, &debts, &plat, &low); err != nil {
		return auth.Profile{}, err
	}
	p.Account, p.ExternalID, p.Metadata, p.Platform = tollgate.AccountID(id), ext.String, []byte(meta), plat.String
	if disabled.Valid {
		p.DisabledAt = time.UnixMicro(disabled.Int64).UTC()
	}
	p.CreatedAt = time.UnixMicro(created).UTC()
	p.Left, p.Held, p.Debt = tollgate.Credits(left), tollgate.Credits(held), tollgate.Credits(debts)
	if low.Valid {
		v := tollgate.Credits(low.Int64)
		p.LowBalance = &v
	}
	return p, nil
}

var errNoAccount = &tollgate.Error{Code: tollgate.ENOTFOUND, Message: "no such account"}

// AccountProfile implements auth.ProfileStore.
func (s *Store) AccountProfile(ctx context.Context, id tollgate.AccountID) (auth.Profile, error) {
	p, err := scanProfile(s.reader.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM accounts WHERE id = ?`, string(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Profile{}, fmt.Errorf("sqlite: account profile: %w", errNoAccount)
	}
	if err != nil {
		return auth.Profile{}, fmt.Errorf("sqlite: account profile: %w", err)
	}
	return p, nil
}

// UpdateAccountProfile implements auth.ProfileStore.
func (s *Store) UpdateAccountProfile(ctx context.Context, id tollgate.AccountID, fn func(*auth.Profile) error) (auth.Profile, error) {
	const op = "sqlite: update account profile"
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return auth.Profile{}, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	p, err := scanProfile(tx.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM accounts WHERE id = ?`, string(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Profile{}, fmt.Errorf("%s: %w", op, errNoAccount)
	}
	if err != nil {
		return auth.Profile{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := fn(&p); err != nil {
		return auth.Profile{}, err
	}
	p.Account = id
	var ext sql.NullString
	if p.ExternalID != "" {
		ext = sql.NullString{String: p.ExternalID, Valid: true}
	}
	var disabled sql.NullInt64
	if !p.DisabledAt.IsZero() {
		p.DisabledAt = p.DisabledAt.UTC().Truncate(time.Microsecond)
		disabled = sql.NullInt64{Int64: p.DisabledAt.UnixMicro(), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `UPDATE accounts SET label = ?, external_id = ?, metadata = ?, disabled_at = ? WHERE id = ?`,
		p.Label, ext, string(p.Metadata), disabled, string(id))
	if isUnique(err) {
		return auth.Profile{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Err: err,
			Message: fmt.Sprintf("external_id %q belongs to another account", p.ExternalID)}
	}
	if err != nil {
		return auth.Profile{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return auth.Profile{}, fmt.Errorf("%s: commit: %w", op, err)
	}
	return p, nil
}

// ListAccounts implements auth.ProfileStore: a keyset page over the
// accounts' primary key. A search by label walks the index from the
// cursor and stops at the page's limit (having read every row it passed:
// a rare label costs a long walk, never memory).
func (s *Store) ListAccounts(ctx context.Context, q auth.AccountQuery) ([]auth.Profile, error) {
	const op = "sqlite: list accounts"
	where, args := `id > ?`, []any{string(q.After)}
	switch {
	case q.Q != "" && q.Exact:
		where += ` AND (id = ? OR external_id = ?)`
		args = append(args, q.Q, q.Q)
	case q.Q != "":
		// lower() folds ASCII only, like auth.FoldASCII.
		where += ` AND instr(lower(label), ?) > 0 AND id <> ? AND (external_id IS NULL OR external_id <> ?)`
		args = append(args, auth.FoldASCII(q.Q), q.Q, q.Q)
	}
	args = append(args, q.Limit)
	rows, err := s.reader.QueryContext(ctx, `SELECT `+profileColumns+` FROM accounts WHERE `+where+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	out := []auth.Profile{}
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}
