package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/pricing"
)

// KeyView is an API key as the admin API shows it: never the key or its
// hash.
type KeyView struct {
	KeyID  string `json:"key_id"`
	Prefix string `json:"key_prefix"`
	// AllowedModels is empty when the key may use every model.
	AllowedModels []string `json:"allowed_models"`
	// RPM is 0 when the key has the server's default (--rate-limit).
	RPM int `json:"rpm"`
	// TPM is 0 when the key's tokens are not limited.
	TPM int64 `json:"tpm"`
	// MaxCreditsPerRequest is 0 when a request's cost is not bounded.
	MaxCreditsPerRequest tollgate.Credits `json:"max_credits_per_request"`
	// MaxOutputTokens is 0 when a request's output is not capped.
	MaxOutputTokens int64      `json:"max_output_tokens"`
	CreatedAt       time.Time  `json:"created_at"`
	ExpiresAt       *time.Time `json:"expires_at"`
	RevokedAt       *time.Time `json:"revoked_at"`
}

func keyView(k auth.Key) KeyView {
	v := KeyView{KeyID: k.ID, Prefix: k.Prefix, AllowedModels: k.Limits.Models, RPM: k.Limits.RequestsPerMinute,
		TPM: k.Limits.TokensPerMinute, MaxCreditsPerRequest: k.Limits.MaxCreditsPerRequest, MaxOutputTokens: k.Limits.MaxOutputTokens,
		CreatedAt: k.CreatedAt}
	if v.AllowedModels == nil {
		v.AllowedModels = []string{}
	}
	if t := k.Limits.ExpiresAt; !t.IsZero() {
		v.ExpiresAt = &t
	}
	if t := k.RevokedAt; !t.IsZero() {
		v.RevokedAt = &t
	}
	return v
}

// KeyCreated is the answer to POST /admin/accounts and POST
// /admin/accounts/{account_id}/keys: the plaintext key is here and nowhere
// else, ever.
type KeyCreated struct {
	Account tollgate.AccountID `json:"account_id"`
	APIKey  string             `json:"api_key"`
	KeyView
}

// keyRequest is the optional body of the routes that make a key.
type keyRequest struct {
	AllowedModels        []string         `json:"allowed_models"`
	RPM                  int              `json:"rpm"`
	TPM                  int64            `json:"tpm"`
	ExpiresAt            string           `json:"expires_at"`
	MaxCreditsPerRequest tollgate.Credits `json:"max_credits_per_request"`
	MaxOutputTokens      int64            `json:"max_output_tokens"`
}

// readKeyLimits reads a key's limits from an optional JSON body (empty
// means none); see keyLimits.
func (s *Server) readKeyLimits(r *http.Request) (tollgate.KeyLimits, error) {
	var req keyRequest
	if err := readOptionalBody(r, &req); err != nil {
		return tollgate.KeyLimits{}, err
	}
	return s.keyLimits(req)
}

// readOptionalBody decodes a JSON body strictly into v; an empty body
// leaves v as it is.
func readOptionalBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	if len(trimSpace(b)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return ReadJSON(r, v, true)
}

// keyLimits turns a key request into limits and checks the model names
// against the price table; the auth.Service checks the rest before it
// makes anything. Every failure is EINVALID.
func (s *Server) keyLimits(req keyRequest) (tollgate.KeyLimits, error) {
	var err error
	l := tollgate.KeyLimits{Models: req.AllowedModels, RequestsPerMinute: req.RPM, TokensPerMinute: req.TPM,
		MaxCreditsPerRequest: req.MaxCreditsPerRequest, MaxOutputTokens: req.MaxOutputTokens}
	if req.ExpiresAt != "" {
		if l.ExpiresAt, err = time.Parse(time.RFC3339, req.ExpiresAt); err != nil {
			return tollgate.KeyLimits{}, tollgate.Errorf(tollgate.EINVALID, "expires_at must be an RFC 3339 time such as 2027-01-02T15:04:05Z, got %q", req.ExpiresAt)
		}
	}
	known := s.Pricer.Models()
	for _, m := range l.Models {
		if !slices.Contains(known, m) {
			return tollgate.KeyLimits{}, tollgate.Errorf(tollgate.EINVALID, "allowed_models: unknown model %q; known models: %s", m, strings.Join(known, ", "))
		}
	}
	return l, nil // the rest is checked by auth.Service, on its clock
}

// accountRequest is the optional body of POST /admin/accounts: the first
// key's limits and the account's profile.
type accountRequest struct {
	keyRequest
	Label      *string         `json:"label"`
	ExternalID *string         `json:"external_id"`
	Metadata   json.RawMessage `json:"metadata"`
}

