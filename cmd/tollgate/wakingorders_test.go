package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"tollgate/payment"
)

// oneOrder is a payment.Store holding one order (only UpdateOrder is used).
type oneOrder struct {
	payment.Store
	o payment.Order
}

func (s *oneOrder) UpdateOrder(ctx context.Context, no string, fn func(*payment.Order) error) (payment.Order, error) {
	o := s.o
	if err := fn(&o); err != nil {
		return payment.Order{}, err
	}
	s.o = o
	return o, nil
}

// TestWakingOrders: the webhook dispatcher is woken when an order change
// wrote payment.closed (the order has just closed), not on other changes
// nor on a failed one.
func TestWakingOrders(t *testing.T) {
	wakes := 0
	st := &oneOrder{o: payment.Order{OutTradeNo: "TG1", Account: "alice", Status: payment.StatusNotPay, Credits: 1, Fen: 1,
		CreatedAt: time.Now()}}
	w := wakingOrders{st, func() { wakes++ }}
	ctx := context.Background()
	set := func(s payment.Status) func(*payment.Order) error {
		return func(o *payment.Order) error { o.Status, o.UpdatedAt = s, time.Now(); return nil }
	}
	if _, err := w.UpdateOrder(ctx, "TG1", set(payment.StatusUserPaying)); err != nil || wakes != 0 {
		t.Fatalf("NOTPAY → USERPAYING: %v, %d wakes", err, wakes)
	}
	if _, err := w.UpdateOrder(ctx, "TG1", func(*payment.Order) error { return errors.New("no") }); err == nil || wakes != 0 {
		t.Fatalf("failed change: %v, %d wakes", err, wakes)
	}
	if _, err := w.UpdateOrder(ctx, "TG1", set(payment.StatusClosed)); err != nil || wakes != 1 {
		t.Fatalf("→ CLOSED: %v, %d wakes", err, wakes)
	}
	if _, err := w.UpdateOrder(ctx, "TG1", set(payment.StatusClosed)); err != nil || wakes != 1 {
		t.Fatalf("CLOSED again: %v, %d wakes", err, wakes)
	}
}
