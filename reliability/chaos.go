package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"
)

// Chaos steps. A step named "fp:NAME" arms failpoint NAME (see
// tollgate/internal/failpoint) on one instance to SIGKILL itself the first
// time it is hit, waits for it to fire, and restarts the instance clean
// (docs/RELIABILITY.md S6).
const (
	StepSIGKILL = "sigkill" // SIGKILL a random instance, restart it shortly after
	StepDBCut   = "dbcut"   // terminate every database connection (S7)
	// StepRotate rotates WeChat Pay's platform certificate (production:
	// POST /sim/rotate-certificate): a new key signs every answer and
	// notification from then on, the old certificate stays listed.
	StepRotate = "rotate"
	// StepWebhookDown takes the webhook receiver down for a few seconds
	// (Receiver.GoDown); StepWebhookKill SIGKILLs an instance while a
	// webhook delivery it sent is in flight (the receiver holds the
	// answers until the kill), and restarts it.
	StepWebhookDown = "webhook-down"
	StepWebhookKill = "webhook-kill"
)

// Chaos runs its Steps one after another while the workload runs, each
// once a further share of the orders exist. Instances and timings come
// from Seed.
type Chaos struct {
	W     *Workload
	Seed  int64
	Steps []string
	// CutDB terminates the instances' database connections.
	CutDB func(ctx context.Context) error
	// Webhooks is the webhook receiver of the webhook steps.
	Webhooks *Receiver

	mu      sync.Mutex
	fired   map[string]int // step → times it took effect
	rotated time.Time      // when the last StepRotate took effect
}

// RotatedAt is when the last certificate rotation took effect (zero if
// none did).
func (c *Chaos) RotatedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rotated
}

// Fired returns how often each step took effect.
func (c *Chaos) Fired() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.fired))
	for k, v := range c.fired {
		out[k] = v
	}
	return out
}

func (c *Chaos) note(step string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired == nil {
		c.fired = map[string]int{}
	}
	c.fired[step]++
}

// Run runs the steps; it returns early, without error, once done is closed
// (the workload finished), leaving every instance running.
func (c *Chaos) Run(ctx context.Context, done <-chan struct{}) error {
	rng := rand.New(rand.NewSource(c.Seed ^ 0x5eed))
	n := len(c.W.Cluster.Addrs)
	for k, step := range c.Steps {
		at := int64(c.W.Orders * (k + 1) / (len(c.Steps) + 1))
		for c.W.Created() < at {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-done:
				return nil
			case <-time.After(10 * time.Millisecond):
			}
		}
		i := rng.Intn(n)
		down := time.Duration(100+rng.Intn(400)) * time.Millisecond
		var err error
		switch {
		case step == StepSIGKILL:
			err = c.sigkill(ctx, i, down)
		case step == StepRotate:
			err = c.rotate(ctx)
		case step == StepWebhookDown:
			d := time.Duration(3000+rng.Intn(3000)) * time.Millisecond
			c.Webhooks.GoDown(d)
			c.note(step)
			c.W.Logf("chaos: webhook receiver down for %v after %d orders", d, c.W.Created())
		case step == StepWebhookKill:
			err = c.webhookKill(ctx, i, down)
		case step == StepDBCut:
			if err = c.CutDB(ctx); err == nil {
				c.W.Stats.DBCuts.Add(1)
				c.note(step)
				c.W.Logf("chaos: terminated every database connection after %d orders", c.W.Created())
			}
		case strings.HasPrefix(step, "fp:"):
			err = c.failpoint(ctx, i, strings.TrimPrefix(step, "fp:"), done)
		default:
			err = fmt.Errorf("unknown chaos step %q", step)
		}
		if err != nil {
			return fmt.Errorf("chaos step %s: %w", step, err)
		}
	}
	return nil
}

