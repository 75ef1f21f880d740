package web

import (
	"net/http"

	"tollgate"
)

// accountOrders is how many orders the account page lists.
const accountOrders = 50

type accountBody struct {
	Credits, Held, Provisional, Debt string
	HasDebt                          bool
	Orders                           []orderView
	Chart                            Chart
	CheckoutURL                      string
}

type orderView struct {
	No, Date, Yuan, Credits, Status, StatusText string
	Refundable                                  bool
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
	for _, o := range orders {
		st := o.Status
		text := p.T("st." + st)
		body.Orders = append(body.Orders, orderView{
			No: o.OutTradeNo, Date: formatTime(o.CreatedAt), Yuan: o.Fen.String(),
			Credits: groupDigits(int64(o.Credits)), Status: st, StatusText: text,
			Refundable: h.Refunder != nil && st == StatusSuccess,
		})
	}
	p.Body = body
	p.Script = "account.js"
	p.Expires = formatTime(s.ExpiresAt)
	p.ConfigJSON = jsConfig(accountConfig{Base: "/checkout/" + r.PathValue("session"), Messages: messages[p.Lang]})
	h.render(w, r, http.StatusOK, "account", p)
}