// AccountCreated is the answer to POST /admin/accounts: the first key
// (its plaintext here and nowhere else, ever) and the account's profile.
type AccountCreated struct {
	KeyCreated
	Label      string          `json:"label"`
	ExternalID *string         `json:"external_id"`
	Metadata   json.RawMessage `json:"metadata"`
}

// createAccount makes an account with the profile and its first API key
// with the limits of the optional body. The key is in this answer only;
// tollgate keeps its hash.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var req accountRequest
	if err := readOptionalBody(r, &req); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	l, err := s.keyLimits(req.keyRequest)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	c, p, err := s.Auth.CreateProfiledAccount(r.Context(), l, auth.ProfilePatch{Label: req.Label, ExternalID: req.ExternalID, Metadata: req.Metadata})
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().InfoContext(r.Context(), "admin: account created", "account", c.Account, "key", c.Key.ID, "actor", actorOf(r))
	w.Header().Set("Cache-Control", "no-store")
	pv := profileView(p)
	WriteJSON(w, http.StatusCreated, AccountCreated{KeyCreated: KeyCreated{Account: c.Account, APIKey: c.APIKey, KeyView: keyView(c.Key)},
		Label: pv.Label, ExternalID: pv.ExternalID, Metadata: pv.Metadata})
}

// createKey issues another key, with its own limits, for an existing
// account: 404 for no such account.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	l, err := s.readKeyLimits(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	account := tollgate.AccountID(r.PathValue("account_id"))
	plain, k, err := s.Auth.NewKey(r.Context(), account, l)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().InfoContext(r.Context(), "admin: key created", "account", account, "key", k.ID, "actor", actorOf(r))
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusCreated, KeyCreated{Account: account, APIKey: plain, KeyView: keyView(k)})
}

// listKeys lists an account's keys, revoked and expired ones included.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.Auth.Keys(r.Context(), tollgate.AccountID(r.PathValue("account_id")))
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := make([]KeyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyView(k))
	}
	WriteJSON(w, http.StatusOK, list[KeyView]{"list", out})
}

// revokeKey revokes one key of an account; revoking it again changes
// nothing. Another account's key, like an unknown one, is 404.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	if err := readOptionalJSON(r); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	account := tollgate.AccountID(r.PathValue("account_id"))
	k, err := s.Auth.Revoke(r.Context(), account, r.PathValue("key_id"))
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	s.log().InfoContext(r.Context(), "admin: key revoked", "account", account, "key", k.ID, "actor", actorOf(r))
	WriteJSON(w, http.StatusOK, keyView(k))
}

