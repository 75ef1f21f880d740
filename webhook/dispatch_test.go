package webhook_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/internal/testenv"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
	"tollgate/webhook"
)

var start = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// world is a store, a manual clock and a receiver.
type world struct {
	t     *testing.T
	path  string
	store webhook.Store
	clock *clocktest.Clock
	ctx   context.Context
	m     *counts
}

type counts struct {
	mu       sync.Mutex
	results  map[string]int
	disabled int
}

func (c *counts) Attempt(r string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results[r]++
}

func (c *counts) EndpointDisabled() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disabled++
}

func (c *counts) get(r string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results[r]
}

func newWorld(t *testing.T) *world {
	t.Helper()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	return &world{t: t, path: path, store: openStore(t, path), clock: clocktest.New(start), ctx: context.Background(),
		m: &counts{results: map[string]int{}}}
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (w *world) dispatcher() *webhook.Dispatcher {
	return &webhook.Dispatcher{Store: w.store, Clock: w.clock, AllowPrivate: true, Metrics: w.m,
		Timeout: 300 * time.Millisecond, Rand: func(n int64) int64 { return n - 1 }}
}

func (w *world) endpoint(url string) webhook.Endpoint {
	w.t.Helper()
	e, err := webhook.NewEndpoint("", url, webhook.Types(), "", webhook.URLPolicy{AllowPrivate: true}, w.clock.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.store.CreateEndpoint(w.ctx, e); err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *world) event(acct tollgate.AccountID) webhook.Event {
	w.t.Helper()
	e, err := webhook.NewEvent(webhook.PaymentSucceeded, acct, w.clock.Now(), map[string]any{"out_trade_no": "T-" + string(acct)})
	if err != nil {
		w.t.Fatal(err)
	}
	if e, err = w.store.AppendEvent(w.ctx, e); err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *world) runOnce(d *webhook.Dispatcher) int {
	w.t.Helper()
	n, err := d.RunOnce(w.ctx)
	if err != nil {
		w.t.Fatalf("RunOnce: %v", err)
	}
	return n
}

func (w *world) deliveries(ep string) []webhook.Delivery {
	w.t.Helper()
	ds, err := w.store.ListDeliveries(w.ctx, webhook.DeliveryQuery{Endpoint: ep, Limit: 100})
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

// receiver records every delivery it accepts, verified both ways.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	secret string
	ids    map[string]int
	bodies [][]byte
	now    func() time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(rc.secret)
	if err != nil {
		rc.t.Errorf("reference library: %v", err)
	}
	if err := wh.VerifyIgnoringTimestamp(body, r.Header); err != nil {
		rc.t.Errorf("reference library refuses a delivery: %v", err)
		w.WriteHeader(400)
		return
	}
	if !specVerify(rc.secret, r.Header, body, rc.now()) {
		rc.t.Errorf("spec verifier refuses a delivery")
		w.WriteHeader(400)
		return
	}
	rc.ids[r.Header.Get("webhook-id")]++
	rc.bodies = append(rc.bodies, body)
	w.WriteHeader(http.StatusNoContent)
}

func TestDeliverSigned(t *testing.T) {
	w := newWorld(t)
	rc := &receiver{t: t, ids: map[string]int{}, now: w.clock.Now}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ep := w.endpoint(srv.URL + "/hooks")
	rc.secret = ep.Secret
	ev := w.event("alice")
	if n := w.runOnce(w.dispatcher()); n != 1 {
		t.Fatalf("claimed %d", n)
	}
	if rc.ids[ev.ID] != 1 || len(rc.bodies) != 1 || !strings.Contains(string(rc.bodies[0]), `"seq":1`) {
		t.Fatalf("received %v %s", rc.ids, rc.bodies)
	}
	ds := w.deliveries(ep.ID)
	if len(ds) != 1 || ds[0].Status != webhook.StatusDelivered || ds[0].LastStatus != 204 || ds[0].Attempts != 1 {
		t.Fatalf("deliveries = %+v", ds)
	}
	if w.m.get(webhook.ResultDelivered) != 1 {
		t.Fatalf("metrics = %v", w.m.results)
	}
}

// TestReceiverFaults: every way a receiver can fail is a failed attempt,
// retried later; nothing follows a redirect; a huge or slow answer is
// handled within the attempt's time.
func TestReceiverFaults(t *testing.T) {
	var redirected atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	defer target.Close()
	huge := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			chunk := []byte(strings.Repeat("x", 64<<10))
			for range 1600 { // 100 MiB, unless the client hangs up first
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	for _, tc := range []struct {
		name      string
		h         http.HandlerFunc
		delivered bool
		status    int
	}{
		{"3xx", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL, http.StatusFound) }, false, 302},
		{"4xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }, false, 410},
		{"5xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, false, 503},
		{"hang", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
			<-r.Context().Done()
		}, false, 0},
		{"reset", func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}, false, 0},
		{"huge 200", huge(200), true, 200},
		{"huge 500", huge(500), false, 500},
		{"slow 200", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(100 * time.Millisecond): // inside the attempt's 300 ms
			case <-r.Context().Done():
			}
			w.WriteHeader(200)
		}, true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			ep := w.endpoint(srv.URL)
			w.event("alice")
			d := w.dispatcher()
			began := time.Now()
			w.runOnce(d)
			if took := time.Since(began); took > 5*time.Second {
				t.Fatalf("the attempt took %v", took)
			}
			ds := w.deliveries(ep.ID)
			if len(ds) != 1 || ds[0].LastStatus != tc.status {
				t.Fatalf("deliveries = %+v", ds)
			}
			if tc.delivered {
				if ds[0].Status != webhook.StatusDelivered {
					t.Fatalf("status %s (%s), want delivered", ds[0].Status, ds[0].LastError)
				}
				return
			}
			if ds[0].Status != webhook.StatusPending || ds[0].LastError == "" ||
				!ds[0].NextAttemptAt.Equal(w.clock.Now().Add(webhook.BackoffBase)) {
				t.Fatalf("after a failure: %+v; want pending, retried in %v", ds[0], webhook.BackoffBase)
			}
			if w.m.get(webhook.ResultRetry) != 1 {
				t.Fatalf("metrics = %v", w.m.results)
			}
			// Not yet due; then due.
			if n := w.runOnce(d); n != 0 {
				t.Fatalf("retried %d before due", n)
			}
			w.clock.Advance(webhook.BackoffBase)
			if n := w.runOnce(d); n != 1 {
				t.Fatalf("retried %d when due", n)
			}
			if ds := w.deliveries(ep.ID); ds[0].Attempts != 2 || !ds[0].NextAttemptAt.Equal(w.clock.Now().Add(2*webhook.BackoffBase)) {
				t.Fatalf("second failure: %+v", ds[0])
			}
		})
	}
	if redirected.Load() != 0 {
		t.Fatalf("a redirect was followed %d times", redirected.Load())
	}
}

