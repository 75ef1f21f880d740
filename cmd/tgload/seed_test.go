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
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
	"tollgate/wxpay"
)

// TestSeedLedger: the seeded ledger passes Audit, whole and for a day,
// has every closed day rolled up (the revenue report's usage comes from
// the rollup and sums every record), and reconciles clean with the bill
// the seeder wrote; on each store.
func TestSeedLedger(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		testSeedLedger(t, dir, []string{"-data", filepath.Join(dir, "data")}, func(ctx context.Context) (seededStore, error) {
			return sqlite.Open(ctx, filepath.Join(dir, "data", sqlite.FileName))
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.MustPostgres(t)
		testSeedLedger(t, t.TempDir(), []string{"-pg", url}, func(ctx context.Context) (seededStore, error) {
			st, err := postgres.Open(ctx, url)
			return pgStore{st}, err
		})
	})
}

type seededStore interface {
	ledger.Store
	ledger.UsageRollupStore
	Close() error
}

func testSeedLedger(t *testing.T, dir string, where []string, open func(context.Context) (seededStore, error)) {
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"-mode", "seedledger", "-orders", "500", "-usage", "5000", "-days", "3",
		"-start", "2026-11-01", "-bill-day", "2026-11-02", "-bill-dir", filepath.Join(dir, "bills")}, where...), &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "500 orders/lots, 5000 usage") || !strings.Contains(out.String(), "days rolled up") {
		t.Errorf("output: %s", out.String())
	}
	ctx := context.Background()
	st, err := open(ctx)
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
	rs, err := st.UsageRollupState(ctx)
	if err != nil || !rs.RolledBefore.After(day.AddDate(0, 0, 3)) {
		t.Fatalf("rollup state %+v, %v: the seeded days are not rolled up", rs, err)
	}
	svc := ledger.New(st, ledger.Options{})
	defer svc.Close()
	from := day.AddDate(0, 0, -1)
	totals, err := svc.UsageTotals(ctx, from, from.AddDate(0, 1, 0))
	var requests int64
	var credits tollgate.Credits
	for _, u := range totals {
		requests, credits = requests+u.Requests, credits+u.Credits
	}
	g := seedGen{c: seedConfig{orders: 500, usage: 5000, accounts: 50, days: 3}}
	var want tollgate.Credits
	for j := range 5000 {
		_, c, _ := g.usageOf(j)
		want += tollgate.Credits(c)
	}
	if err != nil || requests != 5000 || credits != want {
		t.Errorf("usage totals of the month: %d requests, %d credits, %v; want 5000, %d", requests, credits, err, want)
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
	if err := run(ctx, append([]string{"-mode", "seedledger"}, where...), io.Discard, io.Discard); err == nil {
		t.Error("seeding a ledger twice: no error")
	}
}
