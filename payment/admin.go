package payment

import (
	"context"
	"fmt"

	"tollgate"
)

// MaxPage bounds every admin page of orders and refunds.
const MaxPage = 500

func checkPage(limit int) error {
	if limit < 1 || limit > MaxPage {
		return tollgate.Errorf(tollgate.EINVALID, "limit must be from 1 to %d", MaxPage)
	}
	return nil
}

// OrdersPage returns one page of every account's orders, newest first (the
// admin API). Errors: EINVALID (the limit).
func (s *Service) OrdersPage(ctx context.Context, q OrderQuery) ([]Order, error) {
	if err := checkPage(q.Limit); err != nil {
		return nil, err
	}
	if q.Status != "" && !q.Status.Valid() {
		return nil, tollgate.Errorf(tollgate.EINVALID, "status must be one of NOTPAY, USERPAYING, SUCCESS, CLOSED, REFUND, PAYERROR")
	}
	out, err := s.store.OrdersPage(ctx, q)
	if err != nil {
		return nil, wrap("payment.OrdersPage", tollgate.EINTERNAL, err)
	}
	return out, nil
}

// RefundsPage returns one page of refund records, newest first (the admin
// API). Errors: EINVALID (the limit or status).
func (s *Service) RefundsPage(ctx context.Context, q RefundQuery) ([]RefundRecord, error) {
	if err := checkPage(q.Limit); err != nil {
		return nil, err
	}
	switch q.Status {
	case "", RefundPending, RefundSucceeded, RefundFailed:
	default:
		return nil, tollgate.Errorf(tollgate.EINVALID, "status must be pending, succeeded or failed")
	}
	out, err := s.store.RefundsPage(ctx, q)
	if err != nil {
		return nil, wrap("payment.RefundsPage", tollgate.EINTERNAL, err)
	}
	return out, nil
}

// OrdersOf returns account's orders among outTradeNos (at most MaxPage
// numbers; another account's order is left out), read in one query: the
// payments of a page of lots. Errors: EINVALID (too many numbers).
func (s *Service) OrdersOf(ctx context.Context, account tollgate.AccountID, outTradeNos []string) ([]Order, error) {
	if len(outTradeNos) > MaxPage {
		return nil, tollgate.Errorf(tollgate.EINVALID, "at most %d orders at once", MaxPage)
	}
	if len(outTradeNos) == 0 {
		return nil, nil
	}
	os, err := s.store.OrdersByNo(ctx, outTradeNos)
	if err != nil {
		return nil, wrap("payment.OrdersOf", tollgate.EINTERNAL, err)
	}
	out := os[:0]
	for _, o := range os {
		if o.Account == account {
			out = append(out, o)
		}
	}
	return out, nil
}

// AdminOrderRefunds bounds the refunds AdminOrderOf reads of an order.
const AdminOrderRefunds = 100

// AdminOrder is an order as the operator sees it: its refunds, and what
// WeChat Pay says of it now.
type AdminOrder struct {
	Order Order
	// Refunds are the order's newest refunds, AdminOrderRefunds at most,
	// newest first; RefundsTruncated says there are older ones (GET
	// /admin/refunds?out_trade_no= pages through them all).
	Refunds          []RefundRecord
	RefundsTruncated bool
	// WeChat is WeChat Pay's answer to an order query, or nil with
	// WeChatError saying why there is none (the query was refused by the
	// cluster's query budget, or failed).
	WeChat      *Trade
	WeChatError string
}

// AdminOrderOf returns any account's order with its refunds and WeChat
// Pay's side, asked with an order query that counts against the
// merchant's query budget (QueryLimit) like the poller's. Errors:
// ENOTFOUND.
func (s *Service) AdminOrderOf(ctx context.Context, outTradeNo string) (AdminOrder, error) {
	const op = "payment.AdminOrderOf"
	o, err := s.store.Order(ctx, outTradeNo)
	if err != nil {
		return AdminOrder{}, wrap(op, tollgate.EINTERNAL, err)
	}
	// Bounded: one keyset page, never every refund of the order.
	recs, err := s.store.RefundsPage(ctx, RefundQuery{OutTradeNo: outTradeNo, Limit: AdminOrderRefunds + 1})
	if err != nil {
		return AdminOrder{}, wrap(op, tollgate.EINTERNAL, err)
	}
	out := AdminOrder{Order: o, Refunds: recs}
	if len(recs) > AdminOrderRefunds {
		out.Refunds, out.RefundsTruncated = recs[:AdminOrderRefunds], true
	}
	if out.Refunds == nil {
		out.Refunds = []RefundRecord{}
	}
	if ok, wait := s.allowQuery(ctx); !ok {
		out.WeChatError = fmt.Sprintf("not asked: the merchant's order query budget is spent; try again in %v", wait.Round(1e9))
		return out, nil
	}
	t, err := s.gw.QueryOrder(ctx, outTradeNo)
	if err != nil {
		s.log.WarnContext(ctx, "payment: admin order query failed", "out_trade_no", outTradeNo, "err", err)
		out.WeChatError = "WeChat Pay's order query failed: " + tollgate.ErrorMessage(err)
		return out, nil
	}
	out.WeChat = &t
	return out, nil
}
