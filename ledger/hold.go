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
	// TTL is how long the hold lives unless settled, released or renewed
	// (Renew); after it, ExpireHolds frees its credit uncharged. A settle
	// after that still charges (see Settle).
	TTL time.Duration
}

// The rules of a hold's life (reserve, settle, release, expire, and the
// answers to repeats) are written once, below, for both places a hold's
// record lives: a row in the store, which every instance sees (PostgreSQL,
// and every hold funded by a provisional grant), or the memory of the
// store's single writer (Options.MemoryHolds, SQLite; see memhold.go),
// until its settle writes it. The place is a holdBook.

// holdBook is where the records of a Service's holds live: the rows loaded
// in a transaction (stateBook) or the single writer's memory (memBook).
type holdBook interface {
	// lookup returns the hold named id, if the book has it.
	lookup(id string) (*Hold, bool)
	// balance returns the account as last committed and the credits its
	// memory holds keep; ok is false when the book does not know it.
	balance(id tollgate.AccountID) (a Account, memHeld tollgate.Credits, ok bool)
	// keep records h, a new active hold that reserve admitted, as holding
	// h.Amount of what funds it, and returns the record.
	keep(h Hold) (*Hold, error)
}

// check refuses a ReserveRequest that is not well formed.
func (r ReserveRequest) check() error {
	if r.HoldID == "" || r.Account == "" || r.Amount <= 0 || r.TTL <= 0 {
		return fail(tollgate.EINVALID, "ledger.Reserve", "hold id, account, a positive amount and a positive TTL are required")
	}
	return nil
}

// repeat answers a Reserve whose hold id names h already: h itself when
// the terms are the same (idempotent), else a conflict.
func (r ReserveRequest) repeat(h *Hold) (*Hold, error) {
	if h.Account != r.Account || h.Amount != r.Amount || h.GrantID != r.GrantID {
		return nil, fail(tollgate.ECONFLICT, "ledger.Reserve", "hold %s exists with other terms", r.HoldID)
	}
	return h, nil
}

// spendable is what account a can hold or give back now: left − held −
// debt − what its memory holds keep (memHeld, 0 for stored holds).
func spendable(a Account, memHeld tollgate.Credits) tollgate.Credits {
	return a.Available() - memHeld
}

// admit is the availability rule every lot-funded hold passes: no unpaid
// debt, and spendable ≥ amount.
func admit(a Account, memHeld, amount tollgate.Credits) error {
	const name = "ledger.Reserve"
	if err := debtFree(a); err != nil {
		return err
	}
	avail := spendable(a, memHeld)
	check := avail
	if mutantHeldAvailable {
		check += a.Held + memHeld
	}
	if check < amount {
		return fail(tollgate.EINSUFFICIENT, name, "need %d credits, %d available", amount, avail)
	}
	return nil
}

// debtFree refuses a new hold of an account with unpaid debt.
func debtFree(a Account) error {
	if a.Debt > 0 {
		return fail(tollgate.EINSUFFICIENT, "ledger.Reserve", "account has %d credits of unpaid debt", a.Debt)
	}
	return nil
}

// reserve is Reserve's rule, wherever the hold's record lives: a repeat
// answers as the hold found; a new hold needs a known account without
// debt, and available credit (lot-funded) or the grant's room (checked by
// the book that keeps it).
func reserve(b holdBook, r ReserveRequest, now time.Time) (*Hold, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if h, ok := b.lookup(r.HoldID); ok {
		return r.repeat(h)
	}
	a, memHeld, ok := b.balance(r.Account)
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, "ledger.Reserve", "account %s not found", r.Account)
	}
	if r.GrantID != "" {
		if err := debtFree(a); err != nil {
			return nil, err
		}
	} else if err := admit(a, memHeld, r.Amount); err != nil {
		return nil, err
	}
	return b.keep(Hold{ID: r.HoldID, Account: r.Account, GrantID: r.GrantID, Amount: r.Amount,
		Status: HoldActive, CreatedAt: now, ExpiresAt: now.Add(r.TTL).Truncate(time.Microsecond)})
}

// settleStage answers a Settle at cost of hold h by h's status alone:
// repeat when h is settled at that cost already (the answer is h), a
// conflict when it was settled otherwise or released; neither when h is
// active or expired. An expired hold's call was answered all the same (a
// stream outlived it): its settle charges, late (settleLate), as it would
// have on time. Only a release says the call cost nothing.
func settleStage(h *Hold, cost tollgate.Credits) (repeat bool, err error) {
	switch {
	case h.Status == HoldSettled && h.Cost == cost:
		return true, nil
	case h.Status == HoldSettled || h.Status == HoldReleased:
		return false, fail(tollgate.ECONFLICT, "ledger.Settle", "hold %s is already %s", h.ID, h.Status)
	}
	return false, nil
}

