package reliability_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/reliability"
)

// s13 is scenario S13 at quiescence: `tollgate reconcile` reports nothing
// for today, then 3 missing, 3 extra and 3 mismatched payments injected
// into a copy of the emulator's bill are reported exactly.
func s13(t *testing.T, ctx context.Context, bin, dbURL string, cl *reliability.Cluster, d *ledger.Dump, seed int64) {
	t.Helper()
	day := time.Now()
	code, rep, stderr, err := reliability.ReconcileCLI(ctx, bin, dbURL, cl, day)
	if err != nil || code != 0 || !rep.Clean() {
		t.Errorf("S13: tollgate reconcile at quiescence: exit %d, err %v, %d difference(s) %+v, notes %v\n%s",
			code, err, len(rep.Differences), rep.Differences, rep.Notes, stderr)
	}
	const n = 3
	inj, irep, err := reliability.ReconcileInjected(ctx, cl, d, day, n, seed)
	if err != nil {
		t.Errorf("S13: %v", err)
		return
	}
	var want, got []string
	for _, i := range inj {
		want = append(want, fmt.Sprint(i.Kind, " ", i.OutTradeNo))
	}
	for _, df := range irep.Differences {
		got = append(got, fmt.Sprint(df.Kind, " ", df.OutTradeNo))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("S13: injected %v, report lists %v", want, got)
	}
	t.Logf("S13: reconcile %s at quiescence: exit %d, %d bill payments / %d fen, %d lots / %d fen, %d refunds; injected %d missing, %d extra, %d mismatched: report lists %d (MISSING %d, EXTRA %d, MISMATCHED %d)",
		rep.Date, code, rep.Totals.BillPayments, rep.Totals.BillGrossFen, rep.Totals.LedgerPayments, rep.Totals.LedgerGrossFen,
		rep.Totals.BillRefunds, n, n, n, len(irep.Differences), irep.Count(reconcile.Missing), irep.Count(reconcile.Extra),
		irep.Count(reconcile.Mismatched))
}
