package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"tollgate"
	"tollgate/wxpay"
)

// pollBatch is how many orders (and refunds) one PollOnce claims, and
// pollWorkers how many of its orders are asked about at once: their
// writes (reschedules, closes) then meet in the order batcher's low
// queue and commit together.
const (
	pollBatch   = 32
	pollWorkers = 8
)

// RunPoller runs PollOnce every Config.PollEvery (on the service's
// clock) until ctx ends, and returns ctx's error. Run it in every instance: leases keep two instances
// from querying the same order, and the query budget is shared through the
// Limiter.
func (s *Service) RunPoller(ctx context.Context) error {
	for {
		t := s.clock.NewTimer(s.cfg.PollEvery)
		// A full batch means more is due: keep going, a bounded number of
		// rounds, before waiting for the next tick.
		// A round the query limit cut short ends them too: the rest of the
		// backlog waits for the budget, not in a loop of leases and
		// reschedules.
		for range 16 {
			n, limited, err := s.pollOnce(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "payment: poll", "err", err)
			}
			if err != nil || limited || n < pollBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// PollOnce does one round of the completer's work and returns how many
// orders and refunds it looked at: it revokes expired provisional grants
// (usage becomes debt), claims due pending orders and queries each at
// WeChat Pay (crediting paid ones, closing expired ones at WeChat Pay and
// locally, revoking grants of failed ones), follows pending refunds to a
// final state, and forgets expired idempotency keys.
//
// The claimed orders are asked about by up to pollWorkers goroutines, and
// their writes go through the order batcher relaxed and at low priority
// (batch.go): notifications and new orders go first. Once the query
// limit refuses one query, the round's other orders are rescheduled
// without asking it again.
func (s *Service) PollOnce(ctx context.Context) (int, error) {
	n, _, err := s.pollOnce(ctx)
	return n, err
}

// pollOnce is PollOnce, also saying whether the query limit refused a
// query.
func (s *Service) pollOnce(ctx context.Context) (int, bool, error) {
	now := s.now().UTC()
	var errs []error
	if _, err := s.ledger.ExpireGrants(ctx, now); err != nil {
		errs = append(errs, err)
	}
	orders, err := s.store.LeaseDueOrders(ctx, s.cfg.InstanceID, now, now.Add(s.cfg.LeaseTTL), pollBatch)
	if err != nil {
		errs = append(errs, err)
	}
	round := &pollRound{s: s}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan Order)
	)
	for range min(len(orders), pollWorkers) {
		wg.Go(func() {
			for o := range next {
				if err := s.pollOrder(ctx, o, round); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, o := range orders {
		next <- o
	}
	close(next)
	wg.Wait()
	refunds, err := s.store.LeaseDueRefunds(ctx, s.cfg.InstanceID, now, now.Add(s.cfg.LeaseTTL), pollBatch)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range refunds {
		if err := s.pollRefund(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := s.store.DeleteExpiredKeys(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return len(orders) + len(refunds), round.limited(), errors.Join(errs...)
}

// pollRound is one PollOnce's view of the query limit: after one refusal
// its other orders wait as long without asking the limiter again.
type pollRound struct {
	s    *Service
	mu   sync.Mutex
	wait time.Duration // > 0 once a query was refused
}

func (r *pollRound) allowQuery(ctx context.Context) (bool, time.Duration) {
	r.mu.Lock()
	wait := r.wait
	r.mu.Unlock()
	if wait > 0 {
		return false, wait
	}
	ok, wait := r.s.allowQuery(ctx)
	if !ok {
		r.mu.Lock()
		r.wait = max(r.wait, wait)
		r.mu.Unlock()
	}
	return ok, wait
}

func (r *pollRound) limited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wait > 0
}

// backoff is PollBase × 2^attempts capped at PollMax, jittered by ±20%.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.cfg.PollBase
	for i := 0; i < attempts && d < s.cfg.PollMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.PollMax)
	s.jitterMu.Lock()
	f := 0.8 + 0.4*s.jitter.Float64()
	s.jitterMu.Unlock()
	return time.Duration(float64(d) * f)
}

// allowQuery takes one query from the merchant's cluster-wide budget. It
// fails closed: when the limiter is down or refuses, the caller waits.
func (s *Service) allowQuery(ctx context.Context) (bool, time.Duration) {
	res, err := s.limiter.Allow(ctx, "wxpay:query:"+s.cfg.MchID, s.cfg.QueryLimit)
	if err != nil {
		s.log.WarnContext(ctx, "payment: query limiter unavailable; waiting", "err", err)
		return false, s.cfg.PollBase
	}
	if !res.Allowed {
		return false, max(res.RetryAfter, time.Millisecond)
	}
	return true, 0
}

// reschedule releases an order's lease and sets its next poll, through
// the order batcher relaxed and at low priority: a reschedule a power cut
// loses leaves the order due, to be asked about again.
func (s *Service) reschedule(ctx context.Context, o Order, wait time.Duration, countAttempt bool) error {
	now := s.now().UTC()
	next := now.Add(wait)
	if now.Before(o.ExpiresAt) && next.After(o.ExpiresAt) {
		next = o.ExpiresAt // close promptly at expiry
	}
	_, err := s.updateOrder(ctx, o.OutTradeNo, true, low, func(x *Order) error {
		if countAttempt {
			x.PollAttempts++
		}
		x.NextPollAt, x.LeaseOwner, x.LeaseUntil, x.UpdatedAt = next, "", zeroTime, now
		return nil
	})
	return err
}

func (s *Service) pollOrder(ctx context.Context, o Order, round *pollRound) error {
	ok, wait := round.allowQuery(ctx)
	if !ok {
		return s.reschedule(ctx, o, wait, false)
	}
	now := s.now().UTC()
	expired := !now.Before(o.ExpiresAt)
	t, err := s.gw.QueryOrder(ctx, o.OutTradeNo)
	switch {
	case errors.Is(err, ErrOrderNotExist):
		if expired { // never placed (or long gone): nothing to close remotely
			return s.closeLocally(ctx, o, StatusClosed, "expired, unknown to WeChat Pay")
		}
		return s.reschedule(ctx, o, s.backoff(o.PollAttempts), true)
	case errors.Is(err, wxpay.ErrNotOurs):
		return s.reviewPending(ctx, o, ReviewNotOurs, "WeChat Pay answered the order query for another merchant or order")
	case err != nil:
		s.log.WarnContext(ctx, "payment: order query failed", "out_trade_no", o.OutTradeNo, "err", err)
		return s.reschedule(ctx, o, s.backoff(o.PollAttempts), true)
	}
	return s.applyTrade(ctx, o, t, expired)
}

// applyTrade acts on WeChat Pay's answer about a pending order, after
// checking that the answer agrees with the order; an answer that does
// not is not acted on and puts the order in review (review.go):
//
//   - another amount than the order's, in any state;
//   - REFUND: tollgate refunds only orders it credited, and this one is
//     pending, so crediting it could create credit for money WeChat Pay
//     gave back;
//   - a trade_state WeChat Pay does not document (the order is otherwise
//     treated as unpaid: polled, and closed at expiry).
//
// SUCCESS credits; USERPAYING and NOTPAY wait (and close at expiry);
// CLOSED, PAYERROR and REVOKED are confirmed by closing the order at
// WeChat Pay before anything changes (closeOrder).
func (s *Service) applyTrade(ctx context.Context, o Order, t Trade, expired bool) error {
	if t.Fen != int64(o.Fen) && (t.Fen != 0 || t.State.Paid()) {
		return s.reviewPending(ctx, o, ReviewAmount,
			fmt.Sprintf("WeChat Pay reported %d fen (%s) for an order of %d fen", t.Fen, t.State, o.Fen))
	}
	switch t.State {
	case StatusSuccess:
		if _, err := s.credit(ctx, o, t.TransactionID, "poller"); err != nil {
			return err
		}
		s.metrics.Count(EventPollerCredited, "query")
		return nil
	case StatusRefund:
		return s.reviewPending(ctx, o, ReviewRefundState,
			"WeChat Pay reported REFUND for an order tollgate never credited nor refunded; not credited")
	case StatusClosed, StatusPayError, "REVOKED":
		st := StatusClosed
		if t.State == StatusPayError {
			st = StatusPayError
		}
		return s.closeOrder(ctx, o, st, "WeChat Pay reports "+string(t.State), expired)
	case StatusNotPay, StatusUserPaying:
	default:
		why := fmt.Sprintf("WeChat Pay reported the undocumented trade_state %.20q", t.State)
		if !expired {
			return s.reviewPending(ctx, o, ReviewUnknownState, why)
		}
		if err := s.reviewOrder(ctx, o.OutTradeNo, ReviewUnknownState, why); err != nil {
			return err
		}
	}
	if expired {
		return s.closeOrder(ctx, o, StatusClosed, "expired", true)
	}
	if t.State == StatusUserPaying && o.Status != StatusUserPaying {
		if _, err := s.updateOrder(ctx, o.OutTradeNo, true, low, func(x *Order) error {
			x.Status = StatusUserPaying
			return nil
		}); err != nil {
			return err
		}
	}
	return s.reschedule(ctx, o, s.backoff(o.PollAttempts), true)
}

// closeOrder is the one way a pending order ends unpaid: it closes the
// order at WeChat Pay and only then locally, as st (CLOSED or PAYERROR).
// The close is what makes "unpaid" certain. A query's CLOSED, PAYERROR or
// REVOKED alone is not enough: acting on a wrong one would close a paid
// order locally, turn its provisional use into debt and, if its
// notification is lost, never credit it (the poller does not ask about
// closed orders). WeChat Pay asks merchants to close an order whose
// payment failed anyway. A close answering ORDERPAID means the order was
// paid after all (or paid at the last moment): query and credit
// (closeSaysPaid). At expiry the provisional grant ends first, whatever
// WeChat Pay answers.
func (s *Service) closeOrder(ctx context.Context, o Order, st Status, why string, expired bool) error {
	if expired {
		if err := s.revokeGrant(ctx, o); err != nil {
			return err
		}
	}
	err := s.gw.CloseOrder(ctx, o.OutTradeNo)
	switch {
	case errors.Is(err, ErrOrderPaid):
		return s.closeSaysPaid(ctx, o, why)
	case err == nil, errors.Is(err, ErrOrderClosed), errors.Is(err, ErrOrderNotExist):
		return s.closeLocally(ctx, o, st, why)
	}
	s.log.WarnContext(ctx, "payment: close failed; retrying", "out_trade_no", o.OutTradeNo, "err", err)
	return s.reschedule(ctx, o, s.backoff(o.PollAttempts), true)
}

// closeSaysPaid follows a close that answered ORDERPAID: the order is
// queried and, if the answer says paid, applied (credited when it agrees
// with the order). A query that still says unpaid contradicts the close:
// nothing is done, the order goes to review and is asked about again.
func (s *Service) closeSaysPaid(ctx context.Context, o Order, why string) error {
	// This query counts against the merchant's budget like every other:
	// when none is left, the order is asked about again on its next poll.
	if ok, wait := s.allowQuery(ctx); !ok {
		return s.reschedule(ctx, o, wait, false)
	}
	t, err := s.gw.QueryOrder(ctx, o.OutTradeNo)
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "payment: close says paid, query failed; retrying", "out_trade_no", o.OutTradeNo, "err", err)
		return s.reschedule(ctx, o, s.backoff(o.PollAttempts), true)
	case !t.State.Paid():
		return s.reviewPending(ctx, o, ReviewClosePaid,
			fmt.Sprintf("closing the order (%s) answered ORDERPAID but the query says %.20s", why, t.State))
	}
	s.metrics.Count(EventPollerCredited, "close_orderpaid")
	return s.applyTrade(ctx, o, t, true)
}

// closeLocally revokes the order's provisional grant (what it used
// becomes debt) and then records the final state. Revoking first: a crash
// in between leaves a pending order the poller closes again, idempotently.
// The close goes through the order batcher relaxed and at low priority: a
// power cut that loses it (and its payment.closed event) leaves the order
// pending, and the poller closes it again.
func (s *Service) closeLocally(ctx context.Context, o Order, st Status, why string) error {
	if err := s.revokeGrant(ctx, o); err != nil {
		return err
	}
	_, err := s.updateOrder(ctx, o.OutTradeNo, true, low, func(x *Order) error {
		if !x.Status.Pending() {
			return nil
		}
		x.Status, x.LeaseOwner, x.LeaseUntil, x.UpdatedAt = st, "", zeroTime, s.now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	s.metrics.Count(EventOrderClosed, string(st))
	s.log.InfoContext(ctx, "payment: order closed", "out_trade_no", o.OutTradeNo, "status", st, "why", why)
	return nil
}

func (s *Service) revokeGrant(ctx context.Context, o Order) error {
	if o.GrantCap <= 0 || mutantSkipCloseRevoke {
		return nil
	}
	_, err := s.ledger.RevokeGrant(ctx, o.OutTradeNo)
	switch tollgate.ErrorCode(err) {
	case "", tollgate.ENOTFOUND, tollgate.ECONFLICT: // none issued, or already confirmed by a payment
		return nil
	}
	return wrap("payment.revokeGrant", tollgate.EINTERNAL, err)
}

// pollRefund follows one pending refund.
func (s *Service) pollRefund(ctx context.Context, r RefundRecord) error {
	if r.Credits == 0 {
		// The process stopped between the record and the ledger refund (or
		// its amounts): begin it now and send it, with the same number.
		o, err := s.store.Order(ctx, r.OutTradeNo)
		if err != nil {
			return err
		}
		if _, err := s.resumeRefund(ctx, o, r); err != nil {
			switch tollgate.ErrorCode(err) {
			case tollgate.ECONFLICT, tollgate.EUPSTREAM: // closed as nothing to refund, or refused: final
				return nil
			case tollgate.EUNAVAILABLE: // the poller asks WeChat Pay again later
			default:
				s.log.WarnContext(ctx, "payment: resuming a refund", "out_refund_no", r.OutRefundNo, "err", err)
			}
		}
		if cur, err := s.store.Refund(ctx, r.OutRefundNo); err != nil || cur.Status != RefundPending {
			return err
		}
		return s.rescheduleRefund(ctx, r, s.backoff(r.PollAttempts), true)
	}
	ok, wait := s.allowQuery(ctx)
	if !ok {
		return s.rescheduleRefund(ctx, r, wait, false)
	}
	st, err := s.gw.QueryRefund(ctx, r.OutTradeNo, r.OutRefundNo)
	switch {
	case errors.Is(err, ErrRefundNotExist):
		// The refund call never reached WeChat Pay: send it again, same number.
		o, oerr := s.store.Order(ctx, r.OutTradeNo)
		if oerr != nil {
			return oerr
		}
		if _, serr := s.sendRefund(ctx, o, r); serr != nil && tollgate.ErrorCode(serr) != tollgate.EUNAVAILABLE {
			return serr
		}
	case err != nil:
		s.log.WarnContext(ctx, "payment: refund query failed", "out_refund_no", r.OutRefundNo, "err", err)
	case st.Fen != int64(r.Fen):
		// Neither settled nor failed on an answer about another amount.
		if err := s.reviewRefund(ctx, r, st, "refund query"); err != nil {
			return err
		}
	case st.Status != RefundPending:
		return s.settleRefund(ctx, r, st.Status, "poller")
	}
	return s.rescheduleRefund(ctx, r, s.backoff(r.PollAttempts), true)
}

func (s *Service) rescheduleRefund(ctx context.Context, r RefundRecord, wait time.Duration, countAttempt bool) error {
	now := s.now().UTC()
	_, err := s.store.UpdateRefund(ctx, r.OutRefundNo, func(x *RefundRecord) error {
		if countAttempt {
			x.PollAttempts++
		}
		x.NextPollAt, x.LeaseOwner, x.LeaseUntil, x.UpdatedAt = now.Add(wait), "", zeroTime, now
		return nil
	})
	return err
}
