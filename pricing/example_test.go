package pricing_test

import (
	"context"
	"fmt"

	"tollgate"
	"tollgate/pricing"
)

// The embedded default: a base price of 1.00 USD per 1M tokens and a static
// rate of 7.20 CNY per USD, so 1M credits cost 7.20 CNY.
func Example() {
	p, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	// 1,200 prompt tokens (200 of them cached) and 300 completion tokens:
	// ceil(1000×0.15 + 200×0.075 + 300×0.60) / 1.00 = ceil(345) credits.
	cost, _ := p.Cost(ctx, "gpt-4o-mini", tollgate.Tokens{Input: 1000, CachedInput: 200, Output: 300})
	fmt.Println("cost:", cost)

	per, _ := p.FenPerMCredit(ctx)
	credits, _ := p.QuoteTopUp(ctx, 1000)
	fmt.Println("1M credits:", per, "CNY; 10.00 CNY buys", credits)

	fmt.Println("fee on 100.00 CNY:", p.Fee(10000, 0), "then", p.Fee(10000, 10_000_000))
	// Output:
	// cost: 345
	// 1M credits: 7.20 CNY; 10.00 CNY buys 1388888
	// fee on 100.00 CNY: 0.60 then 0.38
}
