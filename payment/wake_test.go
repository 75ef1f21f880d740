package payment

import (
	"context"
	"errors"
	"testing"
	"time"
)

// oneOrder is a Store holding one order (only UpdateOrder is used).
type oneOrder struct {
	Store
	o Order
}

func (s *oneOrder) UpdateOrder(ctx context.Context, no string, fn func(*Order) error) (Order, error) {
	o := s.o
	if err := fn(&o); err != nil {
		return Order{}, err
	}
	s.o = o
	return o, nil
}

// TestEventsCommittedOnClose: Deps.EventsCommitted (serve wakes the
// webhook dispatcher with it) runs when an order change wrote
// payment.closed (the order has just closed), not on other changes, on a
// failed one, nor when it stays closed.
func TestEventsCommittedOnClose(t *testing.T) {
	wakes := 0
	st := &oneOrder{o: Order{OutTradeNo: "TG1", Account: "alice", Status: StatusNotPay, Credits: 1, Fen: 1, CreatedAt: time.Now()}}
	m := machineStore{st, func() { wakes++ }}
	ctx := context.Background()
	set := func(s Status) func(*Order) error {
		return func(o *Order) error { o.Status, o.UpdatedAt = s, time.Now(); return nil }
	}
	if _, err := m.UpdateOrder(ctx, "TG1", set(StatusUserPaying)); err != nil || wakes != 0 {
		t.Fatalf("NOTPAY → USERPAYING: %v, %d wakes", err, wakes)
	}
	if _, err := m.UpdateOrder(ctx, "TG1", func(*Order) error { return errors.New("no") }); err == nil || wakes != 0 {
		t.Fatalf("failed change: %v, %d wakes", err, wakes)
	}
	if _, err := m.UpdateOrder(ctx, "TG1", set(StatusClosed)); err != nil || wakes != 1 {
		t.Fatalf("→ CLOSED: %v, %d wakes", err, wakes)
	}
	if _, err := m.UpdateOrder(ctx, "TG1", set(StatusClosed)); err != nil || wakes != 1 {
		t.Fatalf("CLOSED again: %v, %d wakes", err, wakes)
	}
}
