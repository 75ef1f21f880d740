package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate"
	"tollgate/webhook"
)

// Adjustment is credit an operator added or removed by hand: a ledger
// entry of its own, never an edit of a lot.
//
// A positive adjustment is carried by a lot of its own, paid 0 fen
// (OutTradeNo and TransactionID are the adjustment's ID), which pays any
// debt first like a payment; it is never refundable (no fen was paid) and
// adds nothing to revenue; usage draws such lots before paid ones (see
// drawLots). A negative adjustment draws the account's lots like usage,
// but only from credit nobody holds: removing
// more than the account has available is refused (EINSUFFICIENT) unless
// the operator asks for the rest to be recorded as debt (AsDebt), which
// the next payment or positive adjustment pays. Audit accounts for both
// (adjustment.lot, usage.lots, account.debt_origin).
type Adjustment struct {
	// ID is "adj_" and a digest of the account and idempotency key.
	ID             string
	Account        tollgate.AccountID
	IdempotencyKey string
	// RequestHash tells a retry from another request with the same key.
	RequestHash string
	// Credits is the signed amount: > 0 adds, < 0 removes.
	Credits tollgate.Credits
	// Debt is the part of a negative adjustment recorded as debt.
	Debt tollgate.Credits
	// DebtPaid is the part of a positive adjustment that paid the
	// account's debt (the rest is spendable); 0 for a negative one. The
	// stores keep it (migration 0015), so a replay and a listing have it;
	// an adjustment recorded before 0015 reads 0.
	DebtPaid tollgate.Credits
	// LotID is the lot carrying a positive adjustment, else 0.
	LotID     int64
	Reason    string
	Actor     string
	CreatedAt time.Time
}

// AdjustRequest asks for an adjustment. Account and IdempotencyKey make it
// idempotent: the same request again returns the first adjustment; another
// request with the same key is ECONFLICT.
type AdjustRequest struct {
	Account        tollgate.AccountID
	IdempotencyKey string
	Credits        tollgate.Credits
	// AsDebt records what a negative adjustment takes beyond the
	// available balance as debt instead of refusing it.
	AsDebt bool
	Reason string
	// Actor says who asked ("admin", or a console session).
	Actor string
}

// MaxReason is the most characters (runes, not bytes: a reason in Chinese
// is as long as one in English) an adjustment's reason may have; the
// stores' CHECK (length(reason) <= 500) counts characters too.
const MaxReason = 500

// MaxAdjustment bounds one adjustment's credits either way.
const MaxAdjustment tollgate.Credits = 1_000_000_000_000

// AdjustmentID is the id of the adjustment of account made with key.
func AdjustmentID(account tollgate.AccountID, key string) string {
	h := sha256.Sum256([]byte(string(account) + "\x00" + key))
	return "adj_" + hex.EncodeToString(h[:12])
}

func (r AdjustRequest) hash() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d\x00%t\x00%s", r.Credits, r.AsDebt, r.Reason))
	return hex.EncodeToString(h[:16])
}

type adjustOp struct{ r AdjustRequest }

func (o adjustOp) need(n *needs) {
	id := AdjustmentID(o.r.Account, o.r.IdempotencyKey)
	n.accounts[o.r.Account], n.spendable[o.r.Account] = true, true
	n.adjustIDs[id] = true
	n.tradeNos[id], n.txnIDs[id] = true, true
}

// adjusted is an adjustment op's result.
type adjusted struct {
	adj     *Adjustment
	already bool
}

