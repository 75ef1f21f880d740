package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/auth"
)

var _ auth.Store = (*Store)(nil)

// codeForeignKeyViolation is SQLSTATE foreign_key_violation.
const codeForeignKeyViolation = "23503"

// CreateAPIKey stores k. Errors: ENOTFOUND (no such account), ECONFLICT
// (its id or hash exists). See auth.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k auth.Key) error {
	const op = "postgres: create api key"
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, string(k.Account), k.Hash[:], k.Prefix, k.CreatedAt.UTC())
	switch {
	case err == nil:
		return nil
	case sqlState(err) == codeForeignKeyViolation:
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account", Err: err}
	case sqlState(err) == codeUniqueViolation:
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "API key already exists", Err: err}
	}
	return mapError(op, err)
}

// APIKeyByHash returns the key whose hash is hash. Errors: ENOTFOUND.
func (s *Store) APIKeyByHash(ctx context.Context, hash [32]byte) (auth.Key, error) {
	const op = "postgres: api key by hash"
	var (
		k       auth.Key
		h       []byte
		account string
		revoked *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT id, account_id, key_hash, prefix, created_at, revoked_at FROM api_keys WHERE key_hash = $1`,
		hash[:]).Scan(&k.ID, &account, &h, &k.Prefix, &k.CreatedAt, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Key{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such API key"}
	}
	if err != nil {
		return auth.Key{}, mapError(op, err)
	}
	copy(k.Hash[:], h)
	k.Account = tollgate.AccountID(account)
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	return k, nil
}

// RevokeAPIKey marks a key of account revoked, keeping the first
// revocation time. Errors: ENOTFOUND.
func (s *Store) RevokeAPIKey(ctx context.Context, account tollgate.AccountID, id string, at time.Time) error {
	const op = "postgres: revoke api key"
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 AND account_id = $3`,
		at.UTC(), id, string(account))
	if err != nil {
		return mapError(op, err)
	}
	if tag.RowsAffected() == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such API key"}
	}
	return nil
}
