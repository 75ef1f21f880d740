package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// open is the storetest.OpenFunc: a migrated Store on a fresh database.
func open(tb testing.TB) ledger.Store {
	s, _ := MustOpen(tb)
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// MustOpen opens a Store on a fresh database, closed when the test ends.
func MustOpen(tb testing.TB, opts ...postgres.Option) (*postgres.Store, string) {
	tb.Helper()
	url := testenv.MustPostgres(tb)
	s, err := postgres.Open(context.Background(), url, opts...)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, url
}

// MustService runs a ledger.Service over s, closed when the test ends.
func MustService(tb testing.TB, s ledger.Store, opt ledger.Options) *ledger.Service {
	tb.Helper()
	svc := ledger.New(s, opt)
	tb.Cleanup(func() { svc.Close() })
	return svc
}

// MustFund creates account id and credits it with one lot of credits.
func MustFund(tb testing.TB, svc *ledger.Service, id tollgate.AccountID, credits tollgate.Credits) {
	tb.Helper()
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, id); err != nil {
		tb.Fatalf("create account %s: %v", id, err)
	}
	p := ledger.Payment{Account: id, OutTradeNo: "order-" + string(id), TransactionID: "wx-" + string(id),
		Fen: 5000, Credits: credits}
	if _, _, err := svc.CreditPayment(ctx, p); err != nil {
		tb.Fatalf("credit %s: %v", id, err)
	}
}

