package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/webhook"
)

var _ auth.PlatformStore = (*Store)(nil)

const platformColumns = `id, name, key_hash, prefix, return_url_hosts, created_at, revoked_at`

func scanPlatform(row pgx.Row) (auth.Platform, error) {
	var p auth.Platform
	var hash []byte
	var hosts string
	var revoked *time.Time
	if err := row.Scan(&p.ID, &p.Name, &hash, &p.Prefix, &hosts, &p.CreatedAt, &revoked); err != nil {
		return p, err
	}
	copy(p.Hash[:], hash)
	if err := json.Unmarshal([]byte(hosts), &p.ReturnURLHosts); err != nil {
		return p, fmt.Errorf("platform %s: return_url_hosts: %w", p.ID, err)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	if revoked != nil {
		p.RevokedAt = revoked.UTC()
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
	const op = "postgres: create platform"
	_, err := s.pool.Exec(ctx, `INSERT INTO platforms (`+platformColumns+`) VALUES ($1, $2, $3, $4, $5, $6, NULL)`,
		p.ID, p.Name, p.Hash[:], p.Prefix, hostsJSON(p.ReturnURLHosts), p.CreatedAt.UTC())
	return mapError(op, err)
}

func (s *Store) platformWhere(ctx context.Context, op, where string, arg any) (auth.Platform, error) {
	p, err := scanPlatform(s.pool.QueryRow(ctx, `SELECT `+platformColumns+` FROM platforms WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Platform{}, &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
	}
	if err != nil {
		return auth.Platform{}, mapError(op, err)
	}
	return p, nil
}

// PlatformByHash implements auth.PlatformStore.
func (s *Store) PlatformByHash(ctx context.Context, hash [32]byte) (auth.Platform, error) {
	return s.platformWhere(ctx, "postgres: platform by hash", `key_hash = $1`, hash[:])
}

// PlatformByID implements auth.PlatformStore.
func (s *Store) PlatformByID(ctx context.Context, id string) (auth.Platform, error) {
	return s.platformWhere(ctx, "postgres: platform", `id = $1`, id)
}

// Platforms implements auth.PlatformStore.
func (s *Store) Platforms(ctx context.Context, limit int) ([]auth.Platform, error) {
	const op = "postgres: platforms"
	rows, err := s.pool.Query(ctx, `SELECT `+platformColumns+` FROM platforms ORDER BY created_at, id LIMIT $1`, limit)
	if err != nil {
		return nil, mapError(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Platform, error) { return scanPlatform(r) })
	if err != nil {
		return nil, mapError(op, err)
	}
	if out == nil {
		out = []auth.Platform{}
	}
	return out, nil
}

// RevokePlatform implements auth.PlatformStore.
func (s *Store) RevokePlatform(ctx context.Context, id string, at time.Time) error {
	const op = "postgres: revoke platform"
	tag, err := s.pool.Exec(ctx, `UPDATE platforms SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, at.UTC(), id)
	if err != nil {
		return mapError(op, err)
	}
	if tag.RowsAffected() == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
	}
	return nil
}

// PlatformAccount implements auth.PlatformStore, in one READ COMMITTED
// transaction: the INSERT … ON CONFLICT DO NOTHING waits for a concurrent
// insert of the same user (another instance's, with its account.created
// event) to commit and then does nothing; the SELECT after it, a new
// statement, sees that row. So every caller gets the one account, one of
// them created it, and only that one appended account.created, with the
// account in the same commit.
func (s *Store) PlatformAccount(ctx context.Context, platform, externalID string, candidate tollgate.AccountID, at time.Time) (tollgate.AccountID, bool, error) {
	const op = "postgres: platform account"
	ev, err := webhook.NewEvent(webhook.AccountCreated, candidate, at, ledger.AccountView{Account: candidate, CreatedAt: at.UTC()})
	if err != nil {
		return "", false, err
	}
	var id string
	var created bool
	err = s.writeTx(ctx, op, func(tx pgx.Tx) error {
		var plat *string
		if platform != "" {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM platforms WHERE id = $1)`, platform).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such platform"}
			}
			plat = &platform
		}
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (id, left_credits, held, debt, created_at, version, platform_id, external_id)
			VALUES ($1, 0, 0, 0, $2, 1, $3, $4) ON CONFLICT DO NOTHING`, string(candidate), at.UTC(), plat, externalID)
		if err != nil {
			return err
		}
		if created = tag.RowsAffected() == 1; created {
			if _, err := tx.Exec(ctx, appendEventSQL, eventArgs(ev)...); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `SELECT id FROM accounts WHERE coalesce(platform_id, '') = $1 AND external_id = $2`,
			platform, externalID).Scan(&id)
	})
	if err != nil {
		return "", false, err
	}
	return tollgate.AccountID(id), created, nil
}

// AccountPlatform implements auth.PlatformStore.
func (s *Store) AccountPlatform(ctx context.Context, account tollgate.AccountID) (string, error) {
	const op = "postgres: account platform"
	var plat *string
	err := s.pool.QueryRow(ctx, `SELECT platform_id FROM accounts WHERE id = $1`, string(account)).Scan(&plat)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", &tollgate.Error{Code: tollgate.ENOTFOUND, Op: op, Message: "no such account"}
	}
	if err != nil {
		return "", mapError(op, err)
	}
	if plat == nil {
		return "", nil
	}
	return *plat, nil
}
