package metering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/ledger"
)

// A settle is the operator's revenue for a request already answered. When
// the store fails to commit one (a full disk, a lost database), the Meter
// keeps it and settles it again, with backoff on its clock, until it
// commits or the ledger refuses it by a rule; a settle is idempotent by its
// hold id, so a repeat of one that did commit (a PostgreSQL commit of
// unknown outcome) charges nothing twice. While any settle waits, Ready
// says why and Reserve refuses new requests with EUNAVAILABLE: they would
// be served, and their usage not recorded. Close tries a last time and
// logs what is left. A crash loses what waits, as it loses a settle
// handed over without waiting (SettleLater): the holds expire uncharged.

const (
	// DefaultMaxRetries bounds the settles a Meter keeps for retry. Only
	// requests in flight when the store failed can join (Reserve refuses
	// new ones meanwhile), so it is reached only past that many
	// concurrent requests; a settle beyond it is logged as lost.
	DefaultMaxRetries = 50_000
	// retryFirst and retryMax bound the wait between two retries: it
	// doubles after each retry that finds the store still failing.
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
	// closeWait bounds how long Close waits for the last retry.
	closeWait = 10 * time.Second
)

// waiting is one settle the store failed to commit.
type waiting struct {
	r         ledger.SettleRequest
	requestID string // the client's request id, for the logs
	failures  int
}

// retries are a Meter's settles waiting for the store. The zero value
// keeps none.
type retries struct {
	mu sync.Mutex
	// list is the settles waiting, oldest first.
	list []*waiting
	// cause is the store's last failure to commit a settle in list.
	cause error
	// next is when the next retry runs.
	next time.Time
	// loop, while the retry loop runs, is closed when it ends.
	loop chan struct{}
	// quit is closed by Close: the loop ends, nothing more is kept.
	quit   chan struct{}
	closed bool
}

// storeFailed reports whether err is the store's failure to commit, not
// a rule's refusal: what a retry can mend.
func storeFailed(err error) bool { return errors.Is(err, ledger.ErrStore) }

// unrecordable is the refusal of new metered requests while settles wait.
func unrecordable(cause error) error {
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: "meter",
		Message: "usage cannot be recorded now (the ledger's store is failing); retry later", Err: cause}
}

// Ready returns nil when the store records usage: no settle waits for a
// retry. Otherwise an EUNAVAILABLE error saying so, which wraps how many
// wait and the store's last failure. Reserve refuses new holds meanwhile;
// serve's /readyz shows it as the "usage" check.
func (m *Meter) Ready(ctx context.Context) error {
	q := &m.retry
	q.mu.Lock()
	n, cause := len(q.list), q.cause
	q.mu.Unlock()
	if n == 0 {
		return nil
	}
	return unrecordable(fmt.Errorf("%d answered requests wait for their settle to commit; the store's last failure: %w", n, cause))
}

// refuseWhileWaiting is Reserve's refusal while settles wait, with a
// Retry-After of the next retry; nil when none waits.
func (m *Meter) refuseWhileWaiting(ctx context.Context) error {
	err := m.Ready(ctx)
	if err == nil {
		return nil
	}
	m.retry.mu.Lock()
	after := max(m.retry.next.Sub(m.clock().Now()), time.Second)
	m.retry.mu.Unlock()
	return &gateway.StatusError{RetryAfter: after, Err: err}
}

// keep takes the outcome of a settle handed to the ledger. When err is the
// store's failure, keep handles it and reports true: the settle is kept
// for retry (the retry loop started if none runs), or logged as lost when
// the Meter is closed or too many wait. Any other outcome is the caller's.
func (m *Meter) keep(w *waiting, err error) bool {
	if !storeFailed(err) {
		return false
	}
	q := &m.retry
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		m.logSettle("settle lost: the store failed to commit it after the meter closed", w, err)
		return true
	case len(q.list) >= m.maxRetries():
		q.mu.Unlock()
		m.logSettle("settle lost: too many settles wait for the store", w, err)
		return true
	}
	if w.r.Usage.CreatedAt.IsZero() {
		// The usage is dated when it failed to commit, near the answer,
		// not when the store came back.
		w.r.Usage.CreatedAt = m.clock().Now()
	}
	q.list = append(q.list, w)
	q.cause = err
	if q.loop == nil {
		q.loop = make(chan struct{})
		if q.quit == nil {
			q.quit = make(chan struct{})
		}
		q.next = m.clock().Now().Add(retryFirst)
		go m.retryLoop(q.loop, q.quit)
	}
	n := len(q.list)
	q.mu.Unlock()
	if m.Logger != nil {
		m.Logger.Warn("settle failed to commit; kept for retry, new requests refused meanwhile",
			"hold", w.r.HoldID, "request_id", w.requestID, "credits", int64(w.r.Cost), "waiting", n, "err", err)
	}
	return true
}

