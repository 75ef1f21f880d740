package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"tollgate"
)

// Memory holds (Options.MemoryHolds): where a hold's record lives when
// this Service is the store's one writer. The rules are hold.go's, the
// same as for stored holds; this file is only the place (memBook).
//
// A lot-funded hold only guards the account's balance until its request
// ends; written to the store it costs a transaction of its own before the
// upstream call. When this Service is the store's one writer it knows
// every account's balance as last committed, so the same conditional
// change can be made in memory:
//
//   - Reserve applies reserve (left − held − debt − memory holds ≥ amount)
//     to the memory book under a mutex. The first Reserve of an account
//     reads it through the committer.
//   - Settle is the stored settle (settleOp) with the hold written first,
//     in the same transaction (memSettleOp); after that transaction
//     commits, the account's new balance is published and the memory hold
//     dropped under the same lock, so no reader ever counts the hold twice
//     or not at all. A failed settle keeps the hold, as a stored hold
//     would stay active.
//   - Release and expiry only drop the memory hold: nothing was charged.
//     A late settle of an expired one (its stream outlived it) writes it
//     settled, charging what the account can spare now (settleLate); it
//     needs the memory holds counted, so it runs under the lock.
//   - Renew moves a memory hold's expiry, under the lock.
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

// account is the account's balance as last committed.
func (a *memAccount) account(id tollgate.AccountID) Account {
	return Account{ID: id, Left: a.left, Held: a.held, Debt: a.debt}
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

// reserveMem is Reserve for a lot-funded hold with MemoryHolds on: the
// rule (reserve) applied to the memory book under its lock. The first
// hold of an account the Service has not seen reads it through the
// committer, which publishes its balance.
func (s *Service) reserveMem(ctx context.Context, r ReserveRequest) (Hold, error) {
	if err := r.check(); err != nil {
		return Hold{}, err
	}
	m := s.mem
	m.mu.Lock()
	if m.accts[r.Account] == nil {
		m.mu.Unlock()
		if _, err := s.batched(ctx, probeOp{r.Account}); err != nil {
			return Hold{}, err
		}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	h, err := reserve(memBook{m}, r, s.now())
	if err != nil {
		return Hold{}, err
	}
	return *h, nil
}

// memBook keeps holds in the single writer's memory; m.mu is held.
type memBook struct{ m *memHolds }

// lookup finds an active memory hold, or one that ended and is remembered.
func (b memBook) lookup(id string) (*Hold, bool) {
	if mh, ok := b.m.holds[id]; ok {
		return &mh.h, true
	}
	if _, ok := b.m.gone[id]; !ok {
		return nil, false // (not h, ok := …: its h would go to the heap on every call)
	}
	h := b.m.gone[id]
	return &h, true
}

func (b memBook) balance(id tollgate.AccountID) (Account, tollgate.Credits, bool) {
	a := b.m.accts[id]
	if a == nil {
		return Account{}, 0, false
	}
	return a.account(id), a.memHeld, true
}

func (b memBook) keep(h Hold) (*Hold, error) {
	if h.GrantID != "" {
		// Reserve keeps grant-funded holds in the store.
		return nil, fmt.Errorf("ledger.Reserve: hold %s: a memory hold is funded by lots", h.ID)
	}
	mh := &memHold{h: h}
	b.m.holds[h.ID] = mh
	b.m.accts[h.Account].memHeld += h.Amount
	return &mh.h, nil
}

// memSettleOp settles an active memory hold: a settleOp that writes the
// hold, with hooks for the memory hold's end.
type memSettleOp struct {
	settleOp
	m *memHolds
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
	if mh := o.m.holds[o.r.HoldID]; mh != nil {
		mh.settling = false
	}
}

// memLateSettleOp settles a memory hold that expired: the late settle
// writes it, settled (settleLate), and once that commits the hold is
// remembered as settled, so that Hold and a repeat find it so.
type memLateSettleOp struct{ settleOp }

func (o memLateSettleOp) committed(m *memHolds, r result) {
	if r.err != nil {
		return
	}
	if h := *r.val.(*Hold); h.Status == HoldSettled {
		if _, ok := m.gone[h.ID]; ok {
			m.gone[h.ID] = h
		}
	}
}

// settleFor returns the op that settles r: for an active memory hold a
// memSettleOp (marking the hold settling), for an expired one a
// memLateSettleOp, for a released one a settleOp that finds it so, else a
// settleOp of a stored hold.
func (s *Service) settleFor(r SettleRequest) op {
	if s.mem == nil {
		return settleOp{r: r}
	}
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	mh, ok := s.mem.holds[r.HoldID]
	if !ok {
		h, gone := s.mem.gone[r.HoldID]
		switch {
		case gone && h.Status == HoldExpired:
			return memLateSettleOp{settleOp{r: r, mem: h}}
		case gone && h.Status != HoldSettled:
			return settleOp{r: r, mem: h}
		}
		return settleOp{r: r}
	}
	if mh.settling {
		// A settle is queued before this one: the committer runs them in
		// order, so this one finds the hold written (idempotent, or a
		// conflict for another cost).
		return settleOp{r: r}
	}
	mh.settling = true
	return memSettleOp{settleOp: settleOp{r: r, mem: mh.h}, m: s.mem}
}

// releaseMem releases a memory hold; ok is false when id is not one (a
// settled memory hold is stored: the store answers).
func (s *Service) releaseMem(id string) (h Hold, ok bool, err error) {
	if s.mem == nil {
		return Hold{}, false, nil
	}
	m := s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	h, known := m.gone[id]
	mh, live := m.holds[id]
	if live {
		h, known = mh.h, true
	}
	if !known || h.Status == HoldSettled {
		return Hold{}, false, nil
	}
	if repeat, err := releaseStage(&h); err != nil {
		return Hold{}, true, err
	} else if repeat {
		return h, true, nil
	}
	if live && mh.settling {
		return Hold{}, true, fail(tollgate.ECONFLICT, "ledger.Release", "hold %s is being settled", id)
	}
	return m.bury(id, HoldReleased, s.now()), true, nil
}

// renewMem renews a memory hold (renewHold, under the lock); ok is false
// when id is not one (a settled memory hold is stored: the store answers).
func (s *Service) renewMem(id string, ttl time.Duration) (h Hold, ok bool, err error) {
	if s.mem == nil {
		return Hold{}, false, nil
	}
	m := s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if mh, live := m.holds[id]; live {
		if _, err := renewHold(&mh.h, ttl, s.now()); err != nil {
			return Hold{}, true, err
		}
		return mh.h, true, nil
	}
	if h, gone := m.gone[id]; gone && h.Status != HoldSettled {
		_, err := renewHold(&h, ttl, s.now())
		return Hold{}, true, err
	}
	return Hold{}, false, nil
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
		if !mh.settling && mh.h.due(now) {
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
	return spendable(a.account(id), a.memHeld), a.held + a.memHeld, a.debt, true
}
