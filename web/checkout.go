package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
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
	// ExternalID, Platform: an app's user (appSession).
	ExternalID string          `json:"external_id"`
	Platform   string          `json:"platform"`
	ReturnURL  string          `json:"return_url"`
	Locale     string          `json:"locale"`
	Metadata   json.RawMessage `json:"metadata"`
}

type createSessionResponse struct {
	// ID names the session (a digest of its link).
	ID         string             `json:"id"`
	URL        string             `json:"url"`
	AccountURL string             `json:"account_url"`
	AccountID  tollgate.AccountID `json:"account_id"`
	ExpiresAt  time.Time          `json:"expires_at"`
}

// createSession answers POST /v1/checkout/sessions: a signed link to the
// checkout page of the caller's account, or, for an app (a platform key
// or the admin token), of its user external_id's account, found or made;
// optionally with a package chosen, a return URL, a language and
// metadata for the orders.
func (h *Handler) createSession(w http.ResponseWriter, r *http.Request) {
	s, err := h.newSession(r, true)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	tok := SignSession(h.Secret, s)
	base := h.baseURL(r)
	writeJSON(w, http.StatusCreated, createSessionResponse{
		ID:         sessionID(tok),
		URL:        base + "/checkout/" + tok,
		AccountURL: base + "/account/" + tok,
		AccountID:  s.Account,
		ExpiresAt:  s.ExpiresAt.UTC(),
	})
}

type accountLinkResponse struct {
	URL       string             `json:"url"`
	AccountID tollgate.AccountID `json:"account_id"`
	ExpiresAt time.Time          `json:"expires_at"`
}

// createAccountLink answers POST /v1/account/links: a signed link to the
// account page, for the caller's account or an app's user, as
// createSession (no package, no metadata).
func (h *Handler) createAccountLink(w http.ResponseWriter, r *http.Request) {
	s, err := h.newSession(r, false)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, accountLinkResponse{
		URL: h.baseURL(r) + "/account/" + SignSession(h.Secret, s), AccountID: s.Account, ExpiresAt: s.ExpiresAt.UTC(),
	})
}

// sessionID is a session's public name: a digest of its token.
func sessionID(tok string) string {
	d := sha256.Sum256([]byte(tok))
	return "cs_" + hex.EncodeToString(d[:12])
}

