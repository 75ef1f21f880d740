package payment

import (
	"encoding/json"
	"fmt"
	"time"

	"tollgate"
)

// Status is the state of an order, spelled as WeChat Pay's trade_state.
type Status string

// Order states. An order starts NOTPAY. SUCCESS is never undone: it may only
// become REFUND. A locally CLOSED or PAYERROR order may still become SUCCESS,
// because WeChat Pay is the truth about payments (a late payment after a
// close is credited and flagged for review).
const (
	StatusNotPay     Status = "NOTPAY"
	StatusUserPaying Status = "USERPAYING"
	StatusSuccess    Status = "SUCCESS"
	StatusClosed     Status = "CLOSED"
	StatusRefund     Status = "REFUND"
	StatusPayError   Status = "PAYERROR"
)

// edges lists, for each state, the states it may move to (besides itself).
var edges = map[Status][]Status{
	StatusNotPay:     {StatusUserPaying, StatusSuccess, StatusClosed, StatusPayError},
	StatusUserPaying: {StatusNotPay, StatusSuccess, StatusClosed, StatusPayError},
	StatusClosed:     {StatusSuccess},
	StatusPayError:   {StatusSuccess},
	StatusSuccess:    {StatusRefund},
	StatusRefund:     nil,
}

// Pending reports whether the order may still be paid without anything
// unusual: NOTPAY or USERPAYING.
func (s Status) Pending() bool { return s == StatusNotPay || s == StatusUserPaying }

// Paid reports whether the order was paid (SUCCESS or REFUND).
func (s Status) Paid() bool { return s == StatusSuccess || s == StatusRefund }

// Valid reports whether s is one of the six states.
func (s Status) Valid() bool { _, ok := edges[s]; return ok }

// CheckTransition returns nil if an order may move from one state to
// another (staying in the same state is always allowed), and an ECONFLICT
// *tollgate.Error otherwise. UpdateOrder applies it to every change, so no
// order ever takes an edge outside the state machine.
func CheckTransition(from, to Status) error {
	if !from.Valid() || !to.Valid() {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "payment.CheckTransition",
			Message: fmt.Sprintf("unknown order state %q -> %q", from, to)}
	}
	if from == to {
		return nil
	}
	for _, s := range edges[from] {
		if s == to {
			return nil
		}
	}
	return &tollgate.Error{Code: tollgate.ECONFLICT, Op: "payment.CheckTransition",
		Message: fmt.Sprintf("order state %s cannot become %s", from, to)}
}

// API versions of WeChat Pay an order can be placed with.
const (
	APIv2 = "v2"
	APIv3 = "v3"
)

// Payment methods: how the payer pays an order (docs/DESIGN.md §3.2).
const (
	// MethodNative is a QR code (code_url) scanned with WeChat: a desktop.
	MethodNative = "native"
	// MethodH5 is a mobile browser outside WeChat: its h5_url opens WeChat
	// to pay (API v3 only).
	MethodH5 = "h5"
	// MethodJSAPI is a page inside WeChat, which passes the signed prepay_id
	// to WeixinJSBridge's getBrandWCPayRequest (API v3 only).
	MethodJSAPI = "jsapi"
)

