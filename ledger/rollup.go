package ledger

import (
	"context"
	"log/slog"
	"time"

	"tollgate"
)

// The daily rollup of usage (issue 21). Every store keeps, beside the
// per-call usage records, their sums per Beijing day, account, model and
// deployment, for the days before a watermark (RollupState.RolledBefore).
// UsageTotals and UsageReport add the rollup of the whole rolled days in
// their period to the per-call records of the rest (today, and the partial
// days at its ends), in one snapshot, so their answer is exact at any
// moment and their cost follows the days and groups asked for, not the
// rows of the ledger.
//
// The UsageRoller moves the watermark one closed day at a time (after a
// grace period past Beijing midnight), off the gateway's path. A record
// inserted late — its created_at before the watermark, e.g. a settle the
// meter kept for retry through a store outage — is added to the rollup by
// the store in the insert's own transaction (a database trigger), so no
// record is ever missing from a report. With a retention, the per-call
// records of rolled days older than it are deleted in bounded batches; the
// reports still sum them from the rollup.

// RollupState is the rollup's watermarks, each a Beijing midnight.
type RollupState struct {
	// RolledBefore: every day before it is in the rollup.
	RolledBefore time.Time
	// PrunedBefore: per-call records before it may have been deleted
	// (never after RolledBefore).
	PrunedBefore time.Time
}

// UsageRollupStore maintains the daily rollup of usage. Implementations:
// store/sqlite, store/postgres (conformance: store/storetest). Its
// methods are safe for concurrent use, and on PostgreSQL by several
// instances at once.
type UsageRollupStore interface {
	// RollUsage rolls up the next day not yet rolled that ended at or
	// before closedBefore — the first day with usage records, with the
	// empty days before it — and moves RolledBefore past it, the sums
	// written in one transaction; with no such day it moves RolledBefore
	// to the last midnight at or before closedBefore over empty days
	// only. It returns the state after and whether RolledBefore moved.
	// Idempotent: a day is rolled once, whoever rolls it.
	RollUsage(ctx context.Context, closedBefore time.Time) (RollupState, bool, error)
	// PruneUsage deletes, in one transaction, up to limit per-call usage
	// records created before before's Beijing midnight, and never any of
	// a day not rolled up (nor after RolledBefore). It returns how many
	// it deleted. Errors: EINVALID (limit outside 1..MaxUsagePruneBatch).
	PruneUsage(ctx context.Context, before time.Time, limit int) (int, error)
	// UsageRollupState returns the watermarks.
	UsageRollupState(ctx context.Context) (RollupState, error)
}

// Defaults of a UsageRoller.
const (
	// DefaultRollupGrace is how long past Beijing midnight the day before
	// is left to the per-call records, so late settles land first (a late
	// one after it is still counted: see UsageRollupStore).
	DefaultRollupGrace = time.Hour
	// DefaultRollupInterval is how often the roller looks for a closed day.
	DefaultRollupInterval = 10 * time.Minute
	// DefaultUsagePruneBatch is how many records one prune transaction
	// deletes at most.
	DefaultUsagePruneBatch = 5000
	// MaxUsagePruneBatch bounds UsageRollupStore.PruneUsage's limit.
	MaxUsagePruneBatch = 50_000
	// MinUsageRetention is the shortest retention of per-call records:
	// RecordUsage and Settle retried within it still find their record.
	MinUsageRetention = 24 * time.Hour
)

// UsageRoller rolls up every closed day (RollOnce), then, with a
// Retention, deletes the per-call records older than it of rolled days.
// Its zero value (with Store) works; several instances may run it on one
// database at once.
type UsageRoller struct {
	Store UsageRollupStore
	// Clock tells the time; default the system clock.
	Clock tollgate.Clock
	// Grace defaults to DefaultRollupGrace.
	Grace time.Duration
	// Retention is how long per-call records are kept; 0 keeps them
	// forever. Otherwise at least MinUsageRetention.
	Retention time.Duration
	// Interval defaults to DefaultRollupInterval, Batch to
	// DefaultUsagePruneBatch (at most MaxUsagePruneBatch).
	Interval time.Duration
	Batch    int
	Logger   *slog.Logger
}

