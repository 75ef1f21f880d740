package storetest

import (
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// RunBoundaries probes the deadlines of the ledger — a provisional grant's
// and a hold's — one microsecond before, exactly at and one microsecond
// after each, on the suite's manual clock, in every phase of the payment
// behind them: before it is paid, after it is paid, after it failed and
// after it expired. The rule everywhere: what ends at T is usable at
// T−1µs and over at T (a grant funds no hold, the sweepers end it), and
// money moves the same whichever of the payment and the sweeper comes
// first. store/sqlite and store/postgres call it beside Run, with the
// options their Run uses.
func RunBoundaries(t *testing.T, open OpenFunc, opt ledger.Options) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e *Env)
	}{
		{"GrantBeforePayment", testGrantEdgeUnpaid},
		{"GrantAfterPayment", testGrantEdgePaid},
		{"GrantAfterFailure", testGrantEdgeFailed},
		{"GrantPaidAtExpiry", testGrantEdgeExpired},
		{"HoldLotFunded", testHoldEdgeLot},
		{"HoldGrantFunded", testHoldEdgeGrant},
		{"HoldOfConfirmedGrant", testHoldEdgeConfirmed},
		{"HoldOfRevokedGrant", testHoldEdgeRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, NewEnvWith(t, open, opt)) })
	}
}

// edges are the three sides of a deadline, in the order stagger makes
// things: at the probe's instant thing 0 is one microsecond past its
// deadline, thing 1 exactly at it and thing 2 one microsecond before it
// (the stores keep time to the microsecond).
var edges = [3]string{"past", "at", "before"}

// edgeWhen says where thing k is at the probe, for messages.
var edgeWhen = [3]string{"1µs past", "at", "1µs before"}

// stagger calls mk(k) for k = 0, 1, 2 with the clock at Start + k µs, so
// three things made with the same lifetime end one microsecond apart.
func stagger(e *Env, mk func(k int)) {
	for k := range edges {
		e.Clock.Set(Start.Add(time.Duration(k) * time.Microsecond))
		mk(k)
	}
}

// probeAt moves the clock to the instant where things made by stagger
// with lifetime life are past, at and before their deadline.
func probeAt(e *Env, life time.Duration) {
	e.Clock.Set(Start.Add(life + time.Microsecond))
}

// live reports whether thing k is still before its deadline at the probe.
func live(k int) bool { return k == 2 }

const grantLife = 5 * time.Minute

func edgeAccount(k int) tollgate.AccountID { return tollgate.AccountID("edge-" + edges[k]) }
func edgeGrant(k int) string               { return "order-" + edges[k] }
func edgeHold(k int) string                { return "hold-" + edges[k] }

// mustEdgeGrant opens account k with a live grant of cap 500 (lifetime
// grantLife) of which 120 is used.
func mustEdgeGrant(t *testing.T, e *Env, k int) {
	t.Helper()
	MustAccount(t, e, edgeAccount(k))
	if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: edgeGrant(k), Account: edgeAccount(k), Cap: 500, TTL: grantLife}); err != nil {
		t.Fatalf("issue grant: %v", err)
	}
	mustSpendGrant(t, e, "spent-"+edges[k], edgeGrant(k), edgeAccount(k), 200, 120)
}

func wantGrant(t *testing.T, e *Env, k int, st ledger.GrantStatus) {
	t.Helper()
	if g, err := e.Svc.Grant(e.Ctx, edgeGrant(k)); err != nil || g.Status != st {
		t.Fatalf("grant %s its deadline = %+v, %v; want %s", edgeWhen[k], g, err, st)
	}
}

func wantHold(t *testing.T, e *Env, k int, st ledger.HoldStatus) {
	t.Helper()
	if h, err := e.Svc.Hold(e.Ctx, edgeHold(k)); err != nil || h.Status != st {
		t.Fatalf("hold %s its deadline = %+v, %v; want %s", edgeWhen[k], h, err, st)
	}
}

func mustExpireGrants(t *testing.T, e *Env, want int) {
	t.Helper()
	if n, err := e.Svc.ExpireGrants(e.Ctx, e.Clock.Now()); err != nil || n != want {
		t.Fatalf("ExpireGrants = %d, %v; want %d (those at or past their deadline)", n, err, want)
	}
}

func mustExpireHolds(t *testing.T, e *Env, want int) {
	t.Helper()
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != want {
		t.Fatalf("ExpireHolds = %d, %v; want %d (those at or past their deadline)", n, err, want)
	}
}

// mustPay credits account k's order edgeGrant(k) with 1000 credits,
// confirming its grant if that is still live, and returns the lot.
func mustPay(t *testing.T, e *Env, k int) ledger.Lot {
	t.Helper()
	l, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: edgeAccount(k), OutTradeNo: edgeGrant(k),
		TransactionID: "wx-" + edgeGrant(k), Fen: 100, Credits: 1000, GrantID: edgeGrant(k)})
	if err != nil {
		t.Fatalf("credit %s: %v", edgeGrant(k), err)
	}
	return l
}

