package storetest

import (
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

func mustGrant(t *testing.T, e *Env, id string, acct tollgate.AccountID, cap tollgate.Credits) ledger.Grant {
	t.Helper()
	g, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: id, Account: acct, Cap: cap, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatalf("issue grant %s: %v", id, err)
	}
	return g
}

func grantReserve(e *Env, hold, grant string, acct tollgate.AccountID, amount tollgate.Credits) (ledger.Hold, error) {
	return e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: hold, Account: acct, GrantID: grant, Amount: amount, TTL: time.Minute})
}

func mustSpendGrant(t *testing.T, e *Env, hold, grant string, acct tollgate.AccountID, amount, cost tollgate.Credits) {
	t.Helper()
	if _, err := grantReserve(e, hold, grant, acct, amount); err != nil {
		t.Fatalf("reserve %s via grant: %v", hold, err)
	}
	if _, err := settle(e, hold, cost); err != nil {
		t.Fatalf("settle %s: %v", hold, err)
	}
}

func testGrantConfirm(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	g := mustGrant(t, e, "order-1", "alice", 500)
	if g.Status != ledger.GrantLive || g.Cap != 500 {
		t.Fatalf("grant = %+v", g)
	}
	if b := MustBalance(t, e, "alice"); b.Provisional != 500 || b.Credits != 0 {
		t.Fatalf("balance with a live grant = %+v", b)
	}
	mustSpendGrant(t, e, "h1", "order-1", "alice", 200, 150)
	if _, err := grantReserve(e, "h2", "order-1", "alice", 100); err != nil {
		t.Fatal(err)
	}
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := grantReserve(e, "h3", "order-1", "alice", 251); return err })
	if b := MustBalance(t, e, "alice"); b.Provisional != 250 || b.Held != 100 {
		t.Fatalf("balance = %+v; want provisional 250, held 100", b)
	}
	// The payment arrives: its lot absorbs the 150 used, the 100 still
	// held becomes an ordinary hold on the account.
	lot, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: "alice", OutTradeNo: "order-1",
		TransactionID: "wx-1", Fen: 1000, Credits: 2000, GrantID: "order-1"})
	if err != nil {
		t.Fatal(err)
	}
	if lot.Used != 150 || lot.Left != 1850 {
		t.Fatalf("lot after confirmation = used %d left %d, want 150/1850", lot.Used, lot.Left)
	}
	g, err = e.Svc.Grant(e.Ctx, "order-1")
	if err != nil || g.Status != ledger.GrantConfirmed || g.LotID != lot.ID || g.Used != 150 {
		t.Fatalf("grant after payment = %+v, %v", g, err)
	}
	WantBalance(t, e, "alice", 1750, 100, 0)
	if _, err := settle(e, "h2", 60); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 1790, 0, 0)
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := grantReserve(e, "h4", "order-1", "alice", 1); return err })
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := e.Svc.RevokeGrant(e.Ctx, "order-1"); return err })
	if again, err := e.Svc.ConfirmGrant(e.Ctx, "order-1", lot.ID); err != nil || again.Status != ledger.GrantConfirmed {
		t.Fatalf("repeated confirm = %+v, %v", again, err)
	}

	// ConfirmGrant on its own, with usage above the new lot: the rest
	// comes from older lots.
	mustGrant(t, e, "order-2", "alice", 3000)
	mustSpendGrant(t, e, "h5", "order-2", "alice", 2500, 2400)
	small := MustCredit(t, e, "alice", "order-2", 100, 1000)
	WantBalance(t, e, "alice", 2790, 0, 0)
	if _, err := e.Svc.ConfirmGrant(e.Ctx, "order-2", small.ID); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 390, 0, 0)
	lots, _ := e.Svc.Lots(e.Ctx, "alice")
	if lots[0].Left != 390 || lots[1].Left != 0 {
		t.Fatalf("lots left = %d, %d; want 390, 0", lots[0].Left, lots[1].Left)
	}
}

