package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/wxpay"
)

// CreateOrderRequest asks for an order. Exactly one of PackageID and
// AmountFen is set.
type CreateOrderRequest struct {
	Account tollgate.AccountID
	// IdempotencyKey, when set, makes the request safe to retry: the same
	// key and body return the same order; another body is refused.
	IdempotencyKey string
	PackageID      string
	AmountFen      tollgate.Fen
	// DeviceFingerprint is the checkout page's device fingerprint:
	// 16–64 characters of A–Z, a–z, 0–9, '-' and '_' (hex or base64url).
	// Required.
	DeviceFingerprint string
	// ClientIP is the payer's address, sent as spbill_create_ip /
	// payer_client_ip; "" means 127.0.0.1 (Native orders allow the
	// server's address). MethodH5 requires a public one (PublicIP) unless
	// Config.AllowPrivateClientIP: WeChat Pay compares it with the address
	// the payer opens h5_url from.
	ClientIP string
	// Method is how the payer pays: MethodNative ("" means native),
	// MethodH5 or MethodJSAPI; H5 and JSAPI need API v3.
	Method string
	// OpenID is the payer's openid under the merchant's appid (from
	// WeChat's OAuth): required for MethodJSAPI, refused otherwise; 1–128
	// characters of A–Z, a–z, 0–9, '-' and '_'.
	OpenID string
	// Metadata is the app's JSON object for the order (an app checkout
	// session's metadata), stored with it as is: the caller has checked
	// it (web.CheckMetadata); at most MaxMetadata bytes.
	Metadata json.RawMessage
}

// MaxMetadata bounds an order's metadata, as the stores' CHECK does
// (migration 0017).
const MaxMetadata = 4096

// AccessToken is a provisional API credential for one pending order.
type AccessToken struct {
	Token     string           `json:"token"`
	ExpiresAt time.Time        `json:"expires_at"`
	Credits   tollgate.Credits `json:"credits"`
}

// OrderResult is what creating an order returns (docs/DESIGN.md §4.4):
// the field of its method says how to pay.
type OrderResult struct {
	OutTradeNo string `json:"out_trade_no"`
	Method     string `json:"method"`
	// CodeURL (native) is the QR code's content.
	CodeURL string `json:"code_url,omitempty"`
	// H5URL (h5) is the page that opens WeChat to pay.
	H5URL string `json:"h5_url,omitempty"`
	// JSAPI (jsapi) is what the page passes to getBrandWCPayRequest while
	// the order is payable, signed at most once a minute (JSAPIParams).
	JSAPI       *wxpay.V3JSAPIParams `json:"jsapi,omitempty"`
	AmountFen   tollgate.Fen         `json:"amount_fen"`
	Credits     tollgate.Credits     `json:"credits"`
	Status      Status               `json:"status"`
	ExpiresAt   time.Time            `json:"expires_at"`
	AccessToken *AccessToken         `json:"access_token"`
	// Replayed is true when an Idempotency-Key named an existing order.
	Replayed bool `json:"-"`
}

