package payment

import (
	"sort"
	"sync"
	"tollgate"
)

// Metrics counts payment events by name and reason, e.g.
// ("notification_rejected", "bad_signature"). The HTTP layer may adapt it
// to Prometheus counters; Counters is an in-memory implementation.
type Metrics interface {
	// Count adds one to the counter (event, reason). It must be cheap and
	// safe for concurrent use.
	Count(event, reason string)
}

// Events counted through Metrics.
const (
	EventNotificationRejected = "notification_rejected" // reason: why (see Reason*)
	EventNotificationAcked    = "notification_acked"    // reason: credited, already_credited, refund
	EventOrderCreated         = "order_created"         // reason: api version
	EventOrderPlaceFailed     = "order_place_failed"    // reason: retryable, definite
	EventPollerCredited       = "poller_credited"       // reason: query, close_orderpaid
	EventOrderClosed          = "order_closed"          // reason: expired, closed, payerror
	EventLateSuccess          = "late_success"          // reason: previous local state
	EventRefund               = "refund"                // reason: accepted, succeeded, failed
	EventRolloutPaused        = "rollout_paused"        // reason: failure_rate
	EventRefundAsked          = "refund_asked"          // reason: requested_by (account, admin)
	// EventReview counts answers from WeChat Pay, correctly signed, that
	// contradict the order or tollgate's records: nothing was done on them
	// and the order was put in review (Order.Review). Reason: Review*. It
	// is an alert: WeChat Pay, or someone with its keys, is lying.
	EventReview = "order_review"
)

// MoneyMetrics is an optional capability of a Metrics: counting money as
// well as events. Labels are low-cardinality (a method, who asked).
type MoneyMetrics interface {
	// Add counts one event of kind with label, worth fen.
	Add(kind, label string, fen int64)
}

// Kinds of money counted through MoneyMetrics.
const (
	MoneyPaid     = "paid"     // label: method; fen: paid (gross revenue), once per payment credited
	MoneyFee      = "fee"      // label: method; fen: the merchant fee recorded
	MoneyRefunded = "refunded" // label: requested_by; fen: refunded, once per refund succeeded
)

// money counts fen of kind when the metrics can.
func (s *Service) money(kind, label string, fen tollgate.Fen) {
	if m, ok := s.metrics.(MoneyMetrics); ok {
		m.Add(kind, label, int64(fen))
	}
}

// Reasons an order is put in review (EventReview).
const (
	ReviewAmount       = "amount"          // another amount than the order's
	ReviewNotOurs      = "not_ours"        // an answer about another merchant or order
	ReviewRefundState  = "refund_state"    // REFUND for an order tollgate never credited
	ReviewUnknownState = "unknown_state"   // a trade_state WeChat Pay does not document
	ReviewClosePaid    = "close_says_paid" // closing answers ORDERPAID, the query says unpaid
	ReviewRefundAmount = "refund_amount"   // a refund answer with another amount than asked
)

// Reasons a notification is refused.
const (
	ReasonMalformed      = "malformed"
	ReasonBadSignature   = "bad_signature"
	ReasonProbe          = "signature_probe"
	ReasonTooOld         = "too_old"
	ReasonWrongMerchant  = "wrong_merchant"
	ReasonUnknownOrder   = "unknown_order"
	ReasonWrongVersion   = "wrong_api_version"
	ReasonAmountMismatch = "amount_mismatch"
	ReasonNotSuccess     = "not_success"
	ReasonReplay         = "replay"
	ReasonUnknownRefund  = "unknown_refund"
	ReasonConflict       = "conflict"
	ReasonInternal       = "internal"
)

type nopMetrics struct{}

func (nopMetrics) Count(string, string) {}

// Counters is an in-memory Metrics. The zero value is ready to use.
type Counters struct {
	mu sync.Mutex
	m  map[[2]string]int64
}

// Count implements Metrics.
func (c *Counters) Count(event, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[2]string]int64{}
	}
	c.m[[2]string{event, reason}]++
}

// Get returns the counter (event, reason).
func (c *Counters) Get(event, reason string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[[2]string{event, reason}]
}

// Sum returns the total of every counter of event.
func (c *Counters) Sum(event string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for k, v := range c.m {
		if k[0] == event {
			n += v
		}
	}
	return n
}

// Snapshot returns every counter as "event/reason" -> count (SortedKeys
// lists the keys in order).
func (c *Counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k[0]+"/"+k[1]] = v
	}
	return out
}

// SortedKeys returns the keys of a Snapshot in order.
func SortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