// renewHold applies Renew's rule to h: an active hold is kept at least
// ttl from now, never shortened (a repeat changes nothing: idempotent); a
// hold that ended is refused, whatever ended it. It reports whether h
// changed, and changes nothing when it refuses.
func renewHold(h *Hold, ttl time.Duration, now time.Time) (changed bool, err error) {
	const name = "ledger.Renew"
	if ttl <= 0 {
		return false, fail(tollgate.EINVALID, name, "a positive TTL is required")
	}
	if h.Status != HoldActive {
		return false, fail(tollgate.ECONFLICT, name, "hold %s is already %s", h.ID, h.Status)
	}
	until := now.Add(ttl).Truncate(time.Microsecond)
	if !until.After(h.ExpiresAt) {
		return false, nil
	}
	h.ExpiresAt = until
	return true, nil
}

// releaseStage answers a Release of hold h by h's status alone: repeat
// when h was released or expired (the answer is h), a conflict when it
// was settled; neither when h is active.
func releaseStage(h *Hold) (repeat bool, err error) {
	switch h.Status {
	case HoldReleased, HoldExpired:
		return true, nil
	case HoldSettled:
		return false, fail(tollgate.ECONFLICT, "ledger.Release", "hold %s is already settled", h.ID)
	}
	return false, nil
}

// due reports whether h is active and expired at now.
func (h *Hold) due(now time.Time) bool {
	return h.Status == HoldActive && !now.Before(h.ExpiresAt) && !(mutantLateHoldExpiry && now.Equal(h.ExpiresAt))
}

// stateBook keeps holds as rows of the transaction's state.
type stateBook struct{ s *state }

func (b stateBook) lookup(id string) (*Hold, bool) {
	h, ok := b.s.holds[id]
	return h, ok
}

func (b stateBook) balance(id tollgate.AccountID) (Account, tollgate.Credits, bool) {
	a, ok := b.s.accounts[id]
	if !ok {
		return Account{}, 0, false
	}
	return *a, b.s.memHeld[id], true
}

// keep adds the hold's row, holding its amount on the account, or on its
// provisional grant when the grant is live and has room.
func (b stateBook) keep(h Hold) (*Hold, error) {
	const name = "ledger.Reserve"
	s := b.s
	if h.GrantID == "" {
		a := s.accounts[h.Account]
		a.Held += h.Amount
		s.touchAccount(a)
		s.addHold(&h)
		return &h, nil
	}
	g, ok := s.grants[h.GrantID]
	if !ok || g.Account != h.Account {
		return nil, fail(tollgate.ENOTFOUND, name, "provisional grant %s not found", h.GrantID)
	}
	if g.Status != GrantLive || (!s.now.Before(g.ExpiresAt) && !(mutantLateGrantExpiry && s.now.Equal(g.ExpiresAt))) {
		return nil, fail(tollgate.ECONFLICT, name, "provisional grant %s is no longer live", h.GrantID)
	}
	if room := g.Cap - g.Used - g.Held; room < h.Amount && !mutantGrantOverCap {
		return nil, fail(tollgate.EINSUFFICIENT, name, "need %d credits, provisional allowance has %d", h.Amount, room)
	}
	g.Held += h.Amount
	s.touchGrant(g)
	s.addHold(&h)
	return &h, nil
}

type reserveOp struct{ r ReserveRequest }

func (o reserveOp) need(n *needs) {
	n.holdIDs[o.r.HoldID] = true
	n.accounts[o.r.Account] = true
	if o.r.GrantID != "" {
		n.grantIDs[o.r.GrantID] = true
	}
}

// reserved is a reserveOp's answer: the hold, and whether this op made it
// (rather than answering a repeat), which is what undoing it needs.
type reserved struct {
	hold  *Hold
	fresh bool
}

func (o reserveOp) apply(s *state) (any, error) {
	_, existed := stateBook{s}.lookup(o.r.HoldID)
	h, err := reserve(stateBook{s}, o.r, s.now)
	if err != nil {
		return nil, err
	}
	return reserved{h, !existed}, nil
}

// undo is what takes back a committed reserve whose caller stopped
// waiting: the release of the hold it made (nothing for a repeat, whose
// hold belongs to the first caller).
func (o reserveOp) undo(v any) op {
	if !v.(reserved).fresh {
		return nil
	}
	return releaseOp{o.r.HoldID}
}