// retryLoop retries the waiting settles, waiting longer after each retry
// that finds the store still failing, until none waits or Close.
func (m *Meter) retryLoop(done, quit chan struct{}) {
	defer close(done)
	wait := retryFirst
	for {
		t := m.clock().NewTimer(wait)
		select {
		case <-t.C():
		case <-quit:
			t.Stop()
			return
		}
		mended := m.retryAll(context.Background())
		q := &m.retry
		q.mu.Lock()
		if len(q.list) == 0 {
			q.loop = nil
			q.mu.Unlock()
			return
		}
		if mended {
			wait = retryFirst
		} else {
			wait = min(2*wait, retryMax)
		}
		q.next = m.clock().Now().Add(wait)
		n, cause := len(q.list), q.cause
		q.mu.Unlock()
		if !mended && m.Logger != nil {
			m.Logger.Warn("settles still fail to commit", "waiting", n, "retry_in", wait, "err", cause)
		}
	}
}

// retryAll settles the waiting settles again: first the oldest, alone;
// when the store commits it (or a rule refuses it), the others, handed to
// the ledger together. It reports whether the store answered.
func (m *Meter) retryAll(ctx context.Context) (mended bool) {
	q := &m.retry
	q.mu.Lock()
	batch := append([]*waiting(nil), q.list...)
	q.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	outcome := make(map[*waiting]error, len(batch))
	_, err := m.Ledger.Settle(ctx, batch[0].r)
	outcome[batch[0]] = err
	if !storeFailed(err) {
		type result struct {
			w   *waiting
			err error
		}
		results := make(chan result, len(batch)-1) // callbacks never block
		for _, w := range batch[1:] {
			// The callback gets an error SettleLater returns as well.
			_ = m.Ledger.SettleLater(w.r, func(_ ledger.Hold, err error) { results <- result{w, err} })
		}
	wait:
		for range batch[1:] {
			select {
			case r := <-results:
				outcome[r.w] = r.err
			case <-ctx.Done():
				break wait // the rest stay waiting
			}
		}
	}
	m.settled(outcome)
	return !storeFailed(err)
}

// settled takes the retried settles out of the list, except those the
// store failed again, and logs the outcome.
func (m *Meter) settled(outcome map[*waiting]error) {
	q := &m.retry
	var committed int
	var refused []*waiting
	var errs []error
	q.mu.Lock()
	left := make([]*waiting, 0, len(q.list))
	for _, w := range q.list {
		err, tried := outcome[w]
		switch {
		case !tried:
			left = append(left, w)
		case err == nil:
			committed++
		case storeFailed(err):
			w.failures++
			q.cause = err
			left = append(left, w)
		default:
			refused, errs = append(refused, w), append(errs, err)
		}
	}
	q.list = left
	if len(left) == 0 {
		q.cause = nil
	}
	q.mu.Unlock()
	if committed > 0 && m.Logger != nil {
		m.Logger.Info("settles committed on retry", "committed", committed, "waiting", len(left))
	}
	for i, w := range refused {
		m.logSettle("settle refused on retry", w, errs[i])
	}
}

// Close ends the retries: it waits for the settles the ledger has queued
// (a failed one joins the retries), settles every waiting one once more,
// and logs each that still did not commit, with its request id and
// credits; the error it returns counts them. Call it after the last
// request ended and before the ledger's Close. Settles that fail after it
// are logged as lost. Safe to call twice.
func (m *Meter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if m.Ledger != nil {
		_ = m.Ledger.Sync(ctx) // best effort: what is not answered by now is logged when it is
	}
	q := &m.retry
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	if q.quit == nil {
		q.quit = make(chan struct{})
	}
	close(q.quit)
	loop := q.loop
	q.mu.Unlock()
	if loop != nil {
		<-loop
	}
	m.retryAll(ctx)
	q.mu.Lock()
	lost, cause := q.list, q.cause
	q.list, q.cause = nil, nil
	q.mu.Unlock()
	var credits tollgate.Credits
	for _, w := range lost {
		credits += w.r.Cost
		m.logSettle("settle lost: the store did not commit it before shutdown", w, cause)
	}
	if len(lost) > 0 {
		return fmt.Errorf("meter: %d answered requests (%d credits) left unbilled: the store did not commit their settles: %w", len(lost), credits, cause)
	}
	return nil
}

// logSettle logs a settle that did not commit, with what identifies it.
func (m *Meter) logSettle(msg string, w *waiting, err error) {
	if m.Logger == nil {
		return
	}
	m.Logger.Error(msg, "hold", w.r.HoldID, "request_id", w.requestID, "account", string(w.r.Usage.Account),
		"credits", int64(w.r.Cost), "failures", w.failures, "err", err)
}

func (m *Meter) clock() tollgate.Clock { return tollgate.ClockOr(m.Clock) }

func (m *Meter) maxRetries() int {
	if m.MaxRetries > 0 {
		return m.MaxRetries
	}
	return DefaultMaxRetries
}