// testGrantEdgeUnpaid: an unpaid order's grant funds holds until its
// deadline, shows as provisional credit until then, and the sweeper
// revokes it at the deadline, not before: what it used becomes debt.
func testGrantEdgeUnpaid(t *testing.T, e *Env) {
	stagger(e, func(k int) { mustEdgeGrant(t, e, k) })
	probeAt(e, grantLife)
	for k := range edges {
		b := MustBalance(t, e, edgeAccount(k))
		if want := map[bool]tollgate.Credits{true: 380, false: 0}[live(k)]; b.Provisional != want {
			t.Fatalf("%s the grant's deadline: provisional %d, want %d", edgeWhen[k], b.Provisional, want)
		}
		if !live(k) {
			Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := grantReserve(e, "late-"+edges[k], edgeGrant(k), edgeAccount(k), 1); return err })
			continue
		}
		if _, err := grantReserve(e, "late-"+edges[k], edgeGrant(k), edgeAccount(k), 380); err != nil {
			t.Fatalf("reserve through a grant 1µs before its deadline: %v", err)
		}
		if _, err := e.Svc.Release(e.Ctx, "late-"+edges[k]); err != nil {
			t.Fatal(err)
		}
	}
	mustExpireGrants(t, e, 2)
	for k := range edges {
		if live(k) {
			wantGrant(t, e, k, ledger.GrantLive)
			WantBalance(t, e, edgeAccount(k), 0, 0, 0)
			continue
		}
		wantGrant(t, e, k, ledger.GrantRevoked)
		WantBalance(t, e, edgeAccount(k), -120, 0, 120)
	}
	// One microsecond on, the last is at its deadline: swept too, once.
	e.Clock.Advance(time.Microsecond)
	mustExpireGrants(t, e, 1)
	mustExpireGrants(t, e, 0)
	for k := range edges {
		wantGrant(t, e, k, ledger.GrantRevoked)
		WantBalance(t, e, edgeAccount(k), -120, 0, 120)
	}
}

// testGrantEdgePaid: a grant its payment confirmed is not revoked at its
// deadline nor after: no debt, the lot keeps what the grant used.
func testGrantEdgePaid(t *testing.T, e *Env) {
	stagger(e, func(k int) { mustEdgeGrant(t, e, k) })
	e.Clock.Advance(time.Minute)
	for k := range edges {
		if l := mustPay(t, e, k); l.Used != 120 || l.Left != 880 {
			t.Fatalf("lot confirming the grant = %+v; want used 120, left 880", l)
		}
	}
	probeAt(e, grantLife)
	mustExpireGrants(t, e, 0)
	e.Clock.Advance(time.Microsecond)
	mustExpireGrants(t, e, 0)
	for k := range edges {
		wantGrant(t, e, k, ledger.GrantConfirmed)
		WantBalance(t, e, edgeAccount(k), 880, 0, 0)
		Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := grantReserve(e, "late-"+edges[k], edgeGrant(k), edgeAccount(k), 1); return err })
	}
}

// testGrantEdgeFailed: a grant revoked because its payment failed made
// its use debt once; its deadline adds nothing, and a hold it funded that
// settles across the deadline adds exactly its cost. A later payment
// pays the debt and does not bring the grant back.
func testGrantEdgeFailed(t *testing.T, e *Env) {
	stagger(e, func(k int) {
		mustEdgeGrant(t, e, k)
		if _, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: edgeHold(k), Account: edgeAccount(k),
			GrantID: edgeGrant(k), Amount: 100, TTL: 2 * grantLife}); err != nil {
			t.Fatal(err)
		}
	})
	e.Clock.Advance(time.Minute)
	for k := range edges {
		if _, err := e.Svc.RevokeGrant(e.Ctx, edgeGrant(k)); err != nil {
			t.Fatal(err)
		}
		WantBalance(t, e, edgeAccount(k), -120, 0, 120)
	}
	probeAt(e, grantLife)
	mustExpireGrants(t, e, 0)
	for k := range edges {
		// Refused for the debt first (a revoked grant is not live either).
		Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := grantReserve(e, "late-"+edges[k], edgeGrant(k), edgeAccount(k), 1); return err })
		if _, err := settle(e, edgeHold(k), 30); err != nil {
			t.Fatalf("settle of a revoked grant's hold %s its deadline: %v", edgeWhen[k], err)
		}
		WantBalance(t, e, edgeAccount(k), -150, 0, 150)
		if l := mustPay(t, e, k); l.Used != 150 || l.Left != 850 {
			t.Fatalf("late payment's lot = %+v; want used 150 (the debt), left 850", l)
		}
		wantGrant(t, e, k, ledger.GrantRevoked)
		WantBalance(t, e, edgeAccount(k), 850, 0, 0)
	}
}

