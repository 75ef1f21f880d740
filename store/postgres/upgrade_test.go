package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestOperatorUpgrade: a database a release before migration 0011 left,
// full of a running business's rows, upgrades in place. Every row reads
// back as it was and the audit stays clean; lots now take a 0-fen lot (a
// positive adjustment's) and still refuse a negative one, with every other
// constraint and index as it was, on the store's pool and a fresh
// connection; and migrating again changes nothing.
func TestOperatorUpgrade(t *testing.T) {
	ctx := context.Background()

	// The rows, written by today's code on today's schema, using nothing
	// 0011 added, are what the old release would have written.
	a, _ := MustOpen(t)
	f, clock := storetest.FillUpgrade(t, a)
	want := f.Read(t, a)
	storetest.MustAuditStore(t, a, clock.Now())

	// A database at 0010 holding them.
	url := testenv.MustPostgres(t)
	s, err := postgres.Open(ctx, url, postgres.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.MigrateTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	before := pgSchema(t, s.Pool())
	if _, ok := before["table adjustments"]; ok {
		t.Fatal("the database at 0010 has 0011's adjustments")
	}
	copyTables(t, a.Pool(), s.Pool())

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())
	for _, acct := range f.Accounts {
		p, err := s.AccountProfile(ctx, acct)
		if err != nil || p.Label != "" || p.ExternalID != "" || string(p.Metadata) != "{}" || !p.DisabledAt.IsZero() {
			t.Errorf("profile of %s after the upgrade = %+v, %v; want the defaults", acct, p, err)
		}
	}

	// The schema: exactly 0010's plus 0011's, lots' fen >= 0 apart.
	fresh, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	after := pgSchema(t, fresh)
	for obj, old := range before {
		now, ok := after[obj]
		switch {
		case !ok:
			t.Errorf("%s lost in the upgrade", obj)
		case obj == "constraint lots.lots_fen_check":
			if old != "CHECK ((fen > 0))" || now != "CHECK ((fen >= 0))" {
				t.Errorf("%s = %s after the upgrade, was %s; want fen >= 0", obj, now, old)
			}
		case obj == "index payment_orders_due":
			// 0021 added out_trade_no, the claim's tie-break.
			if want := strings.Replace(old, "(next_poll_at)", "(next_poll_at, out_trade_no)", 1); now != want {
				t.Errorf("%s after the upgrade:\n%s\nwant:\n%s", obj, now, want)
			}
		case now != old:
			t.Errorf("%s after the upgrade:\n%s\nwas:\n%s", obj, now, old)
		}
	}
	for _, obj := range []string{"table adjustments", "column accounts.label", "column accounts.external_id",
		"column accounts.metadata", "column accounts.disabled_at", "column payment_refunds.requested_by",
		"column payment_refunds.reason", "column payment_refunds.asked_fen", "index accounts_external_id",
		"index accounts_created", "index adjustments_created", "index payment_refunds_created", "index payment_orders_created"} {
		if _, ok := after[obj]; !ok {
			t.Errorf("%s missing after the upgrade", obj)
		}
	}

	// lots' CHECKs, on a connection of its own.
	// (A negative fen also breaks refunded_fen <= fen: which CHECK
	// PostgreSQL names is its choice; lots_fen_check's own definition is
	// compared above.)
	pgWantLot(t, fresh, 0, 0, false)
	pgWantLot(t, fresh, -1, 0, true)
	pgWantLot(t, fresh, 100, 101, true)
	// The store's pool: a positive adjustment is carried by a 0-fen lot.
	svc := ledger.New(s, ledger.Options{Clock: clock})
	adj, _, err := svc.Adjust(ctx, ledger.AdjustRequest{Account: "alice", IdempotencyKey: "goodwill-1", Credits: 50_000,
		Reason: "outage on 2026-03-30", Actor: "admin"})
	if err != nil || adj.LotID == 0 {
		t.Fatalf("adjust after the upgrade = %+v, %v", adj, err)
	}
	svc.Close()
	storetest.MustAuditStore(t, s, clock.Now())

	// Migrating again, or opening again, applies nothing and edits nothing.
	applied := migrationsApplied(t, fresh)
	if !strings.Contains(applied, "11 0011_operator ") {
		t.Fatalf("applied migrations %s; want 0011_operator among them", applied)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	s.Close()
	s, err = postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if again := migrationsApplied(t, fresh); again != applied {
		t.Errorf("applied migrations after migrating again:\n%s\nwas:\n%s", again, applied)
	}
	if again := pgSchema(t, fresh); fmt.Sprint(again) != fmt.Sprint(after) {
		t.Errorf("schema changed by migrating again:\n%v\nwas:\n%v", again, after)
	}
}

// pgSchema returns the tables, columns, constraints and indexes of the
// public schema, each by "kind name" with its definition.
func pgSchema(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'table ' || table_name, '' FROM information_schema.tables
			WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
		UNION ALL
		SELECT 'column ' || table_name || '.' || column_name,
			concat_ws(' ', data_type, collation_name, is_nullable, column_default, is_identity, identity_generation)
			FROM information_schema.columns WHERE table_schema = 'public'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
			FROM pg_constraint WHERE connamespace = 'public'::regnamespace
		UNION ALL
		SELECT 'index ' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func migrationsApplied(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(),
		`SELECT string_agg(version || ' ' || name || ' ' || checksum || ' ' || applied_at, '; ' ORDER BY version)
		FROM schema_migrations`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// copyTables copies into dst every row of every table dst has, from src,
// in the columns dst has, as they were (identities included).
func copyTables(t *testing.T, src, dst *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	rows, err := dst.Query(ctx, `SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
		GROUP BY table_name ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		name string
		cols []string
	}, error) {
		var x struct {
			name string
			cols []string
		}
		err := r.Scan(&x.name, &x.cols)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// Foreign keys are checked afterwards, by the upgrade's reads and audit.
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, tb := range tables {
		var cols []string
		for _, c := range tb.cols {
			cols = append(cols, pgx.Identifier{c}.Sanitize())
		}
		rows, err := src.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s`, strings.Join(cols, ", "), pgx.Identifier{tb.name}.Sanitize()))
		if err != nil {
			t.Fatalf("read %s: %v", tb.name, err)
		}
		vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			t.Fatalf("read %s: %v", tb.name, err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{tb.name}, tb.cols, pgx.CopyFromRows(vals))
		if err != nil {
			t.Fatalf("copy %s: %v", tb.name, err)
		}
		total += n
	}
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('lots', 'id'), max(id)) FROM lots`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if total < 40 {
		t.Fatalf("copied %d rows; the fixture wrote more", total)
	}
}

// pgWantLot inserts a lot of fen (refunded_fen refunded) and rolls it
// back: refused by a CHECK when refused, else accepted.
func pgWantLot(t *testing.T, pool *pgxpool.Pool, fen, refunded int64, refused bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO lots (account_id, out_trade_no, transaction_id, fen, granted, used, left_credits,
		refunding, refunded, refunded_fen, created_at, version) VALUES ('alice', 'check-probe', 'check-probe', $1, 1, 0, 1, 0, 0, $2, now(), 1)`,
		fen, refunded)
	var pe *pgconn.PgError
	switch {
	case !refused && err != nil:
		t.Errorf("a lot of %d fen refused: %v", fen, err)
	case refused && !(errors.As(err, &pe) && pe.Code == "23514"):
		t.Errorf("a lot of %d fen (%d refunded) = %v; want a CHECK violation", fen, refunded, err)
	}
}
