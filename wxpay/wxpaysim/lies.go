package wxpaysim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Lie kinds: what a lying answer reports instead of the truth (Faults.Lies,
// Server.LieAbout, Server.NotifyLie). A lie is told in a correctly signed
// answer or notification: only its content is false. The emulator's truth
// (Orders, GET /sim/orders) never changes because of a lie.
const (
	LieAmount     = "amount"     // another total_fee (v2) / amount.total (v3)
	LieAppID      = "appid"      // another appid
	LieMchID      = "mch_id"     // another mch_id (v2) / mchid (v3)
	LieUserPaying = "USERPAYING" // trade_state USERPAYING
	LieRefund     = "REFUND"     // trade_state REFUND (with a transaction_id, made up if unpaid)
	LieRevoked    = "REVOKED"    // trade_state REVOKED
	LiePayError   = "PAYERROR"   // trade_state PAYERROR
	LieClosed     = "CLOSED"     // trade_state CLOSED
	LieUnknown    = "unknown"    // trade_state UnknownTradeState, which no document lists
	// LieRefundAmount makes a refund answer (the refund call, a refund
	// query) or a refund notification report another refund_fee
	// (v2) / amount.refund (v3).
	LieRefundAmount = "refund_amount"
)

// errUnknownLie is the error for a lie kind not listed above.
var errUnknownLie = errors.New("wxpaysim: unknown lie kind")

// UnknownTradeState is the trade_state a LieUnknown answer reports.
const UnknownTradeState = "UNDEFINED"

// Lying answers report these merchant ids (LieAppID, LieMchID).
const (
	LieOtherAppID = "wx0000000000000000"
	LieOtherMchID = "1900000000"
)

// OrderLieKinds are the lies told about an order: in order query answers
// and payment notifications. RefundLieKinds are told about a refund.
var (
	OrderLieKinds  = []string{LieAmount, LieAppID, LieMchID, LieUserPaying, LieRefund, LieRevoked, LiePayError, LieClosed, LieUnknown}
	RefundLieKinds = []string{LieRefundAmount}
)

// Where a lie is told (LieTold.Where, the keys of Stats.Lies).
const (
	LieInQuery        = "query"         // an order query answer
	LieInNotify       = "notify"        // a payment notification
	LieInRefund       = "refund"        // the answer to a refund call
	LieInRefundQuery  = "refundquery"   // a refund query answer
	LieInRefundNotify = "refund_notify" // a refund notification
)

// LieTold is one lie the emulator told, as returned by LiesTold and
// GET /sim/lies.
type LieTold struct {
	Seq         int       `json:"seq"`
	Where       string    `json:"where"` // LieIn*
	Kind        string    `json:"kind"`  // Lie*
	OutTradeNo  string    `json:"out_trade_no"`
	OutRefundNo string    `json:"out_refund_no,omitempty"`
	Told        string    `json:"told"`  // the false value: a state, an amount, an id
	Truth       string    `json:"truth"` // the true value when it was told
	Time        time.Time `json:"time"`  // real time
}

// lie is one decision to lie: the kind, and a random number choosing the
// false amount.
type lie struct {
	kind string
	u    uint64
}

func lieWhereKinds(where string) []string {
	if where == LieInQuery || where == LieInNotify {
		return OrderLieKinds
	}
	return RefundLieKinds
}

// validateLies checks the lie rates: known kinds, each within [0, 1], and
// the order kinds and the refund kinds each adding up to at most 1 (one
// draw picks at most one lie per answer).
func validateLies(m map[string]float64) error {
	var order, refund float64
	for k, v := range m {
		if v < 0 || v > 1 {
			return fmt.Errorf("lies.%s=%v: a rate must be within [0, 1]", k, v)
		}
		switch {
		case slices.Contains(OrderLieKinds, k):
			order += v
		case slices.Contains(RefundLieKinds, k):
			refund += v
		default:
			return fmt.Errorf("lies: unknown kind %q", k)
		}
	}
	if order > 1 || refund > 1 {
		return fmt.Errorf("lies: the order kinds add up to %v and the refund kinds to %v; each must be at most 1", order, refund)
	}
	return nil
}

// drawLieLocked decides, from Faults.Lies and the seeded source, whether
// one answer told at where lies. It draws nothing when no applicable rate
// is set, so a seed replays the other faults whether lies are on or off.
func (s *Server) drawLieLocked(where string) (lie, bool) {
	kinds := lieWhereKinds(where)
	var total float64
	for _, k := range kinds {
		total += s.faults.Lies[k]
	}
	if total <= 0 {
		return lie{}, false
	}
	x, cum := s.rng.r.Float64(), 0.0
	for _, k := range kinds {
		cum += s.faults.Lies[k]
		if x < cum {
			return lie{kind: k, u: s.rng.r.Uint64()}, true
		}
	}
	return lie{}, false
}

// targetedLieLocked returns the lie LieAbout set for order no, if it
// applies at where.
func (s *Server) targetedLieLocked(no, where string) (lie, bool) {
	k := s.targets[no]
	if k == "" || !slices.Contains(lieWhereKinds(where), k) {
		return lie{}, false
	}
	return lie{kind: k, u: s.rng.r.Uint64()}, true
}

// lieLocked decides whether an answer about order no told at where lies:
// a targeted lie (LieAbout) always, otherwise by Faults.Lies.
func (s *Server) lieLocked(no, where string) (lie, bool) {
	if l, ok := s.targetedLieLocked(no, where); ok {
		return l, true
	}
	return s.drawLieLocked(where)
}

// noteLieLocked records a lie told.
func (s *Server) noteLieLocked(where, kind, no, refundNo, told, truth string) {
	if s.stats.lies == nil {
		s.stats.lies = map[string]int{}
	}
	s.stats.lies[where+":"+kind]++
	s.lies = append(s.lies, LieTold{Seq: len(s.lies) + 1, Where: where, Kind: kind, OutTradeNo: no,
		OutRefundNo: refundNo, Told: told, Truth: truth, Time: time.Now()})
}

// otherAmount is a false amount for a true one, never equal to it and
// never below 1 fen: one more, one less, double, or 1 fen.
func otherAmount(total int64, u uint64) int64 {
	switch u % 4 {
	case 0:
		return total + 1
	case 1:
		if total > 1 {
			return total - 1
		}
		return total + 1
	case 2:
		return 2 * total
	}
	if total > 1 {
		return 1
	}
	return 2
}

// tellOrderLieLocked returns the view o as the lie l tells it and records
// the lie. A lie that an order is paid (REFUND) gives an unpaid order a
// made-up transaction_id and payment time; a lie that it is not paid
// removes them from a paid one, as WeChat Pay's answers would.
func (s *Server) tellOrderLieLocked(o Order, l lie, where string) Order {
	v := o
	told, truth := "", ""
	switch l.kind {
	case LieAmount:
		v.Total = otherAmount(o.Total, l.u)
		told, truth = itoa(v.Total), itoa(o.Total)
	case LieAppID:
		v.AppID, told, truth = LieOtherAppID, LieOtherAppID, o.AppID
	case LieMchID:
		v.MchID, told, truth = LieOtherMchID, LieOtherMchID, o.MchID
	default:
		v.State = l.kind
		if l.kind == LieUnknown {
			v.State = UnknownTradeState
		}
		told, truth = v.State, o.State
		if real := s.orders[o.OutTradeNo]; real != nil {
			truth = real.State // NotifyLie builds on a paid view of an unpaid order
		}
		s.lieStateLocked(&v)
	}
	s.noteLieLocked(where, l.kind, o.OutTradeNo, "", told, truth)
	return v
}

// lieStateLocked makes the payment fields of v agree with its (false)
// state.
func (s *Server) lieStateLocked(v *Order) {
	paid := v.State == StateSuccess || v.State == StateRefund
	switch {
	case paid && v.TransactionID == "":
		now := s.nowLocked(s.clockSkew)
		v.TransactionID = "4200" + now.Format("20060102") + randDigits(16) // never recorded: no such payment
		v.PaidAt = now
		if v.OpenID == "" {
			v.OpenID = "oUpF8u" + randAlnum(22)
		}
	case !paid:
		v.TransactionID, v.PaidAt = "", time.Time{}
	}
}

// tellRefundLieLocked returns the refund r as the lie l tells it (another
// amount) and records the lie.
func (s *Server) tellRefundLieLocked(r Refund, l lie, where string) Refund {
	v := r
	v.Amount = otherAmount(r.Amount, l.u)
	s.noteLieLocked(where, l.kind, r.OutTradeNo, r.OutRefundNo, itoa(v.Amount), itoa(r.Amount))
	return v
}

// answerOrder returns the order as an order query answers it: the truth,
// or a lie (Faults.Lies, LieAbout), which is recorded.
func (s *Server) answerOrder(no, txID string, sandbox bool) (Order, *bizErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.lookupLocked(no, txID, sandbox)
	if o == nil {
		return Order{}, errOrderNotExist
	}
	v := s.viewLocked(o)
	if l, ok := s.lieLocked(v.OutTradeNo, LieInQuery); ok {
		v = s.tellOrderLieLocked(v, l, LieInQuery)
	}
	return v, nil
}

// answerRefunds returns refunds as a refund call or query answers them
// (where: LieInRefund or LieInRefundQuery): the truth, or one lie about
// their amounts, which is recorded.
func (s *Server) answerRefunds(where string, rs ...Refund) []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rs) == 0 {
		return rs
	}
	l, ok := s.lieLocked(rs[0].OutTradeNo, where)
	if !ok {
		return rs
	}
	out := make([]Refund, len(rs))
	for i, r := range rs {
		out[i] = s.tellRefundLieLocked(r, l, where)
	}
	return out
}

