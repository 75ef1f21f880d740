package storetest

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
)

// The revenue report reads two aggregates over a period [from, to):
// ledger.ReadTx.UsageTotals (usage per deployment) and
// payment.Store.PaymentTotals (lots joined with their orders). These tests
// hold both stores to the same expectations, and to what the report used to
// compute from a full Dump: the same sums, on random ledgers, over random
// periods.

// testUsageTotals: sums per deployment, ordered by deployment, from
// inclusive, to exclusive, costed and free records alike.
func testUsageTotals(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	MustCredit(t, e, "alice", "o1", 100, 100_000)
	settle := func(hold string, cost tollgate.Credits, u ledger.Usage) {
		t.Helper()
		h, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: hold, Account: "alice", Amount: 1000, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: h.ID, Cost: cost, Usage: u}); err != nil {
			t.Fatal(err)
		}
	}
	e.Clock.Advance(time.Second)
	from := e.Clock.Now()
	settle("h1", 42, ledger.Usage{RequestID: "r1", Deployment: "openai/gpt", InputTokens: 30, CachedTokens: 5,
		CacheWriteTokens: 7, CacheWrite1hTokens: 3, OutputTokens: 12})
	e.Clock.Advance(time.Second)
	if _, err := e.Svc.RecordUsage(e.Ctx, []ledger.Usage{
		{RequestID: "r2", Account: "bob", Deployment: "anthropic/claude", InputTokens: 9, Status: "upstream_error"},
		{RequestID: "r3", Account: "alice", Status: "rate_limited"}, // no deployment
	}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute)
	settle("h2", 8, ledger.Usage{RequestID: "r4", Deployment: "openai/gpt", InputTokens: 100, OutputTokens: 1})
	e.Clock.Advance(time.Microsecond)
	to := e.Clock.Now()
	settle("h3", 5, ledger.Usage{RequestID: "r5", Deployment: "openai/gpt", InputTokens: 1}) // at to: excluded
	got, err := e.Svc.UsageTotals(e.Ctx, from, to)
	want := []ledger.UsageTotal{
		{Deployment: "", Requests: 1},
		{Deployment: "anthropic/claude", Requests: 1, InputTokens: 9},
		{Deployment: "openai/gpt", Requests: 2, Credits: 50, InputTokens: 130, CachedTokens: 5, CacheWriteTokens: 7,
			CacheWrite1hTokens: 3, OutputTokens: 13},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("UsageTotals = %+v, %v\nwant %+v", got, err, want)
	}
	// The period is in UTC or any zone alike.
	if got, err := e.Svc.UsageTotals(e.Ctx, from.In(tollgate.Beijing), to.In(tollgate.Beijing)); err != nil || !slices.Equal(got, want) {
		t.Fatalf("UsageTotals in CST = %+v, %v", got, err)
	}
	if got, err := e.Svc.UsageTotals(e.Ctx, to.Add(time.Hour), to.Add(2*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("UsageTotals of an empty period = %+v, %v", got, err)
	}
}

// usageTotalsOf is what the revenue report computed before the aggregate:
// every usage record of the Dump in [from, to), summed by deployment.
func usageTotalsOf(d *ledger.Dump, from, to time.Time) []ledger.UsageTotal {
	by := map[string]*ledger.UsageTotal{}
	var deps []string
	for _, u := range d.Usage {
		if u.CreatedAt.Before(from) || !u.CreatedAt.Before(to) {
			continue
		}
		s := by[u.Deployment]
		if s == nil {
			s = &ledger.UsageTotal{Deployment: u.Deployment}
			by[u.Deployment] = s
			deps = append(deps, u.Deployment)
		}
		s.Requests++
		s.Credits += u.Credits
		s.InputTokens += u.InputTokens
		s.CachedTokens += u.CachedTokens
		s.CacheWriteTokens += u.CacheWriteTokens
		s.CacheWrite1hTokens += u.CacheWrite1hTokens
		s.OutputTokens += u.OutputTokens
	}
	slices.Sort(deps)
	var out []ledger.UsageTotal
	for _, dep := range deps {
		out = append(out, *by[dep])
	}
	return out
}

// costTable prices the random ledgers' deployments (one of them unknown:
// it costs nothing).
type costTable map[string]pricing.ModelPrice

func (c costTable) CostPrice(deployment string) (pricing.ModelPrice, error) {
	return c[deployment], nil
}

