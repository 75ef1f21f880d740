package storetest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/ledger/ledgertest"
)

// Steps is how many random operations testModelRandom runs by default;
// STORETEST_STEPS overrides it (the long form of S15 runs 100,000).
const Steps = 1200

func steps(t *testing.T) int {
	if v := os.Getenv("STORETEST_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("STORETEST_STEPS=%q: want a positive integer", v)
		}
		return n
	}
	return Steps
}

// seed returns STORETEST_SEED if set, else a fresh seed. It is printed so a
// failure can be replayed.
func seed(t *testing.T) uint64 {
	if v := os.Getenv("STORETEST_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STORETEST_SEED=%q: %v", v, err)
		}
		return s
	}
	return rand.Uint64()
}

// testModelRandom runs a seeded random sequence of operations against the
// store (through ledger.Service) and against ledgertest.Model, and requires the
// same outcome for every operation and the same balances and lots after it.
func testModelRandom(t *testing.T, e *Env) {
	s := seed(t)
	t.Logf("seed %d (replay with STORETEST_SEED=%d)", s, s)
	r := rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
	m := ledgertest.NewModel()
	accounts := []tollgate.AccountID{"a", "b", "c", "d"}
	for _, a := range accounts {
		MustAccount(t, e, a)
		m.CreateAccount(a)
	}
	g := &gen{r: r, e: e, m: m, accounts: accounts, payments: map[string]ledger.Payment{}, terms: map[string]ledger.ReserveRequest{}}
	n := steps(t)
	for step := range n {
		name, got, want := g.step()
		if got != want {
			t.Fatalf("seed %d step %d %s: store says %q, model says %q", s, step, name, got, want)
		}
		g.compare(t, s, step, name)
	}
	t.Logf("ran %d steps: %v", n, g.counts)
}

type gen struct {
	r        *rand.Rand
	e        *Env
	m        *ledgertest.Model
	accounts []tollgate.AccountID
	n        int
	orders   []string // orders credited or tried
	payments map[string]ledger.Payment
	terms    map[string]ledger.ReserveRequest
	holds    []string
	grants   []string
	refunds  []string
	counts   map[string]int
}

func (g *gen) account() tollgate.AccountID {
	if g.r.IntN(40) == 0 {
		return "nobody"
	}
	return g.accounts[g.r.IntN(len(g.accounts))]
}

func pick(r *rand.Rand, xs []string, fresh string) string {
	if len(xs) == 0 || r.IntN(4) == 0 {
		return fresh
	}
	return xs[r.IntN(len(xs))]
}

// recent picks one of the last few ids most of the time (they are the
// likeliest to be still active), any id sometimes, a fresh one rarely.
func recent(r *rand.Rand, xs []string, fresh string) string {
	switch {
	case len(xs) == 0 || r.IntN(10) == 0:
		return fresh
	case r.IntN(4) == 0:
		return xs[r.IntN(len(xs))]
	}
	return xs[len(xs)-1-r.IntN(min(len(xs), 6))]
}

func (g *gen) fresh(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%d", prefix, g.n)
}

