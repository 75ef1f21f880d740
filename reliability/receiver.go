package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"tollgate/webhook"
)

// Receiver is the app's webhook endpoint in the harness (issue 20): an
// HTTP server on loopback that checks every delivery's Standard Webhooks
// signature with the reference library, answers 500 to a seeded share of
// deliveries, stalls some answers (so that a kill lands while a delivery
// is in flight), can be taken down for a while (new connections refused,
// kept-alive ones answered 503), and records each event by webhook-id,
// counting the copies. An event answered 500 is not recorded (the app
// failed to take it); one recorded whose answer never reached the sender
// (the sender was killed) is recorded, and its redelivery is a copy.
//
// Set the fields, Start, register URL as an endpoint, then SetSecret with
// the secret registration answered.
type Receiver struct {
	Seed int64
	// FailRate is the share of deliveries answered 500 while the faults
	// are on; StallRate the share whose answer is held up to StallMax.
	FailRate  float64
	StallRate float64
	StallMax  time.Duration
	// TLS, when set, serves https with it (production: the dispatcher
	// refuses http endpoints).
	TLS *tls.Config

	// URL is the endpoint's URL, set by Start.
	URL string

	// Counters: attempts that reached the handler, answered 500 by the
	// faults, answered 503 while down, stalled, and held deliveries whose
	// sender went away before the answer (killed mid-delivery).
	Attempts, Failed, DownAnswers, Stalled, Cut atomic.Int64

	srv      *http.Server
	addr     string
	wg       sync.WaitGroup // the server loops
	downWG   sync.WaitGroup // down windows under way
	mu       sync.Mutex
	ln       net.Listener
	verifier *standardwebhooks.Webhook
	faults   bool
	down     bool
	downs    int // down windows begun
	hold     bool
	held     int
	release  chan struct{}
	tries    map[string]int // attempts seen per webhook-id
	events   map[string]*Received
	problems []string
}

// Received is one event as the receiver took it.
type Received struct {
	Event webhook.Event
	Body  []byte
	// Copies counts the times it was taken (more than 1: duplicates).
	Copies int
}

// Start listens on a free loopback port and serves; faults are on.
func (rc *Receiver) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rc.addr = ln.Addr().String()
	scheme := "http"
	if rc.TLS != nil {
		scheme = "https"
	}
	rc.URL = scheme + "://" + rc.addr + "/webhooks"
	rc.tries, rc.events, rc.faults = map[string]int{}, map[string]*Received{}, true
	rc.release = make(chan struct{})
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second, TLSConfig: rc.TLS}
	rc.serve(ln)
	return nil
}

func (rc *Receiver) serve(ln net.Listener) {
	if rc.TLS != nil {
		ln = tls.NewListener(ln, rc.TLS)
	}
	rc.mu.Lock()
	rc.ln = ln
	rc.mu.Unlock()
	rc.wg.Go(func() { _ = rc.srv.Serve(ln) })
}

// Close stops the server (after a down window under way ended).
func (rc *Receiver) Close() {
	if rc.srv == nil {
		return
	}
	rc.Hold(false)
	rc.mu.Lock()
	rc.faults = false
	rc.mu.Unlock()
	rc.downWG.Wait()
	_ = rc.srv.Close()
	rc.wg.Wait()
}

// SetSecret sets the endpoint's signing secret: deliveries are verified
// with it (before, they are answered 503).
func (rc *Receiver) SetSecret(secret string) error {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.verifier = v
	rc.mu.Unlock()
	return nil
}

// StopFaults ends the 500s and stalls (the run is over): from now on
// every delivery is taken. A down window under way still ends on time.
func (rc *Receiver) StopFaults() {
	rc.Hold(false)
	rc.mu.Lock()
	rc.faults = false
	rc.mu.Unlock()
}

