package console

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/httpapi"
	"tollgate/ledger"
	"tollgate/payment"
)

// revenueView is one period of the overview.
type revenueView struct {
	Payments                                        int
	Gross, Fee, Refunded, Net, ProviderCost, Margin tollgate.Fen
	Requests                                        int64
	CreditsUsed, AdjustAdded, AdjustRemoved         tollgate.Credits
	Adjustments                                     int64
}

func viewRevenue(r payment.RevenueReport) *revenueView {
	return &revenueView{Payments: r.Payments, Gross: r.GrossFen, Fee: r.FeeFen, Refunded: r.RefundedFen, Net: r.NetFen,
		ProviderCost: r.ProviderCostFen, Margin: r.MarginFen, Requests: r.Requests, CreditsUsed: r.CreditsUsed,
		Adjustments: r.Adjustments.Count, AdjustAdded: r.Adjustments.Added, AdjustRemoved: r.Adjustments.Removed}
}

type overviewBody struct {
	Today, Month *revenueView
	MonthName    string
	Rollout      *payment.RolloutStatus
	Debt         *ledger.DebtTotal
	Orders       []httpapi.AdminOrderView
	Errors       []string
	// The last 24 hours' orders: their chart and totals.
	Hourly                                                *chart
	HourlyPlaced, HourlyPaid, HourlyFailed, HourlyRefused int64
	HourlyShown                                           bool
	// Health is each deployment's breaker and upstream calls; HealthShown
	// when the console has a reporter.
	Health      []gateway.DeploymentHealth
	HealthShown bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, b := r.Context(), &overviewBody{}
	now := c.now().In(tollgate.Beijing)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, tollgate.Beijing)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, tollgate.Beijing)
	b.MonthName = month.Format("2006-01")
	if c.Revenue != nil {
		if rep, err := c.Revenue.Revenue(ctx, day, day.AddDate(0, 0, 1)); err == nil {
			b.Today = viewRevenue(rep)
		} else {
			b.Errors = append(b.Errors, err.Error())
		}
		if rep, err := c.Revenue.Revenue(ctx, month, month.AddDate(0, 1, 0)); err == nil {
			b.Month = viewRevenue(rep)
		} else {
			b.Errors = append(b.Errors, err.Error())
		}
	}
	if c.Debt != nil {
		if d, err := c.Debt.DebtOutstanding(ctx); err == nil {
			b.Debt = &d
		} else {
			b.Errors = append(b.Errors, err.Error())
		}
	}
	if c.Orders != nil {
		to := c.now().Truncate(time.Hour).Add(time.Hour)
		from := to.Add(-24 * time.Hour)
		if hs, err := c.Orders.HourlyOrders(ctx, from, to); err == nil {
			b.HourlyShown = true
			for _, h := range hs {
				b.HourlyPlaced += h.Placed
				b.HourlyPaid += h.Paid
				b.HourlyFailed += h.Failed
				b.HourlyRefused += h.Refused
			}
			b.Hourly = hourChart(hs, from, c.msg(r, "paid"), c.msg(r, "failed"), c.msg(r, "refused"))
		} else {
			b.Errors = append(b.Errors, err.Error())
		}
	}
	if c.Health != nil {
		b.HealthShown = true
		b.Health = c.Health.Health()
	}
	var ro payment.RolloutStatus
	if err := c.call(ctx, "GET", "/admin/rollout", nil, nil, nil, &ro); err == nil {
		b.Rollout = &ro
	} else if errStatus(err) != http.StatusNotFound {
		b.Errors = append(b.Errors, err.Error())
	}
	var os httpapi.Page[httpapi.AdminOrderView]
	if err := c.call(ctx, "GET", "/admin/orders", url.Values{"limit": {"10"}}, nil, nil, &os); err == nil {
		b.Orders = os.Data
	} else if errStatus(err) != http.StatusServiceUnavailable {
		b.Errors = append(b.Errors, err.Error())
	}
	p := c.page(w, r, s, "title.overview")
	p.Body = b
	c.render(w, "overview", http.StatusOK, p)
}

type accountsBody struct {
	Q    string
	Page httpapi.Page[httpapi.AccountView]
	Next string
}

func (c *Console) accounts(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	b := &accountsBody{Q: strings.TrimSpace(q.Get("q"))}
	p := c.page(w, r, s, "title.accounts")
	p.Body = b
	aq := listQuery(map[string]string{"q": b.Q}, q.Get("cursor"))
	if err := c.call(r.Context(), "GET", "/admin/accounts", aq, nil, nil, &b.Page); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "accounts", errStatus(err), p)
		return
	}
	if len(b.Page.Data) == 1 && b.Q != "" && q.Get("cursor") == "" {
		// One match (an id or external id): straight to it.
		http.Redirect(w, r, pathURL("admin", "ui", "accounts", string(b.Page.Data[0].Account)), http.StatusSeeOther)
		return
	}
	b.Next = nextPage(aq, b.Page.NextCursor)
	c.render(w, "accounts", http.StatusOK, p)
}

