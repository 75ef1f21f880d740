package payment

import (
	"context"
	"strings"
)

// An order is in review when Order.Review is not empty: a person should
// look at it. Two things put it there: a payment WeChat Pay reports after
// the order was closed locally (credited anyway, see credit), and an
// answer from WeChat Pay, correctly signed, that contradicts the order or
// tollgate's own records — another amount, another merchant or order, a
// REFUND tollgate never asked for, a state WeChat Pay does not document,
// a close answering ORDERPAID while the query says unpaid, a refund of
// another amount. Such an answer is never acted on: no credit, no close,
// no revoked grant, no refund settled. The poller asks again with its
// usual backoff, so when WeChat Pay tells the truth again the order
// reaches its true state; the review note stays for the person.

// maxReview bounds Order.Review: a contradiction repeated at every poll is
// noted once, and new ones are appended until the note is this long.
const maxReview = 500

// addReview appends why to an order's review note.
func addReview(note, why string) string {
	switch {
	case note == "":
		return why
	case strings.Contains(note, why), len(note)+len(why)+2 > maxReview:
		return note
	}
	return note + "; " + why
}

// alert counts and logs a contradiction from WeChat Pay (EventReview).
func (s *Service) alert(ctx context.Context, outTradeNo, reason, why string) {
	s.metrics.Count(EventReview, reason)
	s.log.ErrorContext(ctx, "payment: WeChat Pay's signed answer contradicts the order; not acted on, order in review",
		"out_trade_no", outTradeNo, "reason", reason, "why", why)
}

// reviewPending puts a pending order in review without acting on the
// answer that contradicts it, and asks WeChat Pay again after the usual
// backoff.
func (s *Service) reviewPending(ctx context.Context, o Order, reason, why string) error {
	s.alert(ctx, o.OutTradeNo, reason, why)
	now := s.now().UTC()
	next := now.Add(s.backoff(o.PollAttempts))
	_, err := s.store.UpdateOrder(ctx, o.OutTradeNo, func(x *Order) error {
		x.Review = addReview(x.Review, why)
		x.PollAttempts++
		x.NextPollAt, x.LeaseOwner, x.LeaseUntil, x.UpdatedAt = next, "", zeroTime, now
		return nil
	})
	return err
}

// reviewOrder puts an order in review and changes nothing else (an answer
// about one of its refunds contradicts the refund).
func (s *Service) reviewOrder(ctx context.Context, outTradeNo, reason, why string) error {
	s.alert(ctx, outTradeNo, reason, why)
	_, err := s.store.UpdateOrder(ctx, outTradeNo, func(x *Order) error {
		x.Review, x.UpdatedAt = addReview(x.Review, why), s.now().UTC()
		return nil
	})
	return err
}
