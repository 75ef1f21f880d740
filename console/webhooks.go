package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"tollgate/httpapi"
	"tollgate/webhook"
)

// The webhooks and platforms pages: the admin API's /admin/webhooks and
// /admin/platforms in the browser. Like every console action they are
// in-process requests to the admin API (so the validation — the webhook
// URL policy, the event catalogue, a platform's name and return hosts —
// is the API's, made by the same webhook and auth calls), and a created
// secret (a whsec_… signing secret, a tgp-… platform key) waits sealed in
// the session until the page it is shown on is seen, once: setNewKey and
// takeNewKey, as for an account's API key.

// webhookForm is the create-endpoint form's fields.
type webhookForm struct {
	URL, Description string
	// Platform is the platform the endpoint is for ("": the operator's,
	// every account's events).
	Platform string
	Events   []string
}

// Has reports whether the form has event type t ticked.
func (f webhookForm) Has(t string) bool { return slices.Contains(f.Events, t) }

type webhooksBody struct {
	Page httpapi.Page[httpapi.WebhookView]
	Next string
	// Types is the event catalogue, for the form's checkboxes.
	Types []string
	// Form is the create form's values: empty, or what was posted when it
	// was refused (FormErr says why).
	Form    webhookForm
	FormErr string
}

// webhookStatuses are the deliveries' statuses, for the filter.
var webhookStatuses = []string{webhook.StatusPending, webhook.StatusDelivered, webhook.StatusFailed}

func (c *Console) webhooks(w http.ResponseWriter, r *http.Request, s *session) {
	c.showWebhooks(w, r, s, http.StatusOK, nil, "")
}

// showWebhooks renders the endpoints page; form and formErr are a refused
// creation's values and why (nil: an empty form).
func (c *Console) showWebhooks(w http.ResponseWriter, r *http.Request, s *session, status int, form *webhookForm, formErr string) {
	b := &webhooksBody{Types: webhook.Types(), FormErr: formErr}
	if form != nil {
		b.Form = *form
	}
	p := c.page(w, r, s, "title.webhooks")
	p.Body = b
	aq := listQuery(nil, r.URL.Query().Get("cursor"))
	if err := c.call(r.Context(), "GET", "/admin/webhooks", aq, nil, nil, &b.Page); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "webhooks", max(status, errStatus(err)), p)
		return
	}
	b.Next = nextPage(aq, b.Page.NextCursor)
	c.render(w, "webhooks", status, p)
}

// createWebhook registers an endpoint (POST /admin/webhooks) and sends the
// browser to its page, which shows the signing secret once. A refused one
// (a URL the policy refuses, no event ticked, …) shows the form again with
// what was typed and why; nothing is created.
func (c *Console) createWebhook(w http.ResponseWriter, r *http.Request, s *session) {
	f := webhookForm{URL: strings.TrimSpace(r.PostFormValue("url")), Description: strings.TrimSpace(r.PostFormValue("description")),
		Platform: strings.TrimSpace(r.PostFormValue("platform")), Events: r.PostForm["events"]}
	body := map[string]any{"url": f.URL, "events": f.Events, "description": f.Description}
	if f.Platform != "" {
		body["platform"] = f.Platform
	}
	if f.Events == nil {
		body["events"] = []string{}
	}
	var out httpapi.WebhookCreated
	if err := c.call(r.Context(), "POST", "/admin/webhooks", nil, body, nil, &out); err != nil {
		c.log().WarnContext(r.Context(), "console: action refused", "session", s.tag(), "action", "create_webhook", "reason", "",
			"origin", webhook.Origin(f.URL), "err", err.Error())
		c.showWebhooks(w, r, s, errStatus(err), &f, err.Error())
		return
	}
	to := pathURL("admin", "ui", "webhooks", out.ID)
	if err := c.setNewKey(r.Context(), s, to, out.Secret); err != nil {
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.done(w, r, s, to, "create_webhook", "", &apiError{Status: 503, Message: c.msg(r, "webhook.lost")}, "", "endpoint", out.ID)
		return
	}
	c.done(w, r, s, to, "create_webhook", "", nil, c.msg(r, "webhook.created"), "endpoint", out.ID, "origin", webhook.Origin(out.URL))
}