var (
	fingerprintRE = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	openIDRE      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// ValidOpenID reports whether id has the form of an openid: 1–128
// characters of A–Z, a–z, 0–9, '-' and '_'.
func ValidOpenID(id string) bool { return openIDRE.MatchString(id) }

// ValidFingerprint reports whether fp has the device fingerprint format:
// 16–64 characters of A–Z, a–z, 0–9, '-' and '_'.
func ValidFingerprint(fp string) bool { return fingerprintRE.MatchString(fp) }

// deviceID is the fingerprint as sent to WeChat Pay, whose device_info /
// device_id hold at most 32 characters: longer ones are replaced by the
// first 32 hex digits of their SHA-256.
func deviceID(fp string) string {
	if len(fp) <= 32 {
		return fp
	}
	h := sha256.Sum256([]byte(fp))
	return hex.EncodeToString(h[:16])
}

// requestHash is the hex SHA-256 of the fields that define an order
// request (not the client IP, which may change between retries). A native
// request hashes as it did before methods existed, so keys recorded then
// still match.
func requestHash(r CreateOrderRequest) string {
	m := r.Method
	if m == MethodNative {
		m = ""
	}
	b, _ := json.Marshal(struct {
		P string       `json:"p"`
		A tollgate.Fen `json:"a"`
		F string       `json:"f"`
		M string       `json:"m,omitempty"`
		O string       `json:"o,omitempty"`
		D string       `json:"d,omitempty"`
	}{r.PackageID, r.AmountFen, r.DeviceFingerprint, m, r.OpenID, metadataKey(r.Metadata)})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// metadataKey is metadata as requestHash hashes it: "" for none (so a
// request without metadata hashes as it did before metadata existed).
func metadataKey(m json.RawMessage) string {
	if len(m) == 0 || string(m) == "{}" {
		return ""
	}
	return string(m)
}

// validate checks a request without touching anything.
func (s *Service) validate(r *CreateOrderRequest) error {
	if r.Account == "" {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "payment.CreateOrder", Message: "account is required"}
	}
	if r.DeviceFingerprint == "" {
		return paramError("device_fingerprint", "device_fingerprint is required")
	}
	if !ValidFingerprint(r.DeviceFingerprint) {
		return paramError("device_fingerprint", "device_fingerprint must be 16-64 characters of A-Z, a-z, 0-9, - and _")
	}
	if (r.PackageID == "") == (r.AmountFen == 0) {
		return paramError("package_id", "exactly one of package_id and amount_fen is required")
	}
	if r.PackageID == "" && (r.AmountFen < s.cfg.MinFen || r.AmountFen > s.cfg.MaxFen) {
		return paramError("amount_fen", fmt.Sprintf("amount_fen must be between %d and %d", s.cfg.MinFen, s.cfg.MaxFen))
	}
	if len(r.Metadata) > MaxMetadata || (len(r.Metadata) > 0 && !json.Valid(r.Metadata)) {
		return paramError("metadata", fmt.Sprintf("metadata must be a JSON object of at most %d bytes", MaxMetadata))
	}
	if len(r.IdempotencyKey) > 255 {
		return paramError("Idempotency-Key", "Idempotency-Key is longer than 255 characters")
	}
	switch r.Method {
	case "":
		r.Method = MethodNative
	case MethodNative, MethodH5, MethodJSAPI:
	default:
		return paramError("method", "method must be native, h5 or jsapi")
	}
	if r.Method != MethodNative && s.gw.Version() != APIv3 {
		return errNeedsV3(r.Method)
	}
	switch {
	case r.Method == MethodJSAPI && r.OpenID == "":
		return paramError("openid", "method jsapi needs the payer's openid")
	case r.Method != MethodJSAPI && r.OpenID != "":
		return paramError("openid", "openid is only for method jsapi")
	case r.OpenID != "" && !ValidOpenID(r.OpenID):
		return paramError("openid", "openid must be 1-128 characters of A-Z, a-z, 0-9, - and _")
	}
	switch {
	case r.ClientIP == "" && r.Method == MethodH5:
		return paramError("client_ip", "method h5 needs the payer's IP address (behind a proxy, set --trusted-proxy-header)")
	case r.ClientIP == "":
		r.ClientIP = "127.0.0.1"
	case net.ParseIP(r.ClientIP) == nil:
		return paramError("client_ip", "client IP is not an IP address")
	case r.Method == MethodH5 && !s.cfg.AllowPrivateClientIP && !PublicIP(r.ClientIP):
		return paramError("client_ip", "method h5 needs the payer's public IP address, not "+r.ClientIP+
			" (loopback, private, link-local or unspecified: a reverse proxy's?); behind a proxy, set --trusted-proxy-header to the header it puts the client's IP in")
	}
	return nil
}

// PublicIP reports whether ip is an IP address WeChat Pay can have seen a
// payer's browser come from: not loopback, private (RFC 1918, fc00::/7),
// link-local or unspecified. An H5 order's payer_client_ip must be one:
// WeChat Pay compares it with the address that opens h5_url and refuses
// the payment, without saying why, when they differ.
func PublicIP(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && !a.IsLoopback() && !a.IsPrivate() && !a.IsLinkLocalUnicast() &&
		!a.IsLinkLocalMulticast() && !a.IsUnspecified()
}

// CreateOrder places an order paid by r.Method and returns how to pay it
// (code_url, h5_url or signed JSAPI parameters) with a provisional access
// token (nil when the account cannot have a grant now: it has unpaid debt
// or another live grant).
//
// Phases, each ending in a recovery point: (1) validate, quote and record
// the order and its Idempotency-Key in one transaction, before WeChat Pay
// is called; (2) place the order at WeChat Pay, retrying a retryable or
// unknown failure with the same out_trade_no; (3) store what WeChat Pay
// gave (code_url, h5_url or prepay_id) and issue the provisional grant. A retry with the same key after a crash or
// failure resumes at the first unfinished phase with the same out_trade_no;
// one of a payable H5 order whose h5_url (valid 5 minutes) is
// H5URLRenewAfter old places the order again for a fresh h5_url.
//
// Errors: PARAM_ERROR (*ParamError, code EINVALID; also for an unknown
// package) and nothing is sent to WeChat Pay; ENOTFOUND (account);
// EFORBIDDEN (outside the rollout); ECONFLICT (Idempotency-Key reused with
// another body); EUNAVAILABLE (rate feed stale, WeChat Pay paused or
// unreachable — retry with the same key); EUPSTREAM (WeChat Pay refused).
func (s *Service) CreateOrder(ctx context.Context, r CreateOrderRequest) (OrderResult, error) {
	const op = "payment.CreateOrder"
	if err := s.validate(&r); err != nil {
		return OrderResult{}, err
	}
	now := s.now().UTC()
	hash := requestHash(r)
	if r.IdempotencyKey != "" {
		k, err := s.store.IdempotencyKey(ctx, r.Account, r.IdempotencyKey, now)
		switch {
		case err == nil:
			return s.resume(ctx, k, hash)
		case tollgate.ErrorCode(err) != tollgate.ENOTFOUND:
			return OrderResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
	}
	if err := s.accountExists(ctx, r.Account); err != nil {
		return OrderResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if s.rollout != nil {
		if err := s.rollout.Check(r.Account); err != nil {
			return OrderResult{}, err
		}
	}
	o, err := s.newOrder(ctx, r, now)
	if err != nil {
		return OrderResult{}, err
	}
	var key *IdempotencyKey
	if r.IdempotencyKey != "" {
		key = &IdempotencyKey{Account: r.Account, Key: r.IdempotencyKey, RequestHash: hash,
			OutTradeNo: o.OutTradeNo, CreatedAt: now, ExpiresAt: now.Add(IdempotencyTTL)}
	}
	stored, created, err := s.createOrder(ctx, o, key)
	if err != nil {
		return OrderResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	if !created { // a concurrent request with the same key won
		return s.resume(ctx, stored, hash)
	}
	return s.finish(ctx, o, false)
}

// accountExists returns nil if the account exists, ENOTFOUND if not. It
// reads the ledger's store directly rather than through ledger.Service
// (Account), whose View first waits for every queued ledger operation
// (Sync): an order needs only the account's existence, and an account
// exists once CreateAccount has answered (it waits for its commit).
func (s *Service) accountExists(ctx context.Context, id tollgate.AccountID) error {
	var out []ledger.Account
	err := s.ledger.Store().View(ctx, func(tx ledger.ReadTx) (err error) {
		out, err = tx.Accounts(ctx, []tollgate.AccountID{id})
		return err
	})
	if err != nil {
		return err
	}
	if len(out) == 0 {
		return &tollgate.Error{Code: tollgate.ENOTFOUND, Op: "payment.CreateOrder", Message: fmt.Sprintf("account %s not found", id)}
	}
	return nil
}

// newOrder quotes the credits and builds the order to record.
func (s *Service) newOrder(ctx context.Context, r CreateOrderRequest, now time.Time) (Order, error) {
	const op = "payment.CreateOrder"
	fen, credits := r.AmountFen, tollgate.Credits(0)
	if r.PackageID != "" {
		p, err := s.pricer.Package(r.PackageID)
		if err != nil {
			if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
				return Order{}, paramError("package_id", "unknown package_id")
			}
			return Order{}, wrap(op, tollgate.EINTERNAL, err)
		}
		fen, credits = p.Fen, p.Credits
	} else {
		c, err := s.pricer.QuoteTopUp(ctx, fen)
		if err != nil {
			return Order{}, wrap(op, tollgate.EUNAVAILABLE, err)
		}
		credits = c
	}
	if credits <= 0 {
		return Order{}, paramError("amount_fen", "amount_fen buys no credits")
	}
	no, err := newOutTradeNo(s.rand, now)
	if err != nil {
		return Order{}, wrap(op, tollgate.EINTERNAL, err)
	}
	grantCap := min(s.cfg.GrantCap, credits)
	o := Order{OutTradeNo: no, Account: r.Account, Fen: fen, Credits: credits, PackageID: r.PackageID,
		APIVersion: s.gw.Version(), Status: StatusNotPay, Method: r.Method, OpenID: r.OpenID, DeviceFingerprint: r.DeviceFingerprint,
		ClientIP: r.ClientIP, ExpiresAt: now.Add(s.cfg.OrderTTL).Truncate(time.Second), CreatedAt: now, UpdatedAt: now,
		NextPollAt: now.Add(s.cfg.PollBase), Metadata: r.Metadata}
	if o.APIVersion == APIv2 {
		o.SignType = s.cfg.SignType
	}
	if grantCap > 0 {
		o.GrantCap = grantCap
		o.TokenHash = hashToken(s.accessToken(no))
		o.TokenExpiresAt = now.Add(s.cfg.GrantTTL)
	}
	return o, nil
}

// newOutTradeNo returns "tg" + yyyymmdd + 20 random base32 characters: 30
// characters of digits and letters, as WeChat Pay allows (6–32).
func newOutTradeNo(r io.Reader, now time.Time) (string, error) {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	b := make([]byte, 20)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("payment: order number: %w", err)
	}
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return "tg" + now.In(tollgate.Beijing).Format("20060102") + string(b), nil
}

// resume answers a request whose Idempotency-Key is already recorded.
func (s *Service) resume(ctx context.Context, k IdempotencyKey, hash string) (OrderResult, error) {
	const op = "payment.CreateOrder"
	if subtle.ConstantTimeCompare([]byte(k.RequestHash), []byte(hash)) != 1 {
		return OrderResult{}, &tollgate.Error{Code: tollgate.ECONFLICT, Op: op,
			Message: "Idempotency-Key was already used with a different request"}
	}
	o, err := s.store.Order(ctx, k.OutTradeNo)
	if err != nil {
		return OrderResult{}, wrap(op, tollgate.EINTERNAL, err)
	}
	return s.finish(ctx, o, true)
}

// H5URLRenewAfter is the age at which answering an H5 order again (a
// replay with its Idempotency-Key) first places it again at WeChat Pay for
// a fresh h5_url: WeChat Pay's h5_url is valid 5 minutes, so an older one
// would leave the payer less than a minute to open it.
const H5URLRenewAfter = 4 * time.Minute

// finish runs phases 2 and 3 for an order recorded in phase 1; both are
// safe to repeat. A payable H5 order whose h5_url is H5URLRenewAfter old is
// placed again for a fresh one.
func (s *Service) finish(ctx context.Context, o Order, replayed bool) (OrderResult, error) {
	const op = "payment.CreateOrder"
	if !o.Placed() && o.Status == StatusNotPay {
		p, err := s.place(ctx, o)
		if err != nil {
			return OrderResult{}, err
		}
		// Relaxed: if a power cut loses this write, the order stays
		// unplaced locally and a retry with the same Idempotency-Key
		// places the same out_trade_no again (resume), which WeChat Pay
		// answers with the same order.
		o, err = s.updateOrder(ctx, o.OutTradeNo, true, urgent, func(x *Order) error {
			now := s.now().UTC()
			x.CodeURL, x.H5URL, x.PrepayID, x.UpdatedAt = p.CodeURL, p.H5URL, p.PrepayID, now
			if p.H5URL != "" {
				x.H5IssuedAt = now
			}
			return nil
		})
		if err != nil {
			return OrderResult{}, wrap(op, tollgate.EINTERNAL, err)
		}
		if !replayed {
			s.metrics.Count(EventOrderCreated, o.APIVersion)
		}
	} else if s.h5Stale(o) {
		var err error
		if o, err = s.renewH5(ctx, o); err != nil {
			return OrderResult{}, err
		}
	}
	res := OrderResult{OutTradeNo: o.OutTradeNo, Method: o.PayMethod(), CodeURL: o.CodeURL, H5URL: o.H5URL,
		AmountFen: o.Fen, Credits: o.Credits, Status: o.Status, ExpiresAt: o.ExpiresAt, Replayed: replayed}
	jsapi, err := s.JSAPIParams(o)
	if err != nil {
		return OrderResult{}, err
	}
	res.JSAPI = jsapi
	tok, err := s.grant(ctx, o)
	if err != nil {
		return OrderResult{}, err
	}
	res.AccessToken = tok
	return res, nil
}

// JSAPIParams returns the pay-sheet parameters of a JSAPI order, or nil
// for an order of another method, not placed yet or no longer payable.
// A sheet is signed (new timestamp and nonce) at most once a minute per
// order: polls within a minute get the same sheet, which WeChat accepts as
// long as the prepay_id is valid, and cost no RSA signature. The order must
// have been placed over API v3: the version's client signs. Errors:
// EUNAVAILABLE (no v3 client to sign with).
func (s *Service) JSAPIParams(o Order) (*wxpay.V3JSAPIParams, error) {
	const op = "payment.JSAPIParams"
	if o.PayMethod() != MethodJSAPI || o.PrepayID == "" || !o.Status.Pending() {
		return nil, nil
	}
	now := s.now()
	if p, ok := s.sheets.get(o.OutTradeNo, o.PrepayID, now); ok {
		return &p, nil
	}
	signer := s.gw
	if s.gw.Version() != APIv3 && s.v3 != nil {
		signer = &V3Gateway{Client: s.v3}
	}
	p, err := signer.JSAPIParams(o.PrepayID)
	if err != nil {
		s.log.Error("payment: cannot sign JSAPI parameters", "out_trade_no", o.OutTradeNo, "err", err)
		return nil, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Err: err,
			Message: "the order's payment parameters cannot be signed now"}
	}
	s.sheets.put(o.OutTradeNo, o.PrepayID, p, now)
	return &p, nil
}

// h5Stale reports whether o is a payable H5 order whose h5_url is
// H5URLRenewAfter old (or of unknown age).
func (s *Service) h5Stale(o Order) bool {
	now := s.now()
	return o.PayMethod() == MethodH5 && o.H5URL != "" && o.Status.Pending() && now.Before(o.ExpiresAt) &&
		now.Sub(o.H5IssuedAt) >= H5URLRenewAfter
}

// renewH5 places a payable H5 order again at WeChat Pay — the same
// out_trade_no and parameters (the stored client IP among them), which is
// the same order there — and stores the fresh h5_url it answers. Nothing
// is closed when WeChat Pay refuses: most likely the payer paid, or the
// order closed, meanwhile, so the poller is asked to look now and the
// order is answered without the stale h5_url. Errors: EUNAVAILABLE
// (WeChat Pay did not answer: retry with the same Idempotency-Key).
func (s *Service) renewH5(ctx context.Context, o Order) (Order, error) {
	const op = "payment.CreateOrder"
	p, err := s.tryPlace(ctx, s.placeRequest(o))
	if err != nil && (wxpay.IsRetryable(err) || ctx.Err() != nil) {
		s.log.WarnContext(ctx, "payment: renewing an h5_url failed, retry with the same Idempotency-Key",
			"out_trade_no", o.OutTradeNo, "err", err)
		return Order{}, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Err: err,
			Message: "WeChat Pay did not renew the order's h5_url; retry with the same Idempotency-Key"}
	}
	if err != nil {
		s.log.WarnContext(ctx, "payment: WeChat Pay refused to renew an h5_url; polling the order now",
			"out_trade_no", o.OutTradeNo, "err", err)
		if _, uerr := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
			if x.Status.Pending() {
				x.NextPollAt = s.now().UTC()
			}
			return nil
		}); uerr != nil {
			s.log.ErrorContext(ctx, "payment: scheduling a poll", "out_trade_no", o.OutTradeNo, "err", uerr)
		}
		o.H5URL = ""
		return o, nil
	}
	renewed, err := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
		if x.Status.Pending() {
			now := s.now().UTC()
			x.H5URL, x.H5IssuedAt, x.UpdatedAt = p.H5URL, now, now
		}
		return nil
	})
	if err != nil {
		return Order{}, wrap(op, tollgate.EINTERNAL, err)
	}
	return renewed, nil
}

