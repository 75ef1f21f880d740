package pricing_test

import (
	"errors"
	"strings"
	"testing"

	"tollgate"
	"tollgate/pricing"
)

// unitsPricer prices, in USD (the base: 1 credit = 0.000001 USD), a model
// selling every unit beyond tokens and one selling only tokens.
func unitsPricer(t *testing.T) *pricing.Pricer {
	t.Helper()
	cfg := pricing.DefaultConfig()
	d := pricing.MustDecimal
	cfg.Models = map[string]pricing.ModelPrice{
		"all": {Currency: pricing.USD, Input: d("1.00"), Output: d("2.00"),
			AudioInput: d("40"), AudioOutput: d("80"), Per1MCharacters: d("15"), PerAudioMinute: d("0.006"),
			PerImage:     map[string]pricing.Decimal{"1024x1024": d("0.04"), "1024x1024/hd": d("0.08")},
			PerWebSearch: d("0.01"), PerWebFetch: d("0.002"), PriorityMultiplier: d("1.75")},
		"image": {Currency: pricing.USD, PerImage: map[string]pricing.Decimal{"256x256": d("0.016")}},
		"text":  {Currency: pricing.USD, Input: d("1.00"), Output: d("2.00")},
		"cny":   {Currency: pricing.CNY, PerAudioMinute: d("0.072")}, // 0.01 USD a minute at 7.20
	}
	src := &fakeSource{}
	src.set("7.20", nil)
	p, err := pricing.New(cfg, pricing.Options{Clock: newClock(), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCostUnits: each unit a provider bills beyond text tokens costs its
// own price, exactly, with one ceiling over the whole sum.
func TestCostUnits(t *testing.T) {
	p := unitsPricer(t)
	for _, tc := range []struct {
		model string
		tok   tollgate.Tokens
		want  tollgate.Credits
	}{
		{"all", tollgate.Tokens{AudioInput: 1000, AudioOutput: 1000}, 120_000},
		{"all", tollgate.Tokens{Characters: 1000}, 15_000},
		{"all", tollgate.Tokens{AudioSeconds: 60}, 6_000},
		{"all", tollgate.Tokens{AudioSeconds: 1}, 100}, // 0.006/60 USD
		{"all", tollgate.Tokens{AudioSeconds: 7}, 700},
		{"all", tollgate.Tokens{Images: 2, ImageSize: "1024x1024"}, 80_000},
		{"all", tollgate.Tokens{Images: 1, ImageSize: "1024x1024/hd"}, 80_000},
		{"all", tollgate.Tokens{Input: 100, Output: 10, WebSearches: 2, WebFetches: 1}, 100 + 20 + 20_000 + 2_000},
		// Priority multiplies tokens (1.75×), not per-unit fees.
		{"all", tollgate.Tokens{Input: 1000, Output: 1000, Priority: true}, 5_250},
		{"all", tollgate.Tokens{Input: 1, Priority: true, WebSearches: 1}, 10_002}, // 1.75 + 10,000 rounds up once
		{"image", tollgate.Tokens{Images: 3, ImageSize: "256x256"}, 48_000},
		{"cny", tollgate.Tokens{AudioSeconds: 60}, 10_000},
	} {
		got, err := p.Cost(ctx, tc.model, tc.tok)
		if err != nil || got != tc.want {
			t.Errorf("Cost(%s, %+v) = %d, %v; want %d", tc.model, tc.tok, got, err, tc.want)
		}
	}
}

// TestCostUnpricedUnitRefused: a unit the model does not sell is an
// EINVALID error naming it, never a free call.
func TestCostUnpricedUnitRefused(t *testing.T) {
	p := unitsPricer(t)
	for _, tc := range []struct {
		model string
		tok   tollgate.Tokens
		says  string
	}{
		{"text", tollgate.Tokens{WebSearches: 1}, "web search"},
		{"text", tollgate.Tokens{AudioOutput: 5}, "audio output"},
		{"text", tollgate.Tokens{Characters: 5}, "speech characters"},
		{"text", tollgate.Tokens{AudioSeconds: 5}, "audio minutes"},
		{"text", tollgate.Tokens{Input: 5, Priority: true}, "priority"},
		{"text", tollgate.Tokens{Images: 1, ImageSize: "1024x1024"}, "images of size"},
		{"all", tollgate.Tokens{Images: 1, ImageSize: "512x512"}, "1024x1024, 1024x1024/hd"},
		{"all", tollgate.Tokens{Images: -1, ImageSize: "1024x1024"}, "negative"},
	} {
		_, err := p.Cost(ctx, tc.model, tc.tok)
		var te *tollgate.Error
		if !errors.As(err, &te) || te.Code != tollgate.EINVALID || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Cost(%s, %+v) = %v; want EINVALID saying %q", tc.model, tc.tok, err, tc.says)
		}
	}
}

// TestImageKey: a size and quality priced together wins over the size alone.
func TestImageKey(t *testing.T) {
	m := pricing.ModelPrice{PerImage: map[string]pricing.Decimal{"1024x1024": pricing.MustDecimal("0.04"), "1024x1024/hd": pricing.MustDecimal("0.08")}}
	for _, tc := range [][3]string{{"1024x1024", "hd", "1024x1024/hd"}, {"1024x1024", "standard", "1024x1024"}, {"1024x1024", "", "1024x1024"}, {"512x512", "hd", ""}} {
		if got := m.ImageKey(tc[0], tc[1]); got != tc[2] {
			t.Errorf("ImageKey(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

// TestConfigUnitsValidated: a bad per_image key or a multiplier below 1
// is refused naming the field; a model priced only per unit is valid.
func TestConfigUnitsValidated(t *testing.T) {
	base := `{"base_price":"1","rates":{"static":{"CNY":"7.2"}},"fee_tiers":[{"from_fen":0,"percent":"0.6"}],"models":{"m":%s}}`
	for _, tc := range []struct{ model, says string }{
		{`{"currency":"USD","per_image":{"big":"0.1"}}`, "per_image"},
		{`{"currency":"USD","input":"1","output":"1","priority_multiplier":"0.5"}`, "priority_multiplier"},
		{`{"currency":"USD","per_image":{"1024x1024":"-1"}}`, "non-negative"},
	} {
		_, err := pricing.ParseConfig([]byte(strings.Replace(base, "%s", tc.model, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v; want one saying %q", tc.model, err, tc.says)
		}
	}
	for _, m := range []string{`{"currency":"USD","per_audio_minute":"0.006"}`, `{"currency":"USD","per_1m_characters":"15"}`, `{"currency":"USD","per_image":{"1024x1024/hd":"0.08"}}`} {
		if _, err := pricing.ParseConfig([]byte(strings.Replace(base, "%s", m, 1))); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
