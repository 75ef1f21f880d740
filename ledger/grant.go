package ledger

import (
	"context"
	"fmt"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// GrantRequest asks for a provisional allowance tied to a pending order.
type GrantRequest struct {
	// ID is the pending order's out_trade_no.
	ID      string
	Account tollgate.AccountID
	Cap     tollgate.Credits
	TTL     time.Duration
}

type issueGrantOp struct{ r GrantRequest }

func (o issueGrantOp) need(n *needs) {
	n.grantIDs[o.r.ID] = true
	n.liveOf[o.r.Account] = true
	n.accounts[o.r.Account] = true
}

func (o issueGrantOp) apply(s *state) (any, error) {
	const name = "ledger.IssueGrant"
	r := o.r
	if r.ID == "" || r.Account == "" || r.Cap <= 0 || r.TTL <= 0 {
		return nil, fail(tollgate.EINVALID, name, "grant id, account, a positive cap and a positive TTL are required")
	}
	if g, ok := s.grants[r.ID]; ok {
		if g.Account != r.Account || g.Cap != r.Cap {
			return nil, fail(tollgate.ECONFLICT, name, "grant %s exists with other terms", r.ID)
		}
		return g, nil
	}
	a, ok := s.accounts[r.Account]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", r.Account)
	}
	if a.Debt > 0 {
		return nil, fail(tollgate.EINSUFFICIENT, name, "account has %d credits of unpaid debt", a.Debt)
	}
	if g, ok := s.live[r.Account]; ok {
		return nil, fail(tollgate.ECONFLICT, name, "account %s already has live provisional grant %s", r.Account, g.ID)
	}
	g := &Grant{ID: r.ID, Account: r.Account, Cap: r.Cap, Status: GrantLive, CreatedAt: s.now,
		ExpiresAt: s.now.Add(r.TTL).Truncate(time.Microsecond)}
	s.addGrant(g)
	return g, nil
}

// IssueGrant creates a live provisional grant. At most one grant per account
// is live. Errors: EINVALID, ENOTFOUND (account), EINSUFFICIENT (unpaid
// debt), ECONFLICT (another live grant, or this id with other terms).
// Idempotent by ID.
func (s *Service) IssueGrant(ctx context.Context, r GrantRequest) (Grant, error) {
	v, err := s.durable(ctx, issueGrantOp{r})
	if err != nil {
		return Grant{}, err
	}
	return *v.(*Grant), nil
}

// confirm turns a live grant's usage into usage of lot l (then of the
// account's other lots in drawLots order; what they cannot cover becomes debt)
// and makes the grant's active holds lot-funded.
func (s *state) confirm(g *Grant, a *Account, l *Lot) {
	take := min(l.Left, g.Used)
	l.Left -= take
	l.Used += take
	a.Left -= take
	s.touchLot(l)
	a.Debt += s.drawLots(a, g.Used-take)
	a.Held += g.Held
	g.Held = 0
	g.Status, g.ResolvedAt, g.LotID = GrantConfirmed, s.now, l.ID
	if l.ID == 0 {
		s.grantLot[g] = l
	}
	delete(s.live, g.Account)
	s.touchAccount(a)
	s.touchGrant(g)
}

type confirmGrantOp struct {
	id    string
	lotID int64
}

func (o confirmGrantOp) need(n *needs) {
	n.grantIDs[o.id] = true
	n.lotIDs[o.lotID] = true
}

func (o confirmGrantOp) apply(s *state) (any, error) {
	const name = "ledger.ConfirmGrant"
	g, ok := s.grants[o.id]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "grant %s not found", o.id)
	}
	switch g.Status {
	case GrantConfirmed:
		if g.LotID == o.lotID {
			return g, nil
		}
		return nil, fail(tollgate.ECONFLICT, name, "grant %s was confirmed by lot %d", g.ID, g.LotID)
	case GrantRevoked:
		return nil, fail(tollgate.ECONFLICT, name, "grant %s was revoked", g.ID)
	}
	l, ok := s.lots[o.lotID]
	if !ok || l.Account != g.Account {
		return nil, fail(tollgate.ENOTFOUND, name, "lot %d of account %s not found", o.lotID, g.Account)
	}
	a, ok := s.accounts[g.Account]
	if !ok {
		return nil, fmt.Errorf("%s: grant %s: account %s missing", name, g.ID, g.Account)
	}
	s.confirm(g, a, l)
	return g, nil
}

