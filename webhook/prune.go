package webhook

import (
	"context"
	"log/slog"
	"time"

	"tollgate"
)

// Defaults of a Pruner.
const (
	// DefaultRetention is how long finished events are kept: 30 days,
	// ten times MaxAge, so an event is long settled and an app has had
	// time to ask about it before it goes.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultPruneInterval is how often the outbox is pruned.
	DefaultPruneInterval = time.Hour
	// DefaultPruneBatch is how many events one transaction deletes at
	// most, so pruning a large backlog never holds a long transaction.
	DefaultPruneBatch = 500
	// MaxPruneBatch bounds Store.PruneEvents's limit.
	MaxPruneBatch = 10_000
)

// Pruner deletes, every Interval, the outbox's events older than
// Retention that are fanned out and finished (every delivery delivered
// or failed), with their deliveries, in batches of Batch events. An
// event with a delivery still pending — an endpoint down or disabled for
// longer than the retention — is kept until it is delivered or failed.
// Its zero value (with Store) works; several instances may prune one
// database at once.
type Pruner struct {
	Store Store
	// Clock tells the time; default the system clock.
	Clock tollgate.Clock
	// Retention defaults to DefaultRetention; negative keeps everything
	// (Run returns at once).
	Retention time.Duration
	// Interval defaults to DefaultPruneInterval, Batch to
	// DefaultPruneBatch (at most MaxPruneBatch).
	Interval time.Duration
	Batch    int
	Logger   *slog.Logger
}

func (p *Pruner) defaults() (tollgate.Clock, time.Duration, time.Duration, int, *slog.Logger) {
	ret, iv, batch, log := p.Retention, p.Interval, p.Batch, p.Logger
	if ret == 0 {
		ret = DefaultRetention
	}
	if iv <= 0 {
		iv = DefaultPruneInterval
	}
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	batch = min(batch, MaxPruneBatch)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return tollgate.ClockOr(p.Clock), ret, iv, batch, log
}

// PruneOnce deletes every prunable event older than the retention, a
// batch per transaction, until a batch comes back short or ctx ends, and
// returns how many it deleted. With a negative Retention it does nothing.
func (p *Pruner) PruneOnce(ctx context.Context) (int, error) {
	clock, ret, _, batch, _ := p.defaults()
	if ret < 0 {
		return 0, nil
	}
	before := clock.Now().Add(-ret)
	total := 0
	for {
		n, err := p.Store.PruneEvents(ctx, before, batch)
		total += n
		if err != nil || n < batch || ctx.Err() != nil {
			return total, err
		}
	}
}

// Run prunes now and then every Interval until ctx ends, and returns
// ctx's error; a store error is logged and tried again at the next
// interval. With a negative Retention it returns nil at once.
func (p *Pruner) Run(ctx context.Context) error {
	clock, ret, iv, _, log := p.defaults()
	if ret < 0 {
		return nil
	}
	for {
		n, err := p.PruneOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Error("webhook outbox prune", "err", err)
		} else if n > 0 {
			log.Info("webhook outbox pruned", "events", n, "retention", ret.String())
		}
		t := clock.NewTimer(iv)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}
