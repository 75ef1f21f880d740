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
	"net/url"
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
	ResultReleased  = "released"  // cut short by the dispatcher stopping; due again at once
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
//
// Run keeps up to Workers attempts in flight, at most PerEndpoint of them
// to one endpoint, and claims more as soon as one ends: a receiver that
// hangs holds PerEndpoint workers for an attempt's Timeout, not the
// others' deliveries.
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
	// Lease is how long a claim lasts; default 2 minutes, and never less
	// than twice Timeout (an attempt starts as soon as it is claimed, and
	// its outcome must be recorded while the lease holds).
	Lease time.Duration
	// Batch bounds the deliveries claimed at once; default 16.
	Batch int
	// Workers bounds the attempts in flight at once; default 32.
	Workers int
	// PerEndpoint bounds the attempts in flight to one endpoint; default
	// 4. A claimed delivery of an endpoint that has as many is released at
	// once (not attempted, not counted), and claims skip that endpoint
	// until one of its attempts ends.
	PerEndpoint int
	// Idle is the pause when nothing was due; default DefaultIdle. Wake
	// (called on a local commit of events) and the end of an attempt end
	// it early; Idle bounds how late an event committed by another
	// instance, or a retry coming due, is seen.
	Idle time.Duration
	// WakeGap is the least time between two claims that a Wake starts:
	// wakes that come sooner (a commit of events every millisecond under
	// a payment burst) are served together by one claim when the gap has
	// passed, so the dispatcher's write transactions do not take the
	// single SQLite writer from the payments. 0 (the default): every wake
	// claims at once.
	WakeGap time.Duration
	// Rand returns a uniform int64 in [0, n) for the jitter; default
	// math/rand.
	Rand    func(n int64) int64
	Metrics Metrics
	Logger  *slog.Logger

	once sync.Once
	wake chan struct{}
	// freed is signalled when an attempt ends (Run may claim more).
	freed chan struct{}

	mu       sync.Mutex
	inflight int            // attempts in flight
	busy     map[string]int // attempts in flight by endpoint
	errs     []error        // the attempts' errors not yet returned or logged
}

// DefaultIdle is Dispatcher.Idle's default: short enough that a delivery
// another instance's commit made due is sent well within a second.
const DefaultIdle = 250 * time.Millisecond

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
		d.Lease = max(d.Lease, 2*d.Timeout)
		if d.Batch <= 0 {
			d.Batch = 16
		}
		if d.Workers <= 0 {
			d.Workers = 32
		}
		if d.PerEndpoint <= 0 {
			d.PerEndpoint = 4
		}
		if d.Idle <= 0 {
			d.Idle = DefaultIdle
		}
		if d.Logger == nil {
			d.Logger = slog.New(slog.DiscardHandler)
		}
		d.wake = make(chan struct{}, 1)
		d.freed = make(chan struct{}, 1)
		d.busy = map[string]int{}
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

// Run delivers until ctx ends; it returns ctx's error once the attempts in
// flight have ended (an attempt cut short by ctx leaves its delivery due,
// for the next dispatcher to send at once). A store error is logged and
// retried after Idle, at least a second.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	// After a claim that took more of an endpoint's deliveries than it had
	// room for (a backlog of one endpoint, typically), the next claims
	// take PerEndpoint at most: each delivery released unattempted is a
	// write transaction spent for nothing.
	narrow := false
	var lastClaim time.Time
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		free, skip := d.capacity()
		if free == 0 {
			// Every worker is busy: claim again when one is done.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.freed:
			}
			continue
		}
		limit := min(free, d.Batch)
		if narrow {
			limit = min(limit, d.PerEndpoint)
		}
		lastClaim = d.Clock.Now()
		n, released, err := d.claim(ctx, &wg, limit, skip)
		narrow = released > 0
		if err = errors.Join(err, d.takeErrs()); err != nil && ctx.Err() == nil {
			d.Logger.Error("webhook dispatcher", "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			continue // more may be due
		}
		pause := d.Idle
		if err != nil {
			pause = max(pause, time.Second) // a store that fails is not asked 4 times a second
		}
		t := d.Clock.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.wake:
			t.Stop()
			if !d.waitGap(ctx, lastClaim) {
				return ctx.Err()
			}
		case <-d.freed:
			// An endpoint skipped for being busy may have due deliveries.
			t.Stop()
		case <-t.C():
		}
	}
}

