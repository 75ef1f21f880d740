package pricing_test

import (
	"strings"
	"testing"

	"tollgate"
	"tollgate/pricing"
)

const validConfig = `{
  "base_price": "1.00",
  "rates": {"static": {"CNY": "7.20", "EUR": "0.92"}},
  "models": {
    "m": {"currency": "USD", "input": "1", "cached_input": "0.5", "output": "2"},
    "c": {"currency": "CNY", "input": "1", "cached_input": "0.5", "output": "2"},
    "e": {"currency": "EUR", "input": "1", "cached_input": "0.5", "output": "2"}
  },
  "packages": [{"id": "p", "fen": 1000, "credits": 1000000, "label": "L"}],
  "fee_tiers": [{"from_fen": 0, "percent": "0.6"}, {"from_fen": 100, "percent": "0.38"}]
}`

// TestConfigErrors breaks one value at a time and checks that the error is
// EINVALID and names the value.
func TestConfigErrors(t *testing.T) {
	if _, err := pricing.ParseConfig([]byte(validConfig)); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name, old, new, wantInMessage string
	}{
		{"UnknownField", `"base_price"`, `"base_prize"`, "base_prize"},
		{"BaseZero", `"base_price": "1.00"`, `"base_price": "0"`, "base_price"},
		{"BaseNegative", `"base_price": "1.00"`, `"base_price": "-1"`, "non-negative"},
		{"BaseFloatText", `"base_price": "1.00"`, `"base_price": "1e0"`, "decimal"},
		{"BaseCurrency", `"base_price"`, `"base_currency": "GBP", "base_price"`, "base_currency"},
		{"NoRates", `"static": {"CNY": "7.20", "EUR": "0.92"}`, ``, "rates"},
		{"BothRates", `"static"`, `"url": "https://x.example", "static"`, "not both"},
		{"BadURL", `"static": {"CNY": "7.20", "EUR": "0.92"}`, `"url": "ftp://x"`, "rates.url"},
		{"ZeroRate", `"CNY": "7.20"`, `"CNY": "0"`, "rates.static.CNY"},
		{"NoCNYRate", `"CNY": "7.20", `, ``, "CNY"},
		{"MissingModelRate", `, "EUR": "0.92"`, ``, "models.e"},
		{"BadTTL", `"EUR": "0.92"}`, `"EUR": "0.92"}, "ttl": "5 minutes"`, "duration"},
		{"NegativeMaxStale", `"EUR": "0.92"}`, `"EUR": "0.92"}, "max_stale": "-1h"`, "max_stale"},
		{"ModelCurrency", `"currency": "USD"`, `"currency": "usd"`, "models.m.currency"},
		{"ModelFree", `"input": "1", "cached_input": "0.5", "output": "2"},
    "c"`, `"input": "0", "cached_input": "0", "output": "0"},
    "c"`, "models.m"},
		{"CachedAboveInput", `"cached_input": "0.5", "output": "2"},
    "c"`, `"cached_input": "5", "output": "2"},
    "c"`, "models.m.cached_input"},
		{"NoModels", `"models": {`, `"models": {}, "x": {`, "x"},
		{"PackageNoID", `"id": "p"`, `"id": ""`, "packages[0].id"},
		{"PackageFen", `"fen": 1000`, `"fen": 0`, "packages.p.fen"},
		{"PackageFenFraction", `"fen": 1000`, `"fen": 10.5`, "decode"},
		{"PackageCredits", `"credits": 1000000`, `"credits": -1`, "packages.p.credits"},
		{"PackageLabel", `"label": "L"`, `"label": ""`, "packages.p.label"},
		{"PackageDuplicate", `"label": "L"}`, `"label": "L"}, {"id": "p", "fen": 1, "credits": 1, "label": "L"}`, "repeated"},
		{"TierStart", `"from_fen": 0`, `"from_fen": 5`, "fee_tiers[0]"},
		{"TierOrder", `"from_fen": 100`, `"from_fen": 0`, "fee_tiers[1]"},
		{"TierPercent", `"percent": "0.38"`, `"percent": "101"`, "fee_tiers[1].percent"},
		{"TierMissingPercent", `, "percent": "0.38"`, ``, "fee_tiers[1].percent"},
		{"NoTiers", `[{"from_fen": 0, "percent": "0.6"}, {"from_fen": 100, "percent": "0.38"}]`, `[]`, "fee_tiers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(validConfig, tt.old, tt.new, 1)
			if doc == validConfig {
				t.Fatalf("case does not change the config: %q not found", tt.old)
			}
			_, err := pricing.ParseConfig([]byte(doc))
			mustCode(t, err, tollgate.EINVALID)
			if !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Fatalf("error %q does not mention %q", err, tt.wantInMessage)
			}
			if _, err := pricing.New(pricing.Config{}, pricing.Options{}); tollgate.ErrorCode(err) != tollgate.EINVALID {
				t.Fatalf("New with an empty config: %v, want invalid", err)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := pricing.DefaultConfig()
	for _, id := range []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "deepseek-chat", "qwen-plus", "mistral-small", "mock"} {
		if _, ok := c.Models[id]; !ok {
			t.Errorf("default config lacks model %s", id)
		}
	}
	if got := c.Rates.Static[pricing.CNY].String(); got != "7.20" {
		t.Errorf("default CNY rate %s, want 7.20", got)
	}
}
