package pricing_test

import (
	"encoding/json"
	"strings"
	"testing"

	"tollgate"
	"tollgate/pricing"
)

// perCallPricer prices "fee" in USD, the base currency (1 credit =
// 0.000001 USD): 0.5 credit an input token, 1 an output token, and a
// per-call fee of perCall USD; "cny" likewise in CNY at 7.20 per USD.
func perCallPricer(t *testing.T, perCall, cnyPerCall string) *pricing.Pricer {
	t.Helper()
	cfg := pricing.DefaultConfig()
	cfg.Models = map[string]pricing.ModelPrice{
		"fee":   {Currency: pricing.USD, Input: pricing.MustDecimal("0.50"), Output: pricing.MustDecimal("1.00"), PerCall: pricing.MustDecimal(perCall)},
		"cny":   {Currency: pricing.CNY, Input: pricing.MustDecimal("3.60"), Output: pricing.MustDecimal("7.20"), PerCall: pricing.MustDecimal(cnyPerCall)},
		"nofee": {Currency: pricing.USD, Input: pricing.MustDecimal("0.50"), Output: pricing.MustDecimal("1.00")},
	}
	src := &fakeSource{}
	src.set("7.20", nil)
	p, err := pricing.New(cfg, pricing.Options{Clock: newClock(), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCostPerCall: the fee is charged once per call, with or without
// tokens, and rounded together with the tokens (one ceiling), in the base
// currency and converted from another.
func TestCostPerCall(t *testing.T) {
	p := perCallPricer(t, "0.01", "0.072") // 10,000 credits a call either way
	for _, tc := range []struct {
		model string
		tok   tollgate.Tokens
		want  tollgate.Credits
	}{
		{"fee", tollgate.Tokens{}, 10_000},
		{"fee", tollgate.Tokens{Input: 1000}, 10_500},
		{"fee", tollgate.Tokens{Input: 1000, Output: 100}, 10_600},
		{"fee", tollgate.Tokens{Input: 1}, 10_001}, // 0.5 + 10,000 rounds up once
		{"cny", tollgate.Tokens{}, 10_000},
		{"cny", tollgate.Tokens{Input: 1000, Output: 100}, 10_600},
		{"nofee", tollgate.Tokens{}, 0},
		{"nofee", tollgate.Tokens{Input: 1000}, 500},
	} {
		got, err := p.Cost(ctx, tc.model, tc.tok)
		if err != nil || got != tc.want {
			t.Errorf("Cost(%s, %+v) = %d, %v; want %d", tc.model, tc.tok, got, err, tc.want)
		}
	}

	// TokenCost, for the price list, leaves the fee out.
	for _, model := range []string{"fee", "cny"} {
		if got, err := p.TokenCost(ctx, model, tollgate.Tokens{Output: 1_000_000}); err != nil || got != 1_000_000 {
			t.Errorf("TokenCost(%s, 1M output) = %d, %v; want 1,000,000", model, got, err)
		}
	}

	// One ceiling over tokens and fee: 0.5 + 0.4 credits is 1, not 1 + 1.
	p = perCallPricer(t, "0.0000004", "0.00000288")
	for _, model := range []string{"fee", "cny"} {
		if got, err := p.Cost(ctx, model, tollgate.Tokens{Input: 1}); err != nil || got != 1 {
			t.Errorf("Cost(%s, 1 input token) with a 0.4-credit fee = %d, %v; want 1", model, got, err)
		}
		if got, err := p.Cost(ctx, model, tollgate.Tokens{}); err != nil || got != 1 {
			t.Errorf("Cost(%s, no tokens) with a 0.4-credit fee = %d, %v; want 1 (rounded up)", model, got, err)
		}
	}
}

// TestHoldCoversPerCall: the gateway's hold is the most Cost gives over
// the ways the prompt may be billed (gateway.worstCase); each includes the
// fee once, so the hold covers the fee and every settle of a call within
// it, and is the tokens' worst case plus the fee, not twice the fee.
func TestHoldCoversPerCall(t *testing.T) {
	p := perCallPricer(t, "0.01", "0.072")
	worst := func(model string, prompt, out int64) tollgate.Credits {
		var w tollgate.Credits
		for _, tok := range []tollgate.Tokens{{Input: prompt}, {CacheWrite: prompt}, {CacheWrite1h: prompt}} {
			tok.Output = out
			c, err := p.Cost(ctx, model, tok)
			if err != nil {
				t.Fatal(err)
			}
			w = max(w, c)
		}
		return w
	}
	for _, model := range []string{"fee", "cny"} {
		hold := worst(model, 1000, 100)
		if hold != 500+100+10_000 {
			t.Errorf("%s: hold for 1000 prompt + 100 output = %d, want 10,600 (tokens + the fee once)", model, hold)
		}
		for _, used := range []tollgate.Tokens{{}, {Input: 1000, Output: 100}, {CachedInput: 1000, Output: 1}, {Input: 3, Output: 100}} {
			if c, err := p.Cost(ctx, model, used); err != nil || c > hold {
				t.Errorf("%s: Cost(%+v) = %d, %v: above the hold %d", model, used, c, err, hold)
			}
		}
	}
}

// TestValidatePerCall: a negative fee is refused (a Decimal is never
// negative); a model priced by the call alone is not free, so it is
// accepted.
func TestValidatePerCall(t *testing.T) {
	var m pricing.ModelPrice
	if err := json.Unmarshal([]byte(`{"currency":"USD","input":"1","output":"1","per_call":"-0.01"}`), &m); err == nil || !strings.Contains(err.Error(), "non-negative") {
		t.Fatalf("negative per_call: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"currency":"USD","input":"0","output":"0","per_call":"0.01"}`), &m); err != nil || m.PerCall.String() != "0.01" {
		t.Fatalf("per_call: %v, %+v", err, m)
	}
	cfg := pricing.DefaultConfig()
	cfg.Models = map[string]pricing.ModelPrice{"m": m}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a model priced by the call only: %v", err)
	}
}
