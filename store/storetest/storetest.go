// Package storetest is the one conformance suite every ledger.Store must
// pass: store/sqlite and store/postgres call Run from their tests. It drives
// the stores through ledger.Service, so it tests the money rules and the
// adapter together, and it depends on no store's specifics (the corruption
// test uses the optional ledger.RawExecer with portable SQL).
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
)

// OpenFunc returns a fresh, empty, migrated store. The suite closes it.
type OpenFunc func(t testing.TB) ledger.Store

// Run runs the whole suite against the stores open makes, each subtest on
// a fresh store, and audits every store when its subtest ends.
func Run(t *testing.T, open OpenFunc) { RunWith(t, open, ledger.Options{}) }

// RunWith is Run with a Service made with opt (the clock is always the
// manual one), e.g. ledger.Options{MemoryHolds: true} for a store the
// Service is the one writer of.
func RunWith(t *testing.T, open OpenFunc, opt ledger.Options) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e *Env)
	}{
		{"Account", testAccount},
		{"CreditPayment", testCreditPayment},
		{"CreditPaymentConcurrent", testCreditPaymentConcurrent},
		{"CreditPaymentBatched", testCreditPaymentBatched},
		{"HoldLifecycle", testHoldLifecycle},
		{"HoldErrors", testHoldErrors},
		{"HoldDrawDownOrder", testDrawDownOrder},
		{"HoldContention", testHoldContention},
		{"HoldExpiry", testHoldExpiry},
		{"HoldRenew", testHoldRenew},
		{"HoldSettleLate", testHoldSettleLate},
		{"HoldSettleLateGrant", testHoldSettleLateGrant},
		{"HoldAbandonedReserve", testAbandonedReserve},
		{"HoldSettleOutlivesCaller", testSettleOutlivesCaller},
		{"GrantConfirm", testGrantConfirm},
		{"GrantRevoke", testGrantRevoke},
		{"GrantErrors", testGrantErrors},
		{"Refund", testRefund},
		{"RefundErrors", testRefundErrors},
		{"RefundRacesSpending", testRefundRace},
		{"Adjustments", testAdjustments},
		{"AdjustmentDrawOrder", testAdjustmentDrawOrder},
		{"AdjustmentReason", testAdjustmentReason},
		{"DebtOutstanding", testDebtOutstanding},
		{"UsageReport", testUsageReport},
		{"PaidVolume", testPaidVolume},
		{"RecentLots", testRecentLots},
		{"Usage", testUsage},
		{"UsageUnits", testUsageUnits},
		{"UsageTotals", testUsageTotals},
		{"UsageTotalsRandom", testUsageTotalsRandom},
		{"UsageRollup", testUsageRollup},
		{"UsageRollupConcurrent", testUsageRollupConcurrent},
		{"UsageRollupPrune", testUsageRollupPrune},
		{"UsageRetentionAudit", testUsageRetentionAudit},
		{"ModelRandom", testModelRandom},
		{"ConcurrentMachine", nil},
		{"AuditCatchesCorruption", testAuditCatchesCorruption},
		{"AuditScans", testAuditScans},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fn == nil {
				machineOpt := opt
				machineOpt.Committers = 4
				testConcurrentMachine(t, NewEnvWith(t, open, machineOpt))
				return
			}
			e := NewEnvWith(t, open, opt)
			tc.fn(t, e)
		})
	}
}

// Clock is the manual clock of the suites: the one fake clock of
// internal/clocktest.
type Clock = clocktest.Clock

// Env is one subtest's world: a fresh store, a Service over it with a
// manual clock, and a context.
type Env struct {
	Store ledger.Store
	Svc   *ledger.Service
	Clock *Clock
	Ctx   context.Context
	// Opt is what Svc was made with (its Clock is Clock).
	Opt ledger.Options
}

// Start is the manual clock's starting time.
var Start = time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)

