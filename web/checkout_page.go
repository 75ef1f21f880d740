package web

import (
	"net/http"
	"net/url"
)

// maxModels is how many models a package card estimates tokens for.
const maxModels = 3

type packageView struct {
	ID       string
	Label    string
	Yuan     string
	Credits  string
	Tokens   []tokenView
	Selected bool
}

type tokenView struct {
	Model, Count string
	// PerCall is the model's per-call fee in credits ("" when none):
	// the count is of its tokens alone.
	PerCall string
}

type checkoutBody struct {
	Packages   []packageView
	AccountURL string
	// Method is how this browser pays: native, h5 or jsapi.
	Method string
	// QRURL is the "Show QR code instead" link, on the phone flows.
	QRURL string
	// Note is the key of a note on how to pay here ("" for none).
	Note string
	// CancelURL is the app's return URL with status=cancelled, for a
	// user who gives up ("" without a return URL).
	CancelURL string
}

// checkoutConfig is what checkout.js reads.
type checkoutConfig struct {
	Base        string `json:"base"`
	Selected    string `json:"selected"`
	Sandbox     bool   `json:"sandbox"`
	SandboxPath string `json:"sandbox_path"`
	Merchant    string `json:"merchant"`
	Lang        string `json:"lang"`
	// Method is how orders are paid here: native, h5 or jsapi.
	Method string `json:"method"`
	// Order is the order an H5 payment came back from (?order=), whose
	// result the page shows.
	Order    string            `json:"order,omitempty"`
	Messages map[string]string `json:"messages"`
	// ReturnURL is the app's return URL, to which the script adds
	// order=<out_trade_no> and status=paid|cancelled.
	ReturnURL string `json:"return_url,omitempty"`
}

// payMethod picks how this browser pays: ?method=native (the "Show QR
// code instead" link) always shows the QR code; inside WeChat the JSAPI
// sheet once the browser has its openid (redirect: it must get one through
// OAuth first), or the QR code with a note when OAuth is not configured; a
// phone's browser goes to WeChat Pay's H5 page; a desktop scans the QR
// code.
func (h *Handler) payMethod(r *http.Request) (method, note string, redirect bool) {
	browser := browserOf(r.UserAgent())
	if browser == browserWeChat && h.OAuth == nil {
		// H5 pages refuse to open inside WeChat, so the QR code it is:
		// WeChat pays a QR code long-pressed in its own browser.
		note = "wechat.nooauth"
	}
	if r.URL.Query().Get("method") == MethodNative {
		return MethodNative, note, false
	}
	switch browser {
	case browserWeChat:
		if h.OAuth == nil {
			return MethodNative, note, false
		}
		if h.openID(r) == "" {
			return MethodJSAPI, "", true
		}
		return MethodJSAPI, "", false
	case browserMobile:
		return MethodH5, "", false
	}
	return MethodNative, "", false
}

// checkoutPage answers GET /checkout/{session}: the packages, and with
// ?package=ID (or a package in the session) that package's payment at
// once; with ?order=NO (WeChat Pay's H5 page sending the browser back)
// that order's result. Inside WeChat without an openid it redirects to
// WeChat's OAuth first.
func (h *Handler) checkoutPage(w http.ResponseWriter, r *http.Request) {
	s, ok := h.sessionPage(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	pkgs, err := h.Catalog.Packages(ctx)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	selected := s.PackageID
	if q := r.URL.Query().Get("package"); q != "" {
		selected = q
	}
	found := false
	for _, pk := range pkgs {
		found = found || pk.ID == selected
	}
	if !found {
		selected = "" // an unknown ?package= just shows the list
	}
	method, note, redirect := h.payMethod(r)
	if redirect {
		h.wechatAuthorize(w, r, selected)
		return
	}
	models, err := h.Catalog.ModelPrices(ctx)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	if len(models) > maxModels {
		models = models[:maxModels]
	}
	p := h.newPage(w, r, "title.checkout")
	base := "/checkout/" + r.PathValue("session")
	body := checkoutBody{AccountURL: "/account/" + r.PathValue("session"), Method: method, Note: note}
	if s.ReturnURL != "" {
		body.CancelURL = ReturnTo(s.ReturnURL, "", "cancelled")
	}
	if method != MethodNative {
		body.QRURL = base + "?method=" + MethodNative
	}
	for _, pk := range pkgs {
		v := packageView{ID: pk.ID, Yuan: pk.Fen.String(), Credits: compact(int64(pk.Credits), p.Lang), Selected: pk.ID == selected,
			Label: pk.Labels[p.Lang]}
		for _, m := range models {
			if n := tokensFor(int64(pk.Credits), m); n > 0 {
				tv := tokenView{Model: m.Model, Count: compact(n, p.Lang)}
				if m.PerCall > 0 {
					tv.PerCall = compact(int64(m.PerCall), p.Lang)
				}
				v.Tokens = append(v.Tokens, tv)
			}
		}
		body.Packages = append(body.Packages, v)
	}
	order := r.URL.Query().Get("order")
	if !validOrderNo.MatchString(order) {
		order = ""
	}
	if order != "" {
		selected = "" // the page shows that order, not a new one
	}
	p.Body = body
	p.Script = "checkout.js"
	p.Expires = formatTime(s.ExpiresAt)
	p.ConfigJSON = jsConfig(checkoutConfig{
		Base: base, Selected: selected, Sandbox: h.Sandbox, SandboxPath: h.sandboxPath(),
		Merchant: h.merchant(), Lang: p.Lang, Method: method, Order: order, Messages: messages[p.Lang],
		ReturnURL: s.ReturnURL,
	})
	w.Header().Set("Vary", "User-Agent, Cookie")
	h.render(w, r, http.StatusOK, "checkout", p)
}

// ReturnTo is the app's return URL with the order (when known) and the
// outcome, paid or cancelled, as query parameters (checkout.js builds the
// same).
func ReturnTo(returnURL, order, status string) string {
	u, err := url.Parse(returnURL)
	if err != nil {
		return ""
	}
	q := u.Query()
	if order != "" {
		q.Set("order", order)
	}
	q.Set("status", status)
	u.RawQuery = q.Encode()
	return u.String()
}
