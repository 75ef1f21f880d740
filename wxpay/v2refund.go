package wxpay

import (
	"context"
	"fmt"
	"strconv"
)

// Refund states of API v2 (refund_status, refund_status_$n).
const (
	V2RefundStatusSuccess    = "SUCCESS"     // refunded (final)
	V2RefundStatusProcessing = "PROCESSING"  // accepted, not finished
	V2RefundStatusClose      = "REFUNDCLOSE" // failed (final)
	V2RefundStatusChange     = "CHANGE"      // abnormal: handle in the merchant platform
)

// maxV2RefundCount bounds refund_count and total_refund_count: WeChat Pay
// allows 50 refunds per order and pages refundquery by 20.
const maxV2RefundCount = 100

// V2RefundRequest is a refund (申请退款) request. Amounts are integer fen.
type V2RefundRequest struct {
	TransactionID string // one of TransactionID and OutTradeNo (TransactionID wins)
	OutTradeNo    string
	OutRefundNo   string // our refund number; retry only with the same one (required)
	TotalFee      int64  // the order's total, fen (required)
	RefundFee     int64  // this refund, fen, 0 < RefundFee <= TotalFee (required)
	RefundFeeType string // CNY when empty
	RefundDesc    string
	RefundAccount string // REFUND_SOURCE_UNSETTLED_FUNDS (default) or REFUND_SOURCE_RECHARGE_FUNDS
	NotifyURL     string // refund notification URL; the platform's when empty
}

// V2RefundResponse is the answer of an accepted refund. Acceptance is not
// success: follow the refund with QueryRefund or its notification.
type V2RefundResponse struct {
	TransactionID       string
	OutTradeNo          string
	OutRefundNo         string
	RefundID            string
	RefundFee           int64
	SettlementRefundFee int64
	TotalFee            int64
	SettlementTotalFee  int64
	CashFee             int64
	CashRefundFee       int64
	// Raw is the whole verified answer.
	Raw map[string]string
}

// Refund asks for a refund. Outside the sandbox it is sent to
// /secapi/pay/refund over mutual TLS with Certificate; in the sandbox to
// /sandboxnew/pay/refund without a certificate. Sending the same
// OutRefundNo again never refunds twice, so a retry after SYSTEMERROR,
// BIZERR_NEED_RETRY or a TransportError must reuse it.
func (c *V2Client) Refund(ctx context.Context, r *V2RefundRequest) (*V2RefundResponse, error) {
	switch {
	case r.TransactionID == "" && r.OutTradeNo == "":
		return nil, fmt.Errorf("%w: refund needs transaction_id or out_trade_no", ErrV2Request)
	case r.OutRefundNo == "":
		return nil, fmt.Errorf("%w: refund needs out_refund_no", ErrV2Request)
	case r.RefundFee <= 0 || r.TotalFee <= 0 || r.RefundFee > r.TotalFee:
		return nil, fmt.Errorf("%w: refund_fee %d of total_fee %d", ErrV2Request, r.RefundFee, r.TotalFee)
	}
	p := map[string]string{
		"transaction_id":  r.TransactionID,
		"out_trade_no":    r.OutTradeNo,
		"out_refund_no":   r.OutRefundNo,
		"total_fee":       strconv.FormatInt(r.TotalFee, 10),
		"refund_fee":      strconv.FormatInt(r.RefundFee, 10),
		"refund_fee_type": r.RefundFeeType,
		"refund_desc":     r.RefundDesc,
		"refund_account":  r.RefundAccount,
		"notify_url":      r.NotifyURL,
	}
	call := v2Call{op: "refund", path: "/secapi/pay/refund", mutual: true}
	if c.Sandbox {
		call = v2Call{op: "refund", path: "/pay/refund"}
	}
	m, err := c.do(ctx, call, p)
	if err != nil {
		return nil, err
	}
	resp := &V2RefundResponse{
		TransactionID: m["transaction_id"], OutTradeNo: m["out_trade_no"],
		OutRefundNo: m["out_refund_no"], RefundID: m["refund_id"], Raw: m,
	}
	err = fenFields(m, map[string]*int64{
		"refund_fee": &resp.RefundFee, "settlement_refund_fee": &resp.SettlementRefundFee,
		"total_fee": &resp.TotalFee, "settlement_total_fee": &resp.SettlementTotalFee,
		"cash_fee": &resp.CashFee, "cash_refund_fee": &resp.CashRefundFee,
	})
	if err != nil {
		return nil, &TransportError{Op: "refund", Err: err}
	}
	return resp, nil
}