// ConfirmGrant confirms a live grant because its payment was credited as
// lotID: what the grant used is drawn from that lot, and its active holds
// are from then on funded by the account's lots. Prefer Payment.GrantID,
// which does this in the crediting transaction. Errors: ENOTFOUND (grant,
// or lot of the grant's account), ECONFLICT (revoked, or confirmed by
// another lot). Idempotent.
func (s *Service) ConfirmGrant(ctx context.Context, grantID string, lotID int64) (Grant, error) {
	v, err := s.do(ctx, confirmGrantOp{grantID, lotID})
	if err != nil {
		return Grant{}, err
	}
	return *v.(*Grant), nil
}

type revokeGrantOp struct{ id string }

func (o revokeGrantOp) need(n *needs) { n.grantIDs[o.id] = true }

func (o revokeGrantOp) apply(s *state) (any, error) {
	const name = "ledger.RevokeGrant"
	g, ok := s.grants[o.id]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "grant %s not found", o.id)
	}
	switch g.Status {
	case GrantRevoked:
		return g, nil
	case GrantConfirmed:
		return nil, fail(tollgate.ECONFLICT, name, "grant %s was confirmed", g.ID)
	}
	s.revoke(g)
	return g, nil
}

// revoke ends a live grant: exactly what it used becomes debt. Its holds
// still active will add their cost to debt when they settle.
func (s *state) revoke(g *Grant) {
	a := s.accounts[g.Account]
	if !mutantRevokeForgives {
		a.Debt += g.Used
	}
	g.Status, g.ResolvedAt = GrantRevoked, s.now
	delete(s.live, g.Account)
	s.touchAccount(a)
	s.touchGrant(g)
	if g.Used > 0 {
		s.emit(webhook.GrantDebtRecorded, a.ID, s.balanceOf(a).View())
	}
}

// RevokeGrant ends a live grant whose payment failed, was closed or
// expired: exactly what it used becomes debt, which blocks spending until a
// payment covers it. Errors: ENOTFOUND, ECONFLICT (already confirmed).
// Idempotent.
func (s *Service) RevokeGrant(ctx context.Context, grantID string) (Grant, error) {
	v, err := s.do(ctx, revokeGrantOp{grantID})
	if err != nil {
		return Grant{}, err
	}
	return *v.(*Grant), nil
}

type expireGrantsOp struct {
	at    time.Time
	limit int
}

func (o expireGrantsOp) need(n *needs) { n.grantsAt, n.grantsMax = o.at, o.limit }

func (o expireGrantsOp) apply(s *state) (any, error) {
	for _, g := range s.expGrant {
		if g.Status == GrantLive {
			s.revoke(g)
		}
	}
	return len(s.expGrant), nil
}

// ExpireGrants revokes every live grant whose expiry is at or before now
// and returns how many. Safe to run from several processes at once.
func (s *Service) ExpireGrants(ctx context.Context, now time.Time) (int, error) {
	const chunk = 200
	now = now.UTC().Truncate(time.Microsecond)
	total := 0
	for {
		v, err := s.do(ctx, expireGrantsOp{now, chunk})
		if err != nil {
			return total, err
		}
		total += v.(int)
		if v.(int) < chunk {
			return total, nil
		}
	}
}

// Grant returns a grant as stored. Errors: ENOTFOUND.
func (s *Service) Grant(ctx context.Context, id string) (Grant, error) {
	var out []Grant
	if err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Grants(ctx, []string{id})
		return err
	}); err != nil {
		return Grant{}, err
	}
	if len(out) == 0 {
		return Grant{}, fail(tollgate.ENOTFOUND, "ledger.Grant", "grant %s not found", id)
	}
	return out[0], nil
}
