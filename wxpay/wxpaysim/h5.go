package wxpaysim

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"tollgate"
)

// h5Routes registers the payment page an H5 order's h5_url opens: what
// WeChat Pay's checkmweb page does in a phone's browser, reduced to one
// "Pay" button.
func (s *Server) h5Routes(m *http.ServeMux) {
	m.HandleFunc("GET /sim/h5/pay", s.h5Page)
	m.HandleFunc("POST /sim/h5/pay", s.h5Pay)
}

// H5URLTTL is how long an h5_url opens the payment page, on the
// emulator's order clock: WeChat Pay's h5_url is valid 5 minutes. Placing
// the order again (same out_trade_no, same parameters) answers a fresh one
// while the order is payable.
const H5URLTTL = 5 * time.Minute

// h5Link is one h5_url issued: its order and when (order clock).
type h5Link struct {
	no     string
	issued time.Time
}

// h5URL issues an h5_url of the H5 order of prepayID (its own), just
// placed or placed again. The merchant appends "&redirect_url=" + the
// URL-encoded page the payer returns to. The first carries the order's
// prepay_id; each later one another prepay_id for the same order, so that
// every h5_url has its own 5-minute life (H5URLTTL).
func (s *Server) h5URL(r *http.Request, prepayID string) string {
	s.mu.Lock()
	now := s.nowLocked(s.clockSkew)
	if s.h5Links == nil {
		s.h5Links = map[string]h5Link{}
	}
	id := prepayID
	if _, issued := s.h5Links[id]; issued {
		id = "wx" + now.In(tollgate.Beijing).Format("20060102150405") + randDigits(20)
	}
	if o := s.byPrepay[prepayID]; o != nil {
		s.h5Links[id] = h5Link{no: o.OutTradeNo, issued: now}
	}
	s.mu.Unlock()
	return s.baseURL(r) + "/sim/h5/pay?prepay_id=" + url.QueryEscape(id)
}

// orderByPrepay returns the order a prepay_id was issued for: the order's
// own, or that of one of its h5_urls.
func (s *Server) orderByPrepay(prepayID string) (Order, error) {
	o, _, err := s.h5Order(prepayID)
	return o, err
}

// h5Order returns the order a prepay_id was issued for and, for an
// h5_url's, when that h5_url was issued (zero for other prepay_ids).
func (s *Server) h5Order(prepayID string) (Order, time.Time, error) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byPrepay[prepayID]
	l, isLink := s.h5Links[prepayID]
	if isLink {
		o = s.orders[l.no]
	}
	if o == nil {
		return Order{}, time.Time{}, fmt.Errorf("prepay_id %.64q: %w", prepayID, ErrNotFound)
	}
	s.expireLocked(o, s.nowLocked(s.clockSkew))
	return s.viewLocked(o), l.issued, nil
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
	o, issued, err := s.h5Order(r.FormValue("prepay_id"))
	if err != nil {
		s.h5Error(w, http.StatusNotFound, "no order has this prepay_id (the h5_url is wrong)")
		return h5Request{}, false
	}
	if o.TradeType != tradeH5 {
		s.h5Error(w, http.StatusBadRequest, fmt.Sprintf("order %s is a %s order, not an H5 (MWEB) one", o.OutTradeNo, o.TradeType))
		return h5Request{}, false
	}
	// A payable order's h5_url lives H5URLTTL; the page of a paid or
	// closed order still tells what became of it.
	if payable := o.State == StateNotPay || o.State == StateUserPaying; payable && !issued.IsZero() {
		if age := s.now().Sub(issued); age >= H5URLTTL {
			s.h5ErrorBack(w, http.StatusGone, redirect, fmt.Sprintf("this h5_url expired: it was issued %s ago and is valid %s. "+
				"The merchant must place order %s again (same out_trade_no) for a fresh h5_url.",
				age.Truncate(time.Second), H5URLTTL, o.OutTradeNo))
			return h5Request{}, false
		}
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
	s.h5ErrorBack(w, status, "", msg)
}

// h5ErrorBack is h5Error with a link back to redirect_url (a valid one),
// when there is one.
func (s *Server) h5ErrorBack(w http.ResponseWriter, status int, redirect, msg string) {
	s.logf("wxpaysim: H5 payment page: %d %s", status, msg)
	writeHTML(w, status, h5View{Error: msg, RedirectURL: redirect})
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
{{if .RedirectURL}}<p><a id="back" href="{{.RedirectURL}}">返回商户 Back to the merchant</a></p>{{end}}
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