// testGrantEdgeExpired: a payment arriving at a grant's deadline charges
// exactly what the grant used, once, whether it confirms the grant (it
// came before the sweeper) or pays the debt the sweeper made of the use.
func testGrantEdgeExpired(t *testing.T, e *Env) {
	stagger(e, func(k int) { mustEdgeGrant(t, e, k) })
	probeAt(e, grantLife)
	pay := func(k int, want ledger.GrantStatus) {
		t.Helper()
		if l := mustPay(t, e, k); l.Used != 120 || l.Left != 880 {
			t.Fatalf("payment %s the grant's deadline (grant %s): lot %+v; want used 120, left 880", edgeWhen[k], want, l)
		}
		wantGrant(t, e, k, want)
		WantBalance(t, e, edgeAccount(k), 880, 0, 0)
	}
	pay(1, ledger.GrantConfirmed) // at the deadline, before the sweeper
	pay(2, ledger.GrantConfirmed)
	mustExpireGrants(t, e, 1) // past it: revoked, the use is debt
	pay(0, ledger.GrantRevoked)
	mustExpireGrants(t, e, 0)
}

const holdLife = time.Minute

func reserveEdge(t *testing.T, e *Env, k int, grant string) {
	t.Helper()
	if _, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: edgeHold(k), Account: edgeAccount(k),
		GrantID: grant, Amount: 100, TTL: holdLife}); err != nil {
		t.Fatalf("reserve %s: %v", edgeHold(k), err)
	}
}

// settleEdges checks, at the probe, that the sweeper expired the holds at
// and past their deadline (freeing all they held, charging nothing) and
// left the one before it, which then settles at cost.
func settleEdges(t *testing.T, e *Env, cost tollgate.Credits) {
	t.Helper()
	probeAt(e, holdLife)
	mustExpireHolds(t, e, 2)
	for k := range edges {
		if !live(k) {
			wantHold(t, e, k, ledger.HoldExpired)
			continue
		}
		wantHold(t, e, k, ledger.HoldActive)
		if _, err := settle(e, edgeHold(k), cost); err != nil {
			t.Fatalf("settle 1µs before the hold's deadline: %v", err)
		}
	}
}

// testHoldEdgeLot: after payment, a hold on the account's lots is freed by
// the sweeper at its deadline, not a microsecond before.
func testHoldEdgeLot(t *testing.T, e *Env) {
	stagger(e, func(k int) {
		MustAccount(t, e, edgeAccount(k))
		MustCredit(t, e, edgeAccount(k), edgeGrant(k), 100, 1000)
		reserveEdge(t, e, k, "")
	})
	settleEdges(t, e, 60)
	for k := range edges {
		WantBalance(t, e, edgeAccount(k), map[bool]tollgate.Credits{true: 940, false: 1000}[live(k)], 0, 0)
	}
}

// testHoldEdgeGrant: before payment, a hold funded by a live grant gives
// its room back at its deadline, and not before.
func testHoldEdgeGrant(t *testing.T, e *Env) {
	stagger(e, func(k int) {
		mustEdgeGrant(t, e, k)
		reserveEdge(t, e, k, edgeGrant(k))
	})
	settleEdges(t, e, 40)
	for k := range edges {
		b := MustBalance(t, e, edgeAccount(k))
		if want := map[bool]tollgate.Credits{true: 340, false: 380}[live(k)]; b.Provisional != want || b.Held != 0 || b.Debt != 0 {
			t.Fatalf("hold %s its deadline: balance %+v; want provisional %d, nothing held", edgeWhen[k], b, want)
		}
	}
}

// testHoldEdgeConfirmed: a grant's hold in flight when the payment came
// is the account's hold from then on, and expires as one.
func testHoldEdgeConfirmed(t *testing.T, e *Env) {
	stagger(e, func(k int) {
		mustEdgeGrant(t, e, k)
		reserveEdge(t, e, k, edgeGrant(k))
		mustPay(t, e, k)
	})
	WantBalance(t, e, edgeAccount(0), 780, 100, 0)
	settleEdges(t, e, 50)
	for k := range edges {
		WantBalance(t, e, edgeAccount(k), map[bool]tollgate.Credits{true: 830, false: 880}[live(k)], 0, 0)
	}
}

// testHoldEdgeRevoked: after the payment failed, a hold of the revoked
// grant still in flight ends at its deadline charging nothing; settled
// before, its cost is debt.
func testHoldEdgeRevoked(t *testing.T, e *Env) {
	stagger(e, func(k int) {
		mustEdgeGrant(t, e, k)
		reserveEdge(t, e, k, edgeGrant(k))
		if _, err := e.Svc.RevokeGrant(e.Ctx, edgeGrant(k)); err != nil {
			t.Fatal(err)
		}
	})
	settleEdges(t, e, 30)
	for k := range edges {
		debt := map[bool]tollgate.Credits{true: 150, false: 120}[live(k)]
		WantBalance(t, e, edgeAccount(k), -debt, 0, debt)
	}
}
