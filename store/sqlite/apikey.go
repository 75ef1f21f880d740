package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"tollgate"
	"tollgate/auth"
)

var _ auth.Store = (*Store)(nil)

// CreateAPIKey stores k. Errors: ENOTFOUND (no such account), ECONFLICT
// (its id or hash exists). See auth.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k auth.Key) error {
	const op = "sqlite: create api key"
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = ?`, string(k.Account)).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, string(k.Account), k.Hash[:], k.Prefix, k.CreatedAt.UTC().UnixMicro())
	if isUnique(err) {
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "API key already exists", Err: err}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// APIKeyByHash returns the key whose hash is hash. Errors: ENOTFOUND.
func (s *Store) APIKeyByHash(ctx context.Context, hash [32]byte) (auth.Key, error) {
	var (
		k       auth.Key
		h       []byte
		account string
		created int64
		revoked sql.NullInt64
	)
	err := s.reader.QueryRowContext(ctx, `SELECT id, account_id, key_hash, prefix, created_at, revoked_at FROM api_keys WHERE key_hash = ?`,
		hash[:]).Scan(&k.ID, &account, &h, &k.Prefix, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Key{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "sqlite: api key by hash", Message: "no such API key"}
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("sqlite: api key by hash: %w", err)
	}
	copy(k.Hash[:], h)
	k.Account = tollgate.AccountID(account)
	k.CreatedAt = time.UnixMicro(created).UTC()
	if revoked.Valid {
		k.RevokedAt = time.UnixMicro(revoked.Int64).UTC()
	}
	return k, nil
}

// RevokeAPIKey marks a key of account revoked, keeping the first
// revocation time. Errors: ENOTFOUND.
func (s *Store) RevokeAPIKey(ctx context.Context, account tollgate.AccountID, id string, at time.Time) error {
	res, err := s.writer.ExecContext(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND account_id = ?`,
		at.UTC().UnixMicro(), id, string(account))
	if err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	} else if n == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "sqlite: revoke api key", Message: "no such API key"}
	}
	return nil
}

// Ping checks that the database file answers a query, for readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: "sqlite: ping", Message: "database unavailable", Err: err}
	}
	return nil
}

// isUnique reports whether err is a unique or primary key violation, by
// SQLite's extended result code.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
