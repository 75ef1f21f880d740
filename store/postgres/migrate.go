package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the advisory lock key that serialises migrations of
// one database across every tollgate instance ("tollgate" in ASCII).
const migrationLockKey int64 = 0x746f6c6c67617465

// migration is one versioned schema change, migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
	sum     string // sha256 of sql, hex
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("postgres: list migrations: %w", err)
	}
	var out []migration
	for _, path := range names {
		base := strings.TrimPrefix(path, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %s: name must be NNNN_name.sql", base)
		}
		b, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("postgres: read migration %s: %w", base, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(b), sum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("postgres: two migrations have version %d", out[i].version)
		}
	}
	return out, nil
}

// Migrate applies the embedded migrations the database has not seen yet,
// each recorded in schema_migrations with its checksum. It runs in one
// transaction holding a transaction-scoped advisory lock, so instances that
// start at once apply each migration exactly once and the others wait, then
// find nothing to do. It is idempotent. It fails if a migration already
// applied has since been edited (its checksum differs).
func (s *Store) Migrate(ctx context.Context) error { return s.migrate(ctx, math.MaxInt) }

// migrate is Migrate applying no migration past version upTo (tests make
// the database an older release left with it).
func (s *Store) migrate(ctx context.Context, upTo int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return s.run(ctx, "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE", false, 5, func(t *txn) error {
		b := &pgx.Batch{}
		b.Queue("SELECT pg_advisory_xact_lock($1)", migrationLockKey)
		b.Queue(`CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	checksum   TEXT NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`)
		if err := t.send(ctx, b); err != nil {
			return mapError("postgres: migrate: lock", err)
		}
		applied := map[int]string{}
		err := t.query(ctx, "postgres: migrate: read versions", "SELECT version, checksum FROM schema_migrations", nil,
			func(rows pgx.Rows) error {
				var v int
				var sum string
				err := rows.Scan(&v, &sum)
				applied[v] = sum
				return err
			})
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.version > upTo {
				break
			}
			if sum, ok := applied[m.version]; ok {
				if sum != m.sum {
					return fmt.Errorf("postgres: migration %s was edited after it was applied (checksum %s, now %s)",
						m.name, sum, m.sum)
				}
				continue
			}
			if _, err := t.conn.Exec(ctx, m.sql); err != nil {
				return mapError("postgres: migrate: apply "+m.name, err)
			}
			if _, err := t.conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				m.version, m.name, m.sum); err != nil {
				return mapError("postgres: migrate: record "+m.name, err)
			}
		}
		return nil
	})
}
