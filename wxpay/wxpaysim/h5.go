package wxpaysim

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
)

// h5Routes registers the payment page an H5 order's h5_url opens: what
// WeChat Pay's checkmweb page does in a phone's browser, reduced to one
// "Pay" button.
func (s *Server) h5Routes(m *http.ServeMux) {
	m.HandleFunc("GET /sim/h5/pay", s.h5Page)
	m.HandleFunc("POST /sim/h5/pay", s.h5Pay)
}

// h5URL is the h5_url of an H5 order. The merchant appends
// "&redirect_url=" + the URL-encoded page the payer returns to.
func (s *Server) h5URL(r *http.Request, prepayID string) string {
	return s.baseURL(r) + "/sim/h5/pay?prepay_id=" + url.QueryEscape(prepayID)
}

// orderByPrepay returns the order a prepay_id was issued for.
func (s *Server) orderByPrepay(prepayID string) (Order, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byPrepay[prepayID]
	if o == nil {
		return Order{}, fmt.Errorf("prepay_id %.64q: %w", prepayID, ErrNotFound)
	}
	s.expireLocked(o, s.nowLocked(s.clockSkew))
	return s.viewLocked(o), nil
}

// h5Request is the order and return address an H5 page request names.
type h5Request struct {
	order    Order
	redirect string // "" when none was given
}

// h5Parse reads prepay_id and redirect_url (query or form) and finds the
// H5 order. On failure it has written the error page.
func (s *Server) h5Parse(w http.ResponseWriter, r *http.Request) (h5Request, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.h5Error(w, http.StatusBadRequest, "the form could not be read")
		return h5Request{}, false
	}
	redirect := r.FormValue("redirect_url")
	if redirect != "" && !validRedirect(redirect) {
		s.h5Error(w, http.StatusBadRequest, "redirect_url must be an absolute http(s) URL")
		return h5Request{}, false
	}
	if why := s.h5RedirectRefusal(r, redirect); why != "" {
		s.h5Error(w, http.StatusBadRequest, why)
		return h5Request{}, false
	}
	o, err := s.orderByPrepay(r.FormValue("prepay_id"))
	if err != nil {
		s.h5Error(w, http.StatusNotFound, "no order has this prepay_id (the h5_url is wrong)")
		return h5Request{}, false
	}
	if o.TradeType != tradeH5 {
		s.h5Error(w, http.StatusBadRequest, fmt.Sprintf("order %s is a %s order, not an H5 (MWEB) one", o.OutTradeNo, o.TradeType))
		return h5Request{}, false
	}
	return h5Request{order: o, redirect: redirect}, true
}

// validRedirect: an absolute http(s) URL.
func validRedirect(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// h5Page shows the order and, while it is payable, the Pay button.
func (s *Server) h5Page(w http.ResponseWriter, r *http.Request) {
	req, ok := s.h5Parse(w, r)
	if !ok {
		return
	}
	s.h5Render(w, http.StatusOK, req, "")
}

// h5Pay is the Pay button: the payer pays, and the browser goes back to
// redirect_url (302), or sees the result when there is none. Nothing is
// paid on any failed check.
func (s *Server) h5Pay(w http.ResponseWriter, r *http.Request) {
	req, ok := s.h5Parse(w, r)
	if !ok {
		return
	}
	o, err := s.Pay(req.order.OutTradeNo)
	switch {
	case errors.Is(err, ErrWrongState):
		req.order = o
		s.h5Render(w, http.StatusConflict, req, "not paid: the order is "+o.State+" ("+tradeStateDesc[o.State]+")")
		return
	case err != nil:
		s.h5Error(w, http.StatusNotFound, "no such order")
		return
	}
	if req.redirect != "" {
		http.Redirect(w, r, req.redirect, http.StatusFound)
		return
	}
	req.order = o
	s.h5Render(w, http.StatusOK, req, "")
}

// h5View is what the page template shows.
type h5View struct {
	Order       Order
	Amount      string
	Payable     bool
	Message     string
	RedirectURL string
	Error       string
}

func (s *Server) h5Render(w http.ResponseWriter, status int, req h5Request, msg string) {
	o := req.order
	v := h5View{Order: o, Amount: yuan(o.Total), RedirectURL: req.redirect, Message: msg,
		Payable: o.State == StateNotPay || o.State == StateUserPaying}
	if v.Message == "" && !v.Payable {
		v.Message = o.State + " (" + tradeStateDesc[o.State] + ")"
	}
	writeHTML(w, status, v)
}

func (s *Server) h5Error(w http.ResponseWriter, status int, msg string) {
	s.logf("wxpaysim: H5 payment page: %d %s", status, msg)
	writeHTML(w, status, h5View{Error: msg})
}

func writeHTML(w http.ResponseWriter, status int, v h5View) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = h5Template.Execute(w, v)
}

var h5Template = template.Must(template.New("h5").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>微信支付 · wxpaysim</title>
<style>
body{font-family:system-ui,-apple-system,sans-serif;max-width:28rem;margin:0 auto;padding:1.5rem 1rem;text-align:center;color:#111}
.banner{background:#fff4e5;color:#8a5300;font-size:.85rem;padding:.4rem;border-radius:.3rem}
.amount{font-size:2.6rem;font-weight:600;margin:1rem 0}
button{background:#07c160;color:#fff;border:0;border-radius:.4rem;font-size:1.2rem;padding:.8rem 0;width:100%}
.muted{color:#777;font-size:.9rem}
.error{color:#b00020}
</style></head>
<body>
<p class="banner">WeChat Pay emulator (wxpaysim): no real money moves</p>
{{if .Error}}
<h1>微信支付</h1>
<p class="error" id="error">{{.Error}}</p>
{{else}}
<h1 id="description">{{.Order.Description}}</h1>
<p class="muted">商户号 {{.Order.MchID}} · 订单 {{.Order.OutTradeNo}}</p>
<p class="amount" id="amount">¥{{.Amount}}</p>
{{if .Payable}}
<form method="post" action="pay">
<input type="hidden" name="prepay_id" value="{{.Order.PrepayID}}">
{{if .RedirectURL}}<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">{{end}}
<button type="submit" id="pay">确认支付 Pay</button>
</form>
{{if .RedirectURL}}<p><a id="cancel" href="{{.RedirectURL}}">取消 Cancel</a></p>{{end}}
{{else}}
<p id="state">{{.Message}}</p>
{{if .RedirectURL}}<p><a id="back" href="{{.RedirectURL}}">返回商户 Back to the merchant</a></p>{{end}}
{{end}}
{{end}}
</body></html>
`))