type accountBody struct {
	D          httpapi.AccountDetail
	IdemKey    string
	NewKey     string
	AccountURL string
	// Edit is the edit form's values: the account's, or what was posted
	// when it was refused (EditErr says why).
	Edit    editForm
	EditErr string
}

// editForm is the account edit form's fields.
type editForm struct {
	Label, ExternalID, Metadata, Reason string
}

func (c *Console) account(w http.ResponseWriter, r *http.Request, s *session) {
	c.showAccount(w, r, s, http.StatusOK, nil, "")
}

// showAccount renders account id's page; edit and editErr are a refused
// edit's values and why (nil: the form shows the account as it is).
func (c *Console) showAccount(w http.ResponseWriter, r *http.Request, s *session, status int, edit *editForm, editErr string) {
	id := r.PathValue("id")
	b := &accountBody{IdemKey: randomToken(), AccountURL: pathURL("admin", "ui", "accounts", id), EditErr: editErr}
	p := c.page(w, r, s, "title.account")
	p.Body = b
	if err := c.call(r.Context(), "GET", pathURL("admin", "accounts", id), nil, nil, nil, &b.D); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "error", errStatus(err), p)
		return
	}
	// A key created on the way here is shown on this view only.
	b.NewKey = c.takeNewKey(r.Context(), s, b.AccountURL)
	if edit != nil {
		b.Edit = *edit
	} else {
		a := b.D.Account
		b.Edit = editForm{Label: a.Label, Metadata: string(a.Metadata)}
		if a.ExternalID != nil {
			b.Edit.ExternalID = *a.ExternalID
		}
		if b.Edit.Metadata == "" || b.Edit.Metadata == "null" {
			b.Edit.Metadata = "{}"
		}
	}
	c.render(w, "account", status, p)
}

// formIdem is the Idempotency-Key for a form's one-time "idem" field (a
// randomToken put in the page): a missing or malformed one is refused, as
// a key shared by every such submission would turn a new action into a
// replay of an old one, or the other way round.
func formIdem(r *http.Request) (string, error) {
	v := r.PostFormValue("idem")
	if b, err := base64.RawURLEncoding.DecodeString(v); err != nil || len(b) != 32 {
		return "", &apiError{Status: 400, Message: "the form has lost its one-time key: reload the page and submit it again"}
	}
	return "console-" + v, nil
}

// reasonOf is the form's reason, trimmed.
func reasonOf(r *http.Request) string { return strings.TrimSpace(r.PostFormValue("reason")) }

func (c *Console) adjust(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	to := pathURL("admin", "ui", "accounts", id)
	n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("credits")), ",", ""), 10, 64)
	if err != nil {
		c.done(w, r, s, to, "adjust", reason, &apiError{Status: 400, Message: "credits must be a whole number, e.g. 5000 or -200"}, "", "account", id)
		return
	}
	idem, err := formIdem(r)
	if err != nil {
		c.done(w, r, s, to, "adjust", reason, err, "", "account", id)
		return
	}
	body := map[string]any{"credits": n, "reason": reason, "as_debt": r.PostFormValue("as_debt") != ""}
	// The form's own key: submitting it twice adjusts once.
	hdr := http.Header{"Idempotency-Key": {idem}}
	var out httpapi.AdjustmentView
	err = c.call(r.Context(), "POST", pathURL("admin", "accounts", id, "adjustments"), nil, body, hdr, &out)
	c.done(w, r, s, to, "adjust", reason, err, c.msg(r, "adjust.done"), "account", id, "credits", n, "adjustment", out.AdjustmentID)
}

// createKey creates a key and sends the browser to the account's page,
// which shows its secret once (POST-redirect-GET: reloading that page
// creates nothing). The secret waits in the session, server-side, until
// that page is seen.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	to := pathURL("admin", "ui", "accounts", id)
	var out httpapi.KeyCreated
	if err := c.call(r.Context(), "POST", pathURL("admin", "accounts", id, "keys"), nil, nil, nil, &out); err != nil {
		c.done(w, r, s, to, "create_key", "", err, "", "account", id)
		return
	}
	if err := c.setNewKey(r.Context(), s, to, out.APIKey); err != nil {
		// The key exists but its secret cannot be kept for the page:
		// say so (revoke it and create another).
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.done(w, r, s, to, "create_key", "", &apiError{Status: 503, Message: c.msg(r, "key.lost")}, "", "account", id, "key", out.KeyID)
		return
	}
	c.done(w, r, s, to, "create_key", "", nil, c.msg(r, "key.done"), "account", id, "key", out.KeyID)
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, s *session) {
	id, key, reason := r.PathValue("id"), r.PathValue("key"), reasonOf(r)
	err := c.call(r.Context(), "DELETE", pathURL("admin", "accounts", id, "keys", key), nil, nil, nil, nil)
	c.done(w, r, s, pathURL("admin", "ui", "accounts", id), "revoke_key", reason, err, c.msg(r, "revoke.done"), "account", id, "key", key)
}

