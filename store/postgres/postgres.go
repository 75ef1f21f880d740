// Package postgres is the PostgreSQL implementation of ledger.Store, for
// several tollgate instances sharing one database. It is built on pgx v5
// (pgxpool) and passes the same store/storetest suite as store/sqlite. It
// holds no money rules: those live in package ledger. The same Store also
// implements payment.Store (payment.go) and auth.Store (apikey.go), and
// Migrate applies the versioned schema in migrations/.
//
// How it keeps money safe under concurrency:
//
//   - Update transactions run at READ COMMITTED. Every row the ledger will
//     change is read with SELECT … FOR NO KEY UPDATE, in ascending key order
//     (text keys use the "C" collation, so the order is bytewise like Go's),
//     and every UPDATE is conditional on the version that was read; a
//     mismatch, a unique violation (23505), a serialization failure (40001)
//     or a deadlock (40P01) returns an error wrapping ledger.ErrRetry.
//   - CHECK constraints restate the per-row invariants, UNIQUE constraints
//     back exactly-once crediting (lots.transaction_id, lots.out_trade_no,
//     refunds.out_refund_no, usage_records.request_id) and a partial unique
//     index allows one live grant per account.
//   - A transaction's writes are queued by Apply and go out in ONE pipeline
//     together with COMMIT; a conditional UPDATE that matched fewer rows than
//     it was given raises serialization_failure inside the server
//     (tollgate_expect_rows, migration 0002), so a stale write can never be
//     committed. BEGIN rides with the first read, and the spendable lots
//     and usage records the Service asks for next are read ahead in the
//     pipeline of the locks they follow (prefetch.go); with ReadAhead a
//     group-committed hold/settle batch locks its accounts and lots behind
//     its holds and costs two round trips.
//   - Update transactions run their cached statements with generic plans
//     (plan_cache_mode, tx.go): planned once per connection, not per batch.
//   - A connection lost while COMMIT is in flight is reported as
//     ErrCommitUnknown (EUNAVAILABLE), never as success and never as
//     ErrRetry; a failure known to precede COMMIT wraps ErrRetry.
//
// Notes for the ledger interface (what PostgreSQL does not do as the
// interface suggests):
//
//   - Update does not retry by itself, as ledger.Store requires; the
//     Service's immediate retry is what recovers from 40001/40P01.
//     WithUpdateAttempts turns on bounded retries with jittered backoff for
//     callers that want them; View always retries a dead connection.
//   - When Apply inserts no lot, its errors (unique key, stale version)
//     surface from the next read or from Update itself rather than from
//     Apply; they still wrap ErrRetry and nothing commits.
//   - Apply inserts grants before holds (not holds before grants), because
//     holds.grant_id is a foreign key checked immediately.
//   - ExpiredHolds and ExpiredGrants skip rows another transaction has
//     locked (SKIP LOCKED): those are being resolved right now, and waiting
//     for them would let a sweeper deadlock against Settle, which locks in
//     id order rather than expiry order.
//   - UsageByRequest and ListUsage do not lock: usage records are never
//     updated, and their unique key refuses a duplicate.
//   - ledger.Options.Committers: one committer gave the best throughput
//     on a 2-core machine (bigger batches, fewer commits); more committers
//     pay off only when PostgreSQL has cores to spare.
package postgres

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"tollgate/ledger"
)

// Store is a ledger.Store backed by PostgreSQL. It is safe for concurrent
// use by many goroutines and by many processes sharing one database.
type Store struct {
	pool *pgxpool.Pool
	opt  options
}

var (
	_ ledger.Store     = (*Store)(nil)
	_ ledger.RawExecer = (*Store)(nil)
)

// Option tunes Open.
type Option func(*options)

type options struct {
	maxConns       int32
	appName        string
	connectTimeout time.Duration
	stmtCache      int
	migrate        bool
	attempts       int
	tracer         pgx.QueryTracer
}

// WithMaxConns sets the pool size. The default is 4 per CPU core, at least
// 8: enough connections to keep the server busy while some wait on row
// locks, few enough that PostgreSQL on a small machine is not thrashed.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = int32(n) } }

// WithApplicationName sets application_name, shown in pg_stat_activity.
// The default is "tollgate" unless the URL sets one.
func WithApplicationName(name string) Option { return func(o *options) { o.appName = name } }

