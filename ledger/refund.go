package ledger

import (
	"context"
	"math/bits"

	"tollgate"
	"tollgate/webhook"
)

// RefundRequest asks to refund the unused part of one order's lot.
type RefundRequest struct {
	// OutRefundNo identifies the refund at WeChat Pay; a retry uses the
	// same number and gets the same refund back.
	OutRefundNo string
	Account     tollgate.AccountID
	OutTradeNo  string
	// Credits, when > 0, refunds that many credits and no more (an
	// operator's partial refund); 0 refunds all that is refundable.
	Credits tollgate.Credits
}

// RefundFen is floor(fen * credits / granted) in exact integer arithmetic
// (the product may exceed 64 bits). It panics if granted ≤ 0 or
// credits > granted, which no lot allows.
func RefundFen(fen tollgate.Fen, credits, granted tollgate.Credits) tollgate.Fen {
	if granted <= 0 || credits < 0 || credits > granted || fen < 0 {
		panic("ledger: RefundFen outside 0 ≤ credits ≤ granted")
	}
	hi, lo := bits.Mul64(uint64(fen), uint64(credits))
	q, _ := bits.Div64(hi, lo, uint64(granted))
	return tollgate.Fen(q)
}

type beginRefundOp struct{ r RefundRequest }

func (o beginRefundOp) need(n *needs) {
	n.refundNos[o.r.OutRefundNo] = true
	n.accounts[o.r.Account] = true
	n.tradeNos[o.r.OutTradeNo] = true
}

func (o beginRefundOp) apply(s *state) (any, error) {
	const name = "ledger.BeginRefund"
	r := o.r
	if r.OutRefundNo == "" || r.Account == "" || r.OutTradeNo == "" {
		return nil, fail(tollgate.EINVALID, name, "out_refund_no, account and out_trade_no are required")
	}
	l, ok := s.byTrade[r.OutTradeNo]
	if !ok || l.Account != r.Account {
		return nil, fail(tollgate.ENOTFOUND, name, "no credited order %s for this account", r.OutTradeNo)
	}
	if old, ok := s.refunds[r.OutRefundNo]; ok {
		if old.LotID != l.ID {
			return nil, fail(tollgate.ECONFLICT, name, "refund %s belongs to another order", r.OutRefundNo)
		}
		return old, nil
	}
	a := s.accounts[r.Account]
	// Only credit nobody is holding may go: active holds and debt have a
	// claim on the account's lots first.
	credits := min(l.Left, max(0, s.available(a)))
	if mutantRefundHeld {
		credits = l.Left
	}
	if credits == 0 {
		return nil, fail(tollgate.ECONFLICT, name, "order %s has no unused, unheld credit to refund", r.OutTradeNo)
	}
	if r.Credits > 0 {
		if r.Credits > credits {
			return nil, fail(tollgate.ECONFLICT, name, "order %s has %d unused, unheld credits to refund, fewer than the %d asked", r.OutTradeNo, credits, r.Credits)
		}
		credits = r.Credits
	}
	ref := &Refund{OutRefundNo: r.OutRefundNo, LotID: l.ID, Account: r.Account, Credits: credits,
		Fen: RefundFen(l.Fen, credits, l.Granted), Status: RefundPending, CreatedAt: s.now}
	l.Left -= credits
	l.Refunding += credits
	a.Left -= credits
	s.touchLot(l)
	s.touchAccount(a)
	s.addRefund(ref)
	return ref, nil
}

// BeginRefund reserves the unused, unheld credit of an order's lot as
// "refunding" — no longer spendable nor refundable twice — and records a
// pending refund of floor(fen × credits / granted) fen. Call it before the
// refund API; resolve it with CompleteRefund or FailRefund. Errors:
// EINVALID, ENOTFOUND (no such order for the account), ECONFLICT (nothing
// refundable, or the refund number belongs to another order). Idempotent
// by OutRefundNo.
func (s *Service) BeginRefund(ctx context.Context, r RefundRequest) (Refund, error) {
	v, err := s.do(ctx, beginRefundOp{r})
	if err != nil {
		return Refund{}, err
	}
	return *v.(*Refund), nil
}

