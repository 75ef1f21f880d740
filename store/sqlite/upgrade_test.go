package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/ledger"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

// TestOperatorUpgrade: a database a release before migration 0011 left,
// full of a running business's rows, upgrades in place. Every row reads
// back as it was and the audit stays clean; the file is sound (integrity,
// foreign keys); lots now take a 0-fen lot (a positive adjustment's) and
// still refuse a negative one, on the store's own connection, on one open
// before the upgrade and on a fresh one, with every other CHECK and index
// as it was; and opening it again changes nothing.
func TestOperatorUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// The rows, written by today's code on today's schema, using nothing
	// 0011 added, are what the old release would have written.
	a, err := sqlite.Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	f, clock := storetest.FillUpgrade(t, a)
	want := f.Read(t, a)
	storetest.MustAuditStore(t, a, clock.Now())
	a.Close()

	// A database at 0010 holding them.
	path := filepath.Join(dir, sqlite.FileName)
	if err := sqlite.MigrateFileTo(ctx, path, 10); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	before := schema(t, db)
	if _, ok := before["table adjustments"]; ok {
		t.Fatal("the database at 0010 has 0011's adjustments")
	}
	copyRows(t, db, filepath.Join(dir, "new.db"))
	version0010 := pragmaInt(t, db, "schema_version")
	// A connection of another process, open across the upgrade, with
	// the old schema parsed.
	stale := rawDB(t, path)
	if n := pragmaInt(t, stale, "schema_version"); n != version0010 {
		t.Fatalf("stale connection sees schema_version %d, want %d", n, version0010)
	}

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer func() { s.Close() }()
	applied, err := s.AppliedMigrations(ctx)
	if err != nil || !hasMigration(applied, 11, "operator") {
		t.Fatalf("applied migrations = %+v, %v; want 0011_operator among them", applied, err)
	}

	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())
	for _, acct := range f.Accounts {
		p, err := s.AccountProfile(ctx, acct)
		if err != nil || p.Label != "" || p.ExternalID != "" || string(p.Metadata) != "{}" || !p.DisabledAt.IsZero() {
			t.Errorf("profile of %s after the upgrade = %+v, %v; want the defaults", acct, p, err)
		}
	}

	// The file: sound, and its schema exactly 0010's plus 0011's.
	fresh := rawDB(t, path)
	var ok string
	if err := fresh.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	rows, err := fresh.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			t.Fatal(err)
		}
		t.Errorf("foreign_key_check: %s row %v has no %s", table, rowid, parent)
	}
	rows.Close()
	if n := pragmaInt(t, fresh, "schema_version"); n <= version0010 {
		t.Errorf("schema_version %d after the upgrade, was %d", n, version0010)
	}
	after := schema(t, fresh)
	for obj, old := range before {
		now, ok := after[obj]
		switch {
		case !ok:
			t.Errorf("%s lost in the upgrade", obj)
		case obj == "table lots":
			if strings.Count(old, "CHECK (fen > 0)") != 1 || now != strings.Replace(old, "CHECK (fen > 0)", "CHECK (fen >= 0)", 1) {
				t.Errorf("lots after the upgrade:\n%s\nwant, but for fen >= 0:\n%s", now, old)
			}
		case obj == "table accounts" || obj == "table payment_refunds" || obj == "table usage_records" ||
			obj == "table payment_orders":
			// 0011 (and 0014, usage_records.upstream_id; 0017,
			// accounts.platform_id and payment_orders.metadata) added columns:
			// SQLite appends them to the definition.
			if body := old[:strings.LastIndex(old, ")")]; !strings.HasPrefix(now, body+",") {
				t.Errorf("%s after the upgrade:\n%s\ndoes not extend:\n%s", obj, now, old)
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
	for _, obj := range []string{"table adjustments", "index accounts_external_id", "index accounts_created",
		"index adjustments_created", "index payment_refunds_created", "index payment_orders_created"} {
		if _, ok := after[obj]; !ok {
			t.Errorf("%s missing after the upgrade", obj)
		}
	}

	// lots' CHECKs as every connection applies them. (A negative fen
	// also breaks refunded_fen <= fen; the fen CHECK's own text is
	// compared above.)
	for name, c := range map[string]*sql.DB{"fresh": fresh, "stale": stale} {
		wantLot(t, c, name, 0, 0, "")
		wantLot(t, c, name, -1, 0, "CHECK constraint failed")
		wantLot(t, c, name, 100, 101, "CHECK constraint failed") // refunded_fen <= fen
	}
	// The store's writer: a positive adjustment is carried by a 0-fen lot.
	svc := ledger.New(s, ledger.Options{Clock: clock})
	adj, _, err := svc.Adjust(ctx, ledger.AdjustRequest{Account: "alice", IdempotencyKey: "goodwill-1", Credits: 50_000,
		Reason: "outage on 2026-03-30", Actor: "admin"})
	if err != nil || adj.LotID == 0 {
		t.Fatalf("adjust after the upgrade = %+v, %v", adj, err)
	}
	svc.Close()
	storetest.MustAuditStore(t, s, clock.Now())

	// Migrating again, or opening again, applies nothing and edits nothing.
	version := pragmaInt(t, fresh, "schema_version")
	if again, err := s.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("Migrate again applied %+v, %v", again, err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if n := pragmaInt(t, fresh, "schema_version"); n != version {
		t.Errorf("schema_version %d after migrating again, was %d", n, version)
	}
	if again := schema(t, fresh); fmt.Sprint(again) != fmt.Sprint(after) {
		t.Errorf("schema changed by migrating again:\n%v\nwas:\n%v", again, after)
	}
	if again, err := s.AppliedMigrations(ctx); err != nil || len(again) != len(applied) {
		t.Errorf("applied migrations after opening again = %+v, %v; was %+v", again, err, applied)
	}
}

// rawDB opens path as another process would, foreign keys enforced, on
// one connection (whose parsed schema is then its own).
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	t.Cleanup(func() { db.Close() })
	return db
}

func pragmaInt(t *testing.T, db *sql.DB, name string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("PRAGMA " + name).Scan(&n); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return n
}

// schema returns the stored SQL of every table and index, by "type name".
func schema(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_schema WHERE type IN ('table', 'index')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var typ, name, sql string
		if err := rows.Scan(&typ, &name, &sql); err != nil {
			t.Fatal(err)
		}
		out[typ+" "+name] = sql
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// copyRows copies into db every row of every table db has, from the
// database at src, in the columns db has.
func copyRows(t *testing.T, db *sql.DB, src string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, stmt := range []string{`PRAGMA foreign_keys = OFF`, fmt.Sprintf(`ATTACH DATABASE '%s' AS src`, src)} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	total := 0
	for _, table := range tables {
		var cols string
		if err := conn.QueryRowContext(ctx, `SELECT group_concat(name, ', ') FROM pragma_table_info(?, 'main')`, table).Scan(&cols); err != nil {
			t.Fatal(err)
		}
		res, err := conn.ExecContext(ctx, fmt.Sprintf(`INSERT INTO main.%s (%s) SELECT %s FROM src.%s`, table, cols, cols, table))
		if err != nil {
			t.Fatalf("copy %s: %v", table, err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	for _, stmt := range []string{`DETACH DATABASE src`, `PRAGMA foreign_keys = ON`} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if total < 40 {
		t.Fatalf("copied %d rows; the fixture wrote more", total)
	}
}

// wantLot inserts a lot of fen (refunded_fen refunded) on c and rolls it
// back: refused with an error containing refusal, or accepted when
// refusal is "".
func wantLot(t *testing.T, c *sql.DB, conn string, fen, refunded int64, refusal string) {
	t.Helper()
	tx, err := c.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	_, err = tx.Exec(`INSERT INTO lots (account_id, out_trade_no, transaction_id, fen, granted, used, left_credits,
		refunding, refunded, refunded_fen, created_at, version) VALUES ('alice', 'check-probe', 'check-probe', ?, 1, 0, 1, 0, 0, ?, 1, 1)`,
		fen, refunded)
	switch {
	case refusal == "" && err != nil:
		t.Errorf("%s connection: a lot of %d fen refused: %v", conn, fen, err)
	case refusal != "" && (err == nil || !strings.Contains(err.Error(), refusal)):
		t.Errorf("%s connection: a lot of %d fen (%d refunded) = %v; want %q", conn, fen, refunded, err, refusal)
	}
}
