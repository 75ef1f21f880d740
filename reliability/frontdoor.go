package reliability

import (
	"bytes"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FrontDoor is the load balancer in front of the instances: the public
// URL every instance advertises (notify_url, the mock LLM's base URL). It
// sends each request to one live instance, trying the next one when an
// instance does not answer (it was killed), so a crash costs WeChat Pay a
// failed attempt, not three failed handshakes and a blacklisted URL.
//
// With probability FanOut a payment notification is delivered to every
// instance at once (docs/RELIABILITY.md S1: concurrent duplicates on two
// instances; docs/DESIGN.md §7.2 F2), and the first acknowledgement is returned. Every
// notification an instance acknowledged is kept for replay.
type FrontDoor struct {
	Backends []string // base URLs, e.g. http://127.0.0.1:1234
	FanOut   float64
	Seed     int64
	// APIVersion is the notifications' API: "v2" (the default, on
	// NotifyPathV2) or "v3" (on NotifyPathV3).
	APIVersion string

	client *http.Client
	next   atomic.Uint64

	mu    sync.Mutex
	rng   *rand.Rand
	acked []Notification // notifications some instance acknowledged

	// FannedOut counts notifications delivered to every instance at once.
	FannedOut atomic.Int64
	// Failovers counts requests an instance did not answer and another did.
	Failovers atomic.Int64
}

func (f *FrontDoor) init() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng == nil {
		f.rng = rand.New(rand.NewSource(f.Seed))
		f.client = &http.Client{Timeout: 30 * time.Second}
	}
}

func (f *FrontDoor) chance(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < p
}

// Acked returns the notifications acknowledged so far (for v3 with the
// headers they came with).
func (f *FrontDoor) Acked() []Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Notification(nil), f.acked...)
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (f *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.init()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	notifyPath := NotifyPathV2
	if f.APIVersion == "v3" {
		notifyPath = NotifyPathV3
	}
	notify := r.Method == "POST" && r.URL.Path == notifyPath
	var a answer
	if notify && len(f.Backends) > 1 && f.chance(f.FanOut) {
		f.FannedOut.Add(1)
		a = f.fanOut(r, body)
	} else {
		a = f.failover(r, body)
	}
	if a.err != nil {
		http.Error(w, "front door: no instance answered: "+a.err.Error(), http.StatusBadGateway)
		return
	}
	if notify && acked(f.APIVersion, a.status, a.body) {
		f.mu.Lock()
		f.acked = append(f.acked, Notification{Header: notificationHeaders(r.Header), Body: body})
		f.mu.Unlock()
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// failover tries the instances in turn, starting from the next in
// round-robin order, until one answers.
func (f *FrontDoor) failover(r *http.Request, body []byte) answer {
	start := int(f.next.Add(1))
	var a answer
	for i := range f.Backends {
		a = f.send(r, f.Backends[(start+i)%len(f.Backends)], body)
		if a.err == nil {
			if i > 0 {
				f.Failovers.Add(1)
			}
			return a
		}
	}
	return a
}

// fanOut sends the same request to every instance concurrently and
// returns an acknowledgement if any instance gave one.
func (f *FrontDoor) fanOut(r *http.Request, body []byte) answer {
	answers := make([]answer, len(f.Backends))
	var wg sync.WaitGroup
	for i, b := range f.Backends {
		wg.Go(func() { answers[i] = f.send(r, b, body) })
	}
	wg.Wait()
	// The first answer, unless another instance acknowledged: when every
	// instance refuses (a lying notification), the refusal is the answer.
	best := answers[0]
	for _, a := range answers[1:] {
		if a.err != nil {
			continue
		}
		if best.err != nil || (a.status == 200 && best.status != 200) {
			best = a
		}
	}
	return best
}

func (f *FrontDoor) send(r *http.Request, base string, body []byte) answer {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	for k, v := range r.Header {
		if !strings.EqualFold(k, "Connection") {
			req.Header[k] = v
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}