// TestGiveUpAndDisable: a receiver that always fails is retried with
// growing waits for MaxAge after the event, then the delivery is failed;
// the endpoint, failing for DisableAfter, is disabled; enabling it and
// retrying the delivery delivers it once the receiver is back.
func TestGiveUpAndDisable(t *testing.T) {
	w := newWorld(t)
	var up atomic.Bool
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			rw.WriteHeader(500)
			return
		}
		got.Add(1)
	}))
	defer srv.Close()
	ep := w.endpoint(srv.URL)
	ev := w.event("alice")
	d := w.dispatcher()
	attempts := 0
	for range 200 {
		attempts += w.runOnce(d)
		ds := w.deliveries(ep.ID)
		if ds[0].Status == webhook.StatusFailed {
			break
		}
		w.clock.Set(ds[0].NextAttemptAt)
	}
	ds := w.deliveries(ep.ID)
	if ds[0].Status != webhook.StatusFailed || w.clock.Now().Sub(ev.CreatedAt) > webhook.MaxAge {
		t.Fatalf("after %d attempts at %v: %+v", attempts, w.clock.Now().Sub(ev.CreatedAt), ds[0])
	}
	// 5 s, 10 s, … 1 h, then hourly: about 80 attempts in 3 days.
	if attempts < 70 || attempts > 90 || int(ds[0].Attempts) != attempts {
		t.Fatalf("%d attempts (delivery says %d)", attempts, ds[0].Attempts)
	}
	if w.m.get(webhook.ResultFailed) != 1 || w.m.get(webhook.ResultRetry) != attempts-1 {
		t.Fatalf("metrics = %v", w.m.results)
	}
	e, err := w.store.GetEndpoint(w.ctx, ep.ID)
	if err != nil || !e.Disabled() || e.DisabledReason == "" || w.m.disabled != 1 {
		t.Fatalf("endpoint after 3 days of failures: %+v, %v (disabled metric %d)", e, err, w.m.disabled)
	}
	// Disabled: new events are not sent to it while it is, but held.
	w.event("alice")
	if n := w.runOnce(d); n != 0 {
		t.Fatalf("claimed %d for a disabled endpoint", n)
	}
	// The admin enables it and retries the failed delivery.
	up.Store(true)
	if _, err := w.store.SetEndpointDisabled(w.ctx, ep.ID, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.RetryDelivery(w.ctx, ep.ID, ds[0].ID, w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// The retried delivery and the one held while it was disabled.
	if n := w.runOnce(d); n != 2 || got.Load() != 2 {
		t.Fatalf("after enable and retry: claimed %d, received %d; want 2 and 2", n, got.Load())
	}
}

// TestRotateMidRetry: a delivery first attempted before rotate-secret is
// retried after it with both signatures: a receiver still on the old
// secret and one already on the new both verify it.
func TestRotateMidRetry(t *testing.T) {
	w := newWorld(t)
	var fail atomic.Bool
	fail.Store(true)
	var mu sync.Mutex
	var hdr http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			rw.WriteHeader(502)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		hdr, body = r.Header.Clone(), must(io.ReadAll(r.Body))
	}))
	defer srv.Close()
	ep := w.endpoint(srv.URL)
	w.event("alice")
	d := w.dispatcher()
	w.runOnce(d)
	rot, err := webhook.Rotate(w.ctx, w.store, ep.ID, w.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	w.clock.Advance(time.Minute)
	if n := w.runOnce(d); n != 1 {
		t.Fatalf("retry claimed %d", n)
	}
	for _, s := range []string{ep.Secret, rot.Secret} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.VerifyIgnoringTimestamp(body, hdr); err != nil {
			t.Errorf("reference library with %s…: %v", s[:12], err)
		}
		if !specVerify(s, hdr, body, w.clock.Now()) {
			t.Errorf("spec verifier with %s… refuses", s[:12])
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCrashBeforeMarking: a dispatcher that delivered but died before
// recording it leaves a lease; when it runs out another dispatcher
// delivers again with the same webhook-id.
func TestCrashBeforeMarking(t *testing.T) {
	w := newWorld(t)
	rc := &receiver{t: t, ids: map[string]int{}, now: w.clock.Now}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ep := w.endpoint(srv.URL)
	rc.secret = ep.Secret
	ev := w.event("alice")
	// The crashed instance's claim (its delivery reached the receiver).
	cs, err := w.store.Claim(w.ctx, webhook.ClaimRequest{Owner: "crashed", Now: w.clock.Now(), Lease: 2 * time.Minute, Limit: 5})
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim = %d, %v", len(cs), err)
	}
	d := w.dispatcher()
	if n := w.runOnce(d); n != 0 {
		t.Fatalf("claimed %d under another's lease", n)
	}
	w.clock.Advance(2 * time.Minute)
	if n := w.runOnce(d); n != 1 || rc.ids[ev.ID] != 1 {
		t.Fatalf("after the lease: claimed %d, received %v", n, rc.ids)
	}
}

// TestTwoDispatchers: two dispatchers on two handles of one database
// (two instances) deliver every event exactly once to a healthy receiver.
func TestTwoDispatchers(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		w := newWorld(t)
		testTwoDispatchers(t, w, openStore(t, w.path))
	})
	t.Run("postgres", func(t *testing.T) {
		url := testenv.MustPostgres(t)
		open := func() webhook.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		w := newWorld(t)
		w.store = open()
		testTwoDispatchers(t, w, open())
	})
}

