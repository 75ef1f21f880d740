package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tollgate"
)

// Memory holds (Options.MemoryHolds).
//
// A lot-funded hold only guards the account's balance until its request
// ends; written to the store it costs a transaction of its own before the
// upstream call. When this Service is the store's one writer it knows
// every account's balance as last committed, so the same conditional
// change can be made in memory:
//
//   - Reserve checks left − held − debt − (memory holds) ≥ amount under a
//     mutex and records the hold in memory. The first Reserve of an account
//     reads it through the committer.
//   - Settle writes the hold and its settle in one transaction (memSettleOp);
//     after that transaction commits, the account's new balance is published
//     and the memory hold dropped under the same lock, so no reader ever
//     counts the hold twice or not at all. A failed settle keeps the hold,
//     as a stored hold would stay active.
//   - Release and expiry only drop the memory hold: nothing was charged.
//   - Every other change of an account (payments, refunds, grants) runs in
//     the committer, in queue order, with the lock held from its reads to
//     its publication; rules that look at what is free to take (a refund)
//     count the memory holds as held.
//
// A crash loses the memory holds, as if the crashed requests' holds had
// expired: nothing charged for them. ledger.Audit, which reads the store,
// sees only settled memory holds.
type memHolds struct {
	mu    sync.Mutex
	accts map[tollgate.AccountID]*memAccount
	holds map[string]*memHold
	// gone keeps the memory holds that ended (released and expired ones
	// are never stored), so that repeating a Reserve, Release or Settle of
	// one answers as for a stored hold; the oldest are forgotten past
	// maxGone (a Reserve of a forgotten settled hold's id makes a new hold,
	// whose settle then finds the stored one: charged once either way).
	gone  map[string]Hold
	order []string
}

// maxGone bounds the released and expired memory holds remembered.
const maxGone = 20_000

// memAccount is an account's balance as last committed, and the sum of its
// memory holds.
type memAccount struct {
	left, held, debt tollgate.Credits
	memHeld          tollgate.Credits
}

// available is what the account can spend now: Account.Available less
// its memory holds.
func (a *memAccount) available() tollgate.Credits {
	return Account{Left: a.left, Held: a.held, Debt: a.debt}.Available() - a.memHeld
}

type memHold struct {
	h        Hold
	settling bool // a settle is queued; Release refuses, expiry skips it
}

func newMemHolds() *memHolds {
	return &memHolds{accts: map[tollgate.AccountID]*memAccount{}, holds: map[string]*memHold{}, gone: map[string]Hold{}}
}

// bury ends memory hold id with status: it is dropped and remembered.
func (m *memHolds) bury(id string, status HoldStatus, at time.Time) Hold {
	h := m.holds[id].h
	h.Status, h.ResolvedAt = status, at
	m.remember(h)
	return h
}

// remember drops memory hold h.ID and keeps h, its end, in gone.
func (m *memHolds) remember(h Hold) {
	m.drop(h.ID)
	if len(m.order) >= maxGone {
		delete(m.gone, m.order[0])
		m.order = m.order[1:]
	}
	m.gone[h.ID] = h
	m.order = append(m.order, h.ID)
}

type memLockedKey struct{}

// locked reports whether ctx runs under m.mu (an alone op in the committer).
func locked(ctx context.Context) bool { return ctx.Value(memLockedKey{}) != nil }

// heldOf returns the memory-held credits of the loaded accounts, for rules
// that must leave them alone. Only an op that runs under the lock needs
// them (no other memory hold can start meanwhile); nil otherwise.
func (m *memHolds) heldOf(ctx context.Context, accounts map[tollgate.AccountID]*Account) map[tollgate.AccountID]tollgate.Credits {
	if m == nil || !locked(ctx) {
		return nil
	}
	out := make(map[tollgate.AccountID]tollgate.Credits, len(accounts))
	for id := range accounts {
		if a := m.accts[id]; a != nil {
			out[id] = a.memHeld
		}
	}
	return out
}

// committedHook is an op that changes memory holds when its transaction
// commits, under the lock the new balances are published with.
type committedHook interface {
	committed(m *memHolds, r result)
}

