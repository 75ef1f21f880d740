package metering

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/ledger"
	"tollgate/pricing"
)

// DefaultHoldTTL is how long a gateway hold lives unless renewed: after it,
// a hold nobody renews, settles or releases (a crashed request) is
// released by the sweeper.
const DefaultHoldTTL = 10 * time.Minute

// Meter is the gateway.Meter over the ledger: Reserve is a ledger hold
// (funded by the hold's provisional grant, gateway.Hold.GrantID, when the
// caller authenticated with an access token), Settle charges the real
// cost and writes the usage record in the same transaction, Release frees
// the hold. It is a gateway.Renewer: the gateway renews the hold of a
// request in flight every HoldTTL/3, so a hold lives as long as its
// request; and a settle after the hold expired still charges (ledger
// Settle).
type Meter struct {
	Ledger *ledger.Service
	// HoldTTL is how long a hold lives without renewal; DefaultHoldTTL
	// when zero.
	HoldTTL time.Duration
	// SettleLater hands each settle to the ledger's committer and lets
	// the answer go to the client without waiting for its commit (the
	// commit then overlaps the next request). The ledger's reads wait for
	// the settles queued in this process, and Close commits them; another
	// instance sharing the database sees a charge once its batch commits
	// (within the ledger's LaterWindow and a transaction). A crash between
	// the answer and the commit leaves that request uncharged (its hold
	// expires). Failures are logged to Logger.
	SettleLater bool
	Logger      *slog.Logger
	// Clock times the retries of settles the store failed to commit
	// (retry.go); tollgate.SystemClock when nil.
	Clock tollgate.Clock
	// MaxRetries bounds the settles kept for retry; DefaultMaxRetries
	// when zero.
	MaxRetries int

	retry retries
}

var (
	_ gateway.Meter   = (*Meter)(nil)
	_ gateway.Renewer = (*Meter)(nil)
)

func (m *Meter) ttl() time.Duration {
	if m.HoldTTL <= 0 {
		return DefaultHoldTTL
	}
	return m.HoldTTL
}

// Reserve holds h.Credits. The hold id is made here, never taken from the
// client's request id, so a client cannot make two requests share a hold.
// Errors: EINSUFFICIENT; EUNAVAILABLE while settles wait for the store
// (Ready) or when the store fails the hold itself; and the ledger's.
func (m *Meter) Reserve(ctx context.Context, h gateway.Hold) (string, error) {
	if err := m.refuseWhileWaiting(ctx); err != nil {
		return "", err
	}
	id, err := newHoldID(time.Now())
	if err != nil {
		return "", err
	}
	_, err = m.Ledger.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: h.Account, GrantID: h.GrantID, Amount: h.Credits, TTL: m.ttl()})
	if storeFailed(err) {
		return "", unrecordable(err)
	}
	if err != nil {
		return "", fmt.Errorf("meter: reserve: %w", err)
	}
	return id, nil
}

// newHoldID returns "hold_", the time in microseconds (16 hex digits,
// so ids sort by creation) and 12 random bytes. Ids that grow with time
// land at the end of the holds and usage tables' key order: a batch of
// settles then writes a few pages at the end of each, not one random page
// per row.
func newHoldID(now time.Time) (string, error) {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMicro()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("meter: hold id: %w", err)
	}
	return "hold_" + hex.EncodeToString(b[:]), nil
}

// Settle charges u.Credits and records the usage under the request's id
// (u.RequestID, the id of the gateway's answer; the hold's id when it has
// none), with the upstream's own id. A settle the store fails to commit is
// kept and retried until it commits (retry.go); Settle then returns nil,
// since the charge is in hand.
func (m *Meter) Settle(ctx context.Context, holdID string, u gateway.Usage) error {
	reqID := u.RequestID
	if reqID == "" {
		reqID = holdID
	}
	r := ledger.SettleRequest{HoldID: holdID, Cost: u.Credits, Usage: ledger.Usage{
		RequestID: reqID, Account: u.Account, KeyID: u.KeyID, Model: u.Model, Provider: u.Provider,
		Deployment: u.Deployment, UpstreamID: u.UpstreamID, InputTokens: u.InputTokens, CachedTokens: u.CachedInputTokens,
		CacheWriteTokens: u.CacheWriteTokens, CacheWrite1hTokens: u.CacheWrite1hTokens,
		OutputTokens: u.OutputTokens, Units: u.Units, Latency: u.Latency, Status: u.Status,
	}}
	w := &waiting{r: r, requestID: u.RequestID}
	var err error
	if m.SettleLater {
		err = m.Ledger.SettleLater(r, func(_ ledger.Hold, err error) {
			if err != nil && !m.keep(w, err) {
				m.logSettle("settle hold", w, err)
			}
		})
	} else if _, err = m.Ledger.Settle(ctx, r); m.keep(w, err) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("meter: settle %s: %w", holdID, err)
	}
	return nil
}

// RenewEvery is a third of HoldTTL: two renewals may fail (a busy store)
// before the hold expires.
func (m *Meter) RenewEvery() time.Duration { return m.ttl() / 3 }

// Renew keeps the hold alive for another HoldTTL. Errors: ECONFLICT (the
// hold ended), ENOTFOUND, and the ledger's.
func (m *Meter) Renew(ctx context.Context, holdID string) error {
	if _, err := m.Ledger.Renew(ctx, holdID, m.ttl()); err != nil {
		return fmt.Errorf("meter: renew %s: %w", holdID, err)
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

var (
	_ gateway.Pricer      = Pricer{}
	_ gateway.TokenPricer = Pricer{}
)

// Cost returns the credits of a call; see pricing.Pricer.Cost.
func (p Pricer) Cost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.P.Cost(context.Background(), model, t)
}

// TokenCost returns what the tokens alone cost, without the model's
// per-call fee; see pricing.Pricer.TokenCost.
func (p Pricer) TokenCost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	return p.P.TokenCost(context.Background(), model, t)
}