func testTwoDispatchers(t *testing.T, w *world, other webhook.Store) {
	rc := &receiver{t: t, ids: map[string]int{}, now: w.clock.Now}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ep := w.endpoint(srv.URL)
	rc.secret = ep.Secret
	const events = 60
	for i := range events {
		w.event(tollgate.AccountID([]string{"alice", "bob", "carol"}[i%3]))
	}
	d1, d2 := w.dispatcher(), w.dispatcher()
	d2.Store = other
	d1.Batch, d2.Batch = 4, 4
	var wg sync.WaitGroup
	for _, d := range []*webhook.Dispatcher{d1, d2} {
		wg.Go(func() {
			for empty := 0; empty < 3; {
				n, err := d.RunOnce(w.ctx)
				if err != nil {
					t.Errorf("RunOnce: %v", err)
					return
				}
				if n == 0 {
					empty++
				}
			}
		})
	}
	wg.Wait()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.ids) != events {
		t.Fatalf("received %d events, want %d", len(rc.ids), events)
	}
	for id, n := range rc.ids {
		if n != 1 {
			t.Fatalf("event %s received %d times", id, n)
		}
	}
}

// TestGuardRefusesPrivate: without AllowPrivate the dispatcher does not
// connect to a loopback receiver (the guard runs at connect time, after
// DNS), and the attempt fails.
func TestGuardRefusesPrivate(t *testing.T) {
	w := newWorld(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	// Stored through the policy that allows it, so the dial guard is what
	// is tested; "localhost" is resolved by DNS, like a rebinding name.
	ep := w.endpoint(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	w.event("alice")
	d := w.dispatcher()
	d.AllowPrivate = false
	w.runOnce(d)
	ds := w.deliveries(ep.ID)
	if hits.Load() != 0 || ds[0].Status != webhook.StatusPending || !strings.Contains(ds[0].LastError, "refused to connect") {
		t.Fatalf("hits %d, delivery %+v", hits.Load(), ds[0])
	}
	// In production mode an http:// endpoint is not sent to at all.
	var plain atomic.Int32
	srv2 := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { plain.Add(1) }))
	defer srv2.Close()
	w2 := newWorld(t)
	ep2 := w2.endpoint(srv2.URL)
	w2.event("alice")
	d2 := w2.dispatcher()
	d2.HTTPSOnly = true
	w2.runOnce(d2)
	if ds := w2.deliveries(ep2.ID); plain.Load() != 0 || !strings.Contains(ds[0].LastError, "http://") {
		t.Fatalf("https-only: hits %d, delivery %+v", plain.Load(), ds[0])
	}
	// The client on its own refuses too, and allows with the flag.
	if _, err := webhook.Client(false).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "refused to connect") {
		t.Fatalf("guarded client: %v", err)
	}
	resp, err := webhook.Client(true).Get(srv.URL)
	if err != nil {
		t.Fatalf("unguarded client: %v", err)
	}
	resp.Body.Close()
}

