package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/payment"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

func hasMigration(applied []sqlite.AppliedMigration, version int, name string) bool {
	for _, m := range applied {
		if m.Version == version && m.Name == name {
			return true
		}
	}
	return false
}

// TestRefundActorUpgrade: a database at migration 0011, full of a running
// business's rows, takes 0012 in place: every row reads back as it was,
// each refund with actor "", the audit stays clean, payment_refunds only
// gained the actor column (bounded to 64 bytes) and nothing else changed;
// a refund made after the upgrade keeps its actor; opening again changes
// nothing.
func TestRefundActorUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := sqlite.Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	f, clock := storetest.FillUpgrade(t, a)
	want := f.Read(t, a)
	a.Close()

	path := filepath.Join(dir, sqlite.FileName)
	if err := sqlite.MigrateFileTo(ctx, path, 11); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	before := schema(t, db)
	if strings.Contains(before["table payment_refunds"], "actor") {
		t.Fatal("the database at 0011 has 0012's actor")
	}
	copyRows(t, db, filepath.Join(dir, "new.db"))

	// What 0012 alone changes; later migrations have tests of their own.
	if err := sqlite.MigrateFileTo(ctx, path, 12); err != nil {
		t.Fatalf("upgrade to 0012: %v", err)
	}
	at12 := schema(t, rawDB(t, path))

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer func() { s.Close() }()
	applied, err := s.AppliedMigrations(ctx)
	if err != nil || !hasMigration(applied, 12, "refund_actor") {
		t.Fatalf("applied migrations = %+v, %v; want 0012_refund_actor among them", applied, err)
	}
	storetest.WantSameSnapshot(t, f.Read(t, s), want)
	storetest.MustAuditStore(t, s, clock.Now())
	for _, no := range f.Refunds {
		if r, err := s.Refund(ctx, no); err != nil || r.Actor != "" {
			t.Errorf("refund %s after the upgrade = %+v, %v; want actor \"\"", no, r, err)
		}
	}

	fresh := rawDB(t, path)
	after := schema(t, fresh)
	for obj, old := range before {
		now, ok := at12[obj]
		switch {
		case !ok:
			t.Errorf("%s lost in the upgrade", obj)
		case obj == "table payment_refunds":
			body := old[:strings.LastIndex(old, ")")]
			if !strings.HasPrefix(now, body+",") || !strings.Contains(now[len(body):], "actor TEXT NOT NULL DEFAULT '' CHECK (length(actor) <= 64)") {
				t.Errorf("payment_refunds after the upgrade:\n%s\ndoes not extend with actor:\n%s", now, old)
			}
		case now != old:
			t.Errorf("%s after the upgrade:\n%s\nwas:\n%s", obj, now, old)
		}
	}
	if len(at12) != len(before) {
		t.Errorf("the upgrade made %d tables and indexes, want %d", len(at12), len(before))
	}
	if _, err := fresh.ExecContext(ctx, `UPDATE payment_refunds SET actor = ? WHERE out_refund_no = ?`,
		strings.Repeat("a", 65), f.Refunds[0]); err == nil || !strings.Contains(err.Error(), "CHECK constraint failed") {
		t.Errorf("a 65-byte actor = %v; want a CHECK violation", err)
	}

	// A refund made after the upgrade keeps its actor.
	r := payment.RefundRecord{OutRefundNo: f.Orders[0] + "R9", OutTradeNo: f.Orders[0], Account: f.Accounts[0],
		Status: payment.RefundPending, CreatedAt: clock.Now(), UpdatedAt: clock.Now(), RequestedBy: payment.RequestedByAdmin,
		Reason: "after the upgrade", Actor: "console:1a2b3c4d"}
	if got, err := s.CreateRefund(ctx, r); err != nil || got.Actor != r.Actor {
		t.Fatalf("CreateRefund after the upgrade = %+v, %v", got, err)
	}

	if again, err := s.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("Migrate again applied %+v, %v", again, err)
	}
	s.Close()
	if s, err = sqlite.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	if again := schema(t, fresh); fmt.Sprint(again) != fmt.Sprint(after) {
		t.Errorf("schema changed by opening again:\n%v\nwas:\n%v", again, after)
	}
}
