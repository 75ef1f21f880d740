// Package sqlite is the embedded ledger.Store: one database file, pure Go
// (modernc.org/sqlite, no cgo). It is the default for a single machine; for
// several instances use store/postgres. It holds no money rules.
//
// Durability and concurrency: WAL journal; synchronous=FULL, so a commit is
// on disk before the caller hears of it (a payment acknowledged to WeChat
// Pay must survive a power cut, and group commit amortises the fsync over a
// whole batch); ONE writer connection whose transactions start with BEGIN
// IMMEDIATE (so a write transaction never upgrades a read lock and never
// deadlocks), plus a small pool of read-only connections for View;
// busy_timeout for other processes opening the same file.
//
// Two exceptions to "on disk before the caller hears": transactions marked
// ledger.WithRelaxedCommit (the ledger's metering batches: holds, settles,
// releases) commit with synchronous=NORMAL, written to the WAL but not
// fsynced, so they survive a crash of the process but a power cut may
// lose the last of them (the next FULL commit syncs them too); and the
// WAL is copied back into the database file by a background checkpointer
// every 500 ms rather than by whichever commit crosses the threshold.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"tollgate/internal/cpuprio"
	"tollgate/ledger"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultPath is the database file under the default data directory.
const DefaultPath = "tollgate-data/tollgate.db"

// FileName is the database file's name inside a data directory.
const FileName = "tollgate.db"

// Store is the SQLite ledger.Store. Open it with Open; Close it when done.
type Store struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	wstmt  stmtCache
	rstmt  stmtCache

	ckpt     *sql.DB       // one connection for background checkpoints
	stopCkpt chan struct{} // closed by Close
	ckptDone chan struct{} // closed when the checkpointer returned
}

// checkpointEvery is how often the checkpointer copies the WAL back into
// the database file (PASSIVE: it never blocks the writer or readers).
const checkpointEvery = 500 * time.Millisecond

// restartFrames is the WAL length (frames of one page) past which the
// checkpointer restarts the WAL. Under steady writes a PASSIVE checkpoint
// never catches up with the writer, and SQLite only rewinds the WAL to its
// start once one has; so the WAL, its index and every read's search in it
// would grow without bound (400 MB in 10 s at 1,200 requests/s).
var restartFrames = 8192 // a variable for tests

// checkpointOnce copies the WAL back without blocking anyone and, when the
// WAL is long, restarts it: RESTART blocks the writer while it copies the
// frames written during the PASSIVE pass (5–7 ms at 1,500 commits/s on
// the development machine), then waits for readers to leave the WAL, so
// the next commit writes from its start again.
func (s *Store) checkpointOnce() {
	var busy, frames, copied int
	err := s.ckpt.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	if err == nil && frames > restartFrames {
		_, _ = s.ckpt.Exec("PRAGMA wal_checkpoint(RESTART)")
	}
}

// checkpoint runs until Close. Without it (wal_autocheckpoint is off on
// the writer) the WAL would grow without bound. It runs at the lowest CPU
// priority: its copies take milliseconds of CPU, which on a small machine
// would otherwise delay the requests being answered.
func (s *Store) checkpoint() {
	defer close(s.ckptDone)
	end, _ := cpuprio.Background() // refused or unsupported: normal priority will do
	defer end()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
			// A failure (the file is busy with another process's
			// checkpoint) is retried at the next tick.
			s.checkpointOnce()
		}
	}
}