// RefundEnd is a pending refund's final state, for EndRefund.
type RefundEnd struct {
	OutRefundNo string
	// Succeeded: WeChat Pay refunded it; else it definitely failed.
	Succeeded bool
	// View, when set, is the refund as the admin API will show it once
	// resolved (payment.RefundRecord.View with the final status and
	// updated_at): the data of the refund.succeeded or refund.failed
	// event written with the change, with the fields the ledger owns
	// (out_refund_no, out_trade_no, account_id, refund_fen, credits,
	// status) set from the ledger's refund. When nil the event carries
	// what the ledger knows, in the same shape: no requested_by, reason,
	// actor or asked_fen, the ledger's created_at, and updated_at the
	// time it was resolved.
	View *RefundView
}

type endRefundOp struct{ e RefundEnd }

func (o endRefundOp) need(n *needs) { n.refundNos[o.e.OutRefundNo] = true }

func (o endRefundOp) apply(s *state) (any, error) {
	name, want := "ledger.FailRefund", RefundFailed
	if o.e.Succeeded {
		name, want = "ledger.CompleteRefund", RefundSucceeded
	}
	no := o.e.OutRefundNo
	ref, ok := s.refunds[no]
	if !ok {
		return nil, fail(tollgate.ENOTFOUND, name, "refund %s not found", no)
	}
	if ref.Status == want {
		return ref, nil
	}
	if ref.Status != RefundPending {
		return nil, fail(tollgate.ECONFLICT, name, "refund %s already %s", no, ref.Status)
	}
	l, a := s.lots[ref.LotID], s.accounts[ref.Account]
	l.Refunding -= ref.Credits
	if o.e.Succeeded {
		l.Refunded += ref.Credits
		l.RefundedFen += ref.Fen
	} else {
		l.Left += ref.Credits
		a.Left += ref.Credits
		s.touchAccount(a)
	}
	ref.Status, ref.ResolvedAt = want, s.now
	s.touchLot(l)
	s.touchRefund(ref)
	typ := webhook.RefundFailed
	if o.e.Succeeded {
		typ = webhook.RefundSucceeded
	}
	v := RefundView{CreatedAt: ref.CreatedAt, UpdatedAt: ref.ResolvedAt}
	if o.e.View != nil {
		v = *o.e.View
	}
	v.OutRefundNo, v.OutTradeNo, v.Account = ref.OutRefundNo, l.OutTradeNo, ref.Account
	v.RefundFen, v.Credits, v.Status = ref.Fen, ref.Credits, ref.Status
	if mutantDropRefundEvent && o.e.Succeeded {
		return ref, nil
	}
	if err := s.emit(typ, ref.Account, v); err != nil {
		return nil, err
	}
	return ref, nil
}

// EndRefund records a pending refund's final state: succeeded, its
// credits leave the lot for good; failed, they go back to the lot and are
// spendable again. The refund.succeeded or refund.failed event is written
// in the same transaction (see RefundEnd.View for its data). Errors:
// ENOTFOUND, ECONFLICT (it reached the other final state). Idempotent: a
// repeat returns the refund and writes no event.
func (s *Service) EndRefund(ctx context.Context, e RefundEnd) (Refund, error) {
	v, err := s.do(ctx, endRefundOp{e})
	if err != nil {
		return Refund{}, err
	}
	return *v.(*Refund), nil
}

// CompleteRefund records that WeChat Pay refunded a pending refund: its
// credits leave the lot for good. It is EndRefund without a view. Errors:
// ENOTFOUND, ECONFLICT (it failed). Idempotent.
func (s *Service) CompleteRefund(ctx context.Context, outRefundNo string) (Refund, error) {
	return s.EndRefund(ctx, RefundEnd{OutRefundNo: outRefundNo, Succeeded: true})
}

// FailRefund records that a pending refund definitely failed: its credits
// go back to the lot and are spendable again. It is EndRefund without a
// view. Errors: ENOTFOUND, ECONFLICT (it succeeded). Idempotent.
func (s *Service) FailRefund(ctx context.Context, outRefundNo string) (Refund, error) {
	return s.EndRefund(ctx, RefundEnd{OutRefundNo: outRefundNo})
}

// Refund returns a refund as stored. Errors: ENOTFOUND.
func (s *Service) Refund(ctx context.Context, outRefundNo string) (Refund, error) {
	var out []Refund
	if err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.Refunds(ctx, []string{outRefundNo})
		return err
	}); err != nil {
		return Refund{}, err
	}
	if len(out) == 0 {
		return Refund{}, fail(tollgate.ENOTFOUND, "ledger.Refund", "refund %s not found", outRefundNo)
	}
	return out[0], nil
}