type webhookBody struct {
	// E is the endpoint; EndpointURL its console page.
	E           httpapi.WebhookView
	EndpointURL string
	// NewSecret is a secret just created or rotated: shown this once.
	NewSecret string
	// The deliveries: filtered by Status ("" for every one), a page of 50.
	Status     string
	Statuses   []string
	Deliveries httpapi.Page[httpapi.DeliveryView]
	Next       string
}

// webhook is one endpoint's page: the endpoint, its actions and its
// deliveries (GET /admin/webhooks/{id}/deliveries?status=, newest first).
func (c *Console) webhook(w http.ResponseWriter, r *http.Request, s *session) {
	id, q := r.PathValue("id"), r.URL.Query()
	b := &webhookBody{EndpointURL: pathURL("admin", "ui", "webhooks", id), Status: q.Get("status"), Statuses: webhookStatuses}
	p := c.page(w, r, s, "title.webhook")
	p.Body = b
	if err := c.call(r.Context(), "GET", pathURL("admin", "webhooks", id), nil, nil, nil, &b.E); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "error", errStatus(err), p)
		return
	}
	// A secret made on the way here is shown on this view only.
	b.NewSecret = c.takeNewKey(r.Context(), s, b.EndpointURL)
	aq := listQuery(map[string]string{"status": b.Status}, q.Get("cursor"))
	if err := c.call(r.Context(), "GET", pathURL("admin", "webhooks", id, "deliveries"), aq, nil, nil, &b.Deliveries); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "webhook", errStatus(err), p)
		return
	}
	b.Next = nextPage(aq, b.Deliveries.NextCursor)
	c.render(w, "webhook", http.StatusOK, p)
}

// backTo is the endpoint's page with the deliveries filter the form was
// posted from (its "status" field, when it is one).
func backTo(r *http.Request, id string) string {
	to := pathURL("admin", "ui", "webhooks", id)
	if st := r.PostFormValue("status"); slices.Contains(webhookStatuses, st) {
		to += "?" + url.Values{"status": {st}}.Encode()
	}
	return to
}

// rotateWebhook gives the endpoint a new secret, shown once on its page;
// the old one signs too for 24 hours.
func (c *Console) rotateWebhook(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	to := pathURL("admin", "ui", "webhooks", id)
	var out httpapi.WebhookCreated
	if err := c.call(r.Context(), "POST", pathURL("admin", "webhooks", id, "rotate-secret"), nil, nil, nil, &out); err != nil {
		c.done(w, r, s, to, "rotate_webhook_secret", reason, err, "", "endpoint", id)
		return
	}
	if err := c.setNewKey(r.Context(), s, to, out.Secret); err != nil {
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.done(w, r, s, to, "rotate_webhook_secret", reason, &apiError{Status: 503, Message: c.msg(r, "webhook.lost")}, "", "endpoint", id)
		return
	}
	c.done(w, r, s, to, "rotate_webhook_secret", reason, nil, c.msg(r, "webhook.rotated"), "endpoint", id)
}

func (c *Console) enableWebhook(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	err := c.call(r.Context(), "POST", pathURL("admin", "webhooks", id, "enable"), nil, nil, nil, nil)
	c.done(w, r, s, pathURL("admin", "ui", "webhooks", id), "enable_webhook", reason, err, c.msg(r, "webhook.enabled"), "endpoint", id)
}

// deleteWebhook removes the endpoint and its deliveries, then shows the
// list; refused, it stays on the endpoint's page.
func (c *Console) deleteWebhook(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	err := c.call(r.Context(), "DELETE", pathURL("admin", "webhooks", id), nil, nil, nil, nil)
	to := "/admin/ui/webhooks"
	if err != nil && errStatus(err) != http.StatusNotFound {
		to = pathURL("admin", "ui", "webhooks", id)
	}
	c.done(w, r, s, to, "delete_webhook", reason, err, c.msg(r, "webhook.deleted"), "endpoint", id)
}

