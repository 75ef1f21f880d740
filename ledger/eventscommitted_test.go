package ledger_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"tollgate/ledger"
)

// TestEventsCommitted: the hook runs after a transaction that wrote events
// commits (serve wakes its webhook dispatcher there), not after one that
// wrote none or rolled back.
func TestEventsCommitted(t *testing.T) {
	var n atomic.Int32
	var failing atomic.Bool
	boom := errors.New("disk on fire")
	svc := mustService(t, func(*ledger.Changes) error {
		if failing.Load() {
			return boom
		}
		return nil
	}, ledger.Options{EventsCommitted: func() { n.Add(1) }})
	// mustService created an account and credited a payment: account.created
	// and payment.succeeded, one transaction each.
	if got := n.Load(); got != 2 {
		t.Fatalf("hook ran %d times for two transactions with events", got)
	}
	ctx := context.Background()
	// A repeated notification: "already", nothing written.
	if _, already, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 1, Credits: 1000}); err != nil || !already {
		t.Fatalf("repeat: already %v, %v", already, err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("hook ran after a transaction without events (%d)", got)
	}
	failing.Store(true)
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o2", TransactionID: "t2", Fen: 1, Credits: 1000}); err == nil {
		t.Fatal("the failing store committed")
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("hook ran after a rolled-back transaction (%d)", got)
	}
}