// rotate makes the emulator rotate its platform certificate, as WeChat Pay
// does every few years: the instances meet a serial they do not know in the
// next answer or notification and must download the certificates again
// without refusing a genuine one (Report.SignatureRefused). It returns once
// every running instance holds the new certificate (30 s at most).
//
// The faults stay on: a SYSTEM_ERROR on GET /v3/certificates (the "query"
// endpoint's faults cover it) is tried again within the download, and a
// download that failed every attempt holds the next one back for seconds,
// not wxpay.V3CertificateRefetchInterval (docs/RELIABILITY.md, "The
// production path").
func (c *Chaos) rotate(ctx context.Context) error {
	cl := c.W.Cluster
	var res struct {
		Serial  string   `json:"serial"`
		Serials []string `json:"serials"`
	}
	r := Call(ctx, "POST", cl.Sim+"/sim/rotate-certificate", "", nil, nil)
	if r.Outcome != OK {
		return fmt.Errorf("rotate the platform certificate: %s", r)
	}
	if err := r.Decode(&res); err != nil {
		return err
	}
	start := time.Now()
	c.W.Stats.Rotations.Add(1)
	c.note(StepRotate)
	c.mu.Lock()
	c.rotated = start
	c.mu.Unlock()
	for {
		waiting := 0
		for i := range cl.Addrs {
			if cl.Exited(i) != nil && !cl.HasCertificate(i, res.Serial) {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("%d instance(s) still without certificate %s 30 s after the rotation", waiting, res.Serial)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.W.Logf("chaos: platform certificate rotated to %s after %d orders (listed: %v); every instance had it %v later",
		res.Serial, c.W.Created(), res.Serials, time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *Chaos) sigkill(ctx context.Context, i int, down time.Duration) error {
	if err := c.W.Cluster.Kill(i); err != nil {
		return err
	}
	c.W.Stats.Kills.Add(1)
	c.note(StepSIGKILL)
	c.W.Logf("chaos: SIGKILL instance %d after %d orders; down for %v", i, c.W.Created(), down)
	time.Sleep(down)
	return c.W.Cluster.Restart(ctx, i)
}

// failpoint restarts instance i with the failpoint armed to kill it once,
// waits (bounded) until it has, and restarts it clean.
func (c *Chaos) failpoint(ctx context.Context, i int, name string, done <-chan struct{}) error {
	cl := c.W.Cluster
	if err := cl.Kill(i); err != nil {
		return err
	}
	c.W.Stats.Kills.Add(1)
	err := cl.Restart(ctx, i, "TOLLGATE_FAILPOINTS="+name+"=1*kill")
	if err != nil && !errors.Is(err, ErrExited) {
		return err
	}
	deadline := time.After(30 * time.Second)
wait:
	for cl.Exited(i) != nil {
		select {
		case <-done:
			break wait
		case <-deadline:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if cl.Exited(i) == nil {
		c.note("fp:" + name)
		c.W.Logf("chaos: failpoint %s killed instance %d (after %d orders)", name, i, c.W.Created())
	} else {
		c.W.Logf("chaos: failpoint %s armed on instance %d did not fire", name, i)
		if err := cl.Kill(i); err != nil {
			return err
		}
	}
	return cl.Restart(ctx, i)
}

// webhookKill makes the receiver hold its answers, waits (bounded) until a
// delivery is held, SIGKILLs instance i and checks whether a held delivery
// lost its sender (the kill landed mid-delivery); if none did (the held
// ones were the other instance's), it tries the next instance, up to 4
// kills in all. Every instance is running when it returns.
func (c *Chaos) webhookKill(ctx context.Context, i int, down time.Duration) error {
	cl, rc := c.W.Cluster, c.Webhooks
	for range 4 {
		rc.Hold(true)
		if !rc.waitHeld(ctx, 1, 10*time.Second) {
			rc.Hold(false)
			c.W.Logf("chaos: no webhook delivery in flight within 10 s; no kill")
			return ctx.Err()
		}
		before := rc.Cut.Load()
		if err := cl.Kill(i); err != nil {
			rc.Hold(false)
			return err
		}
		c.W.Stats.Kills.Add(1)
		deadline := time.Now().Add(2 * time.Second)
		for rc.Cut.Load() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		rc.Hold(false)
		cut := rc.Cut.Load() - before
		time.Sleep(down)
		if err := cl.Restart(ctx, i); err != nil {
			return err
		}
		if cut > 0 {
			c.note(StepWebhookKill)
			c.W.Logf("chaos: SIGKILL instance %d with %d webhook deliveries in flight, after %d orders", i, cut, c.W.Created())
			return nil
		}
		c.W.Logf("chaos: SIGKILL instance %d: no webhook delivery of its was in flight; again", i)
		i = (i + 1) % len(cl.Addrs)
	}
	return nil
}