// placeRequest is what placing o asks of WeChat Pay: the same for every
// attempt, so WeChat Pay sees one order.
func (s *Service) placeRequest(o Order) PlaceRequest {
	return PlaceRequest{Method: o.PayMethod(), OpenID: o.OpenID, OutTradeNo: o.OutTradeNo, Description: s.cfg.Description, Fen: int64(o.Fen),
		NotifyURL: s.notifyURL(o.APIVersion), ClientIP: o.ClientIP, DeviceID: deviceID(o.DeviceFingerprint),
		ProductID: productID(o), ExpiresAt: o.ExpiresAt}
}

// tryPlace sends req, retrying a retryable or unknown failure with the
// same out_trade_no up to PlaceAttempts times; it returns the last error.
func (s *Service) tryPlace(ctx context.Context, req PlaceRequest) (Placement, error) {
	var err error
	for attempt := 0; attempt < s.cfg.PlaceAttempts; attempt++ {
		if attempt > 0 && !s.sleep(ctx, time.Duration(attempt)*s.cfg.PlaceBackoff) {
			break
		}
		var p Placement
		p, err = s.gw.PlaceOrder(ctx, req)
		if err == nil && p.of(req.Method) == "" {
			err = fmt.Errorf("payment: WeChat Pay accepted the %s order without its %s: %w", req.Method, placedField(req.Method), wxpay.ErrMalformed)
		}
		if err == nil {
			return p.only(req.Method), nil
		}
		if !wxpay.IsRetryable(err) || ctx.Err() != nil {
			break
		}
	}
	return Placement{}, err
}