// within fails the test if ch does not deliver n values before a generous
// real-time guard (a hung test, not a measure of speed).
func within[T any](t *testing.T, ch <-chan T, n int, what string) {
	t.Helper()
	guard := time.NewTimer(20 * time.Second)
	defer guard.Stop()
	for i := range n {
		select {
		case <-ch:
		case <-guard.C:
			t.Fatalf("%s: %d of %d after 20 s", what, i, n)
		}
	}
}

// TestHungReceiverDoesNotHoldOthers: an endpoint whose receiver hangs gets
// at most PerEndpoint attempts at once, and another endpoint's deliveries
// go through meanwhile; stopping the dispatcher cuts the hung attempts
// without counting them as failures: the next dispatcher sends them at
// once (same webhook-id).
func TestHungReceiverDoesNotHoldOthers(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	inflight, most, hungSeen := 0, 0, 0
	hungIn := make(chan struct{}, 100)
	up := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		hungSeen++
		most = max(most, inflight)
		mu.Unlock()
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
		hungIn <- struct{}{}
		select {
		case <-r.Context().Done(): // the dispatcher gave up
		case <-up:
		}
	}))
	defer hung.Close()
	healthyIn := make(chan struct{}, 100)
	healthy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		healthyIn <- struct{}{}
	}))
	defer healthy.Close()
	epH := w.endpoint(hung.URL)
	epOK := w.endpoint(healthy.URL)
	for range 6 {
		w.event("alice")
	}
	d := w.dispatcher()
	d.Timeout = time.Hour // hangs for the whole test unless stopped
	d.PerEndpoint, d.Workers, d.Idle = 2, 8, time.Hour
	recorded := make(chan string, 100)
	d.Metrics = resultsTo{w.m, recorded}
	ctx, stop := context.WithCancel(w.ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	defer stop() // before the servers close (deferred earlier), on a failure too
	// Both endpoints are subscribed to every event: 6 hung deliveries, 6
	// healthy ones. The healthy endpoint gets all of its while the hung
	// one holds two attempts.
	within(t, healthyIn, 6, "healthy deliveries while the other endpoint hangs")
	within(t, recorded, 6, "healthy deliveries recorded")
	within(t, hungIn, 2, "attempts to the hung endpoint")
	stop()
	if err := <-ran; err != context.Canceled {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	if most != 2 || hungSeen != 2 {
		t.Fatalf("hung endpoint: %d attempts, %d at once; want 2 and 2", hungSeen, most)
	}
	mu.Unlock()
	for _, dl := range w.deliveries(epOK.ID) {
		if dl.Status != webhook.StatusDelivered {
			t.Fatalf("healthy endpoint's delivery %+v", dl)
		}
	}
	// The cut attempts and the ones never made: due now, no attempt
	// counted, no error, no failure streak.
	ds := w.deliveries(epH.ID)
	if len(ds) != 6 {
		t.Fatalf("%d deliveries to the hung endpoint", len(ds))
	}
	for _, dl := range ds {
		if dl.Status != webhook.StatusPending || dl.Attempts != 0 || dl.LastError != "" || dl.NextAttemptAt.After(w.clock.Now()) {
			t.Fatalf("after shutdown: %+v; want pending, due, no attempt counted", dl)
		}
	}
	if e, err := w.store.GetEndpoint(w.ctx, epH.ID); err != nil || e.ConsecutiveFailures != 0 || !e.FailingSince.IsZero() {
		t.Fatalf("endpoint after shutdown: %+v, %v", e, err)
	}
	if w.m.get(webhook.ResultReleased) != 2 || w.m.get(webhook.ResultRetry) != 0 {
		t.Fatalf("metrics = %v", w.m.results)
	}
	// The receiver is back; the next dispatcher sends all six at once
	// (no clock advance: nothing waits for a backoff or a lease).
	close(up)
	next := w.dispatcher()
	next.PerEndpoint = 6
	if n := w.runOnce(next); n != 6 {
		t.Fatalf("next dispatcher claimed %d, want 6", n)
	}
	for _, dl := range w.deliveries(epH.ID) {
		if dl.Status != webhook.StatusDelivered || dl.Attempts != 1 {
			t.Fatalf("after restart: %+v", dl)
		}
	}
}

// TestPerEndpointRelease: RunOnce attempts at most PerEndpoint deliveries
// of one endpoint; the others are given back unattempted, due at once.
func TestPerEndpointRelease(t *testing.T) {
	w := newWorld(t)
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	defer srv.Close()
	ep := w.endpoint(srv.URL)
	for range 5 {
		w.event("alice")
	}
	d := w.dispatcher()
	d.PerEndpoint = 2
	if n := w.runOnce(d); n != 5 || got.Load() != 2 {
		t.Fatalf("claimed %d, sent %d; want 5 and 2", n, got.Load())
	}
	pending := 0
	for _, dl := range w.deliveries(ep.ID) {
		if dl.Status == webhook.StatusPending {
			pending++
			if dl.Attempts != 0 || dl.NextAttemptAt.After(w.clock.Now()) {
				t.Fatalf("released delivery %+v", dl)
			}
		}
	}
	if pending != 3 {
		t.Fatalf("%d pending, want 3", pending)
	}
	w.runOnce(d)
	w.runOnce(d)
	if got.Load() != 5 {
		t.Fatalf("sent %d of 5", got.Load())
	}
}

// TestWakeAndIdle: an event is sent as soon as Wake is called, not at the
// next poll; without Wake (another instance's event), at the poll, Idle
// later.
func TestWakeAndIdle(t *testing.T) {
	w := newWorld(t)
	in := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		in <- r.Header.Get("webhook-id")
	}))
	defer srv.Close()
	w.endpoint(srv.URL)
	d := w.dispatcher()
	d.Idle = time.Minute
	ctx, stop := context.WithCancel(w.ctx)
	defer stop()
	go d.Run(ctx)
	if !w.clock.WaitTimers(1, 20*time.Second) {
		t.Fatal("the dispatcher did not go idle")
	}
	ev := w.event("alice")
	d.Wake() // the commit's hook; the clock does not move
	if got := recv(t, in); got != ev.ID {
		t.Fatalf("received %s, want %s", got, ev.ID)
	}
	if !w.clock.WaitTimers(1, 20*time.Second) {
		t.Fatal("the dispatcher did not go idle again")
	}
	ev2 := w.event("bob")
	w.clock.Advance(time.Minute)
	if got := recv(t, in); got != ev2.ID {
		t.Fatalf("received %s, want %s", got, ev2.ID)
	}
}

