package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/ledger"
	"tollgate/pricing"
)

// DefaultHoldTTL is how long a gateway hold lives when nothing settles or
// releases it (a crashed request); the sweeper then releases it.
const DefaultHoldTTL = 10 * time.Minute

// Meter is the gateway.Meter over the ledger: Reserve is a ledger hold
// (funded by the caller's provisional grant when it authenticated with an
// access token), Settle charges the real cost and writes the usage record
// in the same transaction, Release frees the hold.
type Meter struct {
	Ledger *ledger.Service
	// HoldTTL bounds a hold's life; DefaultHoldTTL when zero.
	HoldTTL time.Duration
}

var _ gateway.Meter = (*Meter)(nil)

// Reserve holds h.Credits. The hold id is made here, never taken from the
// client's request id, so a client cannot make two requests share a hold.
// Errors: EINSUFFICIENT, and the ledger's.
func (m *Meter) Reserve(ctx context.Context, h gateway.Hold) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("meter: hold id: %w", err)
	}
	id := "hold_" + hex.EncodeToString(b[:])
	ttl := m.HoldTTL
	if ttl <= 0 {
		ttl = DefaultHoldTTL
	}
	c, _ := CallerFrom(ctx)
	if c.Account != "" && c.Account != h.Account {
		return "", &tollgate.Error{Code: tollgate.EINTERNAL, Op: "meter.Reserve", Message: "hold for another account than the caller's"}
	}
	_, err := m.Ledger.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: h.Account, GrantID: c.GrantID, Amount: h.Credits, TTL: ttl})
	if err != nil {
		return "", fmt.Errorf("meter: reserve: %w", err)
	}
	return id, nil
}

// Settle charges u.Credits and records the usage under the hold's id.
func (m *Meter) Settle(ctx context.Context, holdID string, u gateway.Usage) error {
	_, err := m.Ledger.Settle(ctx, ledger.SettleRequest{HoldID: holdID, Cost: u.Credits, Usage: ledger.Usage{
		RequestID: holdID, Account: u.Account, KeyID: u.KeyID, Model: u.Model, Provider: u.Provider,
		Deployment: u.Deployment, InputTokens: u.InputTokens, CachedTokens: u.CachedInputTokens,
		OutputTokens: u.OutputTokens, Latency: u.Latency, Status: u.Status,
	}})
	if err != nil {
		return fmt.Errorf("meter: settle %s: %w", holdID, err)
	}
	return nil
}

// Release frees the hold without charging.
func (m *Meter) Release(ctx context.Context, holdID string) error {
	if _, err := m.Ledger.Release(ctx, holdID); err != nil {
		return fmt.Errorf("meter: release %s: %w", holdID, err)
	}
	return nil
}

// Pricer adapts *pricing.Pricer to gateway.Pricer (which takes no
// context: metering never waits on the rate feed, see pricing.Pricer.Cost).
type Pricer struct{ P *pricing.Pricer }

var _ gateway.Pricer = Pricer{}

// Cost returns the credits of a call; see pricing.Pricer.Cost.
func (p Pricer) Cost(model string, in, cached, out int64) (tollgate.Credits, error) {
	return p.P.Cost(context.Background(), model, in, cached, out)
}
