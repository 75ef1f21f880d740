package webhook

import (
	"context"
	"time"
)

// Endpoint is a receiver the operator, or a platform, registered.
type Endpoint struct {
	ID string // "we_…"
	// PlatformID is the platform (an app selling to its own users,
	// docs/DESIGN.md §4.12) the endpoint belongs to: it receives only the
	// events of that platform's accounts. "" is the operator's own
	// endpoint, which receives the events of every account.
	PlatformID  string
	URL         string
	Events      []string // the types it receives
	Description string
	// Secret signs every delivery. PreviousSecret, until PreviousUntil,
	// signs too (a rotation's overlap); "" when there is none.
	Secret         string
	PreviousSecret string
	PreviousUntil  time.Time
	CreatedAt      time.Time
	// DisabledAt is set when the dispatcher gave up on the endpoint (or
	// zero); DisabledReason says why. A disabled endpoint receives
	// nothing (no deliveries are made for it, none are attempted) until
	// the admin enables it again.
	DisabledAt     time.Time
	DisabledReason string
	// ConsecutiveFailures counts failed attempts since the last success;
	// FailingSince is the first of them (zero when the last attempt
	// succeeded). LastSuccessAt is the last delivered attempt.
	ConsecutiveFailures int64
	FailingSince        time.Time
	LastSuccessAt       time.Time
}

// Disabled reports whether the endpoint is disabled.
func (e Endpoint) Disabled() bool { return !e.DisabledAt.IsZero() }

// Secrets returns the secrets that sign a delivery at now: the current one
// and, while the rotation overlap lasts, the previous one.
func (e Endpoint) Secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// Receives reports whether the endpoint is one an event of type t about
// an account of platform ("" for none) is fanned out to: subscribed to t,
// and the operator's or that platform's.
func (e Endpoint) Receives(t, platform string) bool {
	return e.Subscribed(t) && (e.PlatformID == "" || e.PlatformID == platform)
}

// Subscribed reports whether the endpoint receives events of type t.
func (e Endpoint) Subscribed(t string) bool {
	for _, x := range e.Events {
		if x == t {
			return true
		}
	}
	return false
}

// Delivery states.
const (
	StatusPending   = "pending"   // not delivered yet; attempted when due
	StatusDelivered = "delivered" // a 2xx answer was received
	StatusFailed    = "failed"    // given up (MaxAge passed)
)

// Delivery is one event for one endpoint.
type Delivery struct {
	ID         string // "wd_…"
	EventID    string
	EventType  string
	EndpointID string
	Status     string
	// Attempts counts attempts started (a claim is an attempt, even when
	// the dispatcher died before recording its outcome; not one the
	// dispatcher released unmade, Outcome.Release).
	Attempts      int64
	NextAttemptAt time.Time
	// LastStatus is the HTTP status of the last answer (0: none, e.g. a
	// timeout); LastError what went wrong, at most MaxError bytes.
	LastStatus  int
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
	// EventCreatedAt is the event's time: retries stop MaxAge after it.
	EventCreatedAt time.Time
}

// Claimed is a delivery leased to one dispatcher: the event and the
// endpoint it is to be sent to.
type Claimed struct {
	Delivery Delivery
	Event    Event
	Endpoint Endpoint
}

// ClaimRequest asks for due deliveries.
type ClaimRequest struct {
	// Owner names the dispatcher; only the owner can record the outcome.
	Owner string
	Now   time.Time
	// Lease is how long the claim lasts: after Now+Lease another
	// dispatcher may claim the delivery again (its owner is presumed dead).
	Lease time.Duration
	// Limit bounds how many deliveries (and how many events to fan out).
	Limit int
	// SkipEndpoints are endpoints whose deliveries are not claimed (the
	// dispatcher has as many attempts to them in flight as it makes).
	SkipEndpoints []string
}

// Outcome is the result of one attempt, recorded by Complete.
type Outcome struct {
	DeliveryID string
	Owner      string
	Now        time.Time
	// Delivered: a 2xx answer. Otherwise Failed gives up on the delivery,
	// or NextAttemptAt schedules the next attempt.
	Delivered     bool
	Failed        bool
	NextAttemptAt time.Time
	HTTPStatus    int
	Error         string
	// Release gives the delivery back instead: not attempted, or the
	// attempt was cut short by the dispatcher stopping. The delivery stays
	// pending and due as it was, without the lease; the claim's attempt
	// is not counted and the endpoint's failure streak is unchanged.
	Release bool
}

