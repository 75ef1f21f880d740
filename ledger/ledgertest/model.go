// Package ledgertest holds test support for the ledger: Model, a reference
// model of the ledger's rules that the store suites (store/storetest) run
// random operations against. Only tests import it, so it is never in a
// shipped binary.
package ledgertest

import (
	"time"

	"tollgate"
	"tollgate/ledger"
)

// Model is a pure, in-memory reference model of the ledger's rules, written
// as plainly as possible and independently of ledger.Service: balances are
// folded from lots, holds and grants on every read instead of being
// materialised. Model-based tests run the same random operations against a
// ledger.Service and a Model and compare results and balances. Methods
// return the error code the Service must return ("" for success). Not safe
// for concurrent use.
type Model struct {
	accounts map[tollgate.AccountID]*modelAccount
	lots     []*modelLot // creation order = draw-down order
	holds    map[string]*modelHold
	grants   map[string]*modelGrant
	refunds  map[string]*modelRefund
	usage    map[string]bool
}

type modelAccount struct{ debt tollgate.Credits }

// ModelLot is the model's view of a lot.
type ModelLot struct {
	Account                                tollgate.AccountID
	OutTradeNo, TransactionID              string
	Fen, RefundedFen                       tollgate.Fen
	Granted, Used, Left, Refunding, Refund tollgate.Credits
}

type modelLot struct{ ModelLot }

type modelHold struct {
	account tollgate.AccountID
	grant   string
	amount  tollgate.Credits
	cost    tollgate.Credits
	status  ledger.HoldStatus
	expires time.Time
}

type modelGrant struct {
	account          tollgate.AccountID
	cap, used, held  tollgate.Credits
	status           ledger.GrantStatus
	expires          time.Time
	confirmedByTrade string
}

type modelRefund struct {
	lot     *modelLot
	credits tollgate.Credits
	fen     tollgate.Fen
	status  ledger.RefundStatus
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{accounts: map[tollgate.AccountID]*modelAccount{}, holds: map[string]*modelHold{},
		grants: map[string]*modelGrant{}, refunds: map[string]*modelRefund{}, usage: map[string]bool{}}
}

// CreateAccount mirrors ledger.Service.CreateAccount.
func (m *Model) CreateAccount(id tollgate.AccountID) string {
	if id == "" {
		return tollgate.EINVALID
	}
	if m.accounts[id] != nil {
		return tollgate.ECONFLICT
	}
	m.accounts[id] = &modelAccount{}
	return ""
}

func (m *Model) lotByTrade(no string) *modelLot {
	for _, l := range m.lots {
		if l.OutTradeNo == no {
			return l
		}
	}
	return nil
}

// left, lotHeld: the fold of an account's lots and lot-funded active holds.
func (m *Model) left(acct tollgate.AccountID) (left tollgate.Credits) {
	for _, l := range m.lots {
		if l.Account == acct {
			left += l.Left
		}
	}
	return left
}

func (m *Model) lotHeld(acct tollgate.AccountID) (held tollgate.Credits) {
	for _, h := range m.holds {
		if h.account != acct || h.status != ledger.HoldActive {
			continue
		}
		if g := m.grants[h.grant]; g == nil || g.status == ledger.GrantConfirmed {
			held += h.amount
		}
	}
	return held
}

func (m *Model) available(acct tollgate.AccountID) tollgate.Credits {
	return m.left(acct) - m.lotHeld(acct) - m.accounts[acct].debt
}

// draw takes amount from the account's lots, oldest first, and returns what
// they could not cover. The model's lots are all paid (it makes no
// adjustments), so this is the ledger's order (0-fen lots first).
func (m *Model) draw(acct tollgate.AccountID, amount tollgate.Credits) tollgate.Credits {
	for _, l := range m.lots {
		if l.Account != acct || amount == 0 {
			continue
		}
		take := min(l.Left, amount)
		l.Left -= take
		l.Used += take
		amount -= take
	}
	return amount
}

// CreditPayment mirrors ledger.Service.CreditPayment; already reports a repeat.
func (m *Model) CreditPayment(p ledger.Payment) (already bool, code string) {
	if p.Account == "" || p.OutTradeNo == "" || p.TransactionID == "" || p.Fen <= 0 || p.Credits <= 0 {
		return false, tollgate.EINVALID
	}
	if l := m.lotByTrade(p.OutTradeNo); l != nil {
		if l.TransactionID != p.TransactionID || l.Fen != p.Fen || l.Granted != p.Credits || l.Account != p.Account {
			return false, tollgate.ECONFLICT
		}
		return true, ""
	}
	for _, l := range m.lots {
		if l.TransactionID == p.TransactionID {
			return false, tollgate.ECONFLICT
		}
	}
	a := m.accounts[p.Account]
	if a == nil {
		return false, tollgate.ENOTFOUND
	}
	g := m.grants[p.GrantID]
	if g != nil && g.account != p.Account {
		return false, tollgate.EINVALID
	}
	pay := min(a.debt, p.Credits)
	a.debt -= pay
	l := &modelLot{ModelLot{Account: p.Account, OutTradeNo: p.OutTradeNo, TransactionID: p.TransactionID,
		Fen: p.Fen, Granted: p.Credits, Used: pay, Left: p.Credits - pay}}
	m.lots = append(m.lots, l)
	if g != nil && g.status == ledger.GrantLive {
		take := min(l.Left, g.used)
		l.Left -= take
		l.Used += take
		a.debt += m.draw(p.Account, g.used-take)
		g.held, g.status, g.confirmedByTrade = 0, ledger.GrantConfirmed, l.OutTradeNo
	}
	return false, ""
}