func mustDecimal(s string) pricing.Decimal {
	d, err := pricing.ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

var randomCosts = costTable{
	"openai/gpt": {Input: mustDecimal("2.5"), CachedInput: mustDecimal("1.25"), Output: mustDecimal("10")},
	"anthropic/claude": {Input: mustDecimal("3"), CachedInput: mustDecimal("0.3"), CacheWriteInput: mustDecimal("3.75"),
		CacheWrite1hInput: mustDecimal("6"), Output: mustDecimal("15")},
	"local/free": {},
}

var randomDeployments = []string{"openai/gpt", "anthropic/claude", "local/free", "gone/model", ""}

// periods returns random periods over times: bounds on the times
// themselves (the edges of [from, to)), between them and outside them.
func periods(r *rand.Rand, times []time.Time, n int) [][2]time.Time {
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	pick := func() time.Time {
		if len(times) == 0 {
			return Start
		}
		t := times[r.IntN(len(times))]
		switch r.IntN(4) {
		case 0:
			return t.Add(time.Duration(r.IntN(7200)-3600) * time.Second)
		case 1:
			return t.Add(time.Microsecond)
		}
		return t
	}
	out := [][2]time.Time{}
	if len(times) > 0 {
		out = append(out, [2]time.Time{times[0], times[len(times)-1].Add(time.Microsecond)})
	}
	for len(out) < n {
		a, b := pick(), pick()
		if b.Before(a) {
			a, b = b, a
		}
		out = append(out, [2]time.Time{a, b})
	}
	return out
}

// testUsageTotalsRandom builds a random ledger of settled and free usage
// over two days and requires, for random periods, UsageTotals to equal the
// Dump's records summed, and the provider cost priced from the totals to
// equal the cost of every record priced one by one (as the report did).
func testUsageTotalsRandom(t *testing.T, e *Env) {
	s := seed(t)
	t.Logf("seed %d (replay with STORETEST_SEED=%d)", s, s)
	r := rand.New(rand.NewPCG(s, s^0x5eed))
	accounts := []tollgate.AccountID{"a", "b", "c"}
	for i, a := range accounts {
		MustAccount(t, e, a)
		MustCredit(t, e, a, fmt.Sprintf("o%d", i), 10_000, 10_000_000)
	}
	var times []time.Time
	for i := range 150 {
		if r.IntN(3) > 0 {
			e.Clock.Advance(time.Duration(r.IntN(1800)) * time.Second)
		}
		cached, write, write1h := int64(r.IntN(500)), int64(r.IntN(3)*r.IntN(300)), int64(r.IntN(2)*r.IntN(300))
		u := ledger.Usage{RequestID: fmt.Sprintf("req%d", i), Account: accounts[r.IntN(len(accounts))],
			Deployment: randomDeployments[r.IntN(len(randomDeployments))], InputTokens: cached + write + write1h + int64(r.IntN(5000)),
			CachedTokens: cached, CacheWriteTokens: write, CacheWrite1hTokens: write1h, OutputTokens: int64(r.IntN(2000)), Status: "ok"}
		if r.IntN(3) == 0 {
			if _, err := e.Svc.RecordUsage(e.Ctx, []ledger.Usage{u}); err != nil {
				t.Fatal(err)
			}
		} else {
			h, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "h" + u.RequestID, Account: u.Account, Amount: 5000, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: h.ID, Cost: tollgate.Credits(r.IntN(5001)), Usage: u}); err != nil {
				t.Fatal(err)
			}
		}
		times = append(times, e.Clock.Now())
	}
	var d *ledger.Dump
	if err := e.Svc.View(e.Ctx, func(tx ledger.ReadTx) (err error) { d, err = tx.Dump(e.Ctx); return err }); err != nil {
		t.Fatal(err)
	}
	for _, p := range periods(r, times, 40) {
		want := usageTotalsOf(d, p[0], p[1])
		got, err := e.Svc.UsageTotals(e.Ctx, p[0], p[1])
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("seed %d: UsageTotals [%s, %s) = %+v, %v\nthe Dump sums to %+v", s, p[0], p[1], got, err, want)
		}
		cost, err := payment.ProviderCost(got, randomCosts)
		if err != nil {
			t.Fatal(err)
		}
		one := new(big.Rat)
		for _, u := range d.Usage {
			if !u.CreatedAt.Before(p[0]) && u.CreatedAt.Before(p[1]) {
				one.Add(one, randomCosts[u.Deployment].Amount(u.Tokens()))
			}
		}
		if cost.Cmp(one) != 0 {
			t.Fatalf("seed %d: provider cost of [%s, %s) from totals %s USD, record by record %s", s, p[0], p[1],
				cost.FloatString(6), one.FloatString(6))
		}
	}
}

