package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"tollgate"
)

// attempt is one upstream call's context with a watchdog: it is
// cancelled with errAttemptTimeout when no progress is made for timeout.
// For a stream, every chunk calls touch, so the timeout bounds the time to
// the first byte and every silence after it.
type attempt struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	start   time.Time
	// last is when progress was last made (touch), as time since start.
	// touch only stores it: resetting the timer for every chunk of a
	// stream woke an idle thread or the network poller each time (the
	// runtime wakes it for a timer modified earlier than what it sleeps
	// for). The watchdog looks at it when it fires and waits on if so.
	last  atomic.Int64
	ended atomic.Bool
}

func newAttempt(parent context.Context, timeout time.Duration) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	a := &attempt{ctx: ctx, cancel: cancel, timeout: timeout, start: time.Now()}
	// Armed once a.timer is set, which watch uses, however short timeout is.
	a.timer = time.AfterFunc(math.MaxInt64, a.watch)
	a.timer.Reset(timeout)
	return a
}

// touch records progress.
func (a *attempt) touch() { a.last.Store(int64(time.Since(a.start))) }

// watch runs when the timer fires: it cancels the call, unless progress
// was made within timeout, in which case it waits for the rest.
func (a *attempt) watch() {
	if a.ended.Load() {
		return
	}
	if idle := time.Since(a.start) - time.Duration(a.last.Load()); idle < a.timeout {
		a.timer.Reset(a.timeout - idle)
		return
	}
	a.cancel(errAttemptTimeout)
}

// done stops the watchdog and ends the call's context.
func (a *attempt) done() {
	a.ended.Store(true)
	a.timer.Stop()
	a.cancel(context.Canceled)
}

// defaultTimeout applies to providers without a timeout.
const defaultTimeout = 60 * time.Second

// tryFunc makes one attempt on d. On success it owns a (and must call
// a.done when finished); on failure the router calls a.done.
type tryFunc func(a *attempt, d *deployment) error

// failover tries deployments in priority order, weighted within a tier,
// never the same one twice, until one succeeds, the error is not
// retryable, or the retry budget (attempts and total time) runs out.
// Between attempts it waits a jittered backoff, or the failed answer's
// Retry-After when the next deployment is on the same provider; a
// Retry-After also opens the failed deployment's breaker for that long,
// so other requests skip it too. It returns the deployment that
// answered, or the error to show the client.
func (g *Gateway) failover(ctx context.Context, reqID, model string, deps []*deployment, try tryFunc) (*deployment, error) {
	o := g.opts
	deadline := o.Clock.Now().Add(o.Retry.MaxTotal)
	tried := map[string]bool{}
	var failures []*upstreamError
	attempts := 0
	for attempts < o.Retry.MaxAttempts {
		d := g.next(deps, tried)
		if d == nil {
			break
		}
		tried[d.id] = true
		if attempts > 0 {
			wait := g.backoff(attempts)
			// A Retry-After speaks for the provider's account: honour it
			// before trying another deployment on the same provider.
			if prev := failures[len(failures)-1]; prev.provider == d.provider.Name && prev.RetryAfter > wait {
				wait = prev.RetryAfter
			}
			if o.Clock.Now().Add(wait).After(deadline) {
				break
			}
			o.Sleep(ctx.Done(), wait)
		}
		if ctx.Err() != nil {
			return nil, ended(ctx)
		}
		attempts++
		timeout := time.Duration(d.provider.Timeout)
		if timeout <= 0 {
			timeout = defaultTimeout
		}
		timeout = min(timeout, deadline.Sub(o.Clock.Now()))
		a := newAttempt(ctx, timeout)
		start := o.Clock.Now()
		err := try(a, d)
		if err != nil {
			a.done()
		}
		g.observeAttempt(reqID, model, d, err, o.Clock.Now().Sub(start))
		if err == nil {
			o.Breaker.Success(d.id)
			return d, nil
		}
		var ue *upstreamError
		if !errors.As(err, &ue) {
			return nil, err // our own failure (encoding): no other deployment helps
		}
		if ctx.Err() != nil {
			// The client went away, or the request reached its time
			// limit: not the deployment's fault.
			return nil, ended(ctx)
		}
		if !ue.retryable() {
			o.Breaker.Success(d.id) // it answered; the request was at fault
			return nil, ue.clientError()
		}
		o.Breaker.Failure(d.id, ue.RetryAfter)
		ue.provider = d.provider.Name
		failures = append(failures, ue)
		o.Logger.WarnContext(ctx, "upstream attempt failed", "request_id", reqID, "model", model, "deployment", d.id, "err", ue)
	}
	return nil, exhausted(model, failures)
}

