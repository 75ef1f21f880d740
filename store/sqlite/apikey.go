package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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
	lc, err := limitColumns(k.Limits)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at,
		allowed_models, rpm, tpm, expires_at, max_credits_per_request, max_output_tokens)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, string(k.Account), k.Hash[:], k.Prefix, k.CreatedAt.UTC().UnixMicro(),
		lc.models, lc.rpm, lc.tpm, lc.expires, lc.maxCredits, lc.maxOutput)
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

// keyAccountDisabled is a column telling whether a key's account is
// disabled (migration 0011), read with apiKeyColumns by APIKeyByHash.
const keyAccountDisabled = `EXISTS (SELECT 1 FROM accounts WHERE accounts.id = api_keys.account_id AND accounts.disabled_at IS NOT NULL)`

// apiKeyColumns are the columns scanKey reads, in its order.
const apiKeyColumns = `id, account_id, key_hash, prefix, created_at, revoked_at,
	allowed_models, rpm, tpm, expires_at, max_credits_per_request, max_output_tokens`

// keyLimitColumns are a key's limits as the nullable columns of
// migrations 0005 and 0007: NULL for every limit the key does not have.
type keyLimitColumns struct {
	models                                   sql.NullString
	rpm, tpm, expires, maxCredits, maxOutput sql.NullInt64
}

// limitColumns returns l as its columns.
func limitColumns(l tollgate.KeyLimits) (keyLimitColumns, error) {
	var c keyLimitColumns
	if len(l.Models) > 0 {
		b, err := json.Marshal(l.Models)
		if err != nil {
			return c, err
		}
		c.models = sql.NullString{String: string(b), Valid: true}
	}
	c.rpm = sql.NullInt64{Int64: int64(l.RequestsPerMinute), Valid: l.RequestsPerMinute > 0}
	c.tpm = sql.NullInt64{Int64: l.TokensPerMinute, Valid: l.TokensPerMinute > 0}
	if !l.ExpiresAt.IsZero() {
		c.expires = sql.NullInt64{Int64: l.ExpiresAt.UTC().UnixMicro(), Valid: true}
	}
	c.maxCredits = sql.NullInt64{Int64: int64(l.MaxCreditsPerRequest), Valid: l.MaxCreditsPerRequest > 0}
	c.maxOutput = sql.NullInt64{Int64: l.MaxOutputTokens, Valid: l.MaxOutputTokens > 0}
	return c, nil
}

// scanKey reads one row of apiKeyColumns.
func scanKey(row interface{ Scan(...any) error }, extra ...any) (auth.Key, error) {
	var (
		k                                          auth.Key
		h                                          []byte
		account                                    string
		created                                    int64
		models                                     sql.NullString
		revoked, rpm, tpm, exp, maxCredits, maxOut sql.NullInt64
	)
	if err := row.Scan(append([]any{&k.ID, &account, &h, &k.Prefix, &created, &revoked, &models, &rpm, &tpm, &exp, &maxCredits, &maxOut}, extra...)...); err != nil {
		return auth.Key{}, err
	}
	copy(k.Hash[:], h)
	k.Account = tollgate.AccountID(account)
	k.CreatedAt = time.UnixMicro(created).UTC()
	if revoked.Valid {
		k.RevokedAt = time.UnixMicro(revoked.Int64).UTC()
	}
	if models.Valid {
		if err := json.Unmarshal([]byte(models.String), &k.Limits.Models); err != nil {
			return auth.Key{}, fmt.Errorf("key %s: allowed_models: %w", k.ID, err)
		}
	}
	k.Limits.RequestsPerMinute = int(rpm.Int64)
	k.Limits.TokensPerMinute = tpm.Int64
	if exp.Valid {
		k.Limits.ExpiresAt = time.UnixMicro(exp.Int64).UTC()
	}
	k.Limits.MaxCreditsPerRequest = tollgate.Credits(maxCredits.Int64)
	k.Limits.MaxOutputTokens = maxOut.Int64
	return k, nil
}

// APIKeyByHash returns the key whose hash is hash. Errors: ENOTFOUND.
func (s *Store) APIKeyByHash(ctx context.Context, hash [32]byte) (auth.Key, error) {
	var disabled bool
	k, err := scanKey(s.reader.QueryRowContext(ctx, `SELECT `+apiKeyColumns+`, `+keyAccountDisabled+` FROM api_keys WHERE key_hash = ?`, hash[:]), &disabled)
	k.AccountDisabled = disabled
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Key{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "sqlite: api key by hash", Message: "no such API key"}
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("sqlite: api key by hash: %w", err)
	}
	return k, nil
}

// APIKeys returns every key of account, oldest first. Errors: ENOTFOUND
// (no such account). See auth.Store.
func (s *Store) APIKeys(ctx context.Context, account tollgate.AccountID) ([]auth.Key, error) {
	const op = "sqlite: api keys"
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = ?`, string(account)).Scan(&n); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return nil, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE account_id = ? ORDER BY created_at, id`, string(account))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	keys := []auth.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return keys, nil
}

// RecentAPIKeys returns up to limit keys of account, newest first. See
// auth.Store.
func (s *Store) RecentAPIKeys(ctx context.Context, account tollgate.AccountID, limit int) ([]auth.Key, error) {
	const op = "sqlite: recent api keys"
	rows, err := s.reader.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE account_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
		string(account), limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	keys := []auth.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return keys, nil
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
