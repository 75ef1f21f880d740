package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"tollgate/wxpay/wxpaysim"
)

// loadBacklog measures notifications while the poller works through a
// backlog: it places cfg.Backlog orders through serve and leaves them
// unpaid (the emulator knows each one, so the poller's queries are real:
// NOTPAY answers, each order queried again on its backoff), then runs the
// notify mode's load (cfg.Orders other orders, first notifications
// credited, then repeats) and reads the emulator's counters around it: the
// order queries per second during the notifications (average, and the
// most in one sampled second) and the busiest sliding minute since the
// emulator started, which must not exceed cfg.QueryLimit.
//
// The backlog is created through POST /v1/payments/orders, as a user
// would, rather than written into the database: only then does the
// emulator hold the orders the poller queries, and serve's own state
// (lease, next poll time) is what it makes for any order.
func loadBacklog(ctx context.Context, cfg Config, client *http.Client, id string) (*PayReport, error) {
	sim := strings.TrimRight(cfg.Sim, "/")
	if sim == "" {
		sim = strings.TrimRight(cfg.Base, "/") + "/sandbox/wxpay"
	}
	if _, err := simStats(ctx, client, sim); err != nil {
		return nil, fmt.Errorf("the emulator's counters at %s/sim/stats: %w", sim, err)
	}
	var rows []PayRow
	if cfg.Backlog > 0 {
		_, res, err := createOrders(ctx, client, cfg, "tgload-"+id+"-backlog", cfg.Backlog)
		if res != nil {
			rows = append(rows, PayRow{fmt.Sprintf("backlog: %d unpaid orders created", cfg.Backlog), res})
		}
		if err != nil {
			return &PayReport{Rows: rows}, err
		}
	}
	s := &querySampler{client: client, sim: sim}
	stop, err := s.start(ctx)
	if err != nil {
		return &PayReport{Rows: rows}, err
	}
	rep, nerr := loadNotify(ctx, cfg, client, id)
	q, serr := stop()
	if rep == nil {
		return &PayReport{Rows: rows}, nerr
	}
	for _, r := range rep.Rows {
		rows = append(rows, PayRow{fmt.Sprintf("%s, %d pending", r.Name, cfg.Backlog), r.Res})
	}
	rep.Rows = rows
	if serr != nil {
		return rep, serr
	}
	rep.Check += fmt.Sprintf("; poller's order queries at the emulator during the notify phase (its orders created, notified, repeated): %.0f/s (most in one second: %d), "+
		"busiest sliding minute since the emulator started: %d (limit %d), %d answered in all",
		q.rate, q.maxPerSecond, q.peakPerMinute, cfg.QueryLimit, q.total)
	if nerr != nil {
		return rep, nerr
	}
	if q.peakPerMinute > cfg.QueryLimit {
		return rep, errors.New("query limit exceeded: " + rep.Check)
	}
	return rep, nil
}

// simStats reads the emulator's counters.
func simStats(ctx context.Context, client *http.Client, sim string) (wxpaysim.Stats, error) {
	var st wxpaysim.Stats
	b, err := do(ctx, client, http.MethodGet, sim+"/sim/stats", nil, nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("stats answer %.200s: %w", b, err)
	}
	return st, nil
}

// querySampler reads the emulator's order query count once a second while
// a phase runs.
type querySampler struct {
	client *http.Client
	sim    string
}

// queryRates are what a querySampler saw.
type queryRates struct {
	rate          float64 // order queries per second over the phase
	maxPerSecond  int     // the most between two samples, per second
	peakPerMinute int     // the emulator's busiest sliding minute
	total         int     // order queries answered since the emulator started
}

// start takes the first sample and samples until the returned stop is
// called; stop takes the last sample and returns the rates.
func (s *querySampler) start(ctx context.Context) (stop func() (queryRates, error), err error) {
	first, err := simStats(ctx, s.client, s.sim)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	done := make(chan struct{})
	var (
		mu      sync.Mutex
		maxRate float64
		last    = first.Calls["query"]
		lastAt  = t0
		sErr    error
	)
	sample := func() {
		st, err := simStats(ctx, s.client, s.sim)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if sErr == nil && ctx.Err() == nil {
				sErr = err
			}
			return
		}
		now := time.Now()
		if dt := now.Sub(lastAt).Seconds(); dt > 0 {
			maxRate = max(maxRate, float64(st.Calls["query"]-last)/dt)
		}
		last, lastAt = st.Calls["query"], now
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
				sample()
			}
		}
	})
	return func() (queryRates, error) {
		close(done)
		wg.Wait()
		end, err := simStats(ctx, s.client, s.sim)
		if err != nil {
			return queryRates{}, fmt.Errorf("the emulator's counters after: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		r := queryRates{maxPerSecond: int(maxRate + 0.5), peakPerMinute: end.PeakQueriesPerMinute, total: end.Calls["query"]}
		if el := time.Since(t0).Seconds(); el > 0 {
			r.rate = float64(end.Calls["query"]-first.Calls["query"]) / el
		}
		return r, sErr
	}, nil
}
