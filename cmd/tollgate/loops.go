package main

import (
	"context"
	"time"

	"tollgate/ledger"
	"tollgate/webhook"
)

// startLoops runs the background work until Close: the hold sweeper and
// grant expiry every 30 s, the payment poller, the webhook dispatcher and
// the outbox's pruner (hourly, unless --webhook-retention is 0) and the
// usage roller (every 10 minutes; it prunes with --usage-retention).
func (m *Main) startLoops(ctx context.Context, svc *services, usage ledger.UsageRollupStore) {
	led, pay := svc.ledger, svc.payments
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			now := time.Now()
			if n, err := led.ExpireHolds(ctx, now); err != nil && ctx.Err() == nil {
				m.log.Error("expire holds", "err", err)
			} else if n > 0 {
				m.log.Info("expired holds", "count", n)
			}
			if n, err := led.ExpireGrants(ctx, now); err != nil && ctx.Err() == nil {
				m.log.Error("expire grants", "err", err)
			} else if n > 0 {
				m.log.Info("expired provisional grants", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		if err := pay.RunPoller(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("payment poller stopped", "err", err)
		}
	}()
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		_ = svc.webhooks.Run(ctx) // returns only when ctx ends; logs its own errors
	}()
	if ret := m.Config.WebhookRetention; ret > 0 {
		// The outbox is pruned of finished events past --webhook-retention
		// (every instance may prune: each batch takes its own rows).
		pr := &webhook.Pruner{Store: svc.webhooks.Store, Retention: ret, Logger: m.log}
		m.loops.Add(1)
		go func() {
			defer m.loops.Done()
			_ = pr.Run(ctx) // returns only when ctx ends; logs its own errors
		}()
	}
	// Every closed Beijing day's usage is rolled up for the reports, and
	// with --usage-retention the per-call records of old rolled days are
	// deleted (every instance may run it: a day is rolled once).
	ur := &ledger.UsageRoller{Store: usage, Retention: m.Config.UsageRetention, Logger: m.log}
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		_ = ur.Run(ctx) // returns only when ctx ends; logs its own errors
	}()
	if svc.v3 != nil && svc.v3.Certificates != nil {
		// Certificate mode: the platform certificates downloaded at start
		// are refreshed every 12 hours (and on an unknown serial).
		m.loops.Add(1)
		go func() {
			defer m.loops.Done()
			_ = svc.v3.Certificates.Run(ctx) // returns only when ctx ends
		}()
	}
}
