package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tollgate"
)

// session verifies the {session} path segment.
func (h *Handler) session(r *http.Request) (Session, error) {
	return VerifySession(h.Secret, r.PathValue("session"), h.now())
}

// ReadGrace is how long after a link expires the page may still read the
// orders it made (status and QR code), so a user who started paying just
// before the link expired still sees the payment succeed. Nothing can be
// created or refunded with an expired link.
const ReadGrace = 30 * time.Minute

// readSession verifies the {session} path segment for reading an order,
// allowing ReadGrace past expiry.
func (h *Handler) readSession(r *http.Request) (Session, error) {
	return VerifySession(h.Secret, r.PathValue("session"), h.now().Add(-ReadGrace))
}

type createSessionRequest struct {
	PackageID string `json:"package_id"`
}

type createSessionResponse struct {
	URL        string    `json:"url"`
	AccountURL string    `json:"account_url"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// createSession answers POST /v1/checkout/sessions: a signed link to the
// checkout page of the caller's account, optionally with a package chosen.
func (h *Handler) createSession(w http.ResponseWriter, r *http.Request) {
	if len(h.Secret) < MinSecretLen {
		h.writeErr(w, r, errors.New("web: session secret not configured"))
		return
	}
	account, err := h.Account(r)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	var req createSessionRequest
	if err := readJSON(r, &req, true); err != nil {
		h.writeErr(w, r, err)
		return
	}
	if req.PackageID != "" {
		if _, err := h.findPackage(r, req.PackageID); err != nil {
			h.writeErr(w, r, err)
			return
		}
	}
	s := Session{Account: account, ExpiresAt: h.now().Add(h.ttl()).Truncate(time.Second), PackageID: req.PackageID}
	tok := SignSession(h.Secret, s)
	base := h.baseURL(r)
	writeJSON(w, http.StatusCreated, createSessionResponse{
		URL:        base + "/checkout/" + tok,
		AccountURL: base + "/account/" + tok,
		ExpiresAt:  s.ExpiresAt.UTC(),
	})
}

// findPackage returns the package with id; EINVALID when there is none (it
// is the request that is wrong).
func (h *Handler) findPackage(r *http.Request, id string) (Package, error) {
	pkgs, err := h.Catalog.Packages(r.Context())
	if err != nil {
		return Package{}, err
	}
	for _, p := range pkgs {
		if p.ID == id {
			return p, nil
		}
	}
	return Package{}, tollgate.Errorf(tollgate.EINVALID, "unknown package_id %q", id)
}

type createOrderRequest struct {
	PackageID         string `json:"package_id"`
	DeviceFingerprint string `json:"device_fingerprint"`
	// Method is native (the default), h5 or jsapi. The openid of a JSAPI
	// order and the client IP of an H5 order are the server's to know,
	// never the page's to say.
	Method string `json:"method"`
}

// orderJSON is an order as the page's script reads it.
type orderJSON struct {
	OutTradeNo string       `json:"out_trade_no"`
	Status     string       `json:"status"`
	AmountFen  tollgate.Fen `json:"amount_fen"`
	// Amount is the yuan amount as shown, e.g. "50.00".
	Amount    string           `json:"amount"`
	Credits   tollgate.Credits `json:"credits"`
	PackageID string           `json:"package_id,omitempty"`
	ExpiresAt time.Time        `json:"expires_at"`
	// Expired is true once ExpiresAt has passed, by the server's clock.
	Expired bool   `json:"expired"`
	Method  string `json:"method"`
	QRURL   string `json:"qr_url,omitempty"`
	// H5URL is where a phone browser pays an H5 order: WeChat Pay's
	// h5_url with the redirect_url back to this checkout.
	H5URL string `json:"h5_url,omitempty"`
	// JSAPI is getBrandWCPayRequest's argument for a JSAPI order.
	JSAPI *JSAPIParams `json:"jsapi,omitempty"`
	// Balance is the account's balance, once the order is paid.
	Balance *balanceJSON `json:"balance,omitempty"`
}

type balanceJSON struct {
	Credits     tollgate.Credits `json:"credits"`
	Held        tollgate.Credits `json:"held"`
	Provisional tollgate.Credits `json:"provisional"`
	Debt        tollgate.Credits `json:"debt"`
	// Display is Credits formatted for the page's language-neutral use
	// (thousands separators).
	Display string `json:"display"`
}

func (h *Handler) orderJSON(r *http.Request, o Order) orderJSON {
	method := o.Method
	if method == "" {
		method = MethodNative
	}
	j := orderJSON{
		OutTradeNo: o.OutTradeNo, Status: o.Status, AmountFen: o.Fen, Amount: o.Fen.String(),
		Credits: o.Credits, PackageID: o.PackageID, ExpiresAt: o.ExpiresAt.UTC(),
		Expired: !o.ExpiresAt.IsZero() && !h.now().Before(o.ExpiresAt), Method: method,
	}
	if o.Status != StatusNotPay && o.Status != StatusUserPaying {
		return j
	}
	switch method {
	case MethodNative:
		j.QRURL = "/checkout/" + r.PathValue("session") + "/orders/" + o.OutTradeNo + "/qr.png"
	case MethodH5:
		if o.H5URL != "" {
			j.H5URL = h5URL(o.H5URL, h.baseURL(r)+"/checkout/"+r.PathValue("session")+"?order="+url.QueryEscape(o.OutTradeNo))
		}
	case MethodJSAPI:
		j.JSAPI = o.JSAPI
	}
	return j
}

// h5URL is WeChat Pay's h5_url with redirect_url, where WeChat Pay sends
// the browser when the payment is done or abandoned.
func h5URL(h5, back string) string {
	sep := "&"
	if !strings.Contains(h5, "?") {
		sep = "?"
	}
	return h5 + sep + "redirect_url=" + url.QueryEscape(back)
}

// validKey matches Idempotency-Keys and device fingerprints: 16–64
// characters of A–Z, a–z, 0–9, '-' and '_' (payment.ValidFingerprint).
var (
	validFingerprint = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	validIdemKey     = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	validOrderNo     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// createOrder answers POST /checkout/{session}/orders: it checks every
// input before the order service is called, so a bad request creates
// nothing.
func (h *Handler) createOrder(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err == nil {
		err = h.sameOrigin(r)
	}
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	var req createOrderRequest
	if err := readJSON(r, &req, false); err != nil {
		h.writeErr(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	oreq := OrderRequest{PackageID: req.PackageID, DeviceFingerprint: req.DeviceFingerprint, IdempotencyKey: key, Method: req.Method}
	switch req.Method {
	case "":
		oreq.Method = MethodNative
	case MethodNative:
	case MethodH5:
		if oreq.ClientIP = h.clientIP(r); oreq.ClientIP == "" {
			err = &paramError{"an H5 order needs the payer's IP address, which this request does not show"}
		}
	case MethodJSAPI:
		switch oreq.OpenID = h.openID(r); {
		case h.OAuth == nil:
			err = &paramError{"paying inside WeChat (jsapi) is not set up here; use method native"}
		case oreq.OpenID == "":
			err = &paramError{"openid: a jsapi order needs the payer's WeChat openid; open this checkout inside WeChat to sign in first"}
		}
	default:
		err = &paramError{"method must be native, h5 or jsapi"}
	}
	switch {
	case err != nil:
	case req.PackageID == "":
		err = tollgate.Errorf(tollgate.EINVALID, "package_id is required")
	case !validFingerprint.MatchString(req.DeviceFingerprint):
		err = &paramError{"device_fingerprint must be 16-64 characters of A-Z, a-z, 0-9, '-' and '_'"}
	case !validIdemKey.MatchString(key):
		err = tollgate.Errorf(tollgate.EINVALID, "an Idempotency-Key header of 8-64 characters of A-Z, a-z, 0-9, '-' and '_' is required")
	}
	if err == nil {
		_, err = h.findPackage(r, req.PackageID)
	}
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	o, err := h.Orders.CreateOrder(r.Context(), s.Account, oreq)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	// A replayed Idempotency-Key may name an order already paid.
	j, err := h.orderWithBalance(r, s, o)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

// orderWithBalance is the order's JSON, with the account's balance once
// the order is paid.
func (h *Handler) orderWithBalance(r *http.Request, s Session, o Order) (orderJSON, error) {
	j := h.orderJSON(r, o)
	if o.Status != StatusSuccess {
		return j, nil
	}
	b, err := h.Accounts.Balance(r.Context(), s.Account)
	if err != nil {
		return j, err
	}
	j.Balance = &balanceJSON{Credits: b.Credits, Held: b.Held, Provisional: b.Provisional, Debt: b.Debt,
		Display: groupDigits(int64(b.Credits))}
	return j, nil
}

// getOrder answers GET /checkout/{session}/orders/{no}: the order's status,
// and the new balance once it is paid.
func (h *Handler) getOrder(w http.ResponseWriter, r *http.Request) {
	o, s, err := h.pathOrder(r)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	j, err := h.orderWithBalance(r, s, o)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// pathOrder verifies the session and reads the {no} order of its account.
func (h *Handler) pathOrder(r *http.Request) (Order, Session, error) {
	s, err := h.readSession(r)
	if err != nil {
		return Order{}, s, err
	}
	no := r.PathValue("no")
	if !validOrderNo.MatchString(no) {
		return Order{}, s, tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	o, err := h.Orders.GetOrder(r.Context(), s.Account, no)
	return o, s, err
}

// qrPNG answers GET /checkout/{session}/orders/{no}/qr.png.
func (h *Handler) qrPNG(w http.ResponseWriter, r *http.Request) {
	s, err := h.readSession(r)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	no := r.PathValue("no")
	if !validOrderNo.MatchString(no) {
		h.writeErr(w, r, tollgate.Errorf(tollgate.ENOTFOUND, "no such order"))
		return
	}
	size := 320
	if v, err := strconv.Atoi(r.URL.Query().Get("size")); err == nil && v >= 128 && v <= 1024 {
		size = v
	}
	png, err := h.Orders.QRCodePNG(r.Context(), s.Account, no, size)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}

type refundJSON struct {
	RefundFen tollgate.Fen     `json:"refund_fen"`
	Amount    string           `json:"amount"`
	Credits   tollgate.Credits `json:"credits"`
	Status    string           `json:"status"`
}

// refund answers POST /checkout/{session}/orders/{no}/refund.
func (h *Handler) refund(w http.ResponseWriter, r *http.Request) {
	if h.Refunder == nil {
		h.writeErr(w, r, tollgate.Errorf(tollgate.ENOTFOUND, "refunds are not available here"))
		return
	}
	s, err := h.session(r)
	if err == nil {
		err = h.sameOrigin(r)
	}
	if err == nil {
		err = readJSON(r, &struct{}{}, true)
	}
	if err == nil && !validOrderNo.MatchString(r.PathValue("no")) {
		err = tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	if err == nil && !isJSON(r) {
		// A bodiless POST must still say it is JSON: a cross-site form
		// cannot send that type without a preflight.
		err = tollgate.Errorf(tollgate.EINVALID, "Content-Type must be application/json")
	}
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	res, err := h.Refunder.Refund(r.Context(), s.Account, r.PathValue("no"))
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, refundJSON{RefundFen: res.Fen, Amount: res.Fen.String(), Credits: res.Credits, Status: res.Status})
}
