package gateway_test

import (
	"math/big"
	"testing"

	"tollgate"
	"tollgate/gateway"
)

// TestCostPrice prices usage at its deployment's provider cost: each prompt
// kind at its own cost, and a cost left out at the input cost, so a cache
// write never looks cheaper than it was.
func TestCostPrice(t *testing.T) {
	dep := func(d gateway.DeploymentConfig) *gateway.Config {
		d.Provider, d.Model = "anthropic", "claude"
		return &gateway.Config{Models: map[string][]gateway.DeploymentConfig{"m": {d}}}
	}
	full := dep(gateway.DeploymentConfig{InputCostPer1M: "3", CachedInputCostPer1M: "0.3", CacheWriteCostPer1M: "3.75",
		CacheWrite1hCostPer1M: "6", OutputCostPer1M: "15"})
	// 4M prompt tokens, of which 1M read from the cache and 1M written
	// for 5 minutes, 1M for an hour; 1M output tokens.
	tokens := tollgate.Tokens{Input: 1_000_000, CachedInput: 1_000_000, CacheWrite: 1_000_000, CacheWrite1h: 1_000_000, Output: 1_000_000}
	for _, tc := range []struct {
		name       string
		cfg        *gateway.Config
		deployment string
		want       string // USD
	}{
		{"EveryKindAtItsCost", full, "anthropic/claude", "28.05"}, // 3 + 0.3 + 3.75 + 6 + 15
		{"LeftOutPromptCostsAreInput", dep(gateway.DeploymentConfig{InputCostPer1M: "3", OutputCostPer1M: "15"}), "anthropic/claude", "27"},
		{"OneHourWriteDefaultsToFiveMinute", dep(gateway.DeploymentConfig{InputCostPer1M: "3", CacheWriteCostPer1M: "3.75", OutputCostPer1M: "15"}), "anthropic/claude", "28.5"},
		{"NoCostsNoCost", dep(gateway.DeploymentConfig{}), "anthropic/claude", "0"},
		{"UnknownDeployment", full, "gone/x", "0"},
		{"NoConfig", nil, "anthropic/claude", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.cfg.CostPrice(tc.deployment)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Amount(tokens)
			if want, _ := new(big.Rat).SetString(tc.want); got.Cmp(want) != 0 {
				t.Fatalf("cost %s USD, want %s", got.FloatString(4), tc.want)
			}
		})
	}
	_, err := dep(gateway.DeploymentConfig{InputCostPer1M: "3,5"}).CostPrice("anthropic/claude")
	if tollgate.ErrorCode(err) != tollgate.EINTERNAL {
		t.Fatalf("bad cost price: %v, want EINTERNAL", err)
	}
}