// Reserve mirrors ledger.Service.Reserve.
func (m *Model) Reserve(r ledger.ReserveRequest, now time.Time) string {
	if r.HoldID == "" || r.Account == "" || r.Amount <= 0 || r.TTL <= 0 {
		return tollgate.EINVALID
	}
	if h := m.holds[r.HoldID]; h != nil {
		if h.account != r.Account || h.amount != r.Amount || h.grant != r.GrantID {
			return tollgate.ECONFLICT
		}
		return ""
	}
	a := m.accounts[r.Account]
	if a == nil {
		return tollgate.ENOTFOUND
	}
	if a.debt > 0 {
		return tollgate.EINSUFFICIENT
	}
	h := &modelHold{account: r.Account, grant: r.GrantID, amount: r.Amount, status: ledger.HoldActive, expires: now.Add(r.TTL)}
	if r.GrantID == "" {
		if m.available(r.Account) < r.Amount {
			return tollgate.EINSUFFICIENT
		}
		m.holds[r.HoldID] = h
		return ""
	}
	g := m.grants[r.GrantID]
	switch {
	case g == nil || g.account != r.Account:
		return tollgate.ENOTFOUND
	case g.status != ledger.GrantLive || !now.Before(g.expires):
		return tollgate.ECONFLICT
	case g.cap-g.used-g.held < r.Amount:
		return tollgate.EINSUFFICIENT
	}
	g.held += r.Amount
	m.holds[r.HoldID] = h
	return ""
}

func (m *Model) resolve(h *modelHold, status ledger.HoldStatus, cost tollgate.Credits) {
	a := m.accounts[h.account]
	if g := m.grants[h.grant]; g != nil && g.status != ledger.GrantConfirmed {
		g.held -= h.amount
		g.used += cost
		if g.status == ledger.GrantRevoked {
			a.debt += cost
		}
	} else {
		a.debt += m.draw(h.account, cost)
	}
	h.status, h.cost = status, cost
}

// Settle mirrors ledger.Service.Settle with the usage record's request id.
func (m *Model) Settle(id string, cost tollgate.Credits, requestID string, now time.Time) string {
	if requestID == "" {
		requestID = id
	}
	if id == "" || cost < 0 {
		return tollgate.EINVALID
	}
	h := m.holds[id]
	switch {
	case h == nil:
		return tollgate.ENOTFOUND
	case h.status == ledger.HoldSettled && h.cost == cost:
		return ""
	case h.status == ledger.HoldSettled || h.status == ledger.HoldReleased:
		return tollgate.ECONFLICT
	case cost > h.amount:
		return tollgate.EINVALID
	case m.usage[requestID]:
		return tollgate.ECONFLICT
	}
	if h.status == ledger.HoldExpired {
		m.settleLate(h, cost)
	} else {
		m.resolve(h, ledger.HoldSettled, cost)
	}
	m.usage[requestID] = true
	return ""
}

// settleLate charges an expired hold: a live grant pays what room it has,
// the lots (no grant, or a confirmed one) what is available, and the rest
// is debt.
func (m *Model) settleLate(h *modelHold, cost tollgate.Credits) {
	rest := cost
	switch g := m.grants[h.grant]; {
	case g != nil && g.status == ledger.GrantLive:
		take := min(rest, max(0, g.cap-g.used-g.held))
		g.used += take
		rest -= take
	case g == nil || g.status == ledger.GrantConfirmed:
		take := min(rest, max(0, m.available(h.account)))
		m.draw(h.account, take)
		rest -= take
	}
	m.accounts[h.account].debt += rest
	h.status, h.cost = ledger.HoldSettled, cost
}

// Renew mirrors ledger.Service.Renew.
func (m *Model) Renew(id string, ttl time.Duration, now time.Time) string {
	h := m.holds[id]
	switch {
	case h == nil:
		return tollgate.ENOTFOUND
	case ttl <= 0:
		return tollgate.EINVALID
	case h.status != ledger.HoldActive:
		return tollgate.ECONFLICT
	}
	if until := now.Add(ttl); until.After(h.expires) {
		h.expires = until
	}
	return ""
}

// Release mirrors ledger.Service.Release.
func (m *Model) Release(id string) string {
	h := m.holds[id]
	switch {
	case h == nil:
		return tollgate.ENOTFOUND
	case h.status == ledger.HoldReleased || h.status == ledger.HoldExpired:
		return ""
	case h.status == ledger.HoldSettled:
		return tollgate.ECONFLICT
	}
	m.resolve(h, ledger.HoldReleased, 0)
	return ""
}

