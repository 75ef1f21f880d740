package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"tollgate/internal/testenv"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestAdjustmentDebtPaidUpgrade: a database at migration 0014, full of a
// running business's rows and adjustments (one that paid debt), takes
// 0015 in place: every row reads back as it was, each old adjustment with
// debt_paid 0 (no longer known), the audit stays clean, the schema only
// gained adjustments.debt_paid and its CHECK; an adjustment made after the
// upgrade keeps what it paid, on a replay and in the listing; migrating
// again changes nothing.
func TestAdjustmentDebtPaidUpgrade(t *testing.T) {
	ctx := context.Background()
	a, _ := MustOpen(t)
	f, clock := storetest.FillUpgrade(t, a)
	old := storetest.FillDebtPaid(t, a, clock)
	want := storetest.WithoutDebtPaid(f.Read(t, a))

	url := testenv.MustPostgres(t)
	s, err := postgres.Open(ctx, url, postgres.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.MigrateTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	before := pgSchema(t, s.Pool())
	if _, ok := before["column adjustments.debt_paid"]; ok {
		t.Fatal("the database at 0014 has 0015's debt_paid")
	}
	copyTables(t, a.Pool(), s.Pool())

	// What 0015 alone changes; later migrations have tests of their own.
	if err := s.MigrateTo(ctx, 15); err != nil {
		t.Fatalf("upgrade to 0015: %v", err)
	}
	at15 := pgSchema(t, s.Pool())
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())

	fresh, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	full := pgSchema(t, fresh)
	for obj, was := range before {
		if now, ok := at15[obj]; !ok || now != was {
			t.Errorf("%s after the upgrade: %q (present %v), was %q", obj, now, ok, was)
		}
	}
	added := map[string]bool{}
	for obj := range at15 {
		if _, ok := before[obj]; !ok {
			added[obj] = true
		}
	}
	if !added["column adjustments.debt_paid"] || len(added) != 2 {
		t.Errorf("the upgrade added %v; want adjustments.debt_paid and its CHECK", added)
	}
	if got := at15["column adjustments.debt_paid"]; !strings.HasPrefix(got, "bigint") || !strings.Contains(got, "NO 0") {
		t.Errorf("adjustments.debt_paid = %q; want bigint NOT NULL DEFAULT 0", got)
	}
	for _, c := range []struct {
		id   string
		paid string
	}{{old[0], "-1"}, {old[0], "credits + 1"}, {old[1], "1"}} {
		_, err := fresh.Exec(ctx, `UPDATE adjustments SET debt_paid = `+c.paid+` WHERE id = $1`, c.id)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23514" {
			t.Errorf("debt_paid = %s on %s: %v; want a CHECK violation", c.paid, c.id, err)
		}
	}

	storetest.MustAdjustAfterDebtPaid(t, s, clock, old)
	storetest.MustAuditStore(t, s, clock.Now())

	applied := migrationsApplied(t, fresh)
	if !strings.Contains(applied, "15 0015_adjustment_debt_paid ") {
		t.Fatalf("applied migrations %s; want 0015_adjustment_debt_paid", applied)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if again := migrationsApplied(t, fresh); again != applied {
		t.Errorf("applied migrations after migrating again:\n%s\nwas:\n%s", again, applied)
	}
	if again := pgSchema(t, fresh); fmt.Sprint(again) != fmt.Sprint(full) {
		t.Errorf("schema changed by migrating again:\n%v\nwas:\n%v", again, full)
	}
}
