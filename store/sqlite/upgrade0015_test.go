package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

// TestAdjustmentDebtPaidUpgrade: a database at migration 0014, full of a
// running business's rows and adjustments (one that paid debt), takes
// 0015 in place: every row reads back as it was, each old adjustment with
// debt_paid 0 (no longer known), the audit stays clean, adjustments only
// gained the debt_paid column with its CHECK and nothing else changed; an
// adjustment made after the upgrade keeps what it paid, on a replay and in
// the listing; opening again changes nothing.
func TestAdjustmentDebtPaidUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := sqlite.Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	f, clock := storetest.FillUpgrade(t, a)
	old := storetest.FillDebtPaid(t, a, clock)
	want := storetest.WithoutDebtPaid(f.Read(t, a))
	a.Close()

	path := filepath.Join(dir, sqlite.FileName)
	if err := sqlite.MigrateFileTo(ctx, path, 14); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	before := schema(t, db)
	if strings.Contains(before["table adjustments"], "debt_paid") {
		t.Fatal("the database at 0014 has 0015's debt_paid")
	}
	copyRows(t, db, filepath.Join(dir, "new.db"))

	// What 0015 alone changes; later migrations have tests of their own.
	if err := sqlite.MigrateFileTo(ctx, path, 15); err != nil {
		t.Fatalf("upgrade to 0015: %v", err)
	}
	at15 := schema(t, rawDB(t, path))

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer func() { s.Close() }()
	applied, err := s.AppliedMigrations(ctx)
	if err != nil || !hasMigration(applied, 15, "adjustment_debt_paid") {
		t.Fatalf("applied migrations = %+v, %v; want 0015_adjustment_debt_paid", applied, err)
	}
	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())

	fresh := rawDB(t, path)
	full := schema(t, fresh)
	for obj, was := range before {
		now, ok := at15[obj]
		switch {
		case !ok:
			t.Errorf("%s lost in the upgrade", obj)
		case obj == "table adjustments":
			// SQLite writes the added column after the last one.
			const col, end = ", debt_paid INTEGER NOT NULL DEFAULT 0", "debt_paid <= credits))"
			i := strings.Index(now, col)
			j := strings.Index(now[max(i, 0):], end)
			if i < 0 || j < 0 || now[:i]+now[i+j+len(end):] != was {
				t.Errorf("adjustments after the upgrade:\n%s\ndoes not extend with debt_paid:\n%s", now, was)
			}
		case now != was:
			t.Errorf("%s after the upgrade:\n%s\nwas:\n%s", obj, now, was)
		}
	}
	if len(at15) != len(before) {
		t.Errorf("the upgrade made %d tables and indexes, want %d", len(at15), len(before))
	}
	// The CHECK: never negative, never more than a positive adjustment's
	// credits, 0 for a negative one.
	for _, c := range []struct {
		id   string
		paid string
	}{{old[0], "-1"}, {old[0], "credits + 1"}, {old[1], "1"}} {
		_, err := fresh.ExecContext(ctx, `UPDATE adjustments SET debt_paid = `+c.paid+` WHERE id = ?`, c.id)
		if err == nil || !strings.Contains(err.Error(), "CHECK constraint failed") {
			t.Errorf("debt_paid = %s on %s: %v; want a CHECK violation", c.paid, c.id, err)
		}
	}
	if _, err := fresh.ExecContext(ctx, `UPDATE adjustments SET debt_paid = credits WHERE id = ?`, old[0]); err != nil {
		t.Errorf("debt_paid = credits: %v", err)
	}
	if _, err := fresh.ExecContext(ctx, `UPDATE adjustments SET debt_paid = 0 WHERE id = ?`, old[0]); err != nil {
		t.Fatal(err)
	}

	storetest.MustAdjustAfterDebtPaid(t, s, clock, old)
	storetest.MustAuditStore(t, s, clock.Now())

	if again, err := s.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("Migrate again applied %+v, %v", again, err)
	}
	s.Close()
	if s, err = sqlite.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	if again := schema(t, fresh); fmt.Sprint(again) != fmt.Sprint(full) {
		t.Errorf("schema changed by opening again:\n%v\nwas:\n%v", again, full)
	}
}