func TestServiceRoundTrip(t *testing.T) {
	s, _ := MustOpen(t)
	svc := MustService(t, s, ledger.Options{})
	ctx := context.Background()
	MustFund(t, svc, "alice", 1000)

	lot, already, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "order-alice",
		TransactionID: "wx-alice", Fen: 5000, Credits: 1000})
	if err != nil || !already || lot.ID == 0 {
		t.Fatalf("repeat credit = %+v, %v, %v; want the same lot, already", lot, already, err)
	}
	h, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "req-1", Account: "alice", Amount: 300, TTL: time.Minute})
	if err != nil || h.Status != ledger.HoldActive || h.Version != 1 {
		t.Fatalf("reserve = %+v, %v", h, err)
	}
	if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "req-2", Account: "alice", Amount: 800, TTL: time.Minute}); tollgate.ErrorCode(err) != tollgate.EINSUFFICIENT {
		t.Fatalf("over-reserve: err = %v, want %s", err, tollgate.EINSUFFICIENT)
	}
	h, err = svc.Settle(ctx, ledger.SettleRequest{HoldID: "req-1", Cost: 120, Usage: ledger.Usage{Model: "m", Latency: 1500 * time.Microsecond}})
	if err != nil || h.Status != ledger.HoldSettled || h.Cost != 120 {
		t.Fatalf("settle = %+v, %v", h, err)
	}
	b, err := svc.Balance(ctx, "alice")
	if err != nil || b.Credits != 880 || b.Held != 0 {
		t.Fatalf("balance = %+v, %v; want 880 available, 0 held", b, err)
	}
	var d *ledger.Dump
	if err := s.View(ctx, func(tx ledger.ReadTx) (err error) { d, err = tx.Dump(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	if len(d.Accounts) != 1 || len(d.Lots) != 1 || len(d.Holds) != 1 || len(d.Usage) != 1 {
		t.Fatalf("dump = %+v", d)
	}
	if u := d.Usage[0]; u.Credits != 120 || u.Latency != 1500*time.Microsecond || u.Account != "alice" {
		t.Fatalf("usage = %+v", u)
	}
	for _, c := range ledger.RequiredConstraints {
		if !slices.Contains(d.Constraints, c) {
			t.Errorf("constraint %s missing from %v", c, d.Constraints)
		}
	}
	if slices.Contains(d.Constraints, "grants.account_id") {
		t.Errorf("the partial index grants_one_live is reported as a unique column: %v", d.Constraints)
	}
}

// update runs fn in one Update and returns its error.
func update(t *testing.T, s ledger.Store, fn func(ctx context.Context, tx ledger.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	return s.Update(ctx, func(tx ledger.Tx) error { return fn(ctx, tx) })
}

func TestApplyConflicts(t *testing.T) {
	s, _ := MustOpen(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	acct := ledger.Account{ID: "bob", Left: 100, CreatedAt: now}
	lot := &ledger.Lot{Account: "bob", OutTradeNo: "o1", TransactionID: "t1", Fen: 100, Granted: 100, Left: 100, CreatedAt: now}
	grant := ledger.Grant{ID: "g1", Account: "bob", Cap: 50, Status: ledger.GrantLive, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	err := update(t, s, func(ctx context.Context, tx ledger.Tx) error {
		return tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{acct}, NewLots: []*ledger.Lot{lot}, NewGrants: []ledger.Grant{grant}})
	})
	if err != nil || lot.ID == 0 {
		t.Fatalf("seed: lot id %d, err %v", lot.ID, err)
	}
	cases := []struct {
		name     string
		changes  ledger.Changes
		wantCode string // "" when only ErrRetry matters
	}{
		{"DuplicateAccount", ledger.Changes{NewAccounts: []ledger.Account{acct}}, tollgate.ECONFLICT},
		{"DuplicateOutTradeNo", ledger.Changes{NewLots: []*ledger.Lot{{Account: "bob", OutTradeNo: "o1", TransactionID: "t2",
			Fen: 1, Granted: 1, Left: 1, CreatedAt: now}}}, tollgate.ECONFLICT},
		{"DuplicateTransactionID", ledger.Changes{NewLots: []*ledger.Lot{{Account: "bob", OutTradeNo: "o2", TransactionID: "t1",
			Fen: 1, Granted: 1, Left: 1, CreatedAt: now}}}, tollgate.ECONFLICT},
		{"SecondLiveGrant", ledger.Changes{NewGrants: []ledger.Grant{{ID: "g2", Account: "bob", Cap: 5, Status: ledger.GrantLive,
			CreatedAt: now, ExpiresAt: now}}}, tollgate.ECONFLICT},
		{"StaleAccountVersion", ledger.Changes{Accounts: []ledger.Account{{ID: "bob", Left: 1, CreatedAt: now, Version: 7}}}, ""},
		{"StaleLotVersion", ledger.Changes{Lots: []ledger.Lot{func() ledger.Lot { l := *lot; l.Version = 2; return l }()}}, ""},
		{"MissingHold", ledger.Changes{Holds: []ledger.Hold{{ID: "nope", Account: "bob", Amount: 1, Status: ledger.HoldActive,
			CreatedAt: now, ExpiresAt: now, Version: 1}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := update(t, s, func(ctx context.Context, tx ledger.Tx) error { return tx.Apply(ctx, &tc.changes) })
			if !errors.Is(err, ledger.ErrRetry) {
				t.Fatalf("err = %v, want ErrRetry", err)
			}
			if tc.wantCode != "" && tollgate.ErrorCode(err) != tc.wantCode {
				t.Fatalf("code = %s, want %s (%v)", tollgate.ErrorCode(err), tc.wantCode, err)
			}
		})
	}
	t.Run("ConditionalUpdateOK", func(t *testing.T) {
		a := acct
		a.Version, a.Left = 1, 90
		l := *lot
		l.Version, l.Left, l.Used = 1, 90, 10
		err := update(t, s, func(ctx context.Context, tx ledger.Tx) error {
			return tx.Apply(ctx, &ledger.Changes{Accounts: []ledger.Account{a}, Lots: []ledger.Lot{l}})
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(context.Background(), func(tx ledger.ReadTx) error {
			got, err := tx.Lots(context.Background(), []int64{lot.ID})
			if err == nil && (len(got) != 1 || got[0].Version != 2 || got[0].Left != 90 || got[0].CreatedAt != now) {
				t.Errorf("lot after update = %+v", got)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestUpdateRollsBackOnError(t *testing.T) {
	s, _ := MustOpen(t)
	boom := errors.New("boom")
	err := update(t, s, func(ctx context.Context, tx ledger.Tx) error {
		if err := tx.Apply(ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "carol", CreatedAt: time.Now()}}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	err = s.View(context.Background(), func(tx ledger.ReadTx) error {
		got, err := tx.Accounts(context.Background(), []tollgate.AccountID{"carol"})
		if len(got) != 0 {
			t.Errorf("account written by a failed transaction: %+v", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteProbe runs the probe's conformance test on a database owned by
// a role of its own; writes are refused by revoking the role's write
// privileges.
func TestWriteProbe(t *testing.T) {
	storetest.RunWriteProbe(t, func(tb testing.TB) (ledger.Store, func(testing.TB)) {
		db := testenv.MustPostgresRole(tb)
		st, err := postgres.Open(context.Background(), db.URL)
		if err != nil {
			tb.Fatalf("open: %v", err)
		}
		return st, db.RevokeWrites
	})
}
