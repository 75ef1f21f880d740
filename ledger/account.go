package ledger

import (
	"context"

	"tollgate"
	"tollgate/webhook"
)

func fail(code, opName, format string, args ...any) error {
	e := tollgate.Errorf(code, format, args...)
	e.Op = opName
	return e
}

// Balance is what an account can spend, as shown to its owner.
type Balance struct {
	Account tollgate.AccountID
	// Credits is the available credit: lots left − held − debt.
	Credits tollgate.Credits
	Held    tollgate.Credits
	Debt    tollgate.Credits
	// Provisional is what the live provisional grant still allows
	// (cap − used − held), or 0.
	Provisional tollgate.Credits
}

type createAccountOp struct{ id tollgate.AccountID }

func (o createAccountOp) need(n *needs) { n.accounts[o.id] = true }

func (o createAccountOp) apply(s *state) (any, error) {
	if o.id == "" {
		return nil, fail(tollgate.EINVALID, "ledger.CreateAccount", "account id is empty")
	}
	if _, ok := s.accounts[o.id]; ok {
		return nil, fail(tollgate.ECONFLICT, "ledger.CreateAccount", "account %s already exists", o.id)
	}
	a := &Account{ID: o.id, CreatedAt: s.now}
	s.addAccount(a)
	s.emit(webhook.AccountCreated, a.ID, AccountView{Account: a.ID, CreatedAt: a.CreatedAt})
	return a, nil
}

// CreateAccount creates an empty account. Errors: EINVALID (empty id),
// ECONFLICT (it exists).
func (s *Service) CreateAccount(ctx context.Context, id tollgate.AccountID) (Account, error) {
	v, err := s.do(ctx, createAccountOp{id})
	if err != nil {
		return Account{}, err
	}
	return *v.(*Account), nil
}

// Account returns an account as stored. Errors: ENOTFOUND.
func (s *Service) Account(ctx context.Context, id tollgate.AccountID) (Account, error) {
	var out []Account
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Accounts(ctx, []tollgate.AccountID{id})
		return err
	})
	if err != nil {
		return Account{}, err
	}
	if len(out) == 0 {
		return Account{}, fail(tollgate.ENOTFOUND, "ledger.Account", "account %s not found", id)
	}
	return out[0], nil
}

// Balance returns the account's balance, read from the store after every
// operation queued before it has committed (see view); with MemoryHolds the
// account's part comes from the balance the Service published, with its
// memory holds counted. Errors: ENOTFOUND.
func (s *Service) Balance(ctx context.Context, id tollgate.AccountID) (Balance, error) {
	var accts []Account
	var grants []Grant
	err := s.View(ctx, func(tx ReadTx) (err error) {
		if accts, err = tx.Accounts(ctx, []tollgate.AccountID{id}); err != nil {
			return err
		}
		grants, err = tx.LiveGrants(ctx, []tollgate.AccountID{id})
		return err
	})
	if err != nil {
		return Balance{}, err
	}
	if len(accts) == 0 {
		return Balance{}, fail(tollgate.ENOTFOUND, "ledger.Balance", "account %s not found", id)
	}
	a := accts[0]
	b := Balance{Account: id, Credits: a.Available(), Held: a.Held, Debt: a.Debt}
	if c, h, d, ok := s.memBalance(id); ok {
		b.Credits, b.Held, b.Debt = c, h, d
	}
	now := s.now()
	for _, g := range grants {
		if now.Before(g.ExpiresAt) {
			b.Provisional += g.Cap - g.Used - g.Held
			b.Held += g.Held
		}
	}
	return b, nil
}

// drawLots takes amount credits from the account's spendable lots,
// counting them as used, and returns what the lots could not cover. Lots
// of 0 fen (positive adjustments: credit an operator gave) are drawn
// first, then paid lots oldest first (both by ID), so a goodwill credit is
// spent before anything a user paid for and never shrinks the refundable
// unused part of a payment.
func (s *state) drawLots(a *Account, amount tollgate.Credits) tollgate.Credits {
	if !s.spendOK[a.ID] {
		panic("ledger: drawLots without the account's spendable lots loaded")
	}
	for _, paid := range [2]bool{false, true} {
		for _, l := range s.lotsOf[a.ID] {
			if amount == 0 {
				break
			}
			if (l.Fen > 0) != paid {
				continue
			}
			take := min(l.Left, amount)
			if take == 0 {
				continue
			}
			l.Left -= take
			l.Used += take
			a.Left -= take
			amount -= take
			s.touchLot(l)
		}
	}
	s.touchAccount(a)
	return amount
}
