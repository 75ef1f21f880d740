package pricing_test

import (
	"reflect"
	"testing"

	"tollgate/pricing"
)

func TestPriceLike(t *testing.T) {
	cfg := pricing.DefaultConfig()
	mock, ok := cfg.Models["mock"]
	if !ok {
		t.Fatal("the default configuration has no mock model")
	}
	var own string
	for name := range cfg.Models {
		if name != "mock" {
			own = name
			break
		}
	}
	got := cfg.PriceLike("mock", []string{"mock-gpt", own})
	if !reflect.DeepEqual(got.Models["mock-gpt"], mock) {
		t.Errorf("mock-gpt priced %+v, want the mock's %+v", got.Models["mock-gpt"], mock)
	}
	if own != "" && !reflect.DeepEqual(got.Models[own], cfg.Models[own]) {
		t.Errorf("%s: its own price was replaced", own)
	}
	if _, ok := cfg.Models["mock-gpt"]; ok {
		t.Error("PriceLike changed the configuration it was called on")
	}
	if same := cfg.PriceLike("no-such-model", []string{"x"}); len(same.Models) != len(cfg.Models) {
		t.Error("an unpriced model added names")
	}
}