// place sends the order to WeChat Pay, retrying with the same out_trade_no.
func (s *Service) place(ctx context.Context, o Order) (Placement, error) {
	const op = "payment.CreateOrder"
	p, err := s.tryPlace(ctx, s.placeRequest(o))
	if err == nil {
		s.rolloutResult(true)
		return p, nil
	}
	s.rolloutResult(false)
	if wxpay.IsRetryable(err) || ctx.Err() != nil {
		s.metrics.Count(EventOrderPlaceFailed, "retryable")
		s.log.WarnContext(ctx, "payment: placing order failed, retry with the same Idempotency-Key",
			"out_trade_no", o.OutTradeNo, "err", err)
		return Placement{}, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Err: err,
			Message: "WeChat Pay did not answer; retry with the same Idempotency-Key"}
	}
	s.metrics.Count(EventOrderPlaceFailed, "definite")
	s.log.WarnContext(ctx, "payment: WeChat Pay refused the order", "out_trade_no", o.OutTradeNo, "err", err)
	if _, uerr := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
		x.Status, x.UpdatedAt = StatusClosed, s.now().UTC()
		return nil
	}); uerr != nil {
		s.log.ErrorContext(ctx, "payment: closing a refused order", "out_trade_no", o.OutTradeNo, "err", uerr)
	}
	return Placement{}, &tollgate.Error{Code: tollgate.EUPSTREAM, Op: op, Err: err, Message: "WeChat Pay refused the order"}
}