func (r *UsageRoller) defaults() (tollgate.Clock, time.Duration, time.Duration, int, *slog.Logger) {
	grace, iv, batch, log := r.Grace, r.Interval, r.Batch, r.Logger
	if grace <= 0 {
		grace = DefaultRollupGrace
	}
	if iv <= 0 {
		iv = DefaultRollupInterval
	}
	if batch <= 0 {
		batch = DefaultUsagePruneBatch
	}
	batch = min(batch, MaxUsagePruneBatch)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return tollgate.ClockOr(r.Clock), grace, iv, batch, log
}

// RollOnce rolls up every day closed for Grace, one transaction per day,
// then prunes (with a Retention) batch by batch until a batch comes back
// short; it returns how many days moved the watermark and how many records
// it deleted. It stops at ctx's end.
func (r *UsageRoller) RollOnce(ctx context.Context) (days, pruned int, err error) {
	clock, grace, _, batch, _ := r.defaults()
	if r.Retention != 0 && r.Retention < MinUsageRetention {
		return 0, 0, fail(tollgate.EINVALID, "ledger.UsageRoller", "retention must be 0 or at least %s", MinUsageRetention)
	}
	now := clock.Now()
	for ctx.Err() == nil {
		_, moved, err := r.Store.RollUsage(ctx, now.Add(-grace))
		if err != nil {
			return days, 0, err
		}
		if !moved {
			break
		}
		days++
	}
	if r.Retention == 0 {
		return days, 0, ctx.Err()
	}
	before := now.Add(-r.Retention)
	for ctx.Err() == nil {
		n, err := r.Store.PruneUsage(ctx, before, batch)
		pruned += n
		if err != nil || n < batch {
			return days, pruned, err
		}
	}
	return days, pruned, ctx.Err()
}

// Run rolls up (and prunes) now and then every Interval until ctx ends,
// and returns ctx's error; a store error is logged and tried again at the
// next interval.
func (r *UsageRoller) Run(ctx context.Context) error {
	clock, _, iv, _, log := r.defaults()
	for {
		days, pruned, err := r.RollOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Error("usage rollup", "err", err)
		} else if days > 0 || pruned > 0 {
			log.Info("usage rolled up", "days", days, "pruned", pruned, "retention", r.Retention.String())
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

// BeijingMidnight returns the Beijing midnight at or before t, in UTC.
func BeijingMidnight(t time.Time) time.Time {
	y, m, d := t.In(tollgate.Beijing).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, tollgate.Beijing).UTC()
}

// UsageSplit is how a store sums the usage of [from, to): the rollup's
// whole days DayFrom ≤ day < DayTo ("2006-01-02", Beijing; none when
// DayFrom ≥ DayTo) and the per-call records of the two ranges Raw[i][0] ≤
// CreatedAt < Raw[i][1] (either may be empty).
type UsageSplit struct {
	DayFrom, DayTo string
	Raw            [2][2]time.Time
}

// SplitUsage splits [from, to) by the rollup's state st: the whole Beijing
// days in it before st.RolledBefore from the rollup, the rest from the
// per-call records. Errors: EINVALID when a part read from the per-call
// records lies before st.PrunedBefore (their records may be deleted: a
// period there must begin and end at Beijing midnights).
func SplitUsage(from, to time.Time, st RollupState) (UsageSplit, error) {
	from, to = from.UTC(), to.UTC()
	a := BeijingMidnight(from)
	if a.Before(from) {
		a = a.AddDate(0, 0, 1)
	}
	b := BeijingMidnight(to)
	if rb := st.RolledBefore.UTC(); rb.Before(b) {
		b = rb
	}
	var sp UsageSplit
	if a.Before(b) {
		sp.DayFrom, sp.DayTo = a.In(tollgate.Beijing).Format(time.DateOnly), b.In(tollgate.Beijing).Format(time.DateOnly)
		sp.Raw = [2][2]time.Time{{from, a}, {b, to}}
	} else {
		sp.Raw = [2][2]time.Time{{from, to}, {to, to}}
	}
	for _, r := range sp.Raw {
		if r[0].Before(r[1]) && r[0].Before(st.PrunedBefore) {
			return UsageSplit{}, fail(tollgate.EINVALID, "ledger.SplitUsage",
				"per-call usage before %s is deleted (--usage-retention): a period before it must begin and end at Beijing midnight",
				st.PrunedBefore.In(tollgate.Beijing).Format(time.DateOnly))
		}
	}
	return sp, nil
}
