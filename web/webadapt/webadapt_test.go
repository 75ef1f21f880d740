package webadapt_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"tollgate/payment"
	"tollgate/pricing"
	"tollgate/web"
	"tollgate/web/webadapt"
)

func TestCatalog(t *testing.T) {
	p, err := pricing.New(pricing.DefaultConfig(), pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := webadapt.Catalog{Pricer: p}
	pkgs, err := c.Packages(context.Background())
	if err != nil || len(pkgs) != 3 || !reflect.DeepEqual(pkgs[0], web.Package{ID: "starter", Fen: 1000, Credits: 1_400_000}) {
		t.Fatalf("packages %v, %v", pkgs, err)
	}
	ms, err := c.ModelPrices(context.Background())
	if err != nil || len(ms) != len(p.Models()) {
		t.Fatalf("models %v, %v", ms, err)
	}
	// Base price 1 USD per 1M credits: gpt-4o-mini costs 0.15/0.60 USD.
	if ms[0] != (web.ModelPrice{Model: "gpt-4o-mini", Input: 150_000, Output: 600_000}) || ms[1].Model != "deepseek-chat" {
		t.Fatalf("popular first: %v", ms[:2])
	}
}

func TestOrder(t *testing.T) {
	now := time.Now()
	got := webadapt.Order(payment.Order{OutTradeNo: "TG1", Status: payment.StatusPayError, Fen: 5000, Credits: 7, PackageID: "plus", ExpiresAt: now, CreatedAt: now})
	if got != (web.Order{OutTradeNo: "TG1", Status: web.StatusPayError, Fen: 5000, Credits: 7, PackageID: "plus", ExpiresAt: now, CreatedAt: now}) {
		t.Fatalf("%+v", got)
	}
}
