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
	"tollgate/payment"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestRefundActorUpgrade: a database at migration 0011, full of a running
// business's rows, takes 0012 in place: every row reads back as it was,
// each refund with actor "", the audit stays clean, the schema only gained
// payment_refunds.actor (bounded to 64 bytes); a refund made after the
// upgrade keeps its actor; migrating again changes nothing.
func TestRefundActorUpgrade(t *testing.T) {
	ctx := context.Background()
	a, _ := MustOpen(t)
	f, clock := storetest.FillUpgrade(t, a)
	want := f.Read(t, a)

	url := testenv.MustPostgres(t)
	s, err := postgres.Open(ctx, url, postgres.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.MigrateTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	before := pgSchema(t, s.Pool())
	if _, ok := before["column payment_refunds.actor"]; ok {
		t.Fatal("the database at 0011 has 0012's actor")
	}
	copyTables(t, a.Pool(), s.Pool())

	// What 0012 alone changes; later migrations have tests of their own.
	if err := s.MigrateTo(ctx, 12); err != nil {
		t.Fatalf("upgrade to 0012: %v", err)
	}
	at12 := pgSchema(t, s.Pool())
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())
	for _, no := range f.Refunds {
		if r, err := s.Refund(ctx, no); err != nil || r.Actor != "" {
			t.Errorf("refund %s after the upgrade = %+v, %v; want actor \"\"", no, r, err)
		}
	}

	fresh, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	after := pgSchema(t, fresh)
	for obj, old := range before {
		if now, ok := at12[obj]; !ok || now != old {
			t.Errorf("%s after the upgrade: %q (present %v), was %q", obj, now, ok, old)
		}
	}
	added := map[string]bool{}
	for obj := range at12 {
		if _, ok := before[obj]; !ok {
			added[obj] = true
		}
	}
	if !added["column payment_refunds.actor"] || len(added) != 2 {
		t.Errorf("the upgrade added %v; want payment_refunds.actor and its CHECK", added)
	}
	if got := at12["column payment_refunds.actor"]; !strings.HasPrefix(got, "text") || !strings.Contains(got, "NO ''::text") {
		t.Errorf("payment_refunds.actor = %q; want text NOT NULL DEFAULT ''", got)
	}
	_, err = fresh.Exec(ctx, `UPDATE payment_refunds SET actor = $1 WHERE out_refund_no = $2`, strings.Repeat("a", 65), f.Refunds[0])
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		t.Errorf("a 65-byte actor = %v; want a CHECK violation", err)
	}

	r := payment.RefundRecord{OutRefundNo: f.Orders[0] + "R9", OutTradeNo: f.Orders[0], Account: f.Accounts[0],
		Status: payment.RefundPending, CreatedAt: clock.Now(), UpdatedAt: clock.Now(), RequestedBy: payment.RequestedByAdmin,
		Reason: "after the upgrade", Actor: "console:1a2b3c4d"}
	if got, err := s.CreateRefund(ctx, r); err != nil || got.Actor != r.Actor {
		t.Fatalf("CreateRefund after the upgrade = %+v, %v", got, err)
	}

	applied := migrationsApplied(t, fresh)
	if !strings.Contains(applied, "12 0012_refund_actor ") {
		t.Fatalf("applied migrations %s; want 0012_refund_actor among them", applied)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if again := migrationsApplied(t, fresh); again != applied {
		t.Errorf("applied migrations after migrating again:\n%s\nwas:\n%s", again, applied)
	}
	if again := pgSchema(t, fresh); fmt.Sprint(again) != fmt.Sprint(after) {
		t.Errorf("schema changed by migrating again:\n%v\nwas:\n%v", again, after)
	}
}