// ExpireHolds mirrors ledger.Service.ExpireHolds.
func (m *Model) ExpireHolds(now time.Time) (n int) {
	for _, h := range m.holds {
		if h.status == ledger.HoldActive && !h.expires.After(now) {
			m.resolve(h, ledger.HoldExpired, 0)
			n++
		}
	}
	return n
}

// IssueGrant mirrors ledger.Service.IssueGrant.
func (m *Model) IssueGrant(r ledger.GrantRequest, now time.Time) string {
	if r.ID == "" || r.Account == "" || r.Cap <= 0 || r.TTL <= 0 {
		return tollgate.EINVALID
	}
	if g := m.grants[r.ID]; g != nil {
		if g.account != r.Account || g.cap != r.Cap {
			return tollgate.ECONFLICT
		}
		return ""
	}
	a := m.accounts[r.Account]
	if a == nil {
		return tollgate.ENOTFOUND
	}
	if a.debt > 0 {
		return tollgate.EINSUFFICIENT
	}
	for _, g := range m.grants {
		if g.account == r.Account && g.status == ledger.GrantLive {
			return tollgate.ECONFLICT
		}
	}
	m.grants[r.ID] = &modelGrant{account: r.Account, cap: r.Cap, status: ledger.GrantLive, expires: now.Add(r.TTL)}
	return ""
}

// RevokeGrant mirrors ledger.Service.RevokeGrant.
func (m *Model) RevokeGrant(id string) string {
	g := m.grants[id]
	switch {
	case g == nil:
		return tollgate.ENOTFOUND
	case g.status == ledger.GrantRevoked:
		return ""
	case g.status == ledger.GrantConfirmed:
		return tollgate.ECONFLICT
	}
	m.accounts[g.account].debt += g.used
	g.status = ledger.GrantRevoked
	return ""
}

// ExpireGrants mirrors ledger.Service.ExpireGrants.
func (m *Model) ExpireGrants(now time.Time) (n int) {
	for id, g := range m.grants {
		if g.status == ledger.GrantLive && !g.expires.After(now) {
			m.RevokeGrant(id)
			n++
		}
	}
	return n
}

// BeginRefund mirrors ledger.Service.BeginRefund and returns the refund's credits
// and fen.
func (m *Model) BeginRefund(r ledger.RefundRequest) (tollgate.Credits, tollgate.Fen, string) {
	if r.OutRefundNo == "" || r.Account == "" || r.OutTradeNo == "" {
		return 0, 0, tollgate.EINVALID
	}
	l := m.lotByTrade(r.OutTradeNo)
	if l == nil || l.Account != r.Account {
		return 0, 0, tollgate.ENOTFOUND
	}
	if old := m.refunds[r.OutRefundNo]; old != nil {
		if old.lot != l {
			return 0, 0, tollgate.ECONFLICT
		}
		return old.credits, old.fen, ""
	}
	credits := min(l.Left, max(0, m.available(r.Account)))
	if credits == 0 {
		return 0, 0, tollgate.ECONFLICT
	}
	// floor(fen × credits / granted), by repeated subtraction-free integer
	// math independent of RefundFen: split fen into quotient and remainder.
	q, rem := int64(l.Fen)/int64(l.Granted), int64(l.Fen)%int64(l.Granted)
	fen := tollgate.Fen(q*int64(credits) + rem*int64(credits)/int64(l.Granted))
	m.refunds[r.OutRefundNo] = &modelRefund{lot: l, credits: credits, fen: fen, status: ledger.RefundPending}
	l.Left -= credits
	l.Refunding += credits
	return credits, fen, ""
}

// EndRefund mirrors ledger.Service.CompleteRefund (ok) and ledger.Service.FailRefund.
func (m *Model) EndRefund(no string, ok bool) string {
	want := ledger.RefundFailed
	if ok {
		want = ledger.RefundSucceeded
	}
	r := m.refunds[no]
	switch {
	case r == nil:
		return tollgate.ENOTFOUND
	case r.status == want:
		return ""
	case r.status != ledger.RefundPending:
		return tollgate.ECONFLICT
	}
	r.lot.Refunding -= r.credits
	if ok {
		r.lot.Refund += r.credits
		r.lot.RefundedFen += r.fen
	} else {
		r.lot.Left += r.credits
	}
	r.status = want
	return ""
}

// Balance mirrors ledger.Service.Balance at time now.
func (m *Model) Balance(acct tollgate.AccountID, now time.Time) ledger.Balance {
	a := m.accounts[acct]
	held := m.lotHeld(acct)
	b := ledger.Balance{Account: acct, Credits: m.left(acct) - held - a.debt, Held: held, Debt: a.debt}
	for _, g := range m.grants {
		if g.account == acct && g.status == ledger.GrantLive && now.Before(g.expires) {
			b.Provisional += g.cap - g.used - g.held
			b.Held += g.held
		}
	}
	return b
}

// Lots returns the model's lots of an account, oldest first.
func (m *Model) Lots(acct tollgate.AccountID) []ModelLot {
	var out []ModelLot
	for _, l := range m.lots {
		if l.Account == acct {
			out = append(out, l.ModelLot)
		}
	}
	return out
}