var (
	_ ledger.Store     = (*Store)(nil)
	_ ledger.RawExecer = (*Store)(nil)
)

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-65536)") // 64 MiB of page cache per connection
	q.Add("_pragma", "temp_store(MEMORY)") // statement journals in memory, not temp files
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// The writer never checkpoints on commit (a stall of milliseconds
		// on an unlucky request); the checkpointer does, in the background.
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database file at path, applies any
// pending migrations and returns the store.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create data directory: %w", err)
		}
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{path: path, writer: w, wstmt: stmtCache{db: w}}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	n := max(2, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.reader = r
	s.rstmt.db = r
	c, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s for checkpoints: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	s.ckpt, s.stopCkpt, s.ckptDone = c, make(chan struct{}), make(chan struct{})
	go s.checkpoint()
	return s, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. It is safe to call on a partly opened store.
func (s *Store) Close() error {
	var errs []error
	if s.stopCkpt != nil {
		select {
		case <-s.stopCkpt:
		default:
			close(s.stopCkpt)
		}
		<-s.ckptDone
		errs = append(errs, s.ckpt.Close())
	}
	s.rstmt.close()
	s.wstmt.close()
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order. Files are
// named NNNN_name.sql.
func Migrations() ([]Migration, error) {
	entries, err := migrationFS.ReadDir("migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("sqlite: migration %q is not named NNNN_name.sql", e.Name())
		}
		body, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("sqlite: read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies, each in its own transaction, every embedded migration
// not yet recorded in schema_migrations, and returns the ones it applied.
// It is idempotent: a second run applies nothing.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	return s.migrate(ctx, math.MaxInt)
}

// migrate is Migrate applying no migration past version upTo (tests make
// the database an older release left with it).
func (s *Store) migrate(ctx context.Context, upTo int) ([]Migration, error) {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		return nil, fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	var applied []Migration
	for _, m := range all {
		if m.Version > upTo {
			break
		}
		done, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m)
		}
	}
	return applied, nil
}

// AppliedMigration is a row of schema_migrations.
type AppliedMigration struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// AppliedMigrations returns the migrations recorded in schema_migrations,
// in version order.
func (s *Store) AppliedMigrations(ctx context.Context) ([]AppliedMigration, error) {
	rows, err := s.writer.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []AppliedMigration
	for rows.Next() {
		var m AppliedMigration
		var at int64
		if err := rows.Scan(&m.Version, &m.Name, &at); err != nil {
			return nil, fmt.Errorf("sqlite: read schema_migrations: %w", err)
		}
		m.AppliedAt = time.UnixMicro(at).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read schema_migrations: %w", err)
	}
	return out, nil
}

func (s *Store) applyMigration(ctx context.Context, m Migration) (bool, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: migration %04d: %w", m.Version, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: migration %04d: %w", m.Version, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("sqlite: migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if strings.Contains(m.SQL, "writable_schema") {
		// The migration edited the stored schema (loosening a CHECK, as
		// SQLite's documentation describes): bump schema_version so that
		// every connection, this one included, parses the schema again.
		var v int64
		if err := tx.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&v); err != nil {
			return false, fmt.Errorf("sqlite: migration %04d: read schema_version: %w", m.Version, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA schema_version = %d`, v+1)); err != nil {
			return false, fmt.Errorf("sqlite: migration %04d: bump schema_version: %w", m.Version, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UTC().UnixMicro()); err != nil {
		return false, fmt.Errorf("sqlite: record migration %04d: %w", m.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: commit migration %04d: %w", m.Version, err)
	}
	return true, nil
}

// Update runs fn in one BEGIN IMMEDIATE transaction on the writer
// connection. See ledger.Store.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	if ledger.RelaxedCommit(ctx) {
		return s.relaxedUpdate(ctx, fn)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return mapErr("begin", err)
	}
	if err := s.commit(tx, fn); err != nil {
		return err
	}
	s.wstmt.prepareQueued(ctx)
	return nil
}

// commit runs fn in the writer's transaction tx and commits it, or rolls
// it back when fn fails.
func (s *Store) commit(tx *sql.Tx, fn func(ledger.Tx) error) error {
	defer tx.Rollback()
	if err := fn(&txn{q: cachedTx{tx, &s.wstmt}}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return mapErr("commit", err)
	}
	return nil
}

// relaxedUpdate is Update for a transaction marked ledger.WithRelaxedCommit:
// it commits with synchronous=NORMAL, so the commit is written to the WAL
// but not fsynced (SQLite: durable across a crash of the process, not of
// the machine until the next FULL commit or checkpoint syncs the WAL). The
// pragma cannot change inside a transaction, so the writer connection is
// pinned for the pragma, the transaction and the pragma that restores FULL
// for every other writer.
func (s *Store) relaxedUpdate(ctx context.Context, fn func(ledger.Tx) error) error {
	if err := s.relaxedTx(ctx, fn); err != nil {
		return err
	}
	// After the connection is released: preparing needs it.
	s.wstmt.prepareQueued(ctx)
	return nil
}

func (s *Store) relaxedTx(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.relaxedBegin(ctx, "", func(tx *sql.Tx) error { return s.commit(tx, fn) })
}

// relaxedBegin begins a transaction on the writer connection pinned with
// synchronous=NORMAL and hands it to run, which commits or rolls it back;
// FULL is restored after, or the connection discarded (it would stay
// relaxed for payments). op prefixes its errors ("" for the ledger's).
func (s *Store) relaxedBegin(ctx context.Context, op string, run func(*sql.Tx) error) (err error) {
	prefix := func(what string) string {
		if op == "" {
			return what
		}
		return op + ": " + what
	}
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return mapErr(prefix("begin"), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return mapErr(prefix("relax synchronous"), err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); rerr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = mapErr(prefix("restore synchronous"), rerr)
			}
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(prefix("begin"), err)
	}
	return run(tx)
}

// View runs fn in a read transaction on a reader connection: WAL gives it
// one consistent snapshot. See ledger.Store.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mapErr("begin read", err)
	}
	err = fn(&txn{q: cachedTx{tx, &s.rstmt}})
	tx.Rollback()
	s.rstmt.prepareQueued(ctx)
	return err
}

// ExecRaw runs one statement on the writer outside the ledger's rules.
// Tests use it to corrupt rows on purpose.
func (s *Store) ExecRaw(ctx context.Context, query string, args ...any) error {
	if _, err := s.writer.ExecContext(ctx, query, args...); err != nil {
		return mapErr("exec raw", err)
	}
	return nil
}

// mapErr wraps err with context and, when SQLite's extended result code
// says the transaction lost a race (busy, unique key), with ledger.ErrRetry.
func mapErr(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch c := se.Code(); {
		case c&0xff == sqlite3.SQLITE_BUSY,
			c == sqlite3.SQLITE_CONSTRAINT_UNIQUE,
			c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlite: %s: %w (%w)", what, ledger.ErrRetry, err)
		}
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}