// waitGap waits until WakeGap has passed since the claim at last; false
// when ctx ended first.
func (d *Dispatcher) waitGap(ctx context.Context, last time.Time) bool {
	if d.WakeGap <= 0 {
		return true
	}
	rest := d.WakeGap - d.Clock.Now().Sub(last)
	if rest <= 0 {
		return true
	}
	t := d.Clock.NewTimer(rest)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// RunOnce claims one batch of due deliveries, attempts each (concurrently,
// at most PerEndpoint at once to one endpoint: the others are released)
// and records the outcomes. It returns how many it claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.init()
	var wg sync.WaitGroup
	free, skip := d.capacity()
	n, _, err := d.claim(ctx, &wg, max(1, min(free, d.Batch)), skip)
	wg.Wait()
	return n, errors.Join(err, d.takeErrs())
}

// capacity returns how many more attempts may start and the endpoints
// that have as many in flight as they may.
func (d *Dispatcher) capacity() (int, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var skip []string
	for ep, n := range d.busy {
		if n >= d.PerEndpoint {
			skip = append(skip, ep)
		}
	}
	return max(0, d.Workers-d.inflight), skip
}

// claim claims up to limit due deliveries (none of skip's endpoints) and
// starts an attempt of each in wg, releasing those whose endpoint already
// has PerEndpoint attempts in flight. It returns how many it claimed and
// how many of them it released.
func (d *Dispatcher) claim(ctx context.Context, wg *sync.WaitGroup, limit int, skip []string) (int, int, error) {
	cs, err := d.Store.Claim(ctx, ClaimRequest{Owner: d.Owner, Now: d.Clock.Now(), Lease: d.Lease, Limit: limit,
		SkipEndpoints: skip})
	if err != nil {
		return 0, 0, err
	}
	var release []Claimed
	for _, c := range cs {
		if !d.take(c.Endpoint.ID) {
			release = append(release, c)
			continue
		}
		wg.Go(func() {
			defer d.done(c.Endpoint.ID)
			if err := d.deliver(ctx, c); err != nil {
				d.addErr(err)
			}
		})
	}
	var errs []error
	for _, c := range release {
		errs = append(errs, d.release(ctx, c))
	}
	if err := errors.Join(errs...); err != nil {
		d.Logger.Error("webhook dispatcher: release", "err", err)
	}
	return len(cs), len(release), nil
}

// take reserves a worker for an attempt to endpoint ep, unless ep has
// PerEndpoint attempts in flight.
func (d *Dispatcher) take(ep string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[ep] >= d.PerEndpoint {
		return false
	}
	d.busy[ep]++
	d.inflight++
	return true
}

// done ends an attempt to ep that take reserved.
func (d *Dispatcher) done(ep string) {
	d.mu.Lock()
	d.inflight--
	if d.busy[ep]--; d.busy[ep] <= 0 {
		delete(d.busy, ep)
	}
	d.mu.Unlock()
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) addErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs = append(d.errs, err)
}

func (d *Dispatcher) takeErrs() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := errors.Join(d.errs...)
	d.errs = nil
	return err
}

// release gives a claimed delivery back, not attempted: due as it was,
// for this dispatcher or another to claim again.
func (d *Dispatcher) release(ctx context.Context, c Claimed) error {
	_, err := d.Store.Complete(context.WithoutCancel(ctx), Outcome{DeliveryID: c.Delivery.ID, Owner: d.Owner,
		Now: d.Clock.Now(), Release: true})
	if err != nil && tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		return fmt.Errorf("webhook: release delivery %s: %w", c.Delivery.ID, err)
	}
	return nil
}

// deliver makes one attempt of c and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, c Claimed) error {
	status, aerr := d.attempt(ctx, c)
	if aerr != nil && ctx.Err() != nil {
		// Cut short because this dispatcher is stopping: the receiver did
		// not fail. The delivery is left due, not counted against the
		// endpoint, for the next dispatcher to send at once.
		if err := d.release(ctx, c); err != nil {
			return err
		}
		d.count(ResultReleased)
		return nil
	}
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
			"endpoint", c.Endpoint.ID, "url", Origin(c.Endpoint.URL), "attempts", c.Delivery.Attempts, "err", o.Error)
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
		d.Logger.Warn("webhook endpoint disabled", "endpoint", ep.ID, "url", Origin(ep.URL), "reason", reason)
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

// Origin returns what of an endpoint's URL may be logged: its scheme and
// host. The path and query may hold the receiver's token.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
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
		// Not the *url.Error's text: it quotes the whole URL, which may
		// hold the receiver's token, and the error is logged and shown.
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, fmt.Errorf("%s %s: %w", ue.Op, Origin(c.Endpoint.URL), ue.Err)
		}
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