// placedField names what WeChat Pay gives for an order of method.
func placedField(method string) string {
	switch method {
	case MethodH5:
		return "h5_url"
	case MethodJSAPI:
		return "prepay_id"
	}
	return "code_url"
}

func productID(o Order) string {
	if o.PackageID != "" {
		return o.PackageID
	}
	return "topup"
}

func (s *Service) notifyURL(version string) string {
	if version == APIv3 && s.cfg.NotifyURLV3 != "" {
		return s.cfg.NotifyURLV3
	}
	return s.cfg.NotifyURL
}

// grant issues (idempotently) the order's provisional grant and returns
// its token, or nil when the order has none or the account cannot have one
// now.
func (s *Service) grant(ctx context.Context, o Order) (*AccessToken, error) {
	if o.GrantCap <= 0 || !o.Status.Pending() || !o.Placed() {
		return nil, nil
	}
	now := s.now().UTC()
	if !now.Before(o.TokenExpiresAt) {
		return nil, nil
	}
	g, err := s.ledger.IssueGrant(ctx, ledger.GrantRequest{ID: o.OutTradeNo, Account: o.Account,
		Cap: o.GrantCap, TTL: o.TokenExpiresAt.Sub(now)})
	if err != nil {
		switch tollgate.ErrorCode(err) {
		case tollgate.EINSUFFICIENT, tollgate.ECONFLICT:
			// Debt or another live grant: the order stands, without
			// provisional access.
			s.log.InfoContext(ctx, "payment: no provisional access", "out_trade_no", o.OutTradeNo, "reason", tollgate.ErrorCode(err))
			return nil, nil
		}
		return nil, wrap("payment.CreateOrder", tollgate.EINTERNAL, err)
	}
	if g.Status != ledger.GrantLive {
		return nil, nil
	}
	tok := s.accessToken(o.OutTradeNo)
	if subtle.ConstantTimeCompare([]byte(hashToken(tok)), []byte(o.TokenHash)) != 1 {
		// Made by an instance with another TokenSecret: this one cannot
		// reproduce the token, so it returns none rather than a bad one.
		return nil, nil
	}
	exp := o.TokenExpiresAt
	if g.ExpiresAt.Before(exp) {
		exp = g.ExpiresAt
	}
	return &AccessToken{Token: tok, ExpiresAt: exp, Credits: g.Cap}, nil
}

