package main

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/httpapi"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
)

// revenueReporter builds the monthly revenue report: payments and fees from
// the payment service, and the providers' cost of the month's usage from
// the deployments' cost prices, converted to fen at the latest rate.
type revenueReporter struct {
	payments *payment.Service
	ledger   *ledger.Service
	pricer   *pricing.Pricer
	gateway  *gateway.Config
}

var _ httpapi.RevenueReporter = (*revenueReporter)(nil)

func (r *revenueReporter) Revenue(ctx context.Context, from, to time.Time) (httpapi.RevenueReport, error) {
	rev, err := r.payments.Revenue(ctx, from, to)
	if err != nil {
		return httpapi.RevenueReport{}, err
	}
	rep := httpapi.RevenueReport{Payments: rev.Payments, GrossFen: rev.GrossFen, FeeFen: rev.FeeFen,
		RefundedFen: rev.RefundedFen, NetFen: rev.NetFen}
	var usage []ledger.Usage
	if err := r.ledger.View(ctx, func(tx ledger.ReadTx) error {
		d, err := tx.Dump(ctx)
		if err == nil {
			usage = d.Usage
		}
		return err
	}); err != nil {
		return rep, fmt.Errorf("revenue: usage: %w", err)
	}
	usd := new(big.Rat)
	for _, u := range usage {
		if u.CreatedAt.Before(from) || !u.CreatedAt.Before(to) {
			continue
		}
		rep.Requests++
		rep.CreditsUsed += int64(u.Credits)
		c, err := deploymentCostUSD(r.gateway, u)
		if err != nil {
			return rep, err
		}
		usd.Add(usd, c)
	}
	rep.ProviderCostUSD = usd.FloatString(6)
	if rep.ProviderCostFen, err = r.pricer.ToFen(ctx, usd, pricing.USD); err != nil {
		return rep, err
	}
	rep.MarginFen = rep.NetFen - rep.ProviderCostFen
	return rep, nil
}

// deploymentCostUSD prices one usage record at its deployment's provider
// cost (USD per 1M tokens), with the defaults of pricing.ModelPrice: a
// deployment without cost prices costs nothing, and a prompt cost it
// leaves out is its input cost (gateway.DeploymentConfig).
func deploymentCostUSD(cfg *gateway.Config, u ledger.Usage) (*big.Rat, error) {
	if cfg == nil {
		return new(big.Rat), nil
	}
	d, ok := cfg.Deployment(u.Deployment)
	if !ok {
		return new(big.Rat), nil
	}
	var cost pricing.ModelPrice
	for _, f := range []struct {
		price string
		dst   *pricing.Decimal
	}{
		{d.InputCostPer1M, &cost.Input}, {d.CachedInputCostPer1M, &cost.CachedInput},
		{d.CacheWriteCostPer1M, &cost.CacheWriteInput}, {d.CacheWrite1hCostPer1M, &cost.CacheWrite1hInput},
		{d.OutputCostPer1M, &cost.Output},
	} {
		if f.price == "" {
			continue
		}
		var err error
		if *f.dst, err = pricing.ParseDecimal(f.price); err != nil {
			return nil, &tollgate.Error{Code: tollgate.EINTERNAL, Op: "revenue", Message: "bad cost price of " + u.Deployment, Err: err}
		}
	}
	return cost.Amount(u.Tokens()), nil
}