// next picks the next deployment: the lowest tier with an untried one,
// weighted within it, skipping those whose breaker refuses a call.
func (g *Gateway) next(deps []*deployment, tried map[string]bool) *deployment {
	for {
		ts := tiers(deps, tried)
		if len(ts) == 0 {
			return nil
		}
		d := g.weighted(ts[0])
		if g.opts.Breaker.Allow(d.id) {
			return d
		}
		tried[d.id] = true
	}
}

// backoff is the jittered wait before attempt n+1: in [b/2, b) with b the
// base doubled per attempt up to the cap.
func (g *Gateway) backoff(n int) time.Duration {
	b := g.opts.Retry.BackoffBase << (n - 1)
	if b > g.opts.Retry.BackoffMax || b <= 0 {
		b = g.opts.Retry.BackoffMax
	}
	g.randMu.Lock()
	j := time.Duration(g.rand.Int64N(int64(b/2) + 1))
	g.randMu.Unlock()
	return b/2 + j
}

func (g *Gateway) observeAttempt(reqID, model string, d *deployment, err error, latency time.Duration) {
	a := Attempt{RequestID: reqID, Model: model, Deployment: d.id, Provider: d.provider.Name, Status: http.StatusOK, Err: err, Latency: latency}
	var ue *upstreamError
	if errors.As(err, &ue) {
		a.Status = ue.Status
	}
	g.opts.Observer.Attempt(a)
}

// exhausted is the error shown when no deployment answered: 429 with the
// shortest Retry-After when all were rate limited, 504 when the last timed
// out, 503 when none was reachable (or all breakers were open), else 502.
func exhausted(model string, failures []*upstreamError) error {
	if len(failures) == 0 {
		return &StatusError{RetryAfter: time.Second,
			Err: tollgate.Errorf(tollgate.EUNAVAILABLE, "no upstream is available for the model %q; retry later", model)}
	}
	all429, down := true, true
	var retry time.Duration
	for _, f := range failures {
		if f.Status != http.StatusTooManyRequests {
			all429 = false
		} else if f.RetryAfter > 0 && (retry == 0 || f.RetryAfter < retry) {
			retry = f.RetryAfter
		}
		if !(f.Status == 0 && !f.Timeout) && f.Status != http.StatusServiceUnavailable {
			down = false
		}
	}
	last := failures[len(failures)-1]
	wrap := fmt.Errorf("%d attempts failed, last: %w", len(failures), last)
	switch {
	case all429:
		return &StatusError{RetryAfter: max(retry, time.Second),
			Err: &tollgate.Error{Code: tollgate.ERATELIMITED, Message: fmt.Sprintf("every upstream for the model %q is rate limited; retry later", model), Err: wrap}}
	case last.Timeout:
		return &StatusError{Status: http.StatusGatewayTimeout, Code: "upstream_timeout",
			Err: &tollgate.Error{Code: tollgate.EUPSTREAM, Message: fmt.Sprintf("the upstream for the model %q timed out", model), Err: wrap}}
	case down:
		return &StatusError{RetryAfter: time.Second,
			Err: &tollgate.Error{Code: tollgate.EUNAVAILABLE, Message: fmt.Sprintf("every upstream for the model %q is unavailable; retry later", model), Err: wrap}}
	default:
		return &tollgate.Error{Code: tollgate.EUPSTREAM, Message: fmt.Sprintf("every upstream for the model %q failed", model), Err: wrap}
	}
}
