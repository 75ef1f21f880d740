package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
)

// AdminOrderView is an order as the admin API shows it.
type AdminOrderView struct {
	OrderResponse
	Account   tollgate.AccountID `json:"account_id"`
	FeeFen    tollgate.Fen       `json:"fee_fen"`
	Review    string             `json:"review"`
	UpdatedAt time.Time          `json:"updated_at"`
}

func adminOrderView(o payment.Order) AdminOrderView {
	return AdminOrderView{OrderResponse: orderResponse(o), Account: o.Account, FeeFen: o.FeeFen, Review: o.Review, UpdatedAt: o.UpdatedAt}
}

// RefundView is a refund as the admin API shows it: who asked and why.
// It is the ledger's type, the data of the refund.succeeded and
// refund.failed webhook events too, so the two cannot drift apart.
type RefundView = ledger.RefundView

func refundView(r payment.RefundRecord) RefundView { return r.View() }

// timeCursor reads a cursor of (created_at in unix microseconds, key).
func timeCursor(r *http.Request) (time.Time, string, error) {
	cur, err := decodeCursor(r, 2)
	if err != nil || cur == nil {
		return time.Time{}, "", err
	}
	us, perr := strconv.ParseInt(cur[0], 10, 64)
	if perr != nil || cur[1] == "" {
		return time.Time{}, "", tollgate.Errorf(tollgate.EINVALID, "cursor is not one this server made: pass next_cursor from the previous page unchanged")
	}
	return time.UnixMicro(us).UTC(), cur[1], nil
}

func timeCursorOf(t time.Time, key string) string {
	return encodeCursor(strconv.FormatInt(t.UTC().UnixMicro(), 10), key)
}