func (c *Console) disable(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	off := r.PostFormValue("disabled") == "true"
	var out httpapi.AccountView
	err := c.call(r.Context(), "PATCH", pathURL("admin", "accounts", id), nil, map[string]any{"disabled": off, "reason": reason}, nil, &out)
	msg := "enable.done"
	if off {
		msg = "disable.done"
	}
	c.done(w, r, s, pathURL("admin", "ui", "accounts", id), "set_disabled", reason, err, c.msg(r, msg), "account", id, "disabled", off)
}

// edit changes the account's label, external id and metadata through
// PATCH /admin/accounts/{id}. A refused edit shows the page again with
// what was typed and why, nothing changed.
func (c *Console) edit(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	f := editForm{Label: strings.TrimSpace(r.PostFormValue("label")), ExternalID: strings.TrimSpace(r.PostFormValue("external_id")),
		Metadata: strings.TrimSpace(r.PostFormValue("metadata")), Reason: reasonOf(r)}
	refuse := func(status int, msg string, err error) {
		c.log().WarnContext(r.Context(), "console: action refused", "session", s.tag(), "action", "edit", "reason", f.Reason,
			"account", id, "err", err.Error())
		c.showAccount(w, r, s, status, &f, msg)
	}
	if f.Metadata == "" {
		f.Metadata = "{}"
	}
	meta := json.RawMessage(f.Metadata)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(meta, &obj); err != nil || obj == nil {
		refuse(http.StatusBadRequest, c.msg(r, "edit.badmeta"), fmt.Errorf("metadata is not a JSON object"))
		return
	}
	body := map[string]any{"label": f.Label, "metadata": meta, "reason": f.Reason}
	if f.ExternalID == "" {
		body["external_id"] = nil // removes it
	} else {
		body["external_id"] = f.ExternalID
	}
	var out httpapi.AccountView
	err := c.call(r.Context(), "PATCH", pathURL("admin", "accounts", id), nil, body, nil, &out)
	if err != nil {
		msg := err.Error()
		if errStatus(err) == http.StatusConflict {
			msg = fmt.Sprintf(c.msg(r, "edit.dupext"), f.ExternalID)
		}
		refuse(errStatus(err), msg, err)
		return
	}
	c.done(w, r, s, pathURL("admin", "ui", "accounts", id), "edit", f.Reason, nil, c.msg(r, "edit.done"), "account", id,
		"label", out.Label, "external_id", deref(out.ExternalID))
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// msg translates key in r's language.
func (c *Console) msg(r *http.Request, key string) string {
	return (&pageData{Lang: pickLang(nil, r)}).T(key)
}

type ordersBody struct {
	Status, Account, From, To string
	Statuses                  []string
	Page                      httpapi.Page[httpapi.AdminOrderView]
	Next                      string
}

func (c *Console) orders(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	b := &ordersBody{Status: q.Get("status"), Account: strings.TrimSpace(q.Get("account")), From: q.Get("from"), To: q.Get("to"),
		Statuses: []string{"NOTPAY", "USERPAYING", "SUCCESS", "CLOSED", "REFUND", "PAYERROR"}}
	p := c.page(w, r, s, "title.orders")
	p.Body = b
	aq := listQuery(map[string]string{"status": b.Status, "account": b.Account, "from": b.From, "to": b.To}, q.Get("cursor"))
	if err := c.call(r.Context(), "GET", "/admin/orders", aq, nil, nil, &b.Page); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "orders", errStatus(err), p)
		return
	}
	b.Next = nextPage(aq, b.Page.NextCursor)
	c.render(w, "orders", http.StatusOK, p)
}

// orderBody is the order page: the order and the refund form's one-time
// idempotency key.
type orderBody struct {
	httpapi.AdminOrderDetail
	IdemKey string
}

func (c *Console) order(w http.ResponseWriter, r *http.Request, s *session) {
	no := r.PathValue("no")
	d := &orderBody{IdemKey: randomToken()}
	p := c.page(w, r, s, "title.order")
	p.Body = d
	if err := c.call(r.Context(), "GET", pathURL("admin", "orders", no), nil, nil, nil, &d.AdminOrderDetail); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "error", errStatus(err), p)
		return
	}
	c.render(w, "order", http.StatusOK, p)
}