// accessToken derives the provisional token of an order.
func (s *Service) accessToken(outTradeNo string) string {
	m := hmac.New(sha256.New, s.cfg.TokenSecret)
	m.Write([]byte("tollgate provisional token\x00" + outTradeNo))
	return "tgp_" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// hashToken is what is stored of a token: hex SHA-256.
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// IsAccessToken reports whether tok has the form of a provisional access
// token (so the HTTP layer knows which authenticator to ask).
func IsAccessToken(tok string) bool { return len(tok) == 47 && tok[:4] == "tgp_" }

// AuthenticateAccessToken returns the account and provisional grant a
// token was issued for. The HTTP layer accepts it as an API key whose
// spending is funded by that grant (ledger.ReserveRequest.GrantID).
// Errors: EUNAUTHORIZED (unknown, expired, or the grant is no longer live:
// failed, closed or expired). Once the order is paid the token stays valid
// until it expires, with grantID "": it then spends the account's credit.
func (s *Service) AuthenticateAccessToken(ctx context.Context, token string) (tollgate.AccountID, string, error) {
	const op = "payment.AuthenticateAccessToken"
	deny := &tollgate.Error{Code: tollgate.EUNAUTHORIZED, Op: op, Message: "invalid or expired access token"}
	if !IsAccessToken(token) {
		return "", "", deny
	}
	h := hashToken(token)
	o, err := s.store.OrderByTokenHash(ctx, h)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
			return "", "", deny
		}
		return "", "", wrap(op, tollgate.EINTERNAL, err)
	}
	if now := s.now(); subtle.ConstantTimeCompare([]byte(o.TokenHash), []byte(h)) != 1 ||
		(!now.Before(o.TokenExpiresAt) && !(mutantLateTokenExpiry && now.Equal(o.TokenExpiresAt))) {
		return "", "", deny
	}
	g, err := s.ledger.Grant(ctx, o.OutTradeNo)
	if err != nil {
		if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
			return "", "", deny
		}
		return "", "", wrap(op, tollgate.EINTERNAL, err)
	}
	switch {
	case g.Status == ledger.GrantConfirmed:
		// Paid: the token spends the account's own credit until it expires.
		return o.Account, "", nil
	case g.Status != ledger.GrantLive || !s.now().Before(g.ExpiresAt):
		return "", "", deny
	}
	return o.Account, g.ID, nil
}

// sleep waits d on the service's clock or until ctx ends; it reports
// whether d elapsed.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	return tollgate.Sleep(ctx, s.clock, d) == nil
}