// EndpointQuery is a page of endpoints: ids after After, at most Limit;
// only Platform's when Platform is not "" (every endpoint otherwise, the
// operator's and every platform's).
type EndpointQuery struct {
	Platform string
	After    string
	Limit    int
}

// DeliveryQuery is a page of an endpoint's deliveries, newest first:
// Status "" is every status; After is the previous page's last
// (CreatedAt, ID).
type DeliveryQuery struct {
	Endpoint  string
	Status    string
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// Store keeps the outbox: endpoints, events, deliveries. store/sqlite and
// store/postgres implement it; store/storetest is its conformance suite.
//
// Events are appended inside the money transaction they describe (each
// store has an internal function for its ledger transaction);
// AppendEvent appends one on its own, for tests and for events that
// describe no money change.
type Store interface {
	// AppendEvent appends e and returns it with its Seq. Errors: EINVALID.
	AppendEvent(ctx context.Context, e Event) (Event, error)

	// CreateEndpoint stores e. Errors: ECONFLICT when MaxEndpoints exist,
	// or MaxPlatformEndpoints of e's platform; ENOTFOUND when e's platform
	// does not exist.
	CreateEndpoint(ctx context.Context, e Endpoint) error
	// GetEndpoint returns one endpoint. Errors: ENOTFOUND.
	GetEndpoint(ctx context.Context, id string) (Endpoint, error)
	// ListEndpoints returns a page of endpoints in id order.
	ListEndpoints(ctx context.Context, q EndpointQuery) ([]Endpoint, error)
	// DeleteEndpoint removes an endpoint and its deliveries. Errors:
	// ENOTFOUND.
	DeleteEndpoint(ctx context.Context, id string) error
	// RotateSecret makes secret the endpoint's secret and keeps the old
	// one as PreviousSecret until previousUntil. Errors: ENOTFOUND.
	RotateSecret(ctx context.Context, id, secret string, previousUntil time.Time) (Endpoint, error)
	// SetEndpointDisabled disables (at non-zero, with reason) or enables
	// (at zero: also forgets the failure streak) an endpoint. Errors:
	// ENOTFOUND.
	SetEndpointDisabled(ctx context.Context, id string, at time.Time, reason string) (Endpoint, error)

	// Claim first fans out events not yet fanned out (a pending delivery
	// for every endpoint, enabled or not, that existed when the event was
	// created and Receives it: subscribed to its type, and the operator's
	// or the platform's of the event's account), then leases up to Limit due
	// pending deliveries of enabled endpoints (not of SkipEndpoints) to
	// Owner until Now+Lease:
	// those whose NextAttemptAt has come and whose lease, if any, has
	// run out. Two dispatchers never hold a lease on one delivery at
	// once. Each claim counts an attempt.
	Claim(ctx context.Context, r ClaimRequest) ([]Claimed, error)
	// Complete records an attempt's outcome if o.Owner still holds the
	// lease, updates the endpoint's failure streak, and returns the
	// endpoint as it is now. Errors: ECONFLICT when the lease was lost
	// (the outcome is dropped; another dispatcher will deliver again).
	// With o.Release it only gives the lease back (see Outcome.Release).
	Complete(ctx context.Context, o Outcome) (Endpoint, error)
	// ListDeliveries returns a page of an endpoint's deliveries, newest
	// first. Errors: ENOTFOUND (no such endpoint).
	ListDeliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error)
	// RetryDelivery makes a delivery pending and due at now, whatever its
	// status, with no lease. Errors: ENOTFOUND.
	RetryDelivery(ctx context.Context, endpoint, delivery string, now time.Time) (Delivery, error)

	// PruneEvents deletes up to limit events created before before that
	// are fanned out and have no pending delivery (every delivery
	// delivered or failed, or none), oldest first, with their
	// deliveries, and returns how many events it deleted. An event not
	// yet fanned out, or with a delivery pending, is never deleted, nor
	// is one whose delivery a concurrent RetryDelivery makes pending.
	// The account's seq counter stays, so seq never repeats. See Pruner.
	PruneEvents(ctx context.Context, before time.Time, limit int) (int, error)
}
