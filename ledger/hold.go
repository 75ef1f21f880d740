package ledger

import (
	"context"
	"fmt"
	"time"

	"tollgate"
)

// ReserveRequest asks to hold the worst-case cost of one upstream call.
type ReserveRequest struct {
	// HoldID identifies the hold; a repeat with the same id and the same
	// fields returns the existing hold (idempotent).
	HoldID  string
	Account tollgate.AccountID
	// GrantID, if set, funds the hold from that live provisional grant
	// instead of the account's lots.
	GrantID string
	Amount  tollgate.Credits
	// TTL is how long the hold lives unless settled or released; after
	// it, ExpireHolds releases it and Settle refuses it.
	TTL time.Duration
}

type reserveOp struct{ r ReserveRequest }

func (o reserveOp) need(n *needs) {
	n.holdIDs[o.r.HoldID] = true
	n.accounts[o.r.Account] = true
	if o.r.GrantID != "" {
		n.grantIDs[o.r.GrantID] = true
	}
}

func (o reserveOp) apply(s *state) (any, error) {
	const name = "ledger.Reserve"
	r := o.r
	if r.HoldID == "" || r.Account == "" || r.Amount <= 0 || r.TTL <= 0 {
		return nil, fail(tollgate.EINVALID, name, "hold id, account, a positive amount and a positive TTL are required")
	}
	if h, ok := s.holds[r.HoldID]; ok {
		if h.Account != r.Account || h.Amount != r.Amount || h.GrantID != r.GrantID {
			return nil, fail(tollgate.ECONFLICT, name, "hold %s exists with other terms", r.HoldID)
		}
		return h, nil
	}
	a, ok := s.accounts[r.Account]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", r.Account)
	}
	if a.Debt > 0 {
		return nil, fail(tollgate.EINSUFFICIENT, name, "account has %d credits of unpaid debt", a.Debt)
	}
	h := &Hold{ID: r.HoldID, Account: r.Account, GrantID: r.GrantID, Amount: r.Amount,
		Status: HoldActive, CreatedAt: s.now, ExpiresAt: s.now.Add(r.TTL).Truncate(time.Microsecond)}
	if r.GrantID == "" {
		avail := s.available(a)
		if mutantHeldAvailable {
			avail += a.Held
		}
		if avail < r.Amount {
			return nil, fail(tollgate.EINSUFFICIENT, name, "need %d credits, %d available", r.Amount, s.available(a))
		}
		a.Held += r.Amount
		s.touchAccount(a)
		s.addHold(h)
		return h, nil
	}
	g, ok := s.grants[r.GrantID]
	if !ok || g.Account != r.Account {
		return nil, fail(tollgate.ENOTFOUND, name, "provisional grant %s not found", r.GrantID)
	}
	if g.Status != GrantLive || !s.now.Before(g.ExpiresAt) {
		return nil, fail(tollgate.ECONFLICT, name, "provisional grant %s is no longer live", r.GrantID)
	}
	if room := g.Cap - g.Used - g.Held; room < r.Amount {
		return nil, fail(tollgate.EINSUFFICIENT, name, "need %d credits, provisional allowance has %d", r.Amount, room)
	}
	g.Held += r.Amount
	s.touchGrant(g)
	s.addHold(h)
	return h, nil
}

// Reserve holds r.Amount credits before an upstream call, in one
// conditional change: available credit (or the grant's room) must cover it.
// Errors: EINVALID, ENOTFOUND (account or grant), EINSUFFICIENT (not enough
// credit, or unpaid debt), ECONFLICT (hold id reused with other terms, grant
// not live). Idempotent by HoldID. Group-committed.
func (s *Service) Reserve(ctx context.Context, r ReserveRequest) (Hold, error) {
	if s.mem != nil && r.GrantID == "" {
		return s.reserveMem(ctx, r)
	}
	v, err := s.batched(ctx, reserveOp{r})
	if err != nil {
		return Hold{}, err
	}
	return *v.(*Hold), nil
}

