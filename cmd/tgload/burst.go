package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/payment"
)

// The burst and backlog modes (issue 21's targets): a burst of payments
// notified at once, and notifications while a large backlog of unpaid
// orders keeps the poller busy (backlog.go).
const (
	ModeBurst   = "burst"   // N orders, then every one notified within -within, open loop, WeChat Pay's timeout and retries
	ModeBacklog = "backlog" // -backlog unpaid orders pending, then the notify load; the poller's query rate at the emulator
)

// BurstConfig are the settings of the burst and backlog modes.
type BurstConfig struct {
	// Within spreads the burst's first attempts evenly over this long (0:
	// all at once, as fast as Pool lets them go).
	Within time.Duration
	// Pool bounds the notifications in flight (open connections).
	Pool int
	// NotifyTimeout is WeChat Pay's answer deadline: a notification not
	// acknowledged within it counts as dropped and is sent again after
	// RetryAfter, at most Attempts times in all.
	NotifyTimeout time.Duration
	RetryAfter    time.Duration
	Attempts      int
	// Sim is the WeChat Pay emulator's base URL (its /sim/stats); empty:
	// serve's in-process one, -base + /sandbox/wxpay.
	Sim string
	// QueryLimit is the most order queries the emulator may see in any
	// sliding minute (backlog's check).
	QueryLimit int
}

// addBurstFlags registers the flags of the burst and backlog modes.
func addBurstFlags(fs *flag.FlagSet, c *BurstConfig) {
	fs.DurationVar(&c.Within, "within", 10*time.Second, "burst: first notifications spread evenly over this long (open loop; 0: all at once, bounded by -pool)")
	fs.IntVar(&c.Pool, "pool", 512, fmt.Sprintf("burst: notifications in flight at most (1..%d)", MaxPool))
	fs.DurationVar(&c.NotifyTimeout, "notify-timeout", DefaultNotifyTimeout, "burst: WeChat Pay's answer deadline; an unacknowledged notification counts as dropped and is retried")
	fs.DurationVar(&c.RetryAfter, "retry-after", 15*time.Second, "burst: wait before a dropped notification is sent again (WeChat Pay's first retry: 15s)")
	fs.IntVar(&c.Attempts, "attempts", 3, "burst: attempts per notification at most (WeChat Pay makes 16 over 24h)")
	fs.StringVar(&c.Sim, "sim", "", "backlog, unifiedorder: the WeChat Pay emulator's base URL (backlog reads its /sim/stats); empty: -base + /sandbox/wxpay (serve's in-process emulator)")
	fs.IntVar(&c.QueryLimit, "query-limit", payment.QueryBudget, "backlog: the most order queries per sliding minute the emulator may see (tollgate's per-merchant budget)")
}

// Bounds of the burst mode.
const (
	MaxPool     = 4096
	MaxBurst    = 1000000
	MaxPending  = 1000000
	MaxAttempts = 16
	// DefaultNotifyTimeout is WeChat Pay's: "answer within 5 s"
	// (docs/WECHATPAY.md 1.12); otherwise the notification is retried.
	DefaultNotifyTimeout = 5 * time.Second
)

// validateBurst checks the settings only the burst and backlog modes use.
func (c Config) validateBurst() error {
	switch c.Mode {
	case ModeBurst:
		switch {
		case c.Orders < 1 || c.Orders > MaxBurst:
			return fmt.Errorf("-orders must be in 1..%d, got %d", MaxBurst, c.Orders)
		case c.Within < 0 || c.Within > MaxDuration:
			return fmt.Errorf("-within must be in [0, %s], got %s", MaxDuration, c.Within)
		case c.Pool < 1 || c.Pool > MaxPool:
			return fmt.Errorf("-pool must be in 1..%d, got %d", MaxPool, c.Pool)
		case c.NotifyTimeout <= 0 || c.RetryAfter < 0 || c.RetryAfter > MaxDuration:
			return fmt.Errorf("-notify-timeout must be positive and -retry-after in [0, %s]", MaxDuration)
		case c.Attempts < 1 || c.Attempts > MaxAttempts:
			return fmt.Errorf("-attempts must be in 1..%d, got %d", MaxAttempts, c.Attempts)
		}
	case ModeBacklog:
		switch {
		case c.Orders < 1 || c.Orders > 100000:
			return fmt.Errorf("-orders must be in 1..100000, got %d", c.Orders)
		case c.Backlog < 0 || c.Backlog > MaxPending:
			return fmt.Errorf("-backlog must be in 0..%d, got %d", MaxPending, c.Backlog)
		case c.QueryLimit < 1:
			return fmt.Errorf("-query-limit must be positive")
		}
		if c.Sim != "" {
			return CheckLoopback(c.Sim)
		}
	}
	return nil
}

// createOrders places n orders through serve with PrepClients clients
// (closed loop) and returns them with the measurements.
func createOrders(ctx context.Context, client *http.Client, cfg Config, prefix string, n int) ([]createdOrder, *Result, error) {
	orders := make([]createdOrder, n)
	res := closedLoop(ctx, max(cfg.PrepClients, 1), MaxDuration, n, func(ctx context.Context, i int) (bool, error) {
		o, err := createOrder(ctx, client, cfg, fmt.Sprintf("%s-%d", prefix, i))
		orders[i] = o
		return false, err
	})
	if len(res.Latencies) != n {
		return nil, res, fmt.Errorf("creating %d orders: %d created (first error: %s)", n, len(res.Latencies), res.FirstErr)
	}
	return orders, res, nil
}

