package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/webhook"
)

var _ auth.PlatformStore = (*Store)(nil)

const platformColumns = `id, name, key_hash, prefix, return_url_hosts, created_at, revoked_at`

func scanPlatform(row interface{ Scan(...any) error }) (auth.Platform, error) {
	var p auth.Platform
	var hash []byte
	var hosts string
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&p.ID, &p.Name, &hash, &p.Prefix, &hosts, &created, &revoked); err != nil {
		return p, err
	}
	copy(p.Hash[:], hash)
	if err := json.Unmarshal([]byte(hosts), &p.ReturnURLHosts); err != nil {
		return p, fmt.Errorf("platform %s: return_url_hosts: %w", p.ID, err)
	}
	p.CreatedAt = fromMicros(created)
	if revoked.Valid {
		p.RevokedAt = fromMicros(revoked.Int64)
	}
	return p, nil
}

func hostsJSON(h []string) string {
	if len(h) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// CreatePlatform implements auth.PlatformStore.
func (s *Store) CreatePlatform(ctx context.Context, p auth.Platform) error {
	const op = "sqlite: create platform"
	_, err := s.writer.ExecContext(ctx, `INSERT INTO platforms (`+platformColumns+`) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
		p.ID, p.Name, p.Hash[:], p.Prefix, hostsJSON(p.ReturnURLHosts), micros(p.CreatedAt))
	if isUnique(err) {
		return &tollgate.Error{Code: tollgate.ECONFLICT, Op: op, Message: "platform already exists", Err: err}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (s *Store) platformWhere(ctx context.Context, op, where string, arg any) (auth.Platform, error) {
	p, err := scanPlatform(s.reader.QueryRowContext(ctx, `SELECT `+platformColumns+` FROM platforms WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Platform{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
	}
	if err != nil {
		return auth.Platform{}, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// PlatformByHash implements auth.PlatformStore.
func (s *Store) PlatformByHash(ctx context.Context, hash [32]byte) (auth.Platform, error) {
	return s.platformWhere(ctx, "sqlite: platform by hash", `key_hash = ?`, hash[:])
}

// PlatformByID implements auth.PlatformStore.
func (s *Store) PlatformByID(ctx context.Context, id string) (auth.Platform, error) {
	return s.platformWhere(ctx, "sqlite: platform", `id = ?`, id)
}

// Platforms implements auth.PlatformStore.
func (s *Store) Platforms(ctx context.Context, limit int) ([]auth.Platform, error) {
	return queryRows(ctx, s.reader, "platforms", func(r *sql.Rows) (auth.Platform, error) { return scanPlatform(r) },
		`SELECT `+platformColumns+` FROM platforms ORDER BY created_at, id LIMIT ?`, limit)
}

// RevokePlatform implements auth.PlatformStore.
func (s *Store) RevokePlatform(ctx context.Context, id string, at time.Time) error {
	const op = "sqlite: revoke platform"
	res, err := s.writer.ExecContext(ctx, `UPDATE platforms SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
	}
	return nil
}

// PlatformAccount implements auth.PlatformStore: one INSERT that does
// nothing when the unique index on (platform, external_id) already has
// the user, the account.created event of an account it made, then a read
// of whichever account holds it, in one write transaction (SQLite has one
// writer: no two callers are in it at once).
func (s *Store) PlatformAccount(ctx context.Context, platform, externalID string, candidate tollgate.AccountID, at time.Time) (tollgate.AccountID, bool, error) {
	const op = "sqlite: platform account"
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	var plat sql.NullString
	if platform != "" {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM platforms WHERE id = ?`, platform).Scan(&n); err != nil {
			return "", false, fmt.Errorf("%s: %w", op, err)
		}
		if n == 0 {
			return "", false, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
		}
		plat = sql.NullString{String: platform, Valid: true}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, left_credits, held, debt, created_at, version, platform_id, external_id)
		VALUES (?, 0, 0, 0, ?, 1, ?, ?) ON CONFLICT DO NOTHING`, string(candidate), micros(at), plat, externalID)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", op, err)
	}
	if n == 1 {
		e, err := webhook.NewEvent(webhook.AccountCreated, candidate, at, ledger.AccountView{Account: candidate, CreatedAt: at.UTC()})
		if err != nil {
			return "", false, err
		}
		if _, err := (&txn{q: tx}).appendEvents(ctx, []webhook.Event{e}); err != nil {
			return "", false, err
		}
	}
	var id string
	if err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE coalesce(platform_id, '') = ? AND external_id = ?`,
		platform, externalID).Scan(&id); err != nil {
		return "", false, fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return "", false, fmt.Errorf("%s: commit: %w", op, err)
	}
	return tollgate.AccountID(id), n == 1, nil
}

// AccountPlatform implements auth.PlatformStore.
func (s *Store) AccountPlatform(ctx context.Context, account tollgate.AccountID) (string, error) {
	const op = "sqlite: account platform"
	var plat sql.NullString
	err := s.reader.QueryRowContext(ctx, `SELECT platform_id FROM accounts WHERE id = ?`, string(account)).Scan(&plat)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%s: %w", op, errNoAccount)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return plat.String, nil
}