// LieAbout makes every answer about order outTradeNo tell lie kind from
// now on: an order kind (OrderLieKinds) in its order query answers and
// in every attempt of its payment notifications, LieRefundAmount in the
// answers about its refunds and in every attempt of their notifications.
// An empty kind tells the truth again. The truth is kept: Order and
// Orders are unchanged. Errors: ErrNotFound; an unknown kind.
func (s *Server) LieAbout(outTradeNo, kind string) error {
	s.init()
	if kind != "" && !slices.Contains(OrderLieKinds, kind) && !slices.Contains(RefundLieKinds, kind) {
		return fmt.Errorf("lie about %q: kind %q: %w", outTradeNo, kind, errUnknownLie)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orders[outTradeNo] == nil {
		return fmt.Errorf("lie about %q: %w", outTradeNo, ErrNotFound)
	}
	if kind == "" {
		delete(s.targets, outTradeNo)
		return nil
	}
	s.targets[outTradeNo] = kind
	return nil
}

// LiesTold returns every lie told so far, in order.
func (s *Server) LiesTold() []LieTold {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LieTold(nil), s.lies...)
}

// NotifyLie sends, now and once (no retries, no faults), a correctly
// signed notification about order outTradeNo that tells lie kind, whatever
// the order's state: WeChat Pay lying at any point of an order's life. An
// order kind sends the payment notification the order would get if it
// were paid (its own transaction_id, or a made-up one if it is not paid)
// with the lie in it; LieRefundAmount sends the notification of the
// order's last refund with another amount. It returns the delivery, also
// recorded in Notifications. Errors: ErrNotFound; ErrWrongState
// (LieRefundAmount for an order without refunds); an unknown kind.
func (s *Server) NotifyLie(outTradeNo, kind string) (Delivery, error) {
	s.init()
	refundLie := slices.Contains(RefundLieKinds, kind)
	if !refundLie && !slices.Contains(OrderLieKinds, kind) {
		return Delivery{}, fmt.Errorf("notify lie about %q: kind %q: %w", outTradeNo, kind, errUnknownLie)
	}
	s.mu.Lock()
	o := s.orders[outTradeNo]
	if o == nil {
		s.mu.Unlock()
		return Delivery{}, fmt.Errorf("notify lie about %q: %w", outTradeNo, ErrNotFound)
	}
	var n *notification
	if refundLie {
		if len(o.refundNos) == 0 {
			s.mu.Unlock()
			return Delivery{}, fmt.Errorf("notify lie about refunds of %q: %w", outTradeNo, ErrWrongState)
		}
		r := *s.refunds[o.refundNos[len(o.refundNos)-1]]
		if r.SuccessAt.IsZero() {
			r.SuccessAt = s.nowLocked(s.clockSkew)
		}
		r.Status = RefundSuccess
		n = s.refundNotificationLocked(&r)
	} else {
		v := s.viewLocked(o)
		v.State = StateSuccess
		s.lieStateLocked(&v)
		n = s.paymentNotificationLocked(v)
	}
	s.notifySeq++
	l := lie{kind: kind, u: s.rng.r.Uint64()}
	body := s.lieBodyLocked(n, l)
	s.mu.Unlock()
	d := Delivery{NotificationID: n.id, Kind: n.kind, APIVersion: n.version, OutTradeNo: n.outTradeNo,
		OutRefundNo: n.outRefundNo, URL: n.url, Attempt: 1, Lie: kind}
	d, _ = s.post(n, body, d)
	return d, nil
}

// lieBodyLocked builds the body of notification n telling lie l, and
// records the lie.
func (s *Server) lieBodyLocked(n *notification, l lie) []byte {
	if n.kind == "refund" {
		return n.refundBody(s.tellRefundLieLocked(n.refund, l, LieInRefundNotify))
	}
	return n.paymentBody(s.tellOrderLieLocked(n.order, l, LieInNotify))
}