// Reserve holds r.Amount credits before an upstream call, in one
// conditional change: available credit (or the grant's room) must cover it.
// Errors: EINVALID, ENOTFOUND (account or grant), EINSUFFICIENT (not enough
// credit, or unpaid debt), ECONFLICT (hold id reused with other terms, grant
// not live). Idempotent by HoldID: a repeat answers with the hold as it is
// now, released or expired included. Group-committed. When ctx ends while
// the reserve waits for its commit, it is withdrawn, or if already
// committed, released: a caller that stops waiting leaves no hold behind
// (a retry must use a new hold id).
func (s *Service) Reserve(ctx context.Context, r ReserveRequest) (Hold, error) {
	if s.mem != nil && r.GrantID == "" {
		return s.reserveMem(ctx, r)
	}
	v, err := s.batched(ctx, reserveOp{r})
	if err != nil {
		return Hold{}, err
	}
	return *v.(reserved).hold, nil
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

type settleOp struct {
	r SettleRequest
	// mem, when its ID is set, is the memory hold the settle is for: not
	// in the store, unless a settle earlier in the batch wrote it; an
	// active one is written by this settle, in its transaction. (A value,
	// not a pointer: one allocation per op, as for a stored hold.)
	mem Hold
}

func (o settleOp) requestID() string {
	if o.r.Usage.RequestID != "" {
		return o.r.Usage.RequestID
	}
	return o.r.HoldID
}

// need does not look an active memory hold up in the store: it is not
// there until its settle writes it (a settle queued behind that one has no
// mem, see settleFor). An expired one is looked up, in case a late settle
// wrote it already.
func (o settleOp) need(n *needs) {
	n.usageIDs[o.requestID()] = true
	if o.mem.ID == "" || o.mem.Status != HoldActive {
		n.holdIDs[o.r.HoldID] = true
	}
	if o.mem.ID != "" {
		n.accounts[o.mem.Account], n.spendable[o.mem.Account] = true, true
	}
}

func (o settleOp) apply(s *state) (any, error) {
	const name = "ledger.Settle"
	if o.r.HoldID == "" || o.r.Cost < 0 {
		return nil, fail(tollgate.EINVALID, name, "hold id and a cost ≥ 0 are required")
	}
	if o.r.Usage.negativeCount() {
		return nil, fail(tollgate.EINVALID, name, "token counts must not be negative")
	}
	if len(o.r.Usage.UpstreamID) > MaxUpstreamID {
		return nil, fail(tollgate.EINVALID, name, "an upstream id is at most %d bytes", MaxUpstreamID)
	}
	h, stored := s.holds[o.r.HoldID]
	if !stored && o.mem.ID != "" {
		c := o.mem
		h = &c
	}
	if h == nil {
		return nil, fail(tollgate.ENOTFOUND, name, "hold %s not found", o.r.HoldID)
	}
	if repeat, err := settleStage(h, o.r.Cost); err != nil {
		return nil, err
	} else if repeat {
		return h, nil
	}
	if err := o.refusal(s, h); err != nil {
		return nil, err
	}
	a, ok := s.accounts[h.Account]
	if !ok {
		return nil, fmt.Errorf("%s: hold %s: account %s missing", name, h.ID, h.Account)
	}
	late := h.Status == HoldExpired
	if late && s.lateBlind(h, o.r.Cost) {
		return nil, errNeedsMemLock
	}
	if !stored {
		// A memory hold becomes a row, and is settled with it: nothing
		// is written when the settle is refused, above. An active one
		// holds its amount until then.
		if !late {
			a.Held += h.Amount
			s.touchAccount(a)
		}
		s.addHold(h)
	}
	if late {
		s.settleLate(h, a, o.r.Cost)
	} else {
		s.resolve(h, a, HoldSettled, o.r.Cost)
	}
	u := o.r.Usage
	u.RequestID, u.Account, u.Credits = o.requestID(), h.Account, o.r.Cost
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now
	}
	u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
	s.addUsage(u)
	return h, nil
}

// refusal is why the active or expired hold h cannot be settled at o's
// cost; nil when it can. Age is never a reason: an answered call is
// charged however long it took.
func (o settleOp) refusal(s *state, h *Hold) error {
	const name = "ledger.Settle"
	switch {
	case o.r.Cost > h.Amount:
		return fail(tollgate.EINVALID, name, "cost %d exceeds the %d credits held", o.r.Cost, h.Amount)
	case s.usage[o.requestID()]:
		return fail(tollgate.ECONFLICT, name, "usage for request %s is already recorded", o.requestID())
	}
	return nil
}

