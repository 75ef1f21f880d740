package ledger

import (
	"context"
	"encoding/json"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// Payment is a successful payment to credit.
type Payment struct {
	Account       tollgate.AccountID
	OutTradeNo    string
	TransactionID string
	Fen           tollgate.Fen
	Credits       tollgate.Credits
	// GrantID, if set and the grant is still live, confirms that
	// provisional grant against the new lot in the same transaction.
	GrantID string
	// Order is the data of the payment.succeeded event written with the
	// lot: the order as GET /v1/payments/orders/{out_trade_no} shows it
	// once paid (payment.OrderView). When nil the event carries
	// PaidOrderView, what the ledger knows of the order.
	Order json.RawMessage
}

// PaidOrderView is the data of payment.succeeded when the caller gave no
// order (Payment.Order): the paid order as far as the ledger knows it.
type PaidOrderView struct {
	OutTradeNo    string           `json:"out_trade_no"`
	Status        string           `json:"status"`
	AmountFen     tollgate.Fen     `json:"amount_fen"`
	Credits       tollgate.Credits `json:"credits"`
	TransactionID string           `json:"transaction_id"`
}

type creditOp struct{ p Payment }

// need reads the account but not its spendable lots: a credit only adds a
// lot. Confirming a grant may draw the account's other lots; loading the
// grant loads them (loadGrants).
func (o creditOp) need(n *needs) {
	n.accounts[o.p.Account] = true
	n.tradeNos[o.p.OutTradeNo], n.txnIDs[o.p.TransactionID] = true, true
	if o.p.GrantID != "" {
		n.grantIDs[o.p.GrantID] = true
	}
}

type credited struct {
	lot     *Lot
	already bool
}

func (o creditOp) apply(s *state) (any, error) {
	const name = "ledger.CreditPayment"
	p := o.p
	if p.Account == "" || p.OutTradeNo == "" || p.TransactionID == "" || p.Fen <= 0 || p.Credits <= 0 {
		return nil, fail(tollgate.EINVALID, name, "account, out_trade_no, transaction_id and positive fen and credits are required")
	}
	if l, ok := s.byTrade[p.OutTradeNo]; ok {
		if l.TransactionID != p.TransactionID || l.Fen != p.Fen || l.Granted != p.Credits || l.Account != p.Account {
			return nil, fail(tollgate.ECONFLICT, name, "order %s was credited with other terms", p.OutTradeNo)
		}
		return credited{l, true}, nil
	}
	if l, ok := s.byTxn[p.TransactionID]; ok {
		return nil, fail(tollgate.ECONFLICT, name, "transaction %s already credited order %s", p.TransactionID, l.OutTradeNo)
	}
	a, ok := s.accounts[p.Account]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", p.Account)
	}
	g := s.grants[p.GrantID]
	if g != nil && g.Account != p.Account {
		return nil, fail(tollgate.EINVALID, name, "grant %s belongs to another account", p.GrantID)
	}
	if g != nil && g.Status == GrantLive && s.memBlind && g.Used > p.Credits-min(a.Debt, p.Credits) {
		// Confirming the grant draws the account's other lots, which
		// memory holds may be counting on: decide under the memory lock.
		return nil, errNeedsMemLock
	}
	// Debt is paid first, out of the new credit.
	pay := min(a.Debt, p.Credits)
	l := &Lot{Account: p.Account, OutTradeNo: p.OutTradeNo, TransactionID: p.TransactionID,
		Fen: p.Fen, Granted: p.Credits, Used: pay, Left: p.Credits - pay, CreatedAt: s.now}
	a.Debt -= pay
	a.Left += l.Left
	s.touchAccount(a)
	s.addLot(l)
	if g != nil && g.Status == GrantLive {
		s.confirm(g, a, l)
	}
	var data any = PaidOrderView{OutTradeNo: p.OutTradeNo, Status: "SUCCESS", AmountFen: p.Fen, Credits: p.Credits, TransactionID: p.TransactionID}
	if p.Order != nil {
		data = p.Order
	}
	s.emit(webhook.PaymentSucceeded, p.Account, data)
	return credited{l, false}, nil
}

// CreditPayment records a successful payment as a new lot, paying any debt
// first. It is idempotent on both OutTradeNo and TransactionID: any number
// of calls, concurrent or not, make one lot; a repeat returns that lot with
// already = true. Errors: EINVALID, ENOTFOUND (account), ECONFLICT (the
// order was credited with another amount, credits, account or transaction
// id, or the transaction id credited another order).
//
// Credits are group-committed: those that arrive together share one
// strict commit (Service.durable), and each caller is answered after it.
func (s *Service) CreditPayment(ctx context.Context, p Payment) (lot Lot, already bool, err error) {
	v, err := s.durable(ctx, creditOp{p})
	if err != nil {
		return Lot{}, false, err
	}
	c := v.(credited)
	return *c.lot, c.already, nil
}

// LotByOrder returns the lot credited for an order. Errors: ENOTFOUND.
func (s *Service) LotByOrder(ctx context.Context, outTradeNo string) (Lot, error) {
	var out []Lot
	if err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.LotsByPayment(ctx, []string{outTradeNo}, nil)
		return err
	}); err != nil {
		return Lot{}, err
	}
	if len(out) == 0 {
		return Lot{}, fail(tollgate.ENOTFOUND, "ledger.LotByOrder", "no lot for order %s", outTradeNo)
	}
	return out[0], nil
}

// Lots returns every lot of an account, oldest first.
func (s *Service) Lots(ctx context.Context, account tollgate.AccountID) ([]Lot, error) {
	var out []Lot
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.LotsByAccount(ctx, account)
		return err
	})
	return out, err
}

// RecentLots returns up to limit lots of an account, newest first.
func (s *Service) RecentLots(ctx context.Context, account tollgate.AccountID, limit int) ([]Lot, error) {
	var out []Lot
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.RecentLots(ctx, account, limit)
		return err
	})
	return out, err
}

// PaidVolume returns the fen paid in lots credited during the calendar month
// of year/month in loc (for merchant fee tiers).
func (s *Service) PaidVolume(ctx context.Context, year int, month time.Month, loc *time.Location) (tollgate.Fen, error) {
	from := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	to := from.AddDate(0, 1, 0)
	var v tollgate.Fen
	err := s.View(ctx, func(tx ReadTx) (err error) {
		v, err = tx.PaidVolume(ctx, from.UTC(), to.UTC())
		return err
	})
	return v, err
}