// adminOrders answers GET /admin/orders?status=&account=&from=&to=&limit=&cursor=:
// every account's orders, newest first.
func (s *Server) adminOrders(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := payment.OrderQuery{Status: payment.Status(r.URL.Query().Get("status")), Account: tollgate.AccountID(r.URL.Query().Get("account")), Limit: limit}
	if q.AfterCreated, q.AfterNo, err = timeCursor(r); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if q.From, err = timeParam(r, "from"); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if q.To, err = timeParam(r, "to"); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	os, err := s.Payments.OrdersPage(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[AdminOrderView]{Object: "list", Data: make([]AdminOrderView, 0, len(os))}
	for _, o := range os {
		out.Data = append(out.Data, adminOrderView(o))
	}
	if len(os) == limit {
		last := os[len(os)-1]
		out.NextCursor = timeCursorOf(last.CreatedAt, last.OutTradeNo)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}

// WeChatView is what WeChat Pay's order query says of an order.
type WeChatView struct {
	TradeState    payment.Status `json:"trade_state"`
	TransactionID string         `json:"transaction_id"`
	AmountFen     int64          `json:"amount_fen"`
}

// AdminOrderDetail is the body of GET /admin/orders/{out_trade_no}.
type AdminOrderDetail struct {
	AdminOrderView
	// Refunds are the order's newest refunds, payment.AdminOrderRefunds
	// at most, newest first; RefundsTruncated says there are older ones
	// (GET /admin/refunds?out_trade_no= pages through them all).
	Refunds          []RefundView `json:"refunds"`
	RefundsTruncated bool         `json:"refunds_truncated"`
	WeChat           *WeChatView  `json:"wechat"`
	WeChatError      string       `json:"wechat_error,omitempty"`
}

// adminOrder answers GET /admin/orders/{out_trade_no}: the order, its
// refunds and WeChat Pay's view from an order query.
func (s *Server) adminOrder(w http.ResponseWriter, r *http.Request) {
	no, err := orderNo(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	o, err := s.Payments.AdminOrderOf(r.Context(), no)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	d := AdminOrderDetail{AdminOrderView: adminOrderView(o.Order), Refunds: make([]RefundView, 0, len(o.Refunds)),
		RefundsTruncated: o.RefundsTruncated, WeChatError: o.WeChatError}
	for _, rf := range o.Refunds {
		d.Refunds = append(d.Refunds, refundView(rf))
	}
	if t := o.WeChat; t != nil {
		d.WeChat = &WeChatView{TradeState: t.State, TransactionID: t.TransactionID, AmountFen: t.Fen}
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, d)
}

// adminRefundBody is the body of POST /admin/orders/{out_trade_no}/refund.
type adminRefundBody struct {
	// AmountFen, when given, refunds that much; else all the unused credit.
	AmountFen *tollgate.Fen `json:"amount_fen"`
	Reason    string        `json:"reason"`
}

// AdminRefundView is the answer of POST /admin/orders/{out_trade_no}/refund:
// the refund record as stored, and whether this request resumed one an
// earlier request with the same Idempotency-Key made (then every field is
// that refund's: its reason, amount, actor and status, failed included).
type AdminRefundView struct {
	RefundView
	Resumed bool `json:"resumed"`
}

// adminRefund answers POST /admin/orders/{out_trade_no}/refund: the
// operator refunds all or part of an order's unused credit, whatever
// --refund-policy says, with the reason and actor recorded, once per
// Idempotency-Key: the same key and body answer with the first refund
// as stored (200, Idempotent-Replayed, "resumed": true; a pending one is
// taken further first), another body 409. The actor is not part of the
// body: a retry by another actor gets the first refund, with its actor.
func (s *Server) adminRefund(w http.ResponseWriter, r *http.Request) {
	no, err := orderNo(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	keys := r.Header["Idempotency-Key"]
	if len(keys) != 1 || !validIdempotencyKey(keys[0]) {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "a refund needs one Idempotency-Key header of 1 to 255 visible ASCII characters, so a retry cannot pay twice"))
		return
	}
	var b adminRefundBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if err := checkReason(b.Reason, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	ask := payment.RefundAsk{OutTradeNo: no, Reason: b.Reason, Actor: actorOf(r), IdempotencyKey: keys[0]}
	if b.AmountFen != nil {
		if *b.AmountFen <= 0 {
			WriteError(w, r, s.log(), &payment.ParamError{Param: "amount_fen", Message: "amount_fen must be a positive number of fen (leave it out to refund all the unused credit)"})
			return
		}
		ask.AmountFen = *b.AmountFen
	}
	res, err := s.Payments.AdminRefund(r.Context(), ask)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		s.log().InfoContext(r.Context(), "admin: refund resumed", "out_trade_no", no, "out_refund_no", res.OutRefundNo,
			"status", string(res.Record.Status), "actor", actorOf(r), "first_actor", res.Record.Actor)
	} else {
		s.log().InfoContext(r.Context(), "admin: refund", "out_trade_no", no, "out_refund_no", res.OutRefundNo, "refund_fen", int64(res.Record.Fen),
			"actor", res.Record.Actor, "reason", res.Record.Reason)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, AdminRefundView{RefundView: refundView(res.Record), Resumed: res.Replayed})
}

// adminRefunds answers GET /admin/refunds?account=&status=&out_trade_no=&limit=&cursor=:
// refunds newest first, with who asked and why.
func (s *Server) adminRefunds(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	q := payment.RefundQuery{Status: payment.RefundStatus(r.URL.Query().Get("status")), Account: tollgate.AccountID(r.URL.Query().Get("account")),
		OutTradeNo: r.URL.Query().Get("out_trade_no"), Limit: limit}
	if q.AfterCreated, q.AfterNo, err = timeCursor(r); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	rs, err := s.Payments.RefundsPage(r.Context(), q)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := Page[RefundView]{Object: "list", Data: make([]RefundView, 0, len(rs))}
	for _, rf := range rs {
		out.Data = append(out.Data, refundView(rf))
	}
	if len(rs) == limit {
		last := rs[len(rs)-1]
		out.NextCursor = timeCursorOf(last.CreatedAt, last.OutRefundNo)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, out)
}
