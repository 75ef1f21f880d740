package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"tollgate"
)

// Delivery policy.
const (
	// AttemptTimeout bounds one attempt: connecting, sending, the answer.
	AttemptTimeout = 10 * time.Second
	// MaxAge is how long after its event a delivery is retried; the
	// attempt that would come later is not made and the delivery is
	// failed.
	MaxAge = 72 * time.Hour
	// BackoffBase and BackoffCap shape the retry schedule: before attempt
	// n+1 the dispatcher waits a uniformly random time up to
	// min(BackoffCap, BackoffBase·2^(n-1)) ("full jitter"), at least
	// BackoffMin.
	BackoffBase = 5 * time.Second
	BackoffCap  = time.Hour
	BackoffMin  = time.Second
	// DisableAfter and DisableFailures: an endpoint whose attempts have
	// all failed for DisableAfter (or until a delivery was given up), at
	// least DisableFailures of them, is disabled (a receiver that is gone for good no longer costs an
	// attempt a minute per event, forever).
	DisableAfter    = 72 * time.Hour
	DisableFailures = 20
	// maxAnswer is how much of an answer's body is read (then the
	// connection is dropped if more is left).
	maxAnswer = 4 << 10
)

// Results of an attempt, as counted by Metrics.
const (
	ResultDelivered = "delivered" // 2xx
	ResultRetry     = "retry"     // failed, will be retried
	ResultFailed    = "failed"    // failed, given up
	ResultLost      = "lost"      // the lease was lost before the outcome was recorded
)

// Metrics counts what the dispatcher does; nil counts nothing.
type Metrics interface {
	// Attempt counts one attempt by result (Result*).
	Attempt(result string)
	// EndpointDisabled counts an endpoint disabled for failing.
	EndpointDisabled()
}

// Backoff returns the wait before the attempt after attempt n (n ≥ 1):
// full jitter over min(BackoffCap, BackoffBase·2^(n-1)), at least
// BackoffMin. r returns a uniform int64 in [0, n); nil uses math/rand.
func Backoff(n int64, r func(int64) int64) time.Duration {
	if r == nil {
		r = rand.Int64N
	}
	d := BackoffCap
	if n >= 1 && n < 20 {
		d = min(BackoffCap, BackoffBase<<(n-1))
	}
	return max(BackoffMin, time.Duration(r(int64(d)+1)))
}

// Dispatcher delivers the outbox: it claims due deliveries, posts them
// signed, and records each outcome. Several dispatchers (one per
// instance) may share a store; a lease keeps them from sending one
// delivery at once. Set the fields, then call Run (or RunOnce).
type Dispatcher struct {
	Store Store
	// Clock tells the time of leases and retries; default the system clock.
	Clock tollgate.Clock
	// Client posts deliveries; default Client(AllowPrivate).
	Client       *http.Client
	AllowPrivate bool
	// HTTPSOnly refuses to send to an http:// endpoint (production mode:
	// an endpoint registered before the switch is not sent in the clear).
	HTTPSOnly bool
	// Timeout bounds one attempt; default AttemptTimeout.
	Timeout time.Duration
	// Owner names this dispatcher in leases; default a random id.
	Owner string
	// Lease is how long a claim lasts (longer than an attempt); default
	// 2 minutes.
	Lease time.Duration
	// Batch bounds the deliveries claimed (and sent concurrently) at
	// once; default 16.
	Batch int
	// Idle is the pause when nothing was due; default 1 s. Wake ends it
	// early.
	Idle time.Duration
	// Rand returns a uniform int64 in [0, n) for the jitter; default
	// math/rand.
	Rand    func(n int64) int64
	Metrics Metrics
	Logger  *slog.Logger

	once sync.Once
	wake chan struct{}
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		d.Clock = tollgate.ClockOr(d.Clock)
		if d.Client == nil {
			d.Client = Client(d.AllowPrivate)
		}
		if d.Owner == "" {
			d.Owner = NewID("wdisp_")
		}
		if d.Timeout <= 0 {
			d.Timeout = AttemptTimeout
		}
		if d.Lease <= 0 {
			d.Lease = 2 * time.Minute
		}
		if d.Batch <= 0 {
			d.Batch = 16
		}
		if d.Idle <= 0 {
			d.Idle = time.Second
		}
		if d.Logger == nil {
			d.Logger = slog.New(slog.DiscardHandler)
		}
		d.wake = make(chan struct{}, 1)
	})
}