// TestWakeGap: with WakeGap, a wake that comes sooner than the gap after
// the last claim waits out the rest of the gap (one claim then serves
// every event committed meanwhile); once the gap has passed it claims at
// once.
func TestWakeGap(t *testing.T) {
	w := newWorld(t)
	in := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		in <- r.Header.Get("webhook-id")
	}))
	defer srv.Close()
	w.endpoint(srv.URL)
	d := w.dispatcher()
	d.Idle, d.WakeGap = time.Minute, 10*time.Millisecond
	ctx, stop := context.WithCancel(w.ctx)
	defer stop()
	go d.Run(ctx)
	if !w.clock.WaitTimers(1, 20*time.Second) {
		t.Fatal("the dispatcher did not go idle")
	}
	ev := w.event("alice")
	d.Wake() // within the gap of the first claim: it waits for the clock
	if !w.clock.WaitTimers(1, 20*time.Second) {
		t.Fatal("the woken dispatcher set no timer for the rest of its gap")
	}
	select {
	case got := <-in:
		t.Fatalf("received %s before the gap passed", got)
	case <-time.After(100 * time.Millisecond):
	}
	w.clock.Advance(10 * time.Millisecond)
	if got := recv(t, in); got != ev.ID {
		t.Fatalf("received %s, want %s", got, ev.ID)
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	guard := time.NewTimer(20 * time.Second)
	defer guard.Stop()
	select {
	case v := <-ch:
		return v
	case <-guard.C:
		t.Fatal("nothing received in 20 s")
		panic("unreachable")
	}
}

