// Package webhook tells the app what happened to its users' money: events
// written in the same transaction as the money change they describe (a
// transactional outbox, kept by the store), delivered at least once to the
// endpoints the operator registered, signed as Standard Webhooks
// (https://www.standardwebhooks.com) so a receiver can check them with any
// of that project's libraries.
//
// The package holds the rules (event catalogue, envelope, signing, the
// retry schedule, the SSRF guard, the dispatcher loop); the stores
// (store/sqlite, store/postgres) hold the rows through Store.
package webhook

import (
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"tollgate"
)

// Event types: the catalogue an endpoint subscribes to.
const (
	// PaymentSucceeded: an order was paid and its credit granted; data is
	// the order.
	PaymentSucceeded = "payment.succeeded"
	// PaymentClosed: an order will never be paid (expired, closed or
	// failed); data is the order.
	PaymentClosed = "payment.closed"
	// RefundSucceeded and RefundFailed: a refund's outcome; data is the
	// refund.
	RefundSucceeded = "refund.succeeded"
	RefundFailed    = "refund.failed"
	// GrantDebtRecorded: a provisional grant's payment never arrived and
	// what was spent of it became debt; data is the balance.
	GrantDebtRecorded = "grant.debt_recorded"
	// BalanceLow: the account's available credit fell below its
	// low_balance_credits (once per crossing); data is the balance.
	BalanceLow = "balance.low"
	// AccountCreated: data is the account.
	AccountCreated = "account.created"
	// AdjustmentCreated: an operator added or removed credit by hand; data
	// is the adjustment.
	AdjustmentCreated = "adjustment.created"
)

// Types returns every event type, in catalogue order.
func Types() []string {
	return []string{PaymentSucceeded, PaymentClosed, RefundSucceeded, RefundFailed,
		GrantDebtRecorded, BalanceLow, AccountCreated, AdjustmentCreated}
}

// ValidType reports whether t is an event type of the catalogue.
func ValidType(t string) bool { return slices.Contains(Types(), t) }

// Bounds of what the outbox stores.
const (
	// MaxData bounds an event's data (its JSON object).
	MaxData = 16 << 10
	// MaxEndpoints bounds how many endpoints one installation registers,
	// the operator's and every platform's together: fan-out reads them
	// all for every event.
	MaxEndpoints = 50
	// MaxPlatformEndpoints bounds how many of them one platform
	// registers, so one app cannot take every place.
	MaxPlatformEndpoints = 5
	// MaxError bounds a delivery's last_error as stored.
	MaxError = 500
	// MaxURL bounds an endpoint's URL.
	MaxURL = 2048
	// MaxDescription bounds an endpoint's description.
	MaxDescription = 500
)

// Account names the account an event is about: tollgate's id and the app's
// own user id (nil when the account has none).
type Account struct {
	ID         tollgate.AccountID `json:"id"`
	ExternalID *string            `json:"external_id"`
}

// Event is one row of the outbox, and (as JSON) the body delivered.
type Event struct {
	// ID is "evt_…"; it is the webhook-id header of every delivery of the
	// event, to every endpoint, on every attempt: a receiver de-duplicates
	// by it.
	ID   string `json:"id"`
	Type string `json:"type"`
	// CreatedAt is when the money change committed (the transaction's
	// clock).
	CreatedAt time.Time `json:"created_at"`
	Account   Account   `json:"account"`
	// Seq numbers the account's events from 1 without gaps, in commit
	// order: an app orders an account's events by it. The store assigns
	// it when the event is appended.
	Seq int64 `json:"seq"`
	// Data is the object the event is about, in the API's shape.
	Data json.RawMessage `json:"data"`
	// PlatformID is the platform the account belonged to when the event
	// was written ("" for none; the store fills it in, as it does
	// Account.ExternalID): only the operator's endpoints and that
	// platform's receive the event. It is not delivered.
	PlatformID string `json:"-"`
}

// envelope is the delivered JSON: the event with "object":"event".
type envelope struct {
	Object string `json:"object"`
	Event
}

// Body returns the JSON delivered for e (the signed bytes).
func (e Event) Body() ([]byte, error) {
	e.CreatedAt = e.CreatedAt.UTC()
	if len(e.Data) == 0 {
		e.Data = json.RawMessage(`{}`)
	}
	return json.Marshal(envelope{Object: "event", Event: e})
}

// Check validates an event about to be appended: a known type, an account,
// data that is one JSON object within MaxData. Errors carry EINVALID.
func (e Event) Check() error {
	switch {
	case !strings.HasPrefix(e.ID, "evt_") || len(e.ID) > 64:
		return tollgate.Errorf(tollgate.EINVALID, "webhook event id %q is not evt_…", e.ID)
	case !ValidType(e.Type):
		return tollgate.Errorf(tollgate.EINVALID, "unknown webhook event type %q", e.Type)
	case e.Account.ID == "":
		return tollgate.Errorf(tollgate.EINVALID, "webhook event %s has no account", e.ID)
	case e.CreatedAt.IsZero():
		return tollgate.Errorf(tollgate.EINVALID, "webhook event %s has no time", e.ID)
	case len(e.Data) > MaxData:
		return tollgate.Errorf(tollgate.EINVALID, "webhook event data is %d bytes, at most %d", len(e.Data), MaxData)
	}
	if len(e.Data) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &obj); err != nil {
			return tollgate.Errorf(tollgate.EINVALID, "webhook event data is not a JSON object: %v", err)
		}
	}
	return nil
}

// NewEvent returns an event of type typ about account, with a fresh id and
// data marshalled from v (already JSON when v is a json.RawMessage). Seq
// is the store's to assign.
func NewEvent(typ string, account tollgate.AccountID, at time.Time, v any) (Event, error) {
	var data json.RawMessage
	switch d := v.(type) {
	case json.RawMessage:
		data = d
	case nil:
		data = json.RawMessage(`{}`)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return Event{}, tollgate.Errorf(tollgate.EINTERNAL, "webhook event data: %v", err)
		}
		data = b
	}
	e := Event{ID: NewID("evt_"), Type: typ, CreatedAt: at.UTC(), Account: Account{ID: account}, Data: data}
	return e, e.Check()
}

// idAlphabet is what ids are made of after their prefix (base 32, lower
// case, no look-alikes matter here).
const idAlphabet = "0123456789abcdefghijklmnopqrstuv"

// NewID returns prefix followed by 26 random base-32 characters (130 bits).
func NewID(prefix string) string {
	var b [26]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	for i := range b {
		b[i] = idAlphabet[b[i]&31]
	}
	return prefix + string(b[:])
}
