package ledger

import (
	"context"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// The shapes of the webhook events' data the ledger writes (docs/DESIGN.md
// §4.11). They are the API's shapes: httpapi answers with the same types.

// AccountView is the data of account.created.
type AccountView struct {
	Account   tollgate.AccountID `json:"account_id"`
	CreatedAt time.Time          `json:"created_at"`
}

// BalanceView is an account's balance as GET /v1/balance shows it, and the
// data of grant.debt_recorded and balance.low.
type BalanceView struct {
	Account     tollgate.AccountID `json:"account_id"`
	Credits     tollgate.Credits   `json:"credits"`
	Held        tollgate.Credits   `json:"held"`
	Provisional tollgate.Credits   `json:"provisional"`
	Debt        tollgate.Credits   `json:"debt"`
}

// View returns b in the API's shape.
func (b Balance) View() BalanceView {
	return BalanceView{Account: b.Account, Credits: b.Credits, Held: b.Held, Provisional: b.Provisional, Debt: b.Debt}
}

// RefundView is a refund as the admin API shows it (GET /admin/refunds,
// the order detail, the answer of POST /admin/orders/{no}/refund) and the
// data of refund.succeeded and refund.failed: one type, so the answer and
// the events cannot drift apart. The money fields are the ledger's; who
// asked, why, the amount asked and the record's times are the payment
// side's record (payment.RefundRecord.View), which the payment layer
// hands to EndRefund so the event says what the API shows right after.
type RefundView struct {
	OutRefundNo string             `json:"out_refund_no"`
	OutTradeNo  string             `json:"out_trade_no"`
	Account     tollgate.AccountID `json:"account_id"`
	RefundFen   tollgate.Fen       `json:"refund_fen"`
	Credits     tollgate.Credits   `json:"credits"`
	AskedFen    tollgate.Fen       `json:"asked_fen"` // 0: all the unused credit
	Status      RefundStatus       `json:"status"`
	RequestedBy string             `json:"requested_by"`
	Reason      string             `json:"reason"`
	// Actor names who asked: "account:<account id>" for a user's own
	// refund, the admin API's actor (X-Tollgate-Actor) for the
	// operator's; "" for refunds made before it was recorded.
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AdjustmentView is an adjustment as the admin API shows it, and the data
// of adjustment.created.
type AdjustmentView struct {
	AdjustmentID string             `json:"adjustment_id"`
	Account      tollgate.AccountID `json:"account_id"`
	Credits      tollgate.Credits   `json:"credits"`
	Debt         tollgate.Credits   `json:"debt"`
	// DebtPaid is what a positive adjustment paid of the account's debt
	// before the rest became spendable (0 for a negative one), the same
	// on a replay and in the account detail; 0 for an adjustment recorded
	// before migration 0015 (see Adjustment).
	DebtPaid  tollgate.Credits `json:"debt_paid"`
	Reason    string           `json:"reason"`
	Actor     string           `json:"actor"`
	CreatedAt time.Time        `json:"created_at"`
}

// View returns a in the admin API's shape.
func (a Adjustment) View() AdjustmentView {
	return AdjustmentView{AdjustmentID: a.ID, Account: a.Account, Credits: a.Credits, Debt: a.Debt, DebtPaid: a.DebtPaid,
		Reason: a.Reason, Actor: a.Actor, CreatedAt: a.CreatedAt}
}

// emit adds an event about account to the transaction: it is appended to
// the outbox by the same Apply that writes the change, so it commits or
// rolls back with it. A state is built afresh for every attempt of a
// transaction, so a retried transaction emits its events once.
func (s *state) emit(typ string, account tollgate.AccountID, data any) error {
	e, err := webhook.NewEvent(typ, account, s.now, data)
	if err != nil {
		return err
	}
	s.events = append(s.events, e)
	return nil
}

// balanceOf is a's balance as the transaction leaves it (memory holds
// not counted: the store's view).
func (s *state) balanceOf(a *Account) Balance {
	b := Balance{Account: a.ID, Credits: a.Available(), Held: a.Held, Debt: a.Debt}
	if g := s.live[a.ID]; g != nil && s.now.Before(g.ExpiresAt) {
		b.Provisional += g.Cap - g.Used - g.Held
		b.Held += g.Held
	}
	return b
}

// MaxLowBalance bounds an account's low_balance_credits.
const MaxLowBalance = MaxAdjustment

// charged is the balance balance.low watches: credit left less debt.
// Holds are not counted: they come and go with every request, and a
// reservation is not a charge; what crosses the line is a usage
// settlement, a negative adjustment, a refund, debt recorded.
func charged(a *Account) tollgate.Credits { return a.Left - a.Debt }

// lowBalanceEvents emits balance.low for every changed account whose
// charged balance went, in this transaction, from at least its
// low_balance_credits to below it.
func (s *state) lowBalanceEvents() {
	for _, id := range ids(s.dirtyAccounts, lessStr[tollgate.AccountID]) {
		a := s.accounts[id]
		before, ok := s.startBal[id]
		if a == nil || a.LowBalance == nil || !ok {
			continue
		}
		if t := *a.LowBalance; before >= t && charged(a) < t {
			s.emit(webhook.BalanceLow, id, s.balanceOf(a).View())
		}
	}
}

type setLowBalanceOp struct {
	id tollgate.AccountID
	v  *tollgate.Credits
}

func (o setLowBalanceOp) need(n *needs) { n.accounts[o.id] = true }

func (o setLowBalanceOp) apply(s *state) (any, error) {
	const name = "ledger.SetLowBalance"
	if o.v != nil && (*o.v < 0 || *o.v > MaxLowBalance) {
		return nil, fail(tollgate.EINVALID, name, "low_balance_credits must be within 0..%d, or null to turn it off", MaxLowBalance)
	}
	a, ok := s.accounts[o.id]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", o.id)
	}
	if (a.LowBalance == nil) == (o.v == nil) && (o.v == nil || *a.LowBalance == *o.v) {
		return a, nil
	}
	if o.v == nil {
		a.LowBalance = nil
	} else {
		v := *o.v
		a.LowBalance = &v
	}
	s.touchAccount(a)
	return a, nil
}

// SetLowBalance sets an account's low_balance_credits (nil turns
// balance.low off). Setting it sends no event, even below the balance:
// only a change that crosses it does. Errors: EINVALID, ENOTFOUND.
func (s *Service) SetLowBalance(ctx context.Context, id tollgate.AccountID, v *tollgate.Credits) (Account, error) {
	r, err := s.do(ctx, setLowBalanceOp{id, v})
	if err != nil {
		return Account{}, err
	}
	return *r.(*Account), nil
}