// TestLogsOnlyOrigin: the endpoint's path and query (which may hold the
// receiver's token) are in no log line and no recorded error; its
// scheme and host are.
func TestLogsOnlyOrigin(t *testing.T) {
	w := newWorld(t)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	origin := srv.URL
	srv.Close() // connection refused from now on
	ep := w.endpoint(origin + "/hooks/tok_SECRETPATH?key=SECRETQUERY")
	ev := w.event("alice")
	var logs strings.Builder
	var logMu sync.Mutex
	d := w.dispatcher()
	d.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	// Enough failures to disable the endpoint, then the last attempt is
	// given up: both are logged.
	for range webhook.DisableFailures {
		w.runOnce(d)
		w.clock.Set(w.deliveries(ep.ID)[0].NextAttemptAt)
	}
	w.clock.Set(ev.CreatedAt.Add(webhook.MaxAge))
	w.runOnce(d)
	ds := w.deliveries(ep.ID)
	e, _ := w.store.GetEndpoint(w.ctx, ep.ID)
	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	if ds[0].Status != webhook.StatusFailed || !e.Disabled() {
		t.Fatalf("delivery %+v, endpoint disabled %v", ds[0], e.Disabled())
	}
	for _, s := range []string{out, ds[0].LastError, e.DisabledReason} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("the endpoint's path or query is shown: %s", s)
		}
	}
	if !strings.Contains(out, "failed for good") || !strings.Contains(out, "endpoint disabled") || !strings.Contains(out, origin) {
		t.Fatalf("logs lack the lines or the origin %s:\n%s", origin, out)
	}
	if !strings.Contains(ds[0].LastError, origin) {
		t.Fatalf("the error does not say where: %s", ds[0].LastError)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// resultsTo counts in m and sends each result on ch.
type resultsTo struct {
	m  *counts
	ch chan string
}

func (r resultsTo) Attempt(result string) {
	r.m.Attempt(result)
	r.ch <- result
}

func (r resultsTo) EndpointDisabled() { r.m.EndpointDisabled() }