// testPaymentTotals: lots created in the period, with their orders' fees;
// a lot without an order is counted in Lots but not in Orders.
func testPaymentTotals(t *testing.T, ctx context.Context, s PaymentStore) {
	clock := clocktest.New(T0)
	svc := ledger.New(s, ledger.Options{Clock: clock})
	defer svc.Close()
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	pay := func(no string, fen, fee tollgate.Fen, order bool) {
		t.Helper()
		if order {
			o := SampleOrder(no, "alice", clock.Now())
			o.Fen, o.TokenHash = fen, no
			mustCreate(t, ctx, s, o, nil)
		}
		if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: no, TransactionID: "wx" + no,
			Fen: fen, Credits: tollgate.Credits(fen) * 100}); err != nil {
			t.Fatal(err)
		}
		if order && fee > 0 {
			if _, err := payment.UpdateOrder(ctx, s, no, func(o *payment.Order) error {
				o.Status, o.FeeFen, o.TransactionID = payment.StatusSuccess, fee, "wx"+no
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pay("tg20261127PT000001", 1000, 6, true) // before the period
	clock.Advance(time.Hour)
	from := clock.Now()
	pay("tg20261127PT000002", 5000, 30, true)
	pay("tg20261127PT000003", 2500, 0, true) // credited, order not yet SUCCESS: no fee yet
	clock.Advance(time.Hour)
	if _, err := svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: "rf1", Account: "alice", OutTradeNo: "tg20261127PT000002"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteRefund(ctx, "rf1"); err != nil {
		t.Fatal(err)
	}
	to := clock.Now()
	pay("tg20261127PT000004", 700, 4, true) // at to: after the period
	got, err := s.PaymentTotals(ctx, from, to)
	want := payment.PaymentTotals{Lots: 2, Orders: 2, GrossFen: 7500, RefundedFen: 5000, FeeFen: 30}
	if err != nil || got != want {
		t.Fatalf("PaymentTotals = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.PaymentTotals(ctx, to.Add(time.Hour), to.Add(2*time.Hour)); err != nil || got != (payment.PaymentTotals{}) {
		t.Fatalf("PaymentTotals of an empty period = %+v, %v", got, err)
	}
	clock.Advance(time.Hour)
	pay("tg20261127PT000005", 300, 0, false)
	if got, err := s.PaymentTotals(ctx, to, clock.Now().Add(time.Second)); err != nil ||
		got != (payment.PaymentTotals{Lots: 2, Orders: 1, GrossFen: 1000, FeeFen: 4}) {
		t.Fatalf("PaymentTotals with a lot without order = %+v, %v", got, err)
	}
}

// testPaymentTotalsRandom builds random payments (some refunded, some
// without a fee yet) over days and requires, for random periods,
// PaymentTotals to equal what payment.Service.Revenue computed from a Dump
// and an order read per lot.
func testPaymentTotalsRandom(t *testing.T, ctx context.Context, s PaymentStore) {
	sd := seed(t)
	t.Logf("seed %d (replay with STORETEST_SEED=%d)", sd, sd)
	r := rand.New(rand.NewPCG(sd, sd^0xfee))
	clock := clocktest.New(T0)
	svc := ledger.New(s, ledger.Options{Clock: clock})
	defer svc.Close()
	accounts := []tollgate.AccountID{"a", "b", "c"}
	for _, a := range accounts {
		if _, err := svc.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var times []time.Time
	for i := range 80 {
		if r.IntN(3) > 0 {
			clock.Advance(time.Duration(r.IntN(4*3600)) * time.Second)
		}
		no := fmt.Sprintf("tg20261127RR%06d", i)
		o := SampleOrder(no, accounts[r.IntN(len(accounts))], clock.Now())
		o.Fen, o.TokenHash = tollgate.Fen(100+r.IntN(20_000)), no
		mustCreate(t, ctx, s, o, nil)
		if r.IntN(5) == 0 {
			continue // never paid: no lot
		}
		if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: o.Account, OutTradeNo: no, TransactionID: "wx" + no,
			Fen: o.Fen, Credits: tollgate.Credits(o.Fen) * 100}); err != nil {
			t.Fatal(err)
		}
		times = append(times, clock.Now())
		if r.IntN(4) > 0 {
			if _, err := payment.UpdateOrder(ctx, s, no, func(x *payment.Order) error {
				x.Status, x.FeeFen, x.TransactionID = payment.StatusSuccess, tollgate.Fen(r.IntN(int(o.Fen)/100+1)), "wx"+no
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(4) == 0 {
			if _, err := svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: no + "R", Account: o.Account, OutTradeNo: no}); err != nil {
				t.Fatal(err)
			}
			if r.IntN(3) > 0 {
				_, err := svc.CompleteRefund(ctx, no+"R")
				if err != nil {
					t.Fatal(err)
				}
			} else if _, err := svc.FailRefund(ctx, no+"R"); err != nil {
				t.Fatal(err)
			}
		}
	}
	var d *ledger.Dump
	if err := svc.View(ctx, func(tx ledger.ReadTx) (err error) { d, err = tx.Dump(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	for _, p := range periods(r, times, 40) {
		var want payment.PaymentTotals
		for _, l := range d.Lots {
			if l.CreatedAt.Before(p[0]) || !l.CreatedAt.Before(p[1]) {
				continue
			}
			want.Lots++
			want.GrossFen += l.Fen
			want.RefundedFen += l.RefundedFen
			o, err := s.Order(ctx, l.OutTradeNo)
			if err != nil {
				t.Fatal(err)
			}
			want.Orders++
			want.FeeFen += o.FeeFen
		}
		if got, err := s.PaymentTotals(ctx, p[0], p[1]); err != nil || got != want {
			t.Fatalf("seed %d: PaymentTotals [%s, %s) = %+v, %v\nthe Dump and orders sum to %+v", sd, p[0], p[1], got, err, want)
		}
	}
}