// retryDelivery makes one delivery due now (a delivered one is sent again,
// with the same webhook-id).
func (c *Console) retryDelivery(w http.ResponseWriter, r *http.Request, s *session) {
	id, d, reason := r.PathValue("id"), r.PathValue("delivery"), reasonOf(r)
	err := c.call(r.Context(), "POST", pathURL("admin", "webhooks", id, "deliveries", d, "retry"), nil, nil, nil, nil)
	c.done(w, r, s, backTo(r, id), "retry_delivery", reason, err, c.msg(r, "delivery.retried"), "endpoint", id, "delivery", d)
}

// platformForm is the create-platform form's fields.
type platformForm struct {
	Name, Hosts string
}

type platformsBody struct {
	Page httpapi.Page[httpapi.PlatformView]
	// NewKey is a platform key just created: shown this once.
	NewKey  string
	Form    platformForm
	FormErr string
}

const platformsURL = "/admin/ui/platforms"

func (c *Console) platforms(w http.ResponseWriter, r *http.Request, s *session) {
	c.showPlatforms(w, r, s, http.StatusOK, nil, "")
}

// showPlatforms renders the platforms page (every platform: the API's
// list is bounded by auth.MaxPlatforms); form and formErr are a refused
// creation's values and why.
func (c *Console) showPlatforms(w http.ResponseWriter, r *http.Request, s *session, status int, form *platformForm, formErr string) {
	b := &platformsBody{FormErr: formErr}
	if form != nil {
		b.Form = *form
	}
	p := c.page(w, r, s, "title.platforms")
	p.Body = b
	if err := c.call(r.Context(), "GET", "/admin/platforms", nil, nil, nil, &b.Page); err != nil {
		p.FlashErr = err.Error()
		c.render(w, "platforms", max(status, errStatus(err)), p)
		return
	}
	if status == http.StatusOK {
		b.NewKey = c.takeNewKey(r.Context(), s, platformsURL)
	}
	c.render(w, "platforms", status, p)
}

// hostList splits the return hosts field at commas and white space.
func hostList(v string) []string {
	hosts := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if hosts == nil {
		return []string{}
	}
	return hosts
}

// createPlatform creates a platform (POST /admin/platforms) and shows its
// key once on the platforms page; a refused one shows the form again with
// what was typed and why.
func (c *Console) createPlatform(w http.ResponseWriter, r *http.Request, s *session) {
	f := platformForm{Name: strings.TrimSpace(r.PostFormValue("name")), Hosts: strings.TrimSpace(r.PostFormValue("return_url_hosts"))}
	var out httpapi.PlatformCreated
	body := map[string]any{"name": f.Name, "return_url_hosts": hostList(f.Hosts)}
	if err := c.call(r.Context(), "POST", "/admin/platforms", nil, body, nil, &out); err != nil {
		c.log().WarnContext(r.Context(), "console: action refused", "session", s.tag(), "action", "create_platform", "reason", "",
			"name", f.Name, "err", err.Error())
		c.showPlatforms(w, r, s, errStatus(err), &f, err.Error())
		return
	}
	if err := c.setNewKey(r.Context(), s, platformsURL, out.Key); err != nil {
		c.log().ErrorContext(r.Context(), "console: session store", "err", err)
		c.done(w, r, s, platformsURL, "create_platform", "", &apiError{Status: 503, Message: c.msg(r, "platform.lost")}, "", "platform", out.ID)
		return
	}
	c.done(w, r, s, platformsURL, "create_platform", "", nil, fmt.Sprintf(c.msg(r, "platform.created"), out.Name), "platform", out.ID)
}

// revokePlatform stops the platform's key at once (DELETE
// /admin/platforms/{id}); its users' accounts and their keys stay.
func (c *Console) revokePlatform(w http.ResponseWriter, r *http.Request, s *session) {
	id, reason := r.PathValue("id"), reasonOf(r)
	err := c.call(r.Context(), "DELETE", pathURL("admin", "platforms", id), nil, nil, nil, nil)
	c.done(w, r, s, platformsURL, "revoke_platform", reason, err, c.msg(r, "platform.revoked"), "platform", id)
}
