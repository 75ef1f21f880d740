package payment_test

import (
	"math/big"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
)

// costs prices two deployments; any other costs nothing.
type costs map[string]pricing.ModelPrice

func (c costs) CostPrice(d string) (pricing.ModelPrice, error) { return c[d], nil }

func dec(t *testing.T, s string) pricing.Decimal {
	t.Helper()
	d, err := pricing.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRevenueReport: the report's usage side (requests, credits, provider
// cost in USD and fen, margin) equals what the report computed before the
// aggregate queries, record by record from a Dump, on the same ledger.
func TestRevenueReport(t *testing.T) {
	w := newWorld(t, backends[0], modes[0], nil)
	start := w.clock.Now()
	w.mustAccount("alice")
	prices := costs{
		"openai/gpt": {Input: dec(t, "2.5"), CachedInput: dec(t, "1.25"), Output: dec(t, "10")},
		"anthropic/claude": {Input: dec(t, "3"), CachedInput: dec(t, "0.3"), CacheWriteInput: dec(t, "3.75"),
			CacheWrite1hInput: dec(t, "6"), Output: dec(t, "15")},
	}
	deps := []string{"openai/gpt", "anthropic/claude", "gone/x", ""}
	var us []ledger.Usage
	for i := range 40 {
		n := int64(i + 1)
		us = append(us, ledger.Usage{RequestID: "req" + string(rune('A'+i)), Account: "alice", Deployment: deps[i%len(deps)],
			InputTokens: 1000*n + 700, CachedTokens: 100 * n, CacheWriteTokens: 300 * (n % 3), CacheWrite1hTokens: 200 * (n % 2),
			OutputTokens: 37 * n, CreatedAt: start.Add(time.Duration(i) * time.Minute)})
	}
	if _, err := w.ledger.RecordUsage(w.ctx, us); err != nil {
		t.Fatal(err)
	}
	from, to := start.Add(5*time.Minute), start.Add(30*time.Minute)
	rep, err := (&payment.RevenueReporter{Payments: w.svc, Costs: prices}).Revenue(w.ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}

	// The report as it was computed before: every record of a Dump.
	var d *ledger.Dump
	if err := w.ledger.View(w.ctx, func(tx ledger.ReadTx) (err error) { d, err = tx.Dump(w.ctx); return err }); err != nil {
		t.Fatal(err)
	}
	var requests int64
	var credits tollgate.Credits
	usd := new(big.Rat)
	for _, u := range d.Usage {
		if u.CreatedAt.Before(from) || !u.CreatedAt.Before(to) {
			continue
		}
		requests++
		credits += u.Credits
		usd.Add(usd, prices[u.Deployment].Amount(u.Tokens()))
	}
	fen, err := mustPricer(t).ToFen(w.ctx, usd, pricing.USD)
	if err != nil {
		t.Fatal(err)
	}
	if requests != 25 || usd.Sign() == 0 {
		t.Fatalf("the test's ledger: %d requests, %s USD", requests, usd.FloatString(6))
	}
	if rep.Requests != requests || rep.CreditsUsed != credits || rep.ProviderCostUSD.Cmp(usd) != 0 ||
		rep.ProviderCostFen != fen || rep.MarginFen != rep.NetFen-fen || rep.Payments != 0 {
		t.Fatalf("report %+v (%s USD)\nwant %d requests, %d credits, %s USD = %d fen", rep, rep.ProviderCostUSD.FloatString(6),
			requests, credits, usd.FloatString(6), fen)
	}
	// Without cost prices the providers cost nothing.
	if rep, err := (&payment.RevenueReporter{Payments: w.svc}).Revenue(w.ctx, from, to); err != nil ||
		rep.ProviderCostUSD.Sign() != 0 || rep.ProviderCostFen != 0 || rep.Requests != requests {
		t.Fatalf("report without costs: %+v, %v", rep, err)
	}
}
