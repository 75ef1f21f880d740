package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/store/sqlite"
	"tollgate/wxpay"
)

// TestSeedLedger: the seeded ledger passes Audit, whole and for a day, and
// reconciles clean with the bill the seeder wrote.
func TestSeedLedger(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-mode", "seedledger", "-data", filepath.Join(dir, "data"), "-orders", "500",
		"-usage", "5000", "-days", "3", "-start", "2026-11-01", "-bill-day", "2026-11-02", "-bill-dir", filepath.Join(dir, "bills")},
		&out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "500 orders/lots, 5000 usage") {
		t.Errorf("output: %s", out.String())
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "data", sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day, _ := time.ParseInLocation(time.DateOnly, "2026-11-02", tollgate.Beijing)
	for _, p := range []ledger.Period{{}, {From: day, To: day.AddDate(0, 0, 1)}} {
		vs, err := ledger.Audit(ctx, st, ledger.AuditOptions{Period: p})
		if err != nil || len(vs) > 0 {
			t.Fatalf("audit %+v: %v %v", p, err, vs)
		}
	}
	text, err := os.ReadFile(filepath.Join(dir, "bills", "20261102.csv"))
	if err != nil {
		t.Fatal(err)
	}
	bill, err := wxpay.ParseBill(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var in reconcile.Input
	in.Day, in.Bill = day, bill
	err = st.View(ctx, func(tx ledger.ReadTx) (err error) {
		in.Lots, in.Refunds, err = reconcile.DayRows(ctx, tx, day, bill, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep := reconcile.Compare(in); !rep.Clean() || rep.Totals.BillPayments == 0 || len(rep.Notes) > 0 {
		t.Errorf("reconcile: %+v", rep)
	}
	if err := run(ctx, []string{"-mode", "seedledger", "-data", filepath.Join(dir, "data")}, io.Discard, io.Discard); err == nil {
		t.Error("seeding a ledger twice: no error")
	}
}
