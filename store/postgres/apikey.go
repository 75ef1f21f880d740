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
	lc := limitColumns(k.Limits)
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at,
		allowed_models, rpm, tpm, expires_at, max_credits_per_request, max_output_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, string(k.Account), k.Hash[:], k.Prefix, k.CreatedAt.UTC(),
		lc.models, lc.rpm, lc.tpm, lc.expires, lc.maxCredits, lc.maxOutput)
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

// keyAccountDisabled is a column telling whether a key's account is
// disabled (migration 0011), read with apiKeyColumns by APIKeyByHash.
const keyAccountDisabled = `EXISTS (SELECT 1 FROM accounts WHERE accounts.id = api_keys.account_id AND accounts.disabled_at IS NOT NULL)`

// apiKeyColumns are the columns scanKey reads, in its order.
const apiKeyColumns = `id, account_id, key_hash, prefix, created_at, revoked_at,
	allowed_models, rpm, tpm, expires_at, max_credits_per_request, max_output_tokens`

// keyLimitColumns are a key's limits as the nullable columns of
// migrations 0005 and 0007: nil (NULL) for every limit the key does not
// have.
type keyLimitColumns struct {
	models                     []string
	rpm                        *int32
	tpm, maxCredits, maxOutput *int64
	expires                    *time.Time
}

// limitColumns returns l as its columns.
func limitColumns(l tollgate.KeyLimits) keyLimitColumns {
	var c keyLimitColumns
	if len(l.Models) > 0 {
		c.models = l.Models
	}
	if l.RequestsPerMinute > 0 {
		n := int32(l.RequestsPerMinute)
		c.rpm = &n
	}
	c.tpm = positive(l.TokensPerMinute)
	c.maxCredits = positive(int64(l.MaxCreditsPerRequest))
	c.maxOutput = positive(l.MaxOutputTokens)
	if !l.ExpiresAt.IsZero() {
		t := l.ExpiresAt.UTC()
		c.expires = &t
	}
	return c
}

// positive returns &n, or nil (NULL: no limit) when n is not positive.
func positive(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}

// scanKey reads one row of apiKeyColumns.
func scanKey(row pgx.Row, extra ...any) (auth.Key, error) {
	var (
		k                          auth.Key
		h                          []byte
		account                    string
		revoked, exp               *time.Time
		rpm                        *int32
		tpm, maxCredits, maxOutput *int64
	)
	if err := row.Scan(append([]any{&k.ID, &account, &h, &k.Prefix, &k.CreatedAt, &revoked, &k.Limits.Models, &rpm, &tpm, &exp,
		&maxCredits, &maxOutput}, extra...)...); err != nil {
		return auth.Key{}, err
	}
	copy(k.Hash[:], h)
	k.Account = tollgate.AccountID(account)
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	if len(k.Limits.Models) == 0 {
		k.Limits.Models = nil
	}
	if rpm != nil {
		k.Limits.RequestsPerMinute = int(*rpm)
	}
	if tpm != nil {
		k.Limits.TokensPerMinute = *tpm
	}
	if exp != nil {
		k.Limits.ExpiresAt = exp.UTC()
	}
	if maxCredits != nil {
		k.Limits.MaxCreditsPerRequest = tollgate.Credits(*maxCredits)
	}
	if maxOutput != nil {
		k.Limits.MaxOutputTokens = *maxOutput
	}
	return k, nil
}

// APIKeyByHash returns the key whose hash is hash. Errors: ENOTFOUND.
func (s *Store) APIKeyByHash(ctx context.Context, hash [32]byte) (auth.Key, error) {
	const op = "postgres: api key by hash"
	var disabled bool
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+`, `+keyAccountDisabled+` FROM api_keys WHERE key_hash = $1`, hash[:]), &disabled)
	k.AccountDisabled = disabled
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Key{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such API key"}
	}
	if err != nil {
		return auth.Key{}, mapError(op, err)
	}
	return k, nil
}

// APIKeys returns every key of account, oldest first. Errors: ENOTFOUND
// (no such account). See auth.Store.
func (s *Store) APIKeys(ctx context.Context, account tollgate.AccountID) ([]auth.Key, error) {
	const op = "postgres: api keys"
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE account_id = $1 ORDER BY created_at, id`, string(account))
	if err != nil {
		return nil, mapError(op, err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Key, error) { return scanKey(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	if len(keys) > 0 {
		return keys, nil
	}
	// No keys: tell an account without keys from no account (accounts
	// are never deleted, so the second read cannot contradict the first).
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)`, string(account)).Scan(&exists); err != nil {
		return nil, mapError(op, err)
	}
	if !exists {
		return nil, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
	}
	return []auth.Key{}, nil
}

// RecentAPIKeys returns up to limit keys of account, newest first. See
// auth.Store.
func (s *Store) RecentAPIKeys(ctx context.Context, account tollgate.AccountID, limit int) ([]auth.Key, error) {
	const op = "postgres: recent api keys"
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
		string(account), limit)
	if err != nil {
		return nil, mapError(op, err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Key, error) { return scanKey(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	if keys == nil {
		keys = []auth.Key{}
	}
	return keys, nil
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