// NewEnv opens a store and a Service over it. When tb ends, the store is
// audited (any violation fails tb), then closed.
func NewEnv(tb testing.TB, open OpenFunc) *Env {
	tb.Helper()
	return NewEnvWith(tb, open, ledger.Options{})
}

// NewEnvWith is NewEnv with Service options (the clock is always the
// manual one).
func NewEnvWith(tb testing.TB, open OpenFunc, opt ledger.Options) *Env {
	tb.Helper()
	st := open(tb)
	clock := clocktest.New(Start)
	opt.Clock = clock
	svc := ledger.New(st, opt)
	e := &Env{Store: st, Svc: svc, Clock: clock, Ctx: context.Background(), Opt: opt}
	tb.Cleanup(func() {
		svc.Close()
		if err := st.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	tb.Cleanup(func() {
		if tb.Failed() || tb.Skipped() {
			return
		}
		MustAuditClean(tb, e)
	})
	return e
}

// MustAuditClean fails tb with every violation Audit finds.
func MustAuditClean(tb testing.TB, e *Env) {
	tb.Helper()
	vs, err := ledger.Audit(e.Ctx, e.Store, ledger.AuditOptions{Now: e.Clock.Now(), Grace: time.Minute})
	if err != nil {
		tb.Fatalf("audit: %v", err)
	}
	for _, v := range vs {
		tb.Errorf("audit violation: %s", v)
	}
}

// Digest hashes every row of every money table, to show that a rejected
// operation changed nothing.
func Digest(tb testing.TB, e *Env) string {
	tb.Helper()
	var d *ledger.Dump
	err := e.Store.View(e.Ctx, func(tx ledger.ReadTx) (err error) {
		d, err = tx.Dump(e.Ctx)
		return err
	})
	if err != nil {
		tb.Fatalf("dump: %v", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%+v|%+v|%+v|%+v|%+v|%+v", d.Accounts, d.Lots, d.Holds, d.Grants, d.Refunds, d.Usage)
	return hex.EncodeToString(h.Sum(nil))
}

// MustAccount creates an account.
func MustAccount(tb testing.TB, e *Env, id tollgate.AccountID) {
	tb.Helper()
	if _, err := e.Svc.CreateAccount(e.Ctx, id); err != nil {
		tb.Fatalf("create account %s: %v", id, err)
	}
}

// MustCredit credits a payment of fen for credits and returns the lot.
func MustCredit(tb testing.TB, e *Env, acct tollgate.AccountID, order string, fen tollgate.Fen, credits tollgate.Credits) ledger.Lot {
	tb.Helper()
	l, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: acct, OutTradeNo: order,
		TransactionID: "wx-" + order, Fen: fen, Credits: credits})
	if err != nil {
		tb.Fatalf("credit %s: %v", order, err)
	}
	return l
}

// MustBalance returns an account's balance.
func MustBalance(tb testing.TB, e *Env, acct tollgate.AccountID) ledger.Balance {
	tb.Helper()
	b, err := e.Svc.Balance(e.Ctx, acct)
	if err != nil {
		tb.Fatalf("balance %s: %v", acct, err)
	}
	return b
}

// WantBalance checks an account's available credit, held and debt.
func WantBalance(tb testing.TB, e *Env, acct tollgate.AccountID, credits, held, debt tollgate.Credits) {
	tb.Helper()
	b := MustBalance(tb, e, acct)
	if b.Credits != credits || b.Held != held || b.Debt != debt {
		tb.Fatalf("balance of %s = credits %d held %d debt %d, want %d/%d/%d", acct, b.Credits, b.Held, b.Debt, credits, held, debt)
	}
}

// WantCode checks that err carries code.
func WantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// Rejected runs fn, which must fail with code and leave every money table
// as it was.
func Rejected(tb testing.TB, e *Env, code string, fn func() error) {
	tb.Helper()
	before := Digest(tb, e)
	WantCode(tb, fn(), code)
	if after := Digest(tb, e); after != before {
		tb.Fatalf("a rejected operation (%s) changed the money tables", code)
	}
}