// GoDown takes the receiver down for d, in the background: its listener
// closed (connections refused), requests on kept-alive connections
// answered 503; then it listens on the same address again.
func (rc *Receiver) GoDown(d time.Duration) {
	rc.mu.Lock()
	rc.down = true
	rc.downs++
	ln := rc.ln
	rc.mu.Unlock()
	_ = ln.Close()
	rc.downWG.Go(func() {
		time.Sleep(d)
		ln, err := net.Listen("tcp", rc.addr)
		for i := 0; err != nil && i < 50; i++ { // the port may linger a moment
			time.Sleep(100 * time.Millisecond)
			ln, err = net.Listen("tcp", rc.addr)
		}
		if err != nil {
			rc.problem("webhook receiver: could not listen on %s again after its down window: %v", rc.addr, err)
		} else {
			rc.serve(ln)
		}
		rc.mu.Lock()
		rc.down = false
		rc.mu.Unlock()
	})
}

// Downs is how many down windows began.
func (rc *Receiver) Downs() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.downs
}

// Hold(true) makes every delivery wait for its answer until Hold(false)
// or until its sender goes away (counted in Cut).
func (rc *Receiver) Hold(on bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.hold == on {
		return
	}
	rc.hold = on
	if !on {
		close(rc.release)
		rc.release = make(chan struct{})
	}
}

// Held is how many deliveries are waiting for their answer now.
func (rc *Receiver) Held() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.held
}

// Events returns what was taken, by webhook-id.
func (rc *Receiver) Events() map[string]Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]Received, len(rc.events))
	for id, r := range rc.events {
		out[id] = *r
	}
	return out
}

// Problems are the deliveries that broke a rule: a bad signature, a body
// that is not the event its webhook-id names, a copy with another body.
func (rc *Receiver) Problems() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.problems...)
}

func (rc *Receiver) problem(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.problems) < 100 {
		rc.problems = append(rc.problems, fmt.Sprintf(format, args...))
	}
}

// draw is a uniform number in [0, 1) from the seed, the event, its
// attempt and what is drawn: the same run of deliveries gets the same
// faults.
func (rc *Receiver) draw(id string, attempt int, what byte) float64 {
	h := fnv.New64a()
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(rc.Seed))
	binary.LittleEndian.PutUint64(b[8:16], uint64(attempt))
	b[16] = what
	h.Write(b[:])
	h.Write([]byte(id))
	return float64(h.Sum64()>>11) / math.Exp2(53)
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	rc.Attempts.Add(1)
	id := r.Header.Get(webhook.HeaderID)
	rc.mu.Lock()
	v, faults, down := rc.verifier, rc.faults, rc.down
	rc.tries[id]++
	try := rc.tries[id]
	rc.mu.Unlock()
	if down || v == nil {
		rc.DownAnswers.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if err := v.Verify(body, r.Header); err != nil {
		rc.problem("webhook delivery %s refused by the Standard Webhooks verifier: %v", id, err)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var e webhook.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != id {
		rc.problem("webhook delivery %s: body is not that event (id %q, err %v): %.200s", id, e.ID, err, body)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	fail := faults && rc.draw(id, try, 'f') < rc.FailRate
	if !fail {
		rc.take(id, body, e)
	}
	rc.mu.Lock()
	hold, release := rc.hold, rc.release
	if hold {
		rc.held++
	}
	rc.mu.Unlock()
	switch {
	case hold:
		rc.Stalled.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			rc.Cut.Add(1)
		}
		rc.mu.Lock()
		rc.held--
		rc.mu.Unlock()
	case faults && rc.draw(id, try, 's') < rc.StallRate:
		rc.Stalled.Add(1)
		select {
		case <-time.After(time.Duration(rc.draw(id, try, 'd') * float64(rc.StallMax))):
		case <-r.Context().Done():
			rc.Cut.Add(1)
		}
	}
	if fail {
		rc.Failed.Add(1)
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// take records one copy of event id.
func (rc *Receiver) take(id string, body []byte, e webhook.Event) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if have, ok := rc.events[id]; ok {
		have.Copies++
		if !bytes.Equal(have.Body, body) && len(rc.problems) < 100 {
			rc.problems = append(rc.problems, fmt.Sprintf("W3: event %s delivered again with another body:\n  first %s\n  now   %s", id, have.Body, body))
		}
		return
	}
	rc.events[id] = &Received{Event: e, Body: body, Copies: 1}
}

// waitHeld waits (bounded by d) until n deliveries are held.
func (rc *Receiver) waitHeld(ctx context.Context, n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for rc.Held() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