// published records the balances a committed transaction left and runs
// its ops' hooks, atomically for readers of m.
func (m *memHolds) published(ctx context.Context, st *state, ops []op, results []result) {
	if m == nil {
		return
	}
	if !locked(ctx) {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	for id, a := range st.accounts {
		ma := m.accts[id]
		if ma == nil {
			ma = &memAccount{}
			m.accts[id] = ma
		}
		ma.left, ma.held, ma.debt = a.Left, a.Held, a.Debt
	}
	for i, o := range ops {
		if h, ok := o.(committedHook); ok {
			h.committed(m, results[i])
		}
	}
}

// drop removes a memory hold; false if it was not there.
func (m *memHolds) drop(id string) bool {
	mh, ok := m.holds[id]
	if !ok {
		return false
	}
	delete(m.holds, id)
	if a := m.accts[mh.h.Account]; a != nil {
		a.memHeld -= mh.h.Amount
	}
	return true
}

// probeOp reads an account so that its balance is published.
type probeOp struct{ id tollgate.AccountID }

func (o probeOp) need(n *needs) { n.accounts[o.id] = true }

func (o probeOp) apply(s *state) (any, error) {
	if _, ok := s.accounts[o.id]; !ok {
		return nil, fail(tollgate.ENOTFOUND, "ledger.Reserve", "account %s not found", o.id)
	}
	return nil, nil
}

// reserveMem is Reserve for a lot-funded hold with MemoryHolds on. The
// first hold of an account the Service has not seen reads it through the
// committer, which publishes its balance.
func (s *Service) reserveMem(ctx context.Context, r ReserveRequest) (Hold, error) {
	if r.HoldID == "" || r.Account == "" || r.Amount <= 0 || r.TTL <= 0 {
		return Hold{}, fail(tollgate.EINVALID, "ledger.Reserve", "hold id, account, a positive amount and a positive TTL are required")
	}
	h, known, err := s.mem.reserve(r, s.now())
	if known {
		return h, err
	}
	if _, err := s.batched(ctx, probeOp{r.Account}); err != nil {
		return Hold{}, err
	}
	if h, known, err = s.mem.reserve(r, s.now()); !known {
		return Hold{}, fmt.Errorf("ledger.Reserve: account %s read but not published", r.Account)
	}
	return h, err
}

// reserve makes the hold r asks for if the account's balance is known
// here (known false: read it first).
func (m *memHolds) reserve(r ReserveRequest, now time.Time) (h Hold, known bool, err error) {
	const name = "ledger.Reserve"
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.gone[r.HoldID]
	if mh, live := m.holds[r.HoldID]; live {
		h, ok = mh.h, true
	}
	if ok {
		if h.Account != r.Account || h.Amount != r.Amount {
			return Hold{}, true, fail(tollgate.ECONFLICT, name, "hold %s exists with other terms", r.HoldID)
		}
		return h, true, nil
	}
	a := m.accts[r.Account]
	if a == nil {
		return Hold{}, false, nil
	}
	if a.debt > 0 {
		return Hold{}, true, fail(tollgate.EINSUFFICIENT, name, "account has %d credits of unpaid debt", a.debt)
	}
	avail := a.available()
	check := avail
	if mutantHeldAvailable {
		check += a.held + a.memHeld
	}
	if check < r.Amount {
		return Hold{}, true, fail(tollgate.EINSUFFICIENT, name, "need %d credits, %d available", r.Amount, avail)
	}
	h = Hold{ID: r.HoldID, Account: r.Account, Amount: r.Amount, Status: HoldActive,
		CreatedAt: now, ExpiresAt: now.Add(r.TTL).Truncate(time.Microsecond)}
	m.holds[h.ID] = &memHold{h: h}
	a.memHeld += h.Amount
	return h, true, nil
}

// memSettleOp writes a memory hold and settles it in one transaction.
type memSettleOp struct {
	h Hold
	m *memHolds
	settleOp
}

// need does not look the hold up in the store: a memory hold is not there
// until this op writes it (a repeated settle of it is a settleOp, see
// settleFor).
func (o memSettleOp) need(n *needs) {
	n.usageIDs[o.requestID()] = true
	n.accounts[o.h.Account], n.spendable[o.h.Account] = true, true
}

func (o memSettleOp) apply(s *state) (any, error) {
	const name = "ledger.Settle"
	if _, ok := s.holds[o.h.ID]; ok {
		return o.settleOp.apply(s) // written earlier in this batch
	}
	a, ok := s.accounts[o.h.Account]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", o.h.Account)
	}
	if o.r.Cost < 0 {
		return nil, fail(tollgate.EINVALID, name, "hold id and a cost ≥ 0 are required")
	}
	if o.r.Usage.negativeCount() {
		return nil, fail(tollgate.EINVALID, name, "token counts must not be negative")
	}
	// Refused here, before the hold is added: a settle that fails must
	// not write the hold (the memory hold stays, to be settled or expire).
	h := o.h
	if err := o.refusal(s, &h); err != nil {
		return nil, err
	}
	a.Held += h.Amount
	s.touchAccount(a)
	s.addHold(&h)
	return o.settleOp.apply(s)
}