func (c *Console) refund(w http.ResponseWriter, r *http.Request, s *session) {
	no, reason := r.PathValue("no"), reasonOf(r)
	to := pathURL("admin", "ui", "orders", no)
	idem, err := formIdem(r)
	if err != nil {
		c.done(w, r, s, to, "refund", reason, err, "", "out_trade_no", no)
		return
	}
	body := map[string]any{"reason": reason}
	if a := strings.TrimSpace(r.PostFormValue("amount_fen")); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			c.done(w, r, s, to, "refund", reason, &apiError{Status: 400, Message: "amount_fen must be a whole number of fen, or empty for all the unused credit"}, "", "out_trade_no", no)
			return
		}
		body["amount_fen"] = n
	}
	var out map[string]any
	// The form's own key: submitting it twice refunds once.
	err = c.call(r.Context(), "POST", pathURL("admin", "orders", no, "refund"), nil, body, http.Header{"Idempotency-Key": {idem}}, &out)
	c.done(w, r, s, to, "refund", reason, err, c.msg(r, "refund.done"), "out_trade_no", no, "out_refund_no", out["out_refund_no"])
}

type refundsBody struct {
	Status, Account string
	Statuses        []string
	Page            httpapi.Page[httpapi.RefundView]
	Next            string
}

// refunds lists refunds newest first (GET /admin/refunds), filtered by
// status and account, a page of 50 at a time.
func (c *Console) refunds(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	b := &refundsBody{Status: q.Get("status"), Account: strings.TrimSpace(q.Get("account")),
		Statuses: []string{string(payment.RefundPending), string(payment.RefundSucceeded), string(payment.RefundFailed)}}
	p := c.page(w, r, s, "title.refunds")
	p.Body = b
	aq := listQuery(map[string]string{"status": b.Status, "account": b.Account}, q.Get("cursor"))
	if err := c.call(r.Context(), "GET", "/admin/refunds", aq, nil, nil, &b.Page); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "refunds", errStatus(err), p)
		return
	}
	b.Next = nextPage(aq, b.Page.NextCursor)
	c.render(w, "refunds", http.StatusOK, p)
}

type usageBody struct {
	Account, Model, From, To string
	ByDay, ByModel           []httpapi.UsageGroupView
	Chart                    *chart
}

type usageAnswer struct {
	Data []httpapi.UsageGroupView `json:"data"`
}

func (c *Console) usage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	b := &usageBody{Account: strings.TrimSpace(q.Get("account")), Model: strings.TrimSpace(q.Get("model")), From: q.Get("from"), To: q.Get("to")}
	p := c.page(w, r, s, "title.usage")
	p.Body = b
	aq := url.Values{}
	for k, v := range map[string]string{"account": b.Account, "model": b.Model, "from": b.From, "to": b.To} {
		if v != "" {
			aq.Set(k, v)
		}
	}
	get := func(group string) ([]httpapi.UsageGroupView, error) {
		gq := url.Values{"group_by": {group}}
		for k, v := range aq {
			gq[k] = v
		}
		var a usageAnswer
		err := c.call(r.Context(), "GET", "/admin/usage", gq, nil, nil, &a)
		return a.Data, err
	}
	var err error
	if b.ByDay, err = get("day"); err == nil {
		b.ByModel, err = get("model")
	}
	if err != nil {
		p.FlashErr = err.Error()
		c.render(w, "usage", errStatus(err), p)
		return
	}
	b.Chart = dayChart(b.ByDay)
	c.render(w, "usage", http.StatusOK, p)
}

func (c *Console) catalog(w http.ResponseWriter, r *http.Request, s *session) {
	var v httpapi.CatalogView
	p := c.page(w, r, s, "title.catalog")
	p.Body = &v
	if err := c.call(r.Context(), "GET", "/admin/catalog", nil, nil, nil, &v); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "error", errStatus(err), p)
		return
	}
	c.render(w, "catalog", http.StatusOK, p)
}

// listQuery is the admin API query of a console list: a page of 50, the
// filters that are set, and the page's cursor (if any).
func listQuery(filters map[string]string, cursor string) url.Values {
	aq := url.Values{"limit": {"50"}}
	for k, v := range filters {
		if v != "" {
			aq.Set(k, v)
		}
	}
	if cursor != "" {
		aq.Set("cursor", cursor)
	}
	return aq
}

// nextPage is the console's link to the page after (the list's filters
// and the API's next cursor), "" when there is none.
func nextPage(aq url.Values, next string) string {
	if next == "" {
		return ""
	}
	v := url.Values{}
	for k, vs := range aq {
		if k != "limit" && k != "cursor" {
			v[k] = vs
		}
	}
	v.Set("cursor", next)
	return "?" + v.Encode()
}
