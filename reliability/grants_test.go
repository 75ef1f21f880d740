package reliability_test

import (
	"context"
	"testing"
	"time"

	"tollgate/ledger"
	"tollgate/reliability"
	"tollgate/store/postgres"
	"tollgate/wxpay/wxpaysim"
)

// s11 is the pay-fail part of S11 at quiescence: fresh accounts spend a
// provisional grant, the payment fails; the grant must end revoked with the
// account's debt exactly its used credits (the account has no lot), at
// most one live grant per account, and a chat with the debt is refused 402.
func s11(t *testing.T, ctx context.Context, st *postgres.Store, cl *reliability.Cluster, seed int64) {
	t.Helper()
	cases, err := reliability.S11PayFail(ctx, cl, 3, seed, 60*time.Second)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	d, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	grant := map[string]ledger.Grant{}
	live := map[string]int{}
	for _, g := range d.Grants {
		grant[g.ID] = g
		if g.Status == ledger.GrantLive {
			live[string(g.Account)]++
		}
	}
	acct := map[string]ledger.Account{}
	for _, a := range d.Accounts {
		acct[string(a.ID)] = a
	}
	for acc, n := range live {
		if n > 1 {
			t.Errorf("S11: account %s has %d live grants", acc, n)
		}
	}
	var revoked, withDebt int
	for _, c := range cases {
		g, ok := grant[c.OutTradeNo]
		if !ok {
			t.Errorf("S11: order %s (%s) has no grant", c.OutTradeNo, c.Status)
			continue
		}
		a := acct[string(g.Account)]
		if c.Status != "PAYERROR" && c.Status != "CLOSED" || g.Status != ledger.GrantRevoked {
			t.Errorf("S11: failed payment %s: order %s, grant %s (used %d) after 60 s", c.OutTradeNo, c.Status, g.Status, g.Used)
			continue
		}
		revoked++
		if a.Debt != g.Used {
			t.Errorf("S11: account %s: debt %d ≠ revoked grant's used %d", a.ID, a.Debt, g.Used)
		}
		if a.Debt > 0 {
			withDebt++
			if s := reliability.Chat402(ctx, cl, c.APIKey); s != 402 {
				t.Errorf("S11: account %s with debt %d: chat answered %d, want 402", a.ID, a.Debt, s)
			}
		}
		t.Logf("S11: pay-fail %s: chats %d/%d ok, order %s, grant %s used %d, account debt %d", c.OutTradeNo,
			c.ChatsOK, c.Chats, c.Status, g.Status, g.Used, a.Debt)
	}
	if revoked == 0 || withDebt == 0 {
		t.Errorf("vacuous run: S11 pay-fail revoked %d grants, %d with debt", revoked, withDebt)
	}
}

// s11Late is the late-success part of S11: an order expires at the
// emulator (its clock moved 1 h), serve closes it, the user pays anyway;
// it must be credited (one lot) and flagged for review. Last in the run:
// it moves the emulator's clock.
func s11Late(t *testing.T, ctx context.Context, st *postgres.Store, cl *reliability.Cluster, seed int64) {
	t.Helper()
	// The step checks the late notification's path. With the run's drop
	// rate (10 %) the emulator would sometimes never send it, and only the
	// next day's bill would show the payment (S13 lists such a one as
	// MISSING): a failure one run in ten that says nothing about serve.
	var f wxpaysim.Faults
	if r := reliability.Call(ctx, "GET", cl.Sim+"/sim/faults", "", nil, nil); r.Outcome != reliability.OK || r.Decode(&f) != nil {
		t.Fatalf("S11 late: read faults: %s", r)
	}
	f.DropRate = 0
	if r := reliability.Call(ctx, "POST", cl.Sim+"/sim/faults", "", nil, f); r.Outcome != reliability.OK {
		t.Fatalf("S11 late: set faults: %s", r)
	}
	c, err := reliability.S11LateSuccess(ctx, cl, seed, "1h", 60*time.Second)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	o, err := st.Order(ctx, c.OutTradeNo)
	if err != nil {
		t.Errorf("S11 late: %v", err)
		return
	}
	d, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	lots := 0
	for _, l := range d.Lots {
		if l.OutTradeNo == c.OutTradeNo {
			lots++
		}
	}
	if c.Status != "SUCCESS" || lots != 1 || o.Review == "" {
		t.Errorf("S11 late success %s: order %s, %d lot(s), review %q", c.OutTradeNo, c.Status, lots, o.Review)
	}
	t.Logf("S11: late success %s after local close: order %s, %d lot, review %q", c.OutTradeNo, c.Status, lots, o.Review)
}