// readOptionalJSON accepts an empty body or an empty JSON object: the
// routes that take no parameters refuse anything else, so a client that
// thinks it is sending options learns it is not.
func readOptionalJSON(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	switch string(trimSpace(b)) {
	case "", "{}":
		return nil
	}
	return tollgate.Errorf(tollgate.EINVALID, "this route takes no request body (or {})")
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func (s *Server) sandboxInfo(w http.ResponseWriter, r *http.Request) {
	if s.SandboxInfo == nil {
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.ENOTFOUND, "no WeChat Pay emulator runs in this server"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, s.SandboxInfo)
}

// list is OpenAI's list envelope.
type list[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

func (s *Server) packages(w http.ResponseWriter, r *http.Request) {
	ps := s.Pricer.Packages()
	if ps == nil {
		ps = []pricing.Package{}
	}
	WriteJSON(w, http.StatusOK, list[pricing.Package]{"list", ps})
}

// BalanceResponse is the body of GET /v1/balance.
type BalanceResponse = ledger.BalanceView

func (s *Server) balance(w http.ResponseWriter, r *http.Request) {
	b, err := s.Ledger.Balance(r.Context(), callerOf(r).Account)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	WriteJSON(w, http.StatusOK, b.View())
}

// UsageRecord is one entry of GET /v1/usage, and GET /v1/usage/{id}'s
// answer: a billed call (type "usage"), or, in the list only, credit the
// operator added or removed (type "adjustment": credits signed, > 0
// added, < 0 removed; id and adjustment_id the adjustment's; the call's
// fields empty; the operator's reason is their note and not shown).
type UsageRecord struct {
	Type string `json:"type"`
	// ID is tollgate's id of the call: the id of the gateway's answer and
	// its X-Request-Id. RequestID is the same id, under its older name.
	ID           string `json:"id"`
	AdjustmentID string `json:"adjustment_id,omitempty"`
	RequestID    string `json:"request_id"`
	KeyID        string `json:"key_id"`
	// Model is the model the client asked for; Deployment
	// (provider/upstream model) and Provider are what served it, and
	// UpstreamID is the id the provider gave its answer ("" if none).
	Model      string `json:"model"`
	Provider   string `json:"provider"`
	Deployment string `json:"deployment"`
	UpstreamID string `json:"upstream_id"`
	// InputTokens counts every prompt token, those read from and written
	// to the provider's cache included.
	InputTokens        int64 `json:"input_tokens"`
	CachedTokens       int64 `json:"cached_tokens"`
	CacheWriteTokens   int64 `json:"cache_write_tokens"`
	CacheWrite1hTokens int64 `json:"cache_write_1h_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	// Units are what the call used beyond text tokens, its non-zero
	// counts by name (audio_input_tokens, web_searches, priority…);
	// left out when none.
	Units     json.RawMessage  `json:"units,omitempty"`
	Credits   tollgate.Credits `json:"credits"`
	LatencyMS int64            `json:"latency_ms"`
	Status    string           `json:"status"`
	CreatedAt time.Time        `json:"created_at"`
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, tollgate.Errorf(tollgate.EINVALID, "query parameter %s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	account := callerOf(r).Account
	us, err := s.Ledger.ListUsage(r.Context(), account, limit)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	// The operator's adjustments only when asked for: a client that sums
	// credits as spend would count an added credit as spent.
	var adjs []ledger.Adjustment
	switch inc := r.URL.Query().Get("include"); inc {
	case "":
	case "adjustments":
		if adjs, err = s.Ledger.AccountAdjustments(r.Context(), account, limit); err != nil {
			WriteError(w, r, s.log(), err)
			return
		}
	default:
		WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "include must be adjustments or left out, not %q", inc))
		return
	}
	// Both lists are newest first: merge them, newest first, to limit.
	out := make([]UsageRecord, 0, min(limit, len(us)+len(adjs)))
	for len(out) < limit && (len(us) > 0 || len(adjs) > 0) {
		if len(adjs) > 0 && (len(us) == 0 || adjs[0].CreatedAt.After(us[0].CreatedAt)) {
			a := adjs[0]
			adjs = adjs[1:]
			out = append(out, UsageRecord{Type: "adjustment", ID: a.ID, AdjustmentID: a.ID, Credits: a.Credits, CreatedAt: a.CreatedAt})
			continue
		}
		out = append(out, usageRecord(us[0]))
		us = us[1:]
	}
	WriteJSON(w, http.StatusOK, list[UsageRecord]{"list", out})
}

// usageOne serves GET /v1/usage/{id}: one call of the caller's account,
// like OpenRouter's generation lookup. Another account's id is a 404, as
// an unknown one is.
func (s *Server) usageOne(w http.ResponseWriter, r *http.Request) {
	u, err := s.Ledger.UsageOf(r.Context(), callerOf(r).Account, r.PathValue("id"))
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	WriteJSON(w, http.StatusOK, usageRecord(u))
}

func usageRecord(u ledger.Usage) UsageRecord {
	return UsageRecord{Type: "usage", ID: u.RequestID, RequestID: u.RequestID, KeyID: u.KeyID, Model: u.Model, Provider: u.Provider,
		Deployment: u.Deployment, UpstreamID: u.UpstreamID, InputTokens: u.InputTokens, CachedTokens: u.CachedTokens,
		CacheWriteTokens: u.CacheWriteTokens, CacheWrite1hTokens: u.CacheWrite1hTokens, OutputTokens: u.OutputTokens,
		Units: ledger.UnitsJSON(u.Units), Credits: u.Credits, LatencyMS: u.Latency.Milliseconds(), Status: u.Status, CreatedAt: u.CreatedAt}
}

// errProvisional refuses what a provisional access token may not do.
var errProvisional = tollgate.Errorf(tollgate.EFORBIDDEN, "a provisional access token cannot do this; use the account's API key")

// createOrderBody is the body of POST /v1/payments/orders.
type createOrderBody struct {
	PackageID         string       `json:"package_id"`
	AmountFen         tollgate.Fen `json:"amount_fen"`
	DeviceFingerprint string       `json:"device_fingerprint"`
	// Method is native (default), h5 or jsapi; OpenID is jsapi's payer.
	Method string `json:"method"`
	OpenID string `json:"openid"`
}

// validIdempotencyKey accepts 1–255 visible ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if c.Provisional {
		WriteError(w, r, s.log(), errProvisional)
		return
	}
	// A key sent is checked whatever its value: HTTP trims header values,
	// so a key of spaces arrives empty, and must not read as no key (an
	// order placed without the retry safety its client asked for).
	keys, sent := r.Header["Idempotency-Key"]
	var key string
	if sent {
		if len(keys) == 1 {
			key = keys[0]
		}
		if !validIdempotencyKey(key) {
			WriteError(w, r, s.log(), tollgate.Errorf(tollgate.EINVALID, "Idempotency-Key must be one value of 1 to 255 visible ASCII characters"))
			return
		}
	}
	var b createOrderBody
	if err := ReadJSON(r, &b, true); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	switch {
	case b.PackageID == "" && b.AmountFen == 0:
		WriteError(w, r, s.log(), &payment.ParamError{Param: "package_id", Message: "give package_id or amount_fen"})
		return
	case b.PackageID != "" && b.AmountFen != 0:
		WriteError(w, r, s.log(), &payment.ParamError{Param: "amount_fen", Message: "give package_id or amount_fen, not both"})
		return
	case b.AmountFen < 0:
		WriteError(w, r, s.log(), &payment.ParamError{Param: "amount_fen", Message: "amount_fen must be positive"})
		return
	}
	res, err := s.Payments.CreateOrder(r.Context(), payment.CreateOrderRequest{
		Account: c.Account, IdempotencyKey: key, PackageID: b.PackageID, AmountFen: b.AmountFen,
		DeviceFingerprint: b.DeviceFingerprint, ClientIP: ClientIP(r, s.TrustedProxyHeader),
		Method: b.Method, OpenID: b.OpenID,
	})
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusCreated
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	WriteJSON(w, status, res)
}

// OrderResponse is the body of GET /v1/payments/orders/{out_trade_no},
// and each order of the list (which carries no jsapi: each would be a
// fresh signature). The payment.succeeded and payment.closed events carry
// the same shape.
type OrderResponse = payment.OrderView

// validOrderNo accepts what an out_trade_no can be: 6–32 of [A-Za-z0-9_-|*].
func validOrderNo(no string) bool {
	if len(no) < 6 || len(no) > 32 {
		return false
	}
	for i := 0; i < len(no); i++ {
		c := no[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '|' || c == '*') {
			return false
		}
	}
	return true
}

// orderNo returns the path's out_trade_no, or an error for one that no
// order can have (answered 404 like an unknown order, not 400, so probing
// learns nothing).
func orderNo(r *http.Request) (string, error) {
	no := r.PathValue("out_trade_no")
	if !validOrderNo(no) {
		return "", tollgate.Errorf(tollgate.ENOTFOUND, "no such order")
	}
	return no, nil
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	no, err := orderNo(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	o, err := s.Payments.GetOrder(r.Context(), callerOf(r).Account, no)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	res := orderResponse(o)
	// A payable jsapi order's pay sheet. When it cannot be
	// signed (say WeChat Pay was switched to v2 without a v3 client) the
	// order is still answered, without jsapi: its status is what a poll
	// asks for, and the checkout page (webadapt) answers the same way.
	if sheet, err := s.Payments.JSAPIParams(o); err != nil {
		s.log().WarnContext(r.Context(), "httpapi: order answered without its JSAPI pay sheet",
			"out_trade_no", o.OutTradeNo, "err", err)
	} else {
		res.JSAPI = sheet
	}
	if res.JSAPI != nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	WriteJSON(w, http.StatusOK, res)
}

func orderResponse(o payment.Order) OrderResponse { return o.View() }

// listOrders answers the caller's orders, newest first.
func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 20, 1, 100)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	listed, err := s.Payments.ListOrders(r.Context(), callerOf(r).Account, limit)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	out := make([]OrderResponse, 0, len(listed))
	for _, o := range listed {
		out = append(out, orderResponse(o))
	}
	WriteJSON(w, http.StatusOK, list[OrderResponse]{"list", out})
}

func (s *Server) qrPNG(w http.ResponseWriter, r *http.Request) {
	no, err := orderNo(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	size, err := intParam(r, "size", 256, 64, 1024)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	png, err := s.Payments.QRCodePNG(r.Context(), callerOf(r).Account, no, size)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if c.Provisional {
		WriteError(w, r, s.log(), errProvisional)
		return
	}
	no, err := orderNo(r)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	if err := readOptionalJSON(r); err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	res, err := s.Payments.Refund(r.Context(), c.Account, no)
	if err != nil {
		WriteError(w, r, s.log(), err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

// readNotification reads a notification body under the route's limit. On
// failure it answers 413/400 itself and returns false.
func (s *Server) readNotification(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		WriteError(w, r, s.log(), jsonError(err))
		return nil, false
	}
	return body, true
}

func (s *Server) notifyV2(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readNotification(w, r)
	if !ok {
		return
	}
	status, reply := s.Payments.HandleV2Notification(r.Context(), body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(reply)
}

func (s *Server) notifyV3(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readNotification(w, r)
	if !ok {
		return
	}
	status, reply := s.Payments.HandleV3Notification(r.Context(), r.Header, body)
	if len(reply) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write(reply)
}