// V2RefundQuery names what to query, by priority: RefundID, OutRefundNo,
// TransactionID, OutTradeNo (only the first set is sent). Offset pages
// through the refunds of an order with more than 20.
type V2RefundQuery struct {
	RefundID      string
	OutRefundNo   string
	TransactionID string
	OutTradeNo    string
	Offset        int
}

// V2RefundQueryResponse is the answer of refundquery: the order and its
// refunds (the per-refund "_$n" fields, in order).
type V2RefundQueryResponse struct {
	TransactionID      string
	OutTradeNo         string
	TotalFee           int64
	SettlementTotalFee int64
	CashFee            int64
	FeeType            string
	TotalRefundCount   int // all refunds of the order (may exceed len(Refunds))
	Refunds            []V2RefundItem
	// Raw is the whole verified answer.
	Raw map[string]string
}

// V2RefundItem is one refund of a refundquery answer.
type V2RefundItem struct {
	OutRefundNo         string
	RefundID            string
	RefundChannel       string // ORIGINAL, BALANCE, OTHER_BALANCE, OTHER_BANKCARD
	RefundStatus        string // see V2RefundStatus*
	RefundAccount       string
	RefundRecvAccout    string // sic: WeChat Pay spells it "accout"
	RefundSuccessTime   string // yyyy-MM-dd HH:mm:ss
	RefundFee           int64
	SettlementRefundFee int64
}

// QueryRefund asks for the refunds of an order or one refund
// (POST /pay/refundquery). An unknown refund answers REFUNDNOTEXIST.
func (c *V2Client) QueryRefund(ctx context.Context, q V2RefundQuery) (*V2RefundQueryResponse, error) {
	var p map[string]string
	switch {
	case q.RefundID != "":
		p = map[string]string{"refund_id": q.RefundID}
	case q.OutRefundNo != "":
		p = map[string]string{"out_refund_no": q.OutRefundNo}
	case q.TransactionID != "":
		p = map[string]string{"transaction_id": q.TransactionID}
	case q.OutTradeNo != "":
		p = map[string]string{"out_trade_no": q.OutTradeNo}
	default:
		return nil, fmt.Errorf("%w: refundquery needs refund_id, out_refund_no, transaction_id or out_trade_no", ErrV2Request)
	}
	if q.Offset > 0 {
		p["offset"] = strconv.Itoa(q.Offset)
	}
	m, err := c.do(ctx, v2Call{op: "refundquery", path: "/pay/refundquery"}, p)
	if err != nil {
		return nil, err
	}
	resp, err := parseV2RefundQuery(m)
	if err != nil {
		return nil, &TransportError{Op: "refundquery", Err: err}
	}
	return resp, nil
}

// parseV2RefundQuery types a refundquery answer.
func parseV2RefundQuery(m map[string]string) (*V2RefundQueryResponse, error) {
	r := &V2RefundQueryResponse{
		TransactionID: m["transaction_id"], OutTradeNo: m["out_trade_no"],
		FeeType: m["fee_type"], Raw: m,
	}
	err := fenFields(m, map[string]*int64{
		"total_fee": &r.TotalFee, "settlement_total_fee": &r.SettlementTotalFee, "cash_fee": &r.CashFee,
	})
	if err != nil {
		return nil, err
	}
	n, err := parseCount(m, "refund_count")
	if err != nil {
		return nil, err
	}
	if r.TotalRefundCount, err = parseCount(m, "total_refund_count"); err != nil {
		return nil, err
	}
	for i := range n {
		sfx := "_" + strconv.Itoa(i)
		it := V2RefundItem{
			OutRefundNo: m["out_refund_no"+sfx], RefundID: m["refund_id"+sfx],
			RefundChannel: m["refund_channel"+sfx], RefundStatus: m["refund_status"+sfx],
			RefundAccount: m["refund_account"+sfx], RefundRecvAccout: m["refund_recv_accout"+sfx],
			RefundSuccessTime: m["refund_success_time"+sfx],
		}
		if it.OutRefundNo == "" || it.RefundStatus == "" {
			return nil, fmt.Errorf("refund %d of %d lacks out_refund_no or refund_status: %w", i, n, ErrMalformed)
		}
		err := fenFields(m, map[string]*int64{
			"refund_fee" + sfx: &it.RefundFee, "settlement_refund_fee" + sfx: &it.SettlementRefundFee,
		})
		if err != nil {
			return nil, err
		}
		r.Refunds = append(r.Refunds, it)
	}
	return r, nil
}

// parseCount parses a small non-negative count field (absent is 0).
func parseCount(m map[string]string, name string) (int, error) {
	s, ok := m[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxV2RefundCount {
		return 0, fmt.Errorf("%s=%q: %w", name, s, ErrMalformed)
	}
	return n, nil
}
