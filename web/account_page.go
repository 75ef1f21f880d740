package web

import (
	"net/http"
	"time"

	"tollgate"
)

// accountOrders is how many orders the account page lists, and
// accountAdjustments how many of the operator's adjustments (lines of
// their own among the orders, by date).
const (
	accountOrders      = 50
	accountAdjustments = 50
)

type accountBody struct {
	Credits, Held, Provisional, Debt string
	HasDebt                          bool
	Orders                           []orderView
	Chart                            Chart
	CheckoutURL                      string
	// RefundNote, when set, says refunds are made by the operator and
	// how to reach them (Handler.RefundByOperator).
	RefundNote string
}

type orderView struct {
	No, Date, Yuan, Credits, Status, StatusText string
	Refundable                                  bool
	// Adjustment marks a line that is the operator's adjustment, not an
	// order: Credits is signed, No and Yuan are empty.
	Adjustment bool
}

type accountConfig struct {
	Base     string            `json:"base"`
	Messages map[string]string `json:"messages"`
}

// accountPage answers GET /account/{session}: balance, orders with refund
// buttons, and the usage chart of the last 30 days.
func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sessionPage(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	bal, err := h.Accounts.Balance(ctx, s.Account)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	orders, err := h.Orders.ListOrders(ctx, s.Account, accountOrders)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	adjs, err := h.Accounts.ListAdjustments(ctx, s.Account, accountAdjustments)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	now := h.now()
	since := dayStart(now, tollgate.Beijing).AddDate(0, 0, -(chartDays - 1))
	usage, err := h.Accounts.ListUsage(ctx, s.Account, since)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	p := h.newPage(w, r, "title.account")
	body := accountBody{
		Credits: groupDigits(int64(bal.Credits)), Held: groupDigits(int64(bal.Held)),
		Provisional: groupDigits(int64(bal.Provisional)), Debt: groupDigits(int64(bal.Debt)),
		HasDebt: bal.Debt > 0, CheckoutURL: "/checkout/" + r.PathValue("session"),
		Chart: buildChart(usage, now, tollgate.Beijing, p.Lang, p.T("other")),
	}
	if h.RefundByOperator {
		body.RefundNote = p.T("refund.operator")
		if c := p.Brand.Support; c != "" {
			body.RefundNote += " " + p.T("refund.contact") + c
		}
	}
	for _, o := range orders {
		// Adjustments newer than this order come before it (both lists
		// are newest first).
		for len(adjs) > 0 && adjs[0].CreatedAt.After(o.CreatedAt) {
			body.Orders = append(body.Orders, adjustmentLine(p, adjs[0]))
			adjs = adjs[1:]
		}
		st := o.Status
		text := p.T("st." + st)
		body.Orders = append(body.Orders, orderView{
			No: o.OutTradeNo, Date: formatTime(o.CreatedAt), Yuan: o.Fen.String(),
			Credits: groupDigits(int64(o.Credits)), Status: st, StatusText: text,
			Refundable: h.selfRefundable(o, now),
		})
	}
	for _, a := range adjs {
		body.Orders = append(body.Orders, adjustmentLine(p, a))
	}
	p.Body = body
	p.Script = "account.js"
	p.Expires = formatTime(s.ExpiresAt)
	p.ConfigJSON = jsConfig(accountConfig{Base: "/checkout/" + r.PathValue("session"), Messages: messages[p.Lang]})
	h.render(w, r, http.StatusOK, "account", p)
}

// adjustmentLine is an operator's adjustment as a line of the account's
// history: its date, the credits signed, "adjusted by the operator".
func adjustmentLine(p page, a Adjustment) orderView {
	credits := groupDigits(int64(a.Credits))
	if a.Credits > 0 {
		credits = "+" + credits
	}
	return orderView{Date: formatTime(a.CreatedAt), Credits: credits, Status: "adjustment", StatusText: p.T("st.adjustment"), Adjustment: true}
}

// selfRefundable is whether the account page offers a refund button for
// o: a paid order, a Refunder, users allowed to refund and, with a
// RefundWindow, the order placed within it (the server checks again from
// the time of payment, which is no earlier).
func (h *Handler) selfRefundable(o Order, now time.Time) bool {
	if h.Refunder == nil || h.RefundByOperator || o.Status != StatusSuccess {
		return false
	}
	return h.RefundWindow <= 0 || now.Sub(o.CreatedAt) < h.RefundWindow
}