// newSession checks a session request completely, then finds or makes
// the account: bad input changes nothing.
func (h *Handler) newSession(r *http.Request, checkout bool) (Session, error) {
	if len(h.Secret) < MinSecretLen {
		return Session{}, errors.New("web: session secret not configured")
	}
	var req createSessionRequest
	if err := readJSON(r, &req, true); err != nil {
		return Session{}, err
	}
	if !checkout && (req.PackageID != "" || len(req.Metadata) > 0) {
		return Session{}, tollgate.Errorf(tollgate.EINVALID, "an account link takes no package_id or metadata")
	}
	app, isApp := tollgate.AppFrom(r.Context())
	platform := req.Platform
	switch {
	case !isApp && (req.ExternalID != "" || req.Platform != ""):
		return Session{}, tollgate.Errorf(tollgate.EFORBIDDEN, "external_id and platform need a platform key or the admin token, not an account's API key")
	case isApp && req.ExternalID == "":
		return Session{}, tollgate.Errorf(tollgate.EINVALID, "external_id is required: the app's id of the user")
	case isApp && !app.Admin && req.Platform != "" && req.Platform != app.Platform:
		// One platform never reaches another's users.
		return Session{}, tollgate.Errorf(tollgate.EFORBIDDEN, "a platform key acts for its own platform only")
	case isApp && h.Users == nil:
		return Session{}, tollgate.Errorf(tollgate.EUNAVAILABLE, "app users are not configured on this server")
	case isApp && !app.Admin:
		platform = app.Platform
	}
	s := Session{ExpiresAt: h.now().Add(h.ttl()).Truncate(time.Second), PackageID: req.PackageID}
	var err error
	if s.Locale, err = checkLocale(req.Locale); err != nil {
		return Session{}, err
	}
	if s.Metadata, err = CheckMetadata(req.Metadata); err != nil {
		return Session{}, err
	}
	if req.PackageID != "" {
		if _, err := h.findPackage(r, req.PackageID); err != nil {
			return Session{}, err
		}
	}
	hosts := app.ReturnURLHosts
	if isApp && app.Admin && platform != "" && req.ReturnURL != "" {
		if hosts, err = h.Users.ReturnURLHosts(r.Context(), platform); err != nil {
			return Session{}, err
		}
	}
	if s.ReturnURL, err = CheckReturnURL(req.ReturnURL, hosts, h.DevMode); err != nil {
		return Session{}, err
	}
	if !isApp {
		s.Account, err = h.Account(r)
	} else {
		s.Account, err = h.Users.PlatformAccount(r.Context(), platform, req.ExternalID)
	}
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// Bounds of an app's metadata: a JSON object of at most MaxMetadataKeys
// keys and MaxMetadata bytes compacted (payment.MaxMetadata).
const (
	MaxMetadataKeys = 20
	MaxMetadata     = 4096
	maxReturnURL    = 2048
)

// CheckMetadata returns m compacted, nil for none or {}. Errors: EINVALID
// (not an object, more than MaxMetadataKeys keys or MaxMetadata bytes).
func CheckMetadata(m json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(m)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if t[0] != '{' || json.Unmarshal(t, &obj) != nil {
		return nil, tollgate.Errorf(tollgate.EINVALID, "metadata must be a JSON object")
	}
	if len(obj) > MaxMetadataKeys {
		return nil, tollgate.Errorf(tollgate.EINVALID, "metadata has %d keys; at most %d", len(obj), MaxMetadataKeys)
	}
	if len(obj) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, tollgate.Errorf(tollgate.EINVALID, "metadata must be a JSON object")
	}
	if b.Len() > MaxMetadata {
		return nil, tollgate.Errorf(tollgate.EINVALID, "metadata is %d bytes; at most %d", b.Len(), MaxMetadata)
	}
	return b.Bytes(), nil
}

func checkLocale(l string) (string, error) {
	switch l {
	case "", langZH, langEN:
		return l, nil
	}
	return "", tollgate.Errorf(tollgate.EINVALID, "locale must be zh or en")
}

// CheckReturnURL checks where a checkout may send the user back: an
// absolute https URL (http only in dev mode or to a loopback host), with
// no user info, whose host is one of hosts when any are given. Every other
// scheme (javascript:, data:, …) is refused. Errors: EINVALID.
func CheckReturnURL(raw string, hosts []string, dev bool) (string, error) {
	if raw == "" {
		return "", nil
	}
	bad := func(why string) (string, error) {
		return "", tollgate.Errorf(tollgate.EINVALID, "return_url %s", why)
	}
	if len(raw) > maxReturnURL {
		return bad(fmt.Sprintf("is longer than %d bytes", maxReturnURL))
	}
	if strings.ContainsAny(raw, " \t\r\n\\") {
		return bad("must not contain spaces or backslashes")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("must be an absolute https:// URL")
	}
	host := strings.ToLower(u.Hostname())
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(host); !dev && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return bad("must use https:// (http:// only to a loopback host)")
		}
	default:
		return bad("must use https://")
	}
	if u.User != nil {
		return bad("must not carry a user name or password")
	}
	if len(hosts) > 0 && !slices.Contains(hosts, host) {
		return bad(fmt.Sprintf("host %q is not one of the platform's return_url_hosts", host))
	}
	return u.String(), nil
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
	oreq := OrderRequest{PackageID: req.PackageID, DeviceFingerprint: req.DeviceFingerprint, IdempotencyKey: key, Method: req.Method,
		Metadata: s.Metadata}
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