// notifyBodies signs one SUCCESS notification per order and returns them
// with the credits they must add.
func notifyBodies(cfg Config, orders []createdOrder, id string) ([][]byte, int64, error) {
	bodies := make([][]byte, len(orders))
	var want int64
	now := time.Now()
	for i, o := range orders {
		var nb [16]byte
		rand.Read(nb[:])
		var err error
		bodies[i], err = NotificationBody(cfg, o, hex.EncodeToString(nb[:]), fmt.Sprintf("4200%s%016d", id, i), now)
		if err != nil {
			return nil, 0, err
		}
		want += o.Credits
	}
	return bodies, want, nil
}

// loadBurst plays WeChat Pay's notifier after a burst of payments: it
// pre-creates cfg.Orders orders, then sends each one's SUCCESS
// notification at its moment in an even spread over cfg.Within (open
// loop: the notifier does not wait for one acknowledgment before sending
// the next, so a slow server meets the arrivals it would meet, not fewer),
// at most cfg.Pool in flight. Each attempt has WeChat Pay's deadline; one
// not acknowledged in time (timeout, error status, no SUCCESS ack) is
// dropped and sent again after cfg.RetryAfter, up to cfg.Attempts. The
// latency of a notification runs from its scheduled moment (a send held
// back by a full pool counts against the server) to its acknowledgment,
// across retries. Then it checks that every order is SUCCESS and the
// balance grew by exactly their credits.
func loadBurst(ctx context.Context, cfg Config, id string) (*PayReport, error) {
	client, tr := newClient(cfg)
	defer tr.CloseIdleConnections()
	before, err := balance(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("balance before: %w", err)
	}
	orders, prep, err := createOrders(ctx, client, cfg, "tgload-"+id, cfg.Orders)
	if err != nil {
		return nil, err
	}
	bodies, want, err := notifyBodies(cfg, orders, id)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	res, dropped := burst(bctx, cfg, bodies)
	cancel()
	mid, err := balance(ctx, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("balance after: %w", err)
	}
	paid, err := countPaid(ctx, client, cfg, orders)
	if err != nil {
		return nil, err
	}
	slices.Sort(res.Latencies)
	unacked := cfg.Orders - len(res.Latencies)
	check := fmt.Sprintf("%d/%d orders SUCCESS, balance +%d credits (want +%d); %d attempts dropped (%d not answered within the %s deadline, %d refused), %d never acknowledged in %d attempts; notification to ack p50 %s p99 %s max %s",
		paid, cfg.Orders, mid-before, want, dropped, res.ByStatus[0], cfg.NotifyTimeout, dropped-res.ByStatus[0], unacked, cfg.Attempts,
		ms(Percentile(res.Latencies, 50)), ms(Percentile(res.Latencies, 99)), ms(Percentile(res.Latencies, 100)))
	spread := "all at once"
	if cfg.Within > 0 {
		spread = "within " + cfg.Within.String()
	}
	rep := &PayReport{Rows: []PayRow{
		{"burst: orders created", prep},
		{fmt.Sprintf("burst: %d notified %s (open loop, pool %d)", cfg.Orders, spread, cfg.Pool), res},
	}, Check: check}
	if paid != cfg.Orders || mid-before != want || unacked > 0 {
		return rep, errors.New("burst check failed: " + check)
	}
	return rep, nil
}

// burst sends bodies open loop as loadBurst describes and returns the
// acknowledged ones' latencies (Result.ByStatus counts every attempt: 200
// acknowledged, 0 timed out or cut, others the status that refused it) and
// the number of dropped attempts.
func burst(ctx context.Context, cfg Config, bodies [][]byte) (*Result, int) {
	n := len(bodies)
	tr := &http.Transport{MaxIdleConns: cfg.Pool, MaxIdleConnsPerHost: cfg.Pool, DisableCompression: true, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: cfg.NotifyTimeout, Control: loopbackOnly}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	pool := make(chan struct{}, cfg.Pool)
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, n)
		byStatus = map[int]int{}
		firstErr string
		dropped  atomic.Int64
		wg       sync.WaitGroup
	)
	record := func(status int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		byStatus[status]++
		if status != http.StatusOK && firstErr == "" {
			firstErr = fmt.Sprintf("status %d: %s", status, msg)
		}
	}
	// attempt sends body once with WeChat Pay's deadline; true when
	// acknowledged.
	attempt := func(body []byte) bool {
		actx, cancel := context.WithTimeout(ctx, cfg.NotifyTimeout)
		defer cancel()
		b, err := do(actx, client, http.MethodPost, cfg.Base+"/wxpay/notify", body, map[string]string{"Content-Type": "text/xml"})
		if err == nil {
			err = checkAck(b)
		}
		if err != nil {
			var oe *opError
			if errors.As(err, &oe) {
				record(oe.status, oe.msg)
			} else {
				record(0, err.Error())
			}
			return false
		}
		record(http.StatusOK, "")
		return true
	}
	start := time.Now()
	for i := range n {
		at := start
		if cfg.Within > 0 {
			at = start.Add(time.Duration(int64(cfg.Within) * int64(i) / int64(n)))
		}
		if !sleepCtx(ctx, time.Until(at)) {
			break
		}
		select {
		case pool <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-pool }()
			for a := range cfg.Attempts {
				if a > 0 {
					<-pool // no slot held while waiting to retry
					ok := sleepCtx(ctx, cfg.RetryAfter)
					pool <- struct{}{}
					if !ok {
						return
					}
				}
				if attempt(bodies[i]) {
					d := time.Since(at)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					return
				}
				dropped.Add(1)
				if ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return &Result{Elapsed: time.Since(start), Latencies: lat, ByStatus: byStatus, FirstErr: firstErr}, int(dropped.Load())
}

// sleepCtx waits d (nothing when d ≤ 0); false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