func testGrantRevoke(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "old", 100, 40)
	mustGrant(t, e, "order-1", "alice", 500)
	mustSpendGrant(t, e, "h1", "order-1", "alice", 200, 120)
	if _, err := grantReserve(e, "h2", "order-1", "alice", 100); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		g, err := e.Svc.RevokeGrant(e.Ctx, "order-1")
		if err != nil || g.Status != ledger.GrantRevoked {
			t.Fatalf("revoke = %+v, %v", g, err)
		}
		WantBalance(t, e, "alice", 40-120, 0, 120)
	}
	// Debt blocks spending, even with lots left.
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := reserve(e, "h3", "alice", 1); return err })
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error {
		_, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "order-2", Account: "alice", Cap: 10, TTL: time.Minute})
		return err
	})
	// The in-flight call finishes: its cost is debt too.
	if _, err := settle(e, "h2", 30); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "alice", 40-150, 0, 150)
	// The next payment pays the debt first.
	lot := MustCredit(t, e, "alice", "order-3", 100, 1000)
	if lot.Used != 150 || lot.Left != 850 {
		t.Fatalf("lot paying debt = used %d left %d, want 150/850", lot.Used, lot.Left)
	}
	WantBalance(t, e, "alice", 890, 0, 0)
	if _, err := reserve(e, "h4", "alice", 890); err != nil {
		t.Fatalf("spending after the debt is paid: %v", err)
	}
	if _, err := e.Svc.Release(e.Ctx, "h4"); err != nil {
		t.Fatal(err)
	}

	// Expiry revokes too; a debt bigger than a payment survives it.
	MustAccount(t, e, "bob")
	mustGrant(t, e, "order-4", "bob", 500)
	mustSpendGrant(t, e, "h5", "order-4", "bob", 500, 500)
	e.Clock.Advance(5 * time.Minute)
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := grantReserve(e, "h6", "order-4", "bob", 1); return err })
	if n, err := e.Svc.ExpireGrants(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireGrants = %d, %v; want 1", n, err)
	}
	WantBalance(t, e, "bob", -500, 0, 500)
	MustCredit(t, e, "bob", "order-5", 10, 200)
	WantBalance(t, e, "bob", -300, 0, 300)
}

func testGrantErrors(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	mustGrant(t, e, "g1", "alice", 100)
	if g, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g1", Account: "alice", Cap: 100, TTL: time.Minute}); err != nil || g.ID != "g1" {
		t.Fatalf("repeated issue = %+v, %v; want the same grant", g, err)
	}
	lot := MustCredit(t, e, "bob", "ob", 10, 10)
	for _, tc := range []struct {
		name string
		code string
		fn   func() error
	}{
		{"SecondLiveGrant", tollgate.ECONFLICT, func() error {
			_, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g2", Account: "alice", Cap: 100, TTL: time.Minute})
			return err
		}},
		{"SameIDOtherCap", tollgate.ECONFLICT, func() error {
			_, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g1", Account: "alice", Cap: 99, TTL: time.Minute})
			return err
		}},
		{"ZeroCap", tollgate.EINVALID, func() error {
			_, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g3", Account: "bob", TTL: time.Minute})
			return err
		}},
		{"UnknownAccount", tollgate.ENOTFOUND, func() error {
			_, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g3", Account: "zed", Cap: 1, TTL: time.Minute})
			return err
		}},
		{"ReserveOtherAccountsGrant", tollgate.ENOTFOUND, func() error { _, err := grantReserve(e, "h", "g1", "bob", 1); return err }},
		{"ConfirmWithOtherAccountsLot", tollgate.ENOTFOUND, func() error { _, err := e.Svc.ConfirmGrant(e.Ctx, "g1", lot.ID); return err }},
		{"ConfirmUnknown", tollgate.ENOTFOUND, func() error { _, err := e.Svc.ConfirmGrant(e.Ctx, "nope", lot.ID); return err }},
		{"RevokeUnknown", tollgate.ENOTFOUND, func() error { _, err := e.Svc.RevokeGrant(e.Ctx, "nope"); return err }},
		{"CreditWithOtherAccountsGrant", tollgate.EINVALID, func() error {
			_, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: "bob", OutTradeNo: "x", TransactionID: "x", Fen: 1, Credits: 1, GrantID: "g1"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { Rejected(t, e, tc.code, tc.fn) })
	}
	if _, err := e.Svc.RevokeGrant(e.Ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := e.Svc.ConfirmGrant(e.Ctx, "g1", lot.ID); return err })
	// A revoked grant no longer counts as live: a new one may be issued.
	mustGrant(t, e, "g2", "alice", 100)
}
