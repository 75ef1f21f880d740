package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tollgate"
)

// op is one ledger operation: it declares the rows it reads, then applies
// its rule to the loaded state. apply must check everything before changing
// anything, so a failing op leaves the state as it found it, and must be
// deterministic, because a transaction that lost a race runs again.
type op interface {
	need(n *needs)
	apply(s *state) (any, error)
}

// Options tunes a Service. The zero value is usable.
type Options struct {
	// Now is the clock. Default time.Now. Times are stored in UTC with
	// microsecond precision.
	Now func() time.Time
	// MaxBatch caps how many reserve/settle/release operations share one
	// transaction. Default 256.
	MaxBatch int
	// BatchWindow is how long a batch waits for more operations after the
	// first one arrives. Default 0: a batch takes whatever queued while
	// the previous transaction ran (group commit without added latency).
	BatchWindow time.Duration
	// Committers is how many batches may run at once. Default 1 (right
	// for SQLite's single writer); PostgreSQL benefits from a few.
	Committers int
	// MaxAttempts bounds how often a transaction that lost a race
	// (ErrRetry) is run. Default 10.
	MaxAttempts int
	// StrictMetering makes every reserve/settle/release batch wait for
	// the disk like a payment does. Off by default: metering batches are
	// committed with WithRelaxedCommit (see there for what a machine
	// crash can lose: never money in, only the last instants of usage).
	StrictMetering bool
}

// Service applies the money rules to a Store. All methods are safe for
// concurrent use. Reserve, Settle and Release are group-committed: the
// operations that arrive together share one store transaction, and each
// gets its own result.
type Service struct {
	store Store
	opt   Options
	queue chan *pending
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	batches    atomic.Int64
	batchedOps atomic.Int64
}

// Stats counts the group committer's work since New.
type Stats struct {
	Batches    int64 // transactions run by the group committer
	BatchedOps int64 // reserve/settle/release operations they carried
}

// Stats returns how many batches the group committer ran and how many
// operations they carried; BatchedOps/Batches is the mean batch size.
func (s *Service) Stats() Stats {
	return Stats{Batches: s.batches.Load(), BatchedOps: s.batchedOps.Load()}
}

type pending struct {
	op   op
	done chan result
}

type result struct {
	val any
	err error
}

// New returns a Service over store and starts its batch committers; Close
// stops them.
func New(store Store, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Committers <= 0 {
		opt.Committers = 1
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 10
	}
	s := &Service{store: store, opt: opt, queue: make(chan *pending, 4096), stop: make(chan struct{})}
	for range opt.Committers {
		s.wg.Add(1)
		go s.commitLoop()
	}
	return s
}

// Close stops the batch committers. Operations still queued fail with
// EUNAVAILABLE. It does not close the store.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		for {
			select {
			case p := <-s.queue:
				p.done <- result{err: tollgate.Errorf(tollgate.EUNAVAILABLE, "ledger is shutting down")}
			default:
				return
			}
		}
	})
	return nil
}

// Store returns the store the service writes to.
func (s *Service) Store() Store { return s.store }

func (s *Service) now() time.Time { return s.opt.Now().UTC().Truncate(time.Microsecond) }

// run applies ops in one transaction, running it again while it loses
// races. It returns one result per op, or the error that failed the whole
// transaction.
func (s *Service) run(ctx context.Context, ops ...op) ([]result, error) {
	var results []result
	var err error
	for attempt := 1; ; attempt++ {
		err = s.store.Update(ctx, func(tx Tx) error {
			n := newNeeds()
			for _, o := range ops {
				o.need(n)
			}
			st, err := load(ctx, tx, s.now(), n)
			if err != nil {
				return err
			}
			results = make([]result, len(ops))
			for i, o := range ops {
				results[i].val, results[i].err = o.apply(st)
			}
			return st.flush(ctx, tx)
		})
		if err == nil {
			return results, nil
		}
		if !errors.Is(err, ErrRetry) || attempt >= s.opt.MaxAttempts || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, ErrRetry) {
		return nil, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Message: "ledger is busy, retry", Op: "ledger", Err: err}
	}
	return nil, fmt.Errorf("ledger transaction: %w", err)
}

// do runs one op in its own transaction.
func (s *Service) do(ctx context.Context, o op) (any, error) {
	rs, err := s.run(ctx, o)
	if err != nil {
		return nil, err
	}
	return rs[0].val, rs[0].err
}

// batched hands o to the group committer and waits for its result. If ctx
// ends first the operation may still commit; callers retry with the same
// hold id, which is idempotent.
func (s *Service) batched(ctx context.Context, o op) (any, error) {
	p := &pending{op: o, done: make(chan result, 1)}
	select {
	case <-s.stop:
		return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "ledger is shutting down")
	case s.queue <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("queue ledger operation: %w", ctx.Err())
	}
	select {
	case r := <-p.done:
		return r.val, r.err
	case <-s.stop:
		// Close may have run after this op was queued; its outcome is
		// unknown, as after a timeout.
		select {
		case r := <-p.done:
			return r.val, r.err
		default:
			return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "ledger is shutting down")
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for ledger operation: %w", ctx.Err())
	}
}

func (s *Service) commitLoop() {
	defer s.wg.Done()
	for {
		var first *pending
		select {
		case <-s.stop:
			return
		case first = <-s.queue:
		}
		batch := s.collect(first)
		s.commit(batch)
	}
}

// collect gathers the operations queued behind first, waiting up to
// BatchWindow for more, up to MaxBatch.
func (s *Service) collect(first *pending) []*pending {
	batch := []*pending{first}
	var timer <-chan time.Time
	if s.opt.BatchWindow > 0 {
		t := time.NewTimer(s.opt.BatchWindow)
		defer t.Stop()
		timer = t.C
	}
	for len(batch) < s.opt.MaxBatch {
		select {
		case p := <-s.queue:
			batch = append(batch, p)
			continue
		default:
		}
		if timer == nil {
			break
		}
		select {
		case p := <-s.queue:
			batch = append(batch, p)
			continue
		case <-timer:
		}
		break
	}
	return batch
}

// commit runs a batch in one transaction. If the transaction as a whole
// fails, each op runs alone, so one op that breaks the store cannot fail
// the others.
func (s *Service) commit(batch []*pending) {
	ctx := context.Background()
	if !s.opt.StrictMetering {
		ctx = WithRelaxedCommit(ctx)
	}
	s.batches.Add(1)
	s.batchedOps.Add(int64(len(batch)))
	ops := make([]op, len(batch))
	for i, p := range batch {
		ops[i] = p.op
	}
	rs, err := s.run(ctx, ops...)
	if err != nil && len(batch) > 1 {
		for _, p := range batch {
			v, err := s.do(ctx, p.op)
			p.done <- result{val: v, err: err}
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: err}
			continue
		}
		p.done <- rs[i]
	}
}

// View runs fn in a read-only snapshot of the store.
func (s *Service) view(ctx context.Context, fn func(ReadTx) error) error {
	if err := s.store.View(ctx, fn); err != nil {
		return fmt.Errorf("ledger read: %w", err)
	}
	return nil
}