// resolve ends an active hold: it frees what the hold reserved and charges
// cost to whatever funds the hold — the live grant, a revoked grant (as
// debt) or the account's lots (adjustment lots, then paid lots oldest first; what they cannot cover becomes
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

// settleLate charges cost for hold h, which expired (ExpireHolds freed its
// credit uncharged) though its call was answered: a stream that outlived
// it. What funded h pays what it can now — a live grant the room it has
// left, the account's lots (no grant, or a confirmed one) what is
// spendable — and the rest becomes debt, as a revoked grant's use does;
// a revoked grant's hold is all debt. So a late charge never takes credit
// that another active hold or a memory hold keeps, and it is never lost.
func (s *state) settleLate(h *Hold, a *Account, cost tollgate.Credits) {
	rest := cost
	switch g := s.grants[h.GrantID]; {
	case g != nil && g.Status == GrantLive:
		take := min(rest, max(0, g.Cap-g.Used-g.Held))
		g.Used += take
		rest -= take
		s.touchGrant(g)
	case g == nil || g.Status == GrantConfirmed:
		take := min(rest, max(0, s.available(a)))
		rest -= take
		s.drawLots(a, take)
	}
	a.Debt += rest
	s.touchAccount(a)
	h.Status, h.Cost, h.ResolvedAt = HoldSettled, cost, s.now
	s.touchHold(h)
}

// lateBlind reports whether a late settle of h at cost could draw the
// account's lots while this transaction cannot see its memory holds (a
// metering batch with MemoryHolds on): then it must run under the memory
// lock (errNeedsMemLock), or it could take credit a memory hold keeps.
func (s *state) lateBlind(h *Hold, cost tollgate.Credits) bool {
	if !s.memBlind || cost == 0 {
		return false
	}
	g := s.grants[h.GrantID]
	return g == nil || g.Status == GrantConfirmed
}

// Settle charges the real cost (≤ the amount held) of a call, frees the
// rest of the hold and writes the usage record, in one transaction. A hold
// is never too old to settle: one that expired is charged late (what funds
// it pays what it can spare now, the rest becomes debt; see settleLate).
// Errors: EINVALID (cost < 0 or above the hold, a negative token count),
// ENOTFOUND, ECONFLICT (hold released, or settled with another cost; usage
// request id reused). Idempotent: settling a settled hold with the same
// cost returns it unchanged. Group-committed. A settle is revenue: it is
// queued and committed even when ctx has ended, before or while it waits;
// only the wait for its answer stops with ctx.
func (s *Service) Settle(ctx context.Context, r SettleRequest) (Hold, error) {
	v, err := s.enqueue(ctx, &pending{op: s.settleFor(r), done: make(chan result, 1), keep: true})
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
	if repeat, err := releaseStage(h); err != nil {
		return nil, err
	} else if repeat {
		return h, nil
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
// Group-committed; like Settle, committed even when ctx ends first, so
// that no hold is left to lock credit until it expires.
func (s *Service) Release(ctx context.Context, holdID string) (Hold, error) {
	if h, ok, err := s.releaseMem(holdID); ok {
		return h, err
	}
	v, err := s.enqueue(ctx, &pending{op: releaseOp{holdID}, done: make(chan result, 1), keep: true})
	if err != nil {
		return Hold{}, err
	}
	return *v.(*Hold), nil
}

type renewOp struct {
	id  string
	ttl time.Duration
}

func (o renewOp) need(n *needs) { n.holdIDs[o.id] = true }

func (o renewOp) apply(s *state) (any, error) {
	h, ok := s.holds[o.id]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, "ledger.Renew", "hold %s not found", o.id)
	}
	changed, err := renewHold(h, o.ttl, s.now)
	if err != nil {
		return nil, err
	}
	if changed {
		s.touchHold(h)
	}
	return h, nil
}

// Renew keeps an active hold alive while its call is: it will not expire
// before ttl from now (a later expiry is kept). The gateway renews the hold
// of a request in flight periodically, so that a hold lives as long as its
// request, however long a stream runs. It also renews an active hold whose
// expiry passed but that the sweeper has not reached. Errors: EINVALID
// (ttl ≤ 0), ENOTFOUND, ECONFLICT (the hold was settled, released or
// expired: nothing to keep alive; a late settle still charges an expired
// one). Idempotent. Group-committed (a memory hold is renewed in memory);
// withdrawn when ctx ends before it commits.
func (s *Service) Renew(ctx context.Context, holdID string, ttl time.Duration) (Hold, error) {
	if h, ok, err := s.renewMem(holdID, ttl); ok {
		return h, err
	}
	v, err := s.batched(ctx, renewOp{holdID, ttl})
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
		if !h.due(o.at) {
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