// committed drops the memory hold once its settle is stored, under the
// lock its account's new balance is published with.
func (o memSettleOp) committed(m *memHolds, r result) {
	if r.err == nil {
		m.remember(*r.val.(*Hold))
	}
}

// finish runs when the op's outcome is delivered. A failed settle (refused,
// its transaction failed, or never queued) leaves the memory hold active,
// to be settled again, released or expire.
func (o memSettleOp) finish(r result) {
	if r.err == nil {
		return
	}
	o.m.mu.Lock()
	defer o.m.mu.Unlock()
	if mh := o.m.holds[o.h.ID]; mh != nil {
		mh.settling = false
	}
}

// settleFor returns the op that settles r: a memSettleOp for a memory
// hold (marking it settling), else a settleOp.
func (s *Service) settleFor(r SettleRequest) op {
	if s.mem == nil {
		return settleOp{r}
	}
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	mh, ok := s.mem.holds[r.HoldID]
	if !ok {
		if h, gone := s.mem.gone[r.HoldID]; gone && h.Status != HoldSettled {
			return goneOp{h, r.Cost}
		}
		return settleOp{r}
	}
	if mh.settling {
		// A settle is queued before this one: the committer runs them in
		// order, so this one finds the hold written (idempotent, or a
		// conflict for another cost).
		return settleOp{r}
	}
	mh.settling = true
	return memSettleOp{h: mh.h, m: s.mem, settleOp: settleOp{r}}
}

// goneOp refuses to settle a released or expired memory hold.
type goneOp struct {
	h    Hold
	cost tollgate.Credits
}

func (goneOp) need(*needs) {}

func (o goneOp) apply(*state) (any, error) {
	if o.cost < 0 {
		return nil, fail(tollgate.EINVALID, "ledger.Settle", "hold id and a cost ≥ 0 are required")
	}
	return nil, fail(tollgate.ECONFLICT, "ledger.Settle", "hold %s is already %s", o.h.ID, o.h.Status)
}

// releaseMem releases a memory hold; ok is false when id is not one.
func (s *Service) releaseMem(id string) (h Hold, ok bool, err error) {
	if s.mem == nil {
		return Hold{}, false, nil
	}
	m := s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, gone := m.gone[id]; gone && h.Status != HoldSettled {
		return h, true, nil // settled: stored, the store answers
	}
	mh, ok := m.holds[id]
	if !ok {
		return Hold{}, false, nil
	}
	if mh.settling {
		return Hold{}, true, fail(tollgate.ECONFLICT, "ledger.Release", "hold %s is being settled", id)
	}
	return m.bury(id, HoldReleased, s.now()), true, nil
}

// expireMem drops the memory holds expired at now that no settle is
// writing, and returns how many.
func (s *Service) expireMem(now time.Time) int {
	if s.mem == nil {
		return 0
	}
	m := s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, mh := range m.holds {
		if !mh.settling && !now.Before(mh.h.ExpiresAt) {
			m.bury(id, HoldExpired, now)
			n++
		}
	}
	return n
}

// memHold returns a memory hold by id.
func (s *Service) memHold(id string) (Hold, bool) {
	if s.mem == nil {
		return Hold{}, false
	}
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	if mh, ok := s.mem.holds[id]; ok {
		return mh.h, true
	}
	h, ok := s.mem.gone[id]
	return h, ok
}

// memBalance returns the account's credits and held credits with its
// memory holds counted; ok is false when the account is not known here.
func (s *Service) memBalance(id tollgate.AccountID) (credits, held, debt tollgate.Credits, ok bool) {
	if s.mem == nil {
		return 0, 0, 0, false
	}
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	a := s.mem.accts[id]
	if a == nil {
		return 0, 0, 0, false
	}
	return a.available(), a.held + a.memHeld, a.debt, true
}
