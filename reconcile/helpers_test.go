package reconcile_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/store/sqlite"
	"tollgate/wxpay"
)

// account is the one customer of the test ledgers.
const account tollgate.AccountID = "acct-1"

// fixture is a ledger on SQLite in a temporary directory whose clock the
// test sets before each operation, so lots and refunds land on chosen days.
type fixture struct {
	tb    testing.TB
	store ledger.Store
	svc   *ledger.Service

	mu  sync.Mutex
	now time.Time
}

// MustFixture opens an empty ledger with one account.
func MustFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	f := &fixture{tb: tb, store: st, now: at(tb, "2026-11-01 00:00:00")}
	f.svc = ledger.New(st, ledger.Options{Clock: tollgate.ClockFunc(f.clock)})
	tb.Cleanup(func() {
		_ = f.svc.Close()
		_ = st.Close()
	})
	if _, err := f.svc.CreateAccount(ctx, account); err != nil {
		tb.Fatalf("create account: %v", err)
	}
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) set(when string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = at(f.tb, when)
}

// pay credits a payment at when (China time), 100 credits per fen.
func (f *fixture) pay(when, outTradeNo, transactionID string, fen tollgate.Fen) {
	f.tb.Helper()
	f.set(when)
	_, _, err := f.svc.CreditPayment(context.Background(), ledger.Payment{Account: account, OutTradeNo: outTradeNo,
		TransactionID: transactionID, Fen: fen, Credits: tollgate.Credits(fen) * 100})
	if err != nil {
		f.tb.Fatalf("credit %s: %v", outTradeNo, err)
	}
}

// refund begins a refund of the whole order at when and, if complete,
// completes it.
func (f *fixture) refund(when, outRefundNo, outTradeNo string, complete bool) {
	f.tb.Helper()
	f.set(when)
	ctx := context.Background()
	if _, err := f.svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: outRefundNo, Account: account, OutTradeNo: outTradeNo}); err != nil {
		f.tb.Fatalf("begin refund %s: %v", outRefundNo, err)
	}
	if !complete {
		return
	}
	if _, err := f.svc.CompleteRefund(ctx, outRefundNo); err != nil {
		f.tb.Fatalf("complete refund %s: %v", outRefundNo, err)
	}
}

// dump returns the ledger's lots and refunds, and fails the test if the
// ledger breaks an invariant: a reconciliation test must start from a
// ledger that is sound on its own.
func (f *fixture) dump() ([]ledger.Lot, []ledger.Refund) {
	f.tb.Helper()
	ctx := context.Background()
	vs, err := ledger.Audit(ctx, f.store, ledger.AuditOptions{})
	if err != nil || len(vs) > 0 {
		f.tb.Fatalf("ledger audit: %v %v", vs, err)
	}
	var d *ledger.Dump
	if err := f.store.View(ctx, func(tx ledger.ReadTx) error {
		d, err = tx.Dump(ctx)
		return err
	}); err != nil {
		f.tb.Fatalf("dump: %v", err)
	}
	return d.Lots, d.Refunds
}

// at parses a China-time "2006-01-02 15:04:05".
func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.ParseInLocation(time.DateTime, s, tollgate.Beijing)
	if err != nil {
		tb.Fatalf("parse time %q: %v", s, err)
	}
	return t
}

// MustBill parses testdata/name.
func MustBill(tb testing.TB, name string) *wxpay.Bill {
	tb.Helper()
	fh, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("open bill: %v", err)
	}
	defer fh.Close()
	b, err := wxpay.ParseBill(fh)
	if err != nil {
		tb.Fatalf("parse %s: %v", name, err)
	}
	return b
}

// row is what identifies a difference in the tests.
type row struct {
	Kind        reconcile.Kind
	OutTradeNo  string
	OutRefundNo string
}

func rows(r reconcile.Report) []row {
	out := []row{}
	for _, d := range r.Differences {
		out = append(out, row{d.Kind, d.OutTradeNo, d.OutRefundNo})
	}
	return out
}

// checkRows fails unless r lists exactly want, in order.
func checkRows(tb testing.TB, r reconcile.Report, want ...row) {
	tb.Helper()
	if want == nil {
		want = []row{}
	}
	if got := rows(r); !slices.Equal(got, want) {
		tb.Errorf("differences:\n got  %v\n want %v\nreport: %+v", got, want, r)
	}
}