// Wake makes Run look for work now (an event was just committed).
func (d *Dispatcher) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends; it returns ctx's error. A store error is
// logged and retried after Idle.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	for {
		n, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.Logger.Error("webhook dispatcher", "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		t := d.Clock.NewTimer(d.Idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.wake:
			t.Stop()
		case <-t.C():
		}
	}
}

// RunOnce claims one batch of due deliveries, attempts each (concurrently)
// and records the outcomes. It returns how many it claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.init()
	cs, err := d.Store.Claim(ctx, ClaimRequest{Owner: d.Owner, Now: d.Clock.Now(), Lease: d.Lease, Limit: d.Batch})
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Go(func() { errs[i] = d.deliver(ctx, c) })
	}
	wg.Wait()
	return len(cs), errors.Join(errs...)
}

// deliver makes one attempt of c and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, c Claimed) error {
	status, aerr := d.attempt(ctx, c)
	now := d.Clock.Now()
	o := Outcome{DeliveryID: c.Delivery.ID, Owner: d.Owner, Now: now, HTTPStatus: status}
	result := ResultDelivered
	if aerr == nil {
		o.Delivered = true
	} else {
		o.Error = truncate(aerr.Error(), MaxError)
		next := now.Add(Backoff(c.Delivery.Attempts, d.Rand))
		if next.After(c.Event.CreatedAt.Add(MaxAge)) {
			o.Failed, result = true, ResultFailed
		} else {
			o.NextAttemptAt, result = next, ResultRetry
		}
	}
	// The outcome is recorded even when ctx ended during the attempt:
	// otherwise a delivered event would wait for the lease to run out.
	ep, err := d.Store.Complete(context.WithoutCancel(ctx), o)
	if tollgate.ErrorCode(err) == tollgate.ECONFLICT {
		d.count(ResultLost)
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook: record delivery %s: %w", c.Delivery.ID, err)
	}
	d.count(result)
	if result == ResultFailed {
		d.Logger.Warn("webhook delivery failed for good", "delivery", c.Delivery.ID, "event", c.Event.ID,
			"endpoint", c.Endpoint.ID, "attempts", c.Delivery.Attempts, "err", o.Error)
	}
	// Disable an endpoint failing for long: DisableFailures attempts in a
	// row at least, and every attempt failed for DisableAfter or for as
	// long as one delivery's retries lasted before it was given up.
	if !o.Delivered && !ep.Disabled() && ep.ConsecutiveFailures >= DisableFailures && !ep.FailingSince.IsZero() &&
		(now.Sub(ep.FailingSince) >= DisableAfter || result == ResultFailed) {
		reason := fmt.Sprintf("every attempt failed since %s (%d attempts); last: %s",
			ep.FailingSince.UTC().Format(time.RFC3339), ep.ConsecutiveFailures, o.Error)
		if _, err := d.Store.SetEndpointDisabled(context.WithoutCancel(ctx), ep.ID, now, truncate(reason, MaxError)); err != nil {
			return fmt.Errorf("webhook: disable endpoint %s: %w", ep.ID, err)
		}
		d.Logger.Warn("webhook endpoint disabled", "endpoint", ep.ID, "url", ep.URL, "reason", reason)
		if d.Metrics != nil {
			d.Metrics.EndpointDisabled()
		}
	}
	return nil
}

func (d *Dispatcher) count(result string) {
	if d.Metrics != nil {
		d.Metrics.Attempt(result)
	}
}

// attempt posts c once: it returns the answer's status and nil for a 2xx,
// else an error saying what went wrong.
func (d *Dispatcher) attempt(ctx context.Context, c Claimed) (int, error) {
	if d.HTTPSOnly && !strings.HasPrefix(c.Endpoint.URL, "https://") {
		return 0, errors.New("refused to send to an http:// endpoint in production mode; register an https:// URL")
	}
	body, err := c.Event.Body()
	if err != nil {
		return 0, err
	}
	now := d.Clock.Now()
	h, err := SignHeaders(c.Endpoint.Secrets(now), c.Event.ID, now, body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate-webhooks/1")
	resp, err := d.Client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the answer (so a small one lets the connection be
	// reused), never all of a huge one.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