func (o adjustOp) apply(s *state) (any, error) {
	const name = "ledger.Adjust"
	r := o.r
	switch {
	case r.Account == "" || r.IdempotencyKey == "":
		return nil, fail(tollgate.EINVALID, name, "account and idempotency key are required")
	case r.Credits == 0:
		return nil, fail(tollgate.EINVALID, name, "credits must not be 0")
	case r.Credits > MaxAdjustment || r.Credits < -MaxAdjustment:
		return nil, fail(tollgate.EINVALID, name, "credits must be within ±%d", MaxAdjustment)
	case strings.TrimSpace(r.Reason) == "":
		return nil, fail(tollgate.EINVALID, name, "reason is required")
	case utf8.RuneCountInString(r.Reason) > MaxReason:
		return nil, fail(tollgate.EINVALID, name, "reason is at most %d characters, it has %d", MaxReason, utf8.RuneCountInString(r.Reason))
	case r.AsDebt && r.Credits > 0:
		return nil, fail(tollgate.EINVALID, name, "as_debt applies only to a negative adjustment")
	}
	id := AdjustmentID(r.Account, r.IdempotencyKey)
	if old, ok := s.adjusts[id]; ok {
		if old.RequestHash != r.hash() {
			return nil, fail(tollgate.ECONFLICT, name, "Idempotency-Key %q was used for another adjustment of this account", r.IdempotencyKey)
		}
		return adjusted{old, true}, nil
	}
	a, ok := s.accounts[r.Account]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", r.Account)
	}
	adj := &Adjustment{ID: id, Account: r.Account, IdempotencyKey: r.IdempotencyKey, RequestHash: r.hash(),
		Credits: r.Credits, Reason: r.Reason, Actor: r.Actor, CreatedAt: s.now}
	if r.Credits > 0 {
		if _, taken := s.byTrade[id]; taken {
			return nil, fail(tollgate.ECONFLICT, name, "a lot %s already exists", id)
		}
		pay := min(a.Debt, r.Credits)
		l := &Lot{Account: r.Account, OutTradeNo: id, TransactionID: id, Fen: 0, Granted: r.Credits,
			Used: pay, Left: r.Credits - pay, CreatedAt: s.now}
		adj.DebtPaid = pay
		a.Debt -= pay
		a.Left += l.Left
		s.touchAccount(a)
		s.addLot(l)
		s.adjLot[adj] = l
	} else {
		need := -r.Credits
		avail := max(0, s.available(a))
		take := min(need, avail)
		if take < need && !r.AsDebt {
			return nil, fail(tollgate.EINSUFFICIENT, name,
				"the account has %d credits available (its balance less what is held and owed); removing %d would take it below what it has spent: remove at most %d, or send as_debt: true to record the rest as debt",
				avail, need, avail)
		}
		if rest := s.drawLots(a, take); rest != 0 {
			panic("ledger: adjustment drew more than the lots left")
		}
		adj.Debt = need - take
		a.Debt += adj.Debt
		s.touchAccount(a)
	}
	s.addAdjustment(adj)
	s.emit(webhook.AdjustmentCreated, adj.Account, adj.View())
	return adjusted{adj, false}, nil
}

// Adjust records an adjustment (see Adjustment for its rules). It returns
// the adjustment and whether it was recorded before (a retry). Errors:
// EINVALID, ENOTFOUND (account), EINSUFFICIENT (a negative adjustment
// beyond the available balance without AsDebt), ECONFLICT (the key was
// used for another adjustment).
func (s *Service) Adjust(ctx context.Context, r AdjustRequest) (Adjustment, bool, error) {
	v, err := s.do(ctx, adjustOp{r})
	if err != nil {
		return Adjustment{}, false, err
	}
	a := v.(adjusted)
	return *a.adj, a.already, nil
}

// AccountAdjustments returns up to limit adjustments of an account, newest
// first.
func (s *Service) AccountAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]Adjustment, error) {
	var out []Adjustment
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.AccountAdjustments(ctx, account, limit)
		return err
	})
	return out, err
}

// AdjustmentTotals sums the adjustments made in [from, to).
func (s *Service) AdjustmentTotals(ctx context.Context, from, to time.Time) (AdjustmentTotal, error) {
	var out AdjustmentTotal
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.AdjustmentTotals(ctx, from.UTC(), to.UTC())
		return err
	})
	return out, err
}

// ActiveHolds returns up to limit active holds of an account as stored
// (with MemoryHolds, lot-funded holds live in memory and only their sum
// shows, in Balance.Held).
func (s *Service) ActiveHolds(ctx context.Context, account tollgate.AccountID, limit int) ([]Hold, error) {
	var out []Hold
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.ActiveHolds(ctx, account, limit)
		return err
	})
	return out, err
}

// LiveGrants returns the account's live provisional grants.
func (s *Service) LiveGrants(ctx context.Context, account tollgate.AccountID) ([]Grant, error) {
	var out []Grant
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.LiveGrants(ctx, []tollgate.AccountID{account})
		return err
	})
	return out, err
}