// WithConnectTimeout bounds how long opening one connection may take.
// The default is 5 seconds unless the URL sets connect_timeout.
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithStatementCache sets how many prepared statements each connection
// caches. The default is 512; 0 keeps pgx's default.
func WithStatementCache(n int) Option { return func(o *options) { o.stmtCache = n } }

// WithoutMigrate makes Open skip applying migrations; call Migrate
// yourself (e.g. `tollgate migrate --database-url`).
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// WithUpdateAttempts makes Update run a transaction up to n times when it
// is known not to have committed and failed with a serialization failure,
// a deadlock or a lost connection, sleeping a jittered, growing backoff in
// between. The default is 1: ledger.Store requires Update not to retry by
// itself, because the ledger's Service does.
func WithUpdateAttempts(n int) Option { return func(o *options) { o.attempts = n } }

// WithTracer traces every query, for metrics, logs or tests.
func WithTracer(t pgx.QueryTracer) Option { return func(o *options) { o.tracer = t } }

// Open connects to the database at url, checks that it answers and, unless
// WithoutMigrate is given, applies pending migrations under an advisory
// lock (several instances may start at once). Close the Store when done.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{
		maxConns:       int32(max(8, 4*runtime.GOMAXPROCS(0))),
		appName:        "tollgate",
		connectTimeout: 5 * time.Second,
		stmtCache:      512,
		migrate:        true,
		attempts:       1,
	}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database url: %w", err)
	}
	cfg.MaxConns = o.maxConns
	cc := cfg.ConnConfig
	if _, ok := cc.RuntimeParams["application_name"]; !ok && o.appName != "" {
		cc.RuntimeParams["application_name"] = o.appName
	}
	if _, ok := cc.RuntimeParams["enable_seqscan"]; !ok {
		// Every ledger query is a key or index-range lookup; a
		// sequential scan is never the plan wanted. Without this, the
		// generic plans of cached statements prepared while a table was
		// small (a fresh install) keep scanning it long after it has
		// grown, until autovacuum's ANALYZE invalidates them.
		cc.RuntimeParams["enable_seqscan"] = "off"
	}
	if _, ok := cc.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		// A ledger transaction never waits on its client for long; one
		// that does belongs to a hung or partitioned instance and holds
		// row locks every other instance needs. The server ends it.
		cc.RuntimeParams["idle_in_transaction_session_timeout"] = "60s"
	}
	if cc.ConnectTimeout == 0 && o.connectTimeout > 0 {
		cc.ConnectTimeout = o.connectTimeout
	}
	if o.stmtCache > 0 {
		cc.StatementCacheCapacity = o.stmtCache
		cc.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	}
	if o.tracer != nil {
		cc.Tracer = o.tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	s := &Store{pool: pool, opt: o}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if o.migrate {
		if err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Ping checks that the database answers. Errors carry EUNAVAILABLE when
// it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return mapError("postgres: ping", err)
	}
	return nil
}

// Pool returns the connection pool, for health checks and metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes every connection. It is safe to call more than once and on
// a Store whose Open failed half-way.
func (s *Store) Close() error {
	if s != nil && s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// Update runs fn in one READ COMMITTED read-write transaction whose reads
// lock the rows they return (see ledger.Store). Errors: ledger.ErrRetry
// (wrapped) when the transaction lost a race or the connection failed
// before COMMIT; ErrCommitUnknown (wrapped, code EUNAVAILABLE) when the
// connection failed during COMMIT.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	relaxed := ledger.RelaxedCommit(ctx)
	return s.run(ctx, beginUpdate, true, s.opt.attempts, func(t *txn) error {
		t.relaxed = relaxed
		return fn(t)
	})
}

// View runs fn in a REPEATABLE READ READ ONLY transaction: every read sees
// the same snapshot, and no row is locked. A read-only transaction changes
// nothing, so when its connection turns out to be dead (the server
// restarted, or an administrator terminated it) View runs fn again on
// another connection, up to viewAttempts times.
func (s *Store) View(ctx context.Context, fn func(ledger.ReadTx) error) error {
	return s.run(ctx, beginView, false, viewAttempts, func(t *txn) error { return fn(t) })
}

// viewAttempts bounds how often View runs a read-only transaction.
const viewAttempts = 3

// ExecRaw runs one statement outside the ledger's rules. Only tests use it
// (ledger.RawExecer), to corrupt a row on purpose.
func (s *Store) ExecRaw(ctx context.Context, query string, args ...any) error {
	if _, err := s.pool.Exec(ctx, query, args...); err != nil {
		return mapError("postgres: exec raw", err)
	}
	return nil
}