// SettleRequest settles a hold with the real cost of the call.
type SettleRequest struct {
	HoldID string
	Cost   tollgate.Credits
	// Usage is the request's usage record. Account and Credits are set
	// from the hold and Cost; RequestID defaults to HoldID; CreatedAt to
	// now.
	Usage Usage
}

type settleOp struct{ r SettleRequest }

func (o settleOp) requestID() string {
	if o.r.Usage.RequestID != "" {
		return o.r.Usage.RequestID
	}
	return o.r.HoldID
}

func (o settleOp) need(n *needs) {
	n.holdIDs[o.r.HoldID] = true
	n.usageIDs[o.requestID()] = true
}

func (o settleOp) apply(s *state) (any, error) {
	const name = "ledger.Settle"
	if o.r.HoldID == "" || o.r.Cost < 0 {
		return nil, fail(tollgate.EINVALID, name, "hold id and a cost ≥ 0 are required")
	}
	if o.r.Usage.negativeCount() {
		return nil, fail(tollgate.EINVALID, name, "token counts must not be negative")
	}
	h, ok := s.holds[o.r.HoldID]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "hold %s not found", o.r.HoldID)
	}
	switch {
	case h.Status == HoldSettled && h.Cost == o.r.Cost:
		return h, nil
	case h.Status != HoldActive:
		return nil, fail(tollgate.ECONFLICT, name, "hold %s is already %s", h.ID, h.Status)
	}
	if err := o.refusal(s, h); err != nil {
		return nil, err
	}
	a, ok := s.accounts[h.Account]
	if !ok {
		return nil, fmt.Errorf("%s: hold %s: account %s missing", name, h.ID, h.Account)
	}
	s.resolve(h, a, HoldSettled, o.r.Cost)
	u := o.r.Usage
	u.RequestID, u.Account, u.Credits = o.requestID(), h.Account, o.r.Cost
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now
	}
	u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
	s.addUsage(u)
	return h, nil
}

// refusal is why the active hold h cannot be settled now at o's cost; nil
// when it can.
func (o settleOp) refusal(s *state, h *Hold) error {
	const name = "ledger.Settle"
	switch {
	case o.r.Cost > h.Amount:
		return fail(tollgate.EINVALID, name, "cost %d exceeds the %d credits held", o.r.Cost, h.Amount)
	case !s.now.Before(h.ExpiresAt):
		return fail(tollgate.ECONFLICT, name, "hold %s expired at %s", h.ID, h.ExpiresAt.Format(time.RFC3339))
	case s.usage[o.requestID()]:
		return fail(tollgate.ECONFLICT, name, "usage for request %s is already recorded", o.requestID())
	}
	return nil
}

// resolve ends an active hold: it frees what the hold reserved and charges
// cost to whatever funds the hold — the live grant, a revoked grant (as
// debt) or the account's lots (oldest first; what they cannot cover becomes
// debt, which only happens after a confirmed grant's holds outgrow its lot).
func (s *state) resolve(h *Hold, a *Account, status HoldStatus, cost tollgate.Credits) {
	g := s.grants[h.GrantID]
	if g != nil && g.Status != GrantConfirmed {
		g.Held -= h.Amount
		g.Used += cost
		if g.Status == GrantRevoked {
			a.Debt += cost
			s.touchAccount(a)
		}
		s.touchGrant(g)
	} else {
		a.Held -= h.Amount
		a.Debt += s.drawLots(a, cost)
		s.touchAccount(a)
	}
	h.Status, h.Cost, h.ResolvedAt = status, cost, s.now
	s.touchHold(h)
}