// step runs one random operation on both sides and returns its name and
// both error codes.
func (g *gen) step() (name, got, want string) {
	if g.counts == nil {
		g.counts = map[string]int{}
	}
	e, m, r := g.e, g.m, g.r
	now := e.Clock.Now()
	switch k := r.IntN(100); {
	case k < 12:
		name = "credit"
		order := recent(r, g.orders, g.fresh("o"))
		p, seen := g.payments[order]
		if !seen || r.IntN(8) == 0 {
			p = ledger.Payment{Account: g.account(), OutTradeNo: order, TransactionID: "wx-" + order,
				Fen: tollgate.Fen(100 + r.IntN(3)*50), Credits: tollgate.Credits(500 + r.IntN(3)*250)}
			if r.IntN(20) == 0 {
				p.TransactionID = "wx-other"
			}
		}
		if !seen {
			g.payments[order] = p
			g.orders = append(g.orders, order)
		}
		p.GrantID = ""
		if r.IntN(3) == 0 && len(g.grants) > 0 {
			p.GrantID = recent(r, g.grants, "")
		}
		_, _, err := e.Svc.CreditPayment(e.Ctx, p)
		_, code := m.CreditPayment(p)
		got, want = tollgate.ErrorCode(err), code
	case k < 40:
		name = "reserve"
		req := ledger.ReserveRequest{HoldID: g.fresh("h"), Account: g.account(),
			Amount: tollgate.Credits(1 + r.IntN(400)), TTL: time.Duration(10+r.IntN(50)) * time.Second}
		if r.IntN(4) == 0 && len(g.grants) > 0 {
			req.GrantID = recent(r, g.grants, "")
		}
		if old, ok := g.terms[recent(r, g.holds, "")]; ok && r.IntN(8) == 0 {
			req = old // a retry: same terms, or (below) other terms
			if r.IntN(2) == 0 {
				req.Amount++
			}
		}
		_, err := e.Svc.Reserve(e.Ctx, req)
		got, want = tollgate.ErrorCode(err), m.Reserve(req, now)
		if _, ok := g.terms[req.HoldID]; !ok && want == "" {
			g.terms[req.HoldID] = req
			g.holds = append(g.holds, req.HoldID)
		}
	case k < 58:
		name = "settle"
		id := recent(r, g.holds, "nohold")
		cost := tollgate.Credits(r.IntN(int(g.terms[id].Amount) + 1))
		switch r.IntN(20) {
		case 0:
			cost = g.terms[id].Amount + 1
		case 1:
			cost = -1
		}
		reqID := ""
		if r.IntN(15) == 0 {
			reqID = pick(r, g.holds, "")
		}
		_, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: id, Cost: cost, Usage: ledger.Usage{RequestID: reqID}})
		got, want = tollgate.ErrorCode(err), m.Settle(id, cost, reqID, now)
	case k < 62:
		name = "renew"
		id := recent(r, g.holds, "nohold")
		ttl := time.Duration(r.IntN(60)) * time.Second // 0 sometimes: refused
		_, err := e.Svc.Renew(e.Ctx, id, ttl)
		got, want = tollgate.ErrorCode(err), m.Renew(id, ttl, now)
	case k < 70:
		name = "release"
		id := recent(r, g.holds, "nohold")
		_, err := e.Svc.Release(e.Ctx, id)
		got, want = tollgate.ErrorCode(err), m.Release(id)
	case k < 76:
		name = "tick"
		e.Clock.Advance(time.Duration(1+r.IntN(30)) * time.Second)
		now = e.Clock.Now()
		n, err := e.Svc.ExpireHolds(e.Ctx, now)
		gn, err2 := e.Svc.ExpireGrants(e.Ctx, now)
		if err == nil {
			err = err2
		}
		got, want = fmt.Sprint(tollgate.ErrorCode(err), n, gn), fmt.Sprint("", m.ExpireHolds(now), m.ExpireGrants(now))
	case k < 82:
		name = "grant"
		req := ledger.GrantRequest{ID: recent(r, g.grants, g.fresh("g")), Account: g.account(),
			Cap: tollgate.Credits(300 + r.IntN(2)*300), TTL: time.Duration(30+r.IntN(120)) * time.Second}
		if !slices.Contains(g.grants, req.ID) {
			g.grants = append(g.grants, req.ID)
		}
		_, err := e.Svc.IssueGrant(e.Ctx, req)
		got, want = tollgate.ErrorCode(err), m.IssueGrant(req, now)
	case k < 86:
		name = "revoke"
		id := recent(r, g.grants, "nogrant")
		_, err := e.Svc.RevokeGrant(e.Ctx, id)
		got, want = tollgate.ErrorCode(err), m.RevokeGrant(id)
	case k < 92:
		name = "refund"
		order := recent(r, g.orders, "noorder")
		acct := g.payments[order].Account
		if r.IntN(10) == 0 {
			acct = g.account()
		}
		req := ledger.RefundRequest{OutRefundNo: pick(r, g.refunds, g.fresh("r")), Account: acct, OutTradeNo: order}
		if !slices.Contains(g.refunds, req.OutRefundNo) {
			g.refunds = append(g.refunds, req.OutRefundNo)
		}
		ref, err := e.Svc.BeginRefund(e.Ctx, req)
		credits, fen, code := m.BeginRefund(req)
		got, want = tollgate.ErrorCode(err), code
		if err == nil && code == "" && (ref.Credits != credits || ref.Fen != fen) {
			got, want = fmt.Sprintf("refund %d credits %d fen", ref.Credits, ref.Fen), fmt.Sprintf("refund %d credits %d fen", credits, fen)
		}
	default:
		name = "end-refund"
		no := recent(r, g.refunds, "norefund")
		ok := r.IntN(3) > 0
		var err error
		if ok {
			_, err = e.Svc.CompleteRefund(e.Ctx, no)
		} else {
			_, err = e.Svc.FailRefund(e.Ctx, no)
		}
		got, want = tollgate.ErrorCode(err), m.EndRefund(no, ok)
	}
	g.counts[name+":"+want]++
	return name, got, want
}

// compare requires the store's balances and lots to equal the model's.
func (g *gen) compare(t *testing.T, seed uint64, step int, name string) {
	t.Helper()
	now := g.e.Clock.Now()
	for _, a := range g.accounts {
		got := MustBalance(t, g.e, a)
		if want := g.m.Balance(a, now); got != want {
			t.Fatalf("seed %d step %d (%s): balance of %s = %+v, model %+v", seed, step, name, a, got, want)
		}
		lots, err := g.e.Svc.Lots(g.e.Ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		want := g.m.Lots(a)
		if len(lots) != len(want) {
			t.Fatalf("seed %d step %d (%s): %s has %d lots, model %d", seed, step, name, a, len(lots), len(want))
		}
		for i, l := range lots {
			w := want[i]
			if l.OutTradeNo != w.OutTradeNo || l.Used != w.Used || l.Left != w.Left || l.Refunding != w.Refunding ||
				l.Refunded != w.Refund || l.RefundedFen != w.RefundedFen || l.Granted != w.Granted {
				t.Fatalf("seed %d step %d (%s): lot %+v, model %+v", seed, step, name, l, w)
			}
		}
	}
}