// Order is one WeChat Pay order as tollgate keeps it.
type Order struct {
	OutTradeNo string // merchant order number, 6–32 characters, unique
	Account    tollgate.AccountID
	Fen        tollgate.Fen     // amount asked, total_fee
	Credits    tollgate.Credits // credits quoted when the order was made
	PackageID  string           // "" for a pay-as-you-go amount
	APIVersion string           // APIv2 or APIv3
	SignType   string           // v2 sign type the order was placed with; "" for v3
	Status     Status
	// Method is MethodNative, MethodH5 or MethodJSAPI; OpenID is the
	// payer's openid under the merchant's appid, for MethodJSAPI only.
	Method string
	OpenID string
	// What WeChat Pay gave when it accepted the order, the one field of
	// its method; all "" until then (see Placed).
	CodeURL  string // native: the QR code's content
	H5URL    string // h5: the page that opens WeChat to pay, valid 5 minutes
	PrepayID string // jsapi: what the pay sheet names (Service.JSAPIParams)
	// H5IssuedAt is when WeChat Pay gave H5URL (zero: unknown). A replay
	// places the order again for a fresh one once it is H5URLRenewAfter
	// old (CreateOrder).
	H5IssuedAt time.Time
	// TransactionID is WeChat Pay's number, set once paid.
	TransactionID     string
	DeviceFingerprint string
	ClientIP          string
	// TokenHash is the hex SHA-256 of the provisional access token, or ""
	// if none was issued. The token itself is never stored.
	TokenHash      string
	TokenExpiresAt time.Time
	// GrantCap is the provisional allowance asked for (0: none).
	GrantCap tollgate.Credits
	// ExpiresAt is when the order stops being payable and is closed.
	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// Poll bookkeeping: the order query poller asks WeChat Pay about the
	// order at NextPollAt; PollAttempts counts queries so far; LeaseOwner
	// holds the order until LeaseUntil so that only one instance asks.
	NextPollAt   time.Time
	PollAttempts int
	LeaseOwner   string
	LeaseUntil   time.Time
	// Review, when not empty, says why a person should look at the order
	// (for example a payment that arrived after the order was closed).
	Review string
	// FeeFen is the merchant fee recorded for the payment (0 until paid).
	FeeFen tollgate.Fen
	// Metadata is the app's small JSON object given with the checkout
	// session the order was made from (compacted; nil or "{}" for none).
	// It is written once, when the order is made, and read back by every
	// store read, so the order's events (payment.succeeded) and answers
	// can carry it as is (MetadataOrEmpty).
	Metadata json.RawMessage
}

// MetadataOrEmpty is the order's metadata as an event or answer shows it:
// "{}" when the order has none.
func (o Order) MetadataOrEmpty() json.RawMessage {
	if len(o.Metadata) == 0 {
		return json.RawMessage("{}")
	}
	return o.Metadata
}

// PayMethod is the order's method: Method, or MethodNative when it is
// empty (orders made before methods existed, or built without one). Code
// that stores or shows a method uses it, so "empty means native" is
// decided here only.
func (o Order) PayMethod() string {
	if o.Method == "" {
		return MethodNative
	}
	return o.Method
}

// Placed reports whether WeChat Pay accepted the order: it holds its
// code_url, h5_url or prepay_id.
func (o Order) Placed() bool { return o.CodeURL != "" || o.H5URL != "" || o.PrepayID != "" }

// IdempotencyKey records an Idempotency-Key of an order request: the same
// key with the same body returns the same order; with another body it is
// refused. Keys are kept for IdempotencyTTL.
type IdempotencyKey struct {
	Account     tollgate.AccountID
	Key         string
	RequestHash string // hex SHA-256 of the canonical request body
	OutTradeNo  string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// RefundStatus is the state of a refund as tollgate follows it.
type RefundStatus string

// Refund states: pending until WeChat Pay reports a final state.
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// RefundRecord is tollgate's bookkeeping of one refund it asked WeChat Pay
// for: which order, how much, and when to query it next. The money side
// (credits reserved, refunded) lives in the ledger's refund row with the
// same OutRefundNo.
type RefundRecord struct {
	OutRefundNo  string // deterministic: retries reuse it
	OutTradeNo   string
	Account      tollgate.AccountID
	Fen          tollgate.Fen
	Credits      tollgate.Credits
	Status       RefundStatus
	CreatedAt    time.Time
	UpdatedAt    time.Time
	NextPollAt   time.Time
	PollAttempts int
	LeaseOwner   string
	LeaseUntil   time.Time
	// RequestedBy is who asked: RequestedByAccount (through /v1) or
	// RequestedByAdmin; Reason is why, as they said; AskedFen is the
	// amount asked for, 0 for all the unused credit.
	RequestedBy string
	Reason      string
	AskedFen    tollgate.Fen
	// Actor names who asked (migration 0012): "account:<account id>"
	// for a user's own refund, the admin API's actor for the operator's
	// ("admin", or e.g. "console:<session>"); "" for refunds made before
	// it was recorded. At most MaxActor bytes.
	Actor string
}

// MaxActor bounds RefundRecord.Actor (the column's CHECK).
const MaxActor = 64

// AccountActor is the actor of a user's own refund.
func AccountActor(account tollgate.AccountID) string {
	a := "account:" + string(account)
	if len(a) > MaxActor {
		a = a[:MaxActor]
	}
	return a
}

// Who asks for a refund.
const (
	RequestedByAccount = "account"
	RequestedByAdmin   = "admin"
)