// Settle charges the real cost (≤ the amount held) of a call, frees the
// rest of the hold and writes the usage record, in one transaction. Errors:
// EINVALID (cost < 0 or above the hold, a negative token count), ENOTFOUND,
// ECONFLICT (hold already released, expired or settled with another cost;
// expired by time; usage request id reused). Idempotent: settling a settled hold with the same cost
// returns it unchanged. Group-committed.
func (s *Service) Settle(ctx context.Context, r SettleRequest) (Hold, error) {
	v, err := s.batched(ctx, s.settleFor(r))
	if err != nil {
		return Hold{}, err
	}
	return *v.(*Hold), nil
}

// SettleLater hands r to the group committer like Settle and returns
// without waiting for the commit; done, if not nil, gets the outcome (from
// the committer's goroutine: it must not block). A caller that answers its
// client before the settle commits uses it: a crash in between leaves the
// hold to expire, uncharged. Sync, and Balance, wait for queued settles.
// It returns an error only when the Service is closed.
func (s *Service) SettleLater(r SettleRequest, done func(Hold, error)) error {
	p := &pending{op: s.settleFor(r), then: func(res result) {
		if done == nil {
			return
		}
		if res.err != nil {
			done(Hold{}, res.err)
			return
		}
		done(*res.val.(*Hold), nil)
	}}
	return s.hand(context.Background(), p)
}

type releaseOp struct{ id string }

func (o releaseOp) need(n *needs) { n.holdIDs[o.id] = true }

func (o releaseOp) apply(s *state) (any, error) {
	const name = "ledger.Release"
	h, ok := s.holds[o.id]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "hold %s not found", o.id)
	}
	switch h.Status {
	case HoldReleased, HoldExpired:
		return h, nil
	case HoldSettled:
		return nil, fail(tollgate.ECONFLICT, name, "hold %s is already settled", h.ID)
	}
	a, ok := s.accounts[h.Account]
	if !ok {
		return nil, fmt.Errorf("%s: hold %s: account %s missing", name, h.ID, h.Account)
	}
	s.resolve(h, a, HoldReleased, 0)
	return h, nil
}

// Release frees a hold without charging anything (the call failed before
// costing). Errors: ENOTFOUND, ECONFLICT (already settled). Idempotent:
// releasing a released or expired hold returns it unchanged.
// Group-committed.
func (s *Service) Release(ctx context.Context, holdID string) (Hold, error) {
	if h, ok, err := s.releaseMem(holdID); ok {
		return h, err
	}
	v, err := s.batched(ctx, releaseOp{holdID})
	if err != nil {
		return Hold{}, err
	}
	return *v.(*Hold), nil
}

type expireOp struct {
	at    time.Time
	limit int
}

func (o expireOp) need(n *needs) { n.expiredAt, n.expireMax = o.at, o.limit }

func (o expireOp) apply(s *state) (any, error) {
	for _, h := range s.expired {
		if h.Status != HoldActive {
			continue
		}
		s.resolve(h, s.accounts[h.Account], HoldExpired, 0)
	}
	return len(s.expired), nil
}

// ExpireHolds releases every active hold whose expiry is at or before now,
// marking it expired, and returns how many it expired. The sweeper calls it
// periodically; it is safe to run from several processes at once.
func (s *Service) ExpireHolds(ctx context.Context, now time.Time) (int, error) {
	const chunk = 500
	now = now.UTC().Truncate(time.Microsecond)
	total := s.expireMem(now)
	for {
		v, err := s.do(ctx, expireOp{now, chunk})
		if err != nil {
			return total, err
		}
		n := v.(int)
		total += n
		if n < chunk {
			return total, nil
		}
	}
}

// Hold returns a hold as stored. Errors: ENOTFOUND.
func (s *Service) Hold(ctx context.Context, id string) (Hold, error) {
	if h, ok := s.memHold(id); ok {
		return h, nil
	}
	var out []Hold
	if err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Holds(ctx, []string{id})
		return err
	}); err != nil {
		return Hold{}, err
	}
	if len(out) == 0 {
		return Hold{}, fail(tollgate.ENOTFOUND, "ledger.Hold", "hold %s not found", id)
	}
	return out[0], nil
}
