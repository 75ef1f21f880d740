package payment

import (
	"context"
	"math/big"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/pricing"
)

// Revenue sums the payments credited in a period, for the revenue report.
type Revenue struct {
	From, To time.Time
	Payments int
	// GrossFen is what payers paid; FeeFen the merchant fees recorded on
	// the orders (pricing.Fee on the month's volume before each payment);
	// RefundedFen what was refunded of those payments so far; NetFen is
	// Gross − Fee − Refunded.
	GrossFen    tollgate.Fen
	FeeFen      tollgate.Fen
	RefundedFen tollgate.Fen
	NetFen      tollgate.Fen
}

// PaymentTotals is what Store.PaymentTotals sums over the lots credited in a
// period, each with the order it paid.
type PaymentTotals struct {
	Lots        int          // lots created in the period
	Orders      int          // how many of those lots have their order stored
	GrossFen    tollgate.Fen // Σ lot fen
	RefundedFen tollgate.Fen // Σ lot refunded fen
	FeeFen      tollgate.Fen // Σ fee fen of the lots' orders
}

// Revenue reports the payments credited (lots created) in [from, to), from
// one aggregate query (Store.PaymentTotals): it reads no rows one by one.
// Errors: EINTERNAL, also when a credited lot has no order (only a broken
// database has one).
func (s *Service) Revenue(ctx context.Context, from, to time.Time) (Revenue, error) {
	const op = "payment.Revenue"
	t, err := s.store.PaymentTotals(ctx, from.UTC(), to.UTC())
	if err != nil {
		return Revenue{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if t.Orders != t.Lots {
		return Revenue{}, &tollgate.Error{Code: tollgate.EINTERNAL, Op: op,
			Message: "a lot credited in the period has no payment order"}
	}
	return Revenue{From: from, To: to, Payments: t.Lots, GrossFen: t.GrossFen, FeeFen: t.FeeFen,
		RefundedFen: t.RefundedFen, NetFen: t.GrossFen - t.FeeFen - t.RefundedFen}, nil
}

// RevenueReport is the revenue of a period with what it cost: the requests
// served in it, the credits they used, what the model providers charge for
// their tokens (at the deployments' cost prices), converted to fen at the
// latest rate, and the margin, Net − ProviderCost.
type RevenueReport struct {
	Revenue
	Requests    int64
	CreditsUsed tollgate.Credits
	// ProviderCostUSD is exact; ProviderCostFen is it converted to fen.
	ProviderCostUSD *big.Rat
	ProviderCostFen tollgate.Fen
	MarginFen       tollgate.Fen
	// Adjustments are the operator's adjustments made in the period:
	// credit given or taken by hand, outside payments (no fen, so no
	// part of Gross or Net; the credits given are spent like any).
	Adjustments ledger.AdjustmentTotal
}

// CostPrices gives a deployment's provider cost prices in USD per 1M tokens
// (the deployment as in ledger.Usage.Deployment). A deployment it does not
// know, or one without cost prices, costs nothing: the zero ModelPrice.
// *gateway.Config implements it.
type CostPrices interface {
	CostPrice(deployment string) (pricing.ModelPrice, error)
}

// RevenueReporter builds revenue reports from the payment service's
// aggregate of payments and the ledger's aggregate of usage; nothing on its
// path reads the ledger row by row.
type RevenueReporter struct {
	Payments *Service
	// Costs prices the providers' tokens; nil counts them as free.
	Costs CostPrices
}

// Revenue reports [from, to). Errors: EINTERNAL (a store, a cost price that
// does not parse), EUNAVAILABLE (no exchange rate).
func (r *RevenueReporter) Revenue(ctx context.Context, from, to time.Time) (RevenueReport, error) {
	const op = "payment.RevenueReport"
	s := r.Payments
	rev, err := s.Revenue(ctx, from, to)
	if err != nil {
		return RevenueReport{}, err
	}
	usage, err := s.ledger.UsageTotals(ctx, from, to)
	if err != nil {
		return RevenueReport{}, wrap(op, tollgate.EINTERNAL, err)
	}
	rep := RevenueReport{Revenue: rev}
	if rep.ProviderCostUSD, err = ProviderCost(usage, r.Costs); err != nil {
		return RevenueReport{}, err
	}
	for _, u := range usage {
		rep.Requests += u.Requests
		rep.CreditsUsed += u.Credits
	}
	if rep.ProviderCostFen, err = s.pricer.ToFen(ctx, rep.ProviderCostUSD, pricing.USD); err != nil {
		return RevenueReport{}, err
	}
	rep.MarginFen = rep.NetFen - rep.ProviderCostFen
	if rep.Adjustments, err = s.ledger.AdjustmentTotals(ctx, from, to); err != nil {
		return RevenueReport{}, wrap(op, tollgate.EINTERNAL, err)
	}
	return rep, nil
}

// ProviderCost is what the model providers charge, in USD, exactly, for the
// tokens of usage, each deployment's total at its cost prices (nil costs:
// nothing). Prices are linear, so this is the sum over the records.
func ProviderCost(usage []ledger.UsageTotal, costs CostPrices) (*big.Rat, error) {
	usd := new(big.Rat)
	if costs == nil {
		return usd, nil
	}
	for _, u := range usage {
		p, err := costs.CostPrice(u.Deployment)
		if err != nil {
			return nil, err
		}
		usd.Add(usd, p.Amount(u.Tokens()))
	}
	return usd, nil
}
