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
	// Clock tells the time (hold and grant expiry, record times). Default
	// tollgate.SystemClock. Times are stored in UTC with microsecond
	// precision.
	Clock tollgate.Clock
	// MaxBatch caps how many reserve/settle/release operations share one
	// transaction. Default 256.
	MaxBatch int
	// BatchWindow is how long a batch waits for more operations after the
	// first one arrives. Default 0: a batch takes whatever queued while
	// the previous transaction ran (group commit without added latency).
	BatchWindow time.Duration
	// LaterWindow is how long a batch that starts with a settle handed
	// over by SettleLater waits for more operations: nobody waits for
	// it, so a longer window costs no latency and shares one commit among
	// more settles. Waiting ends early when an op somebody waits for, or
	// a full batch (MaxBatch), is queued. Default 0 (BatchWindow applies).
	LaterWindow time.Duration
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
	// MemoryHolds keeps lot-funded holds in memory instead of in the
	// store: a Reserve is a conditional change of an in-memory balance
	// (no transaction), and the hold is written with its settle, in the
	// settle's transaction. Only for a store this Service is the one
	// writer of (SQLite, with serve's lock on its data directory): every
	// change of an account goes through this Service, which keeps each
	// account's balance as last committed. A crash drops the memory
	// holds, as a crashed request's hold would expire. It implies one
	// committer. See memhold.go.
	MemoryHolds bool
	// CommitterStart, when set, runs first in each committer goroutine,
	// before it takes any operation (serve lowers the goroutine's CPU
	// priority there, internal/cpuprio); the func it returns, when not
	// nil, runs when the committer ends.
	CommitterStart func() (end func())
	// EventsCommitted, when set, is called after a transaction that
	// appended webhook events committed (serve wakes its webhook
	// dispatcher: the events are delivered at once, not at its next poll).
	// It must not block.
	EventsCommitted func()
}

// Service applies the money rules to a Store. All methods are safe for
// concurrent use. Reserve, Settle and Release are group-committed: the
// operations that arrive together share one store transaction, and each
// gets its own result.
type Service struct {
	store Store
	opt   Options
	queue chan *pending
	// urgent wakes a committer sleeping through a LaterWindow: an op
	// somebody waits for, or a full batch, is queued.
	urgent chan struct{}
	stop   chan struct{}
	closed chan struct{} // closed when Close has answered every queued op
	wg     sync.WaitGroup
	once   sync.Once

	batches    atomic.Int64
	batchedOps atomic.Int64

	// inflight holds, for every op handed to the committers and not yet
	// answered, a channel closed when it is: Sync waits on a snapshot.
	inflightMu sync.Mutex
	inflight   map[*pending]chan struct{}

	mem *memHolds // nil unless Options.MemoryHolds
}

// Stats counts the group committer's work since New.
type Stats struct {
	Batches    int64 // transactions run by the group committer
	BatchedOps int64 // reserve/settle/release operations they carried
	// Queued is how many operations wait in the queue for a committer now.
	Queued int
}

// Stats returns how many batches the group committer ran and how many
// operations they carried; BatchedOps/Batches is the mean batch size.
func (s *Service) Stats() Stats {
	return Stats{Batches: s.batches.Load(), BatchedOps: s.batchedOps.Load(), Queued: len(s.queue)}
}

type pending struct {
	op   op
	done chan result
	// alone marks an operation that runs in its own transaction with
	// its caller's ctx (payments, refunds, grants: committed strictly),
	// queued behind the metering batches when MemoryHolds is on, so that
	// every change of an account is published in commit order.
	alone bool
	ctx   context.Context
	// then, if set, receives the result instead of done (SettleLater).
	then func(result)
	// fin, set by track, ends the op's entry in the Service's inflight set.
	fin func()
	// keep marks an op that commits even when its caller stops waiting
	// (settles and releases: revenue, and credit given back). Any other
	// op a caller stops waiting for is withdrawn, or undone (abandon).
	keep bool
	// strict marks an op whose caller is answered only after a strict
	// (fsynced) commit: a payment credited, a grant issued. It shares a
	// batch with whatever else queued (group commit: one fsync for the
	// lot), and a batch that carries one commits strictly.
	strict bool
	// stage is where the op is between its caller and a committer: one of
	// the op* stages below, moved only by compare-and-swap, so that a
	// caller that stops waiting and a committer that takes the op agree on
	// which of them deals with it.
	stage atomic.Int32
}

// Stages of a pending op. queued → taken → answered is the usual path; a
// caller that stops waiting moves queued → withdrawn (the committer skips
// the op: it never runs) or taken → orphaned (the committer undoes it
// after its commit, see undoer).
const (
	opQueued int32 = iota
	opTaken
	opAnswered
	opWithdrawn
	opOrphaned
)

// take marks p as taken into a batch; false when its caller withdrew it,
// in which case p is answered (unblocking Sync) and must not run.
func (p *pending) take() bool {
	if p.stage.CompareAndSwap(opQueued, opTaken) {
		return true
	}
	p.reply(result{err: errWithdrawn})
	return false
}

// abandon is the caller's side: it stops waiting for p. It reports false
// when p was answered already (its result is in p.done).
func (p *pending) abandon() bool {
	return p.stage.CompareAndSwap(opQueued, opWithdrawn) || p.stage.CompareAndSwap(opTaken, opOrphaned)
}

// undoer is an op that can be taken back after it committed, for a caller
// that stopped waiting for it: undo returns the op that does it (nil:
// nothing to undo), given the op's result value.
type undoer interface {
	undo(v any) op
}

// errWithdrawn answers an op whose caller stopped waiting before any
// committer took it: it never ran.
var errWithdrawn = errors.New("ledger: operation withdrawn by its caller")

// errNeedsMemLock is an op's answer when it must see the memory holds to
// decide (a late settle that may draw the account's lots) but runs in a
// batch that cannot: the committer runs it again alone, under the memory
// lock. It changes nothing, and no caller sees it.
var errNeedsMemLock = errors.New("ledger: operation needs the memory lock")

type result struct {
	val any
	err error
}

// New returns a Service over store and starts its batch committers; Close
// stops them.
func New(store Store, opt Options) *Service {
	opt.Clock = tollgate.ClockOr(opt.Clock)
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Committers <= 0 || opt.MemoryHolds {
		// Memory holds need every change published in commit order: one
		// committer.
		opt.Committers = 1
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 10
	}
	s := &Service{store: store, opt: opt, queue: make(chan *pending, 4096), urgent: make(chan struct{}, 1),
		stop: make(chan struct{}), closed: make(chan struct{}), inflight: map[*pending]chan struct{}{}}
	if opt.MemoryHolds {
		s.mem = newMemHolds()
	}
	for range opt.Committers {
		s.wg.Add(1)
		go s.commitLoop()
	}
	return s
}

// Close stops taking operations, commits those already queued (settles
// handed over by SettleLater among them), then stops the batch
// committers. It does not close the store.
func (s *Service) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		defer close(s.closed)
		for {
			select {
			case p := <-s.queue:
				p.reply(result{err: errShuttingDown()})
			default:
				return
			}
		}
	})
	return nil
}

// Store returns the store the service writes to.
func (s *Service) Store() Store { return s.store }

func (s *Service) now() time.Time { return s.opt.Clock.Now().UTC().Truncate(time.Microsecond) }

// run applies ops in one transaction, running it again while it loses
// races. It returns one result per op, or the error that failed the whole
// transaction.
func (s *Service) run(ctx context.Context, ops ...op) ([]result, error) {
	var results []result
	var committed *state
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
			st.memHeld = s.mem.heldOf(ctx, st.accounts)
			st.memBlind = s.mem != nil && !locked(ctx)
			results = make([]result, len(ops))
			for i, o := range ops {
				results[i].val, results[i].err = o.apply(st)
			}
			committed = st
			return st.flush(ctx, tx)
		})
		if err == nil {
			s.mem.published(ctx, committed, ops, results)
			if len(committed.events) > 0 && s.opt.EventsCommitted != nil {
				s.opt.EventsCommitted()
			}
			return results, nil
		}
		if !errors.Is(err, ErrRetry) || attempt >= s.opt.MaxAttempts || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, ErrRetry) {
		err = &tollgate.Error{Code: tollgate.EUNAVAILABLE, Message: "ledger is busy, retry", Op: "ledger", Err: err}
	} else {
		err = fmt.Errorf("ledger transaction: %w", err)
	}
	if ctx.Err() != nil {
		return nil, err // the caller gave up: the store did not fail
	}
	return nil, storeError{err}
}

// ErrStore is wrapped by the error of an operation whose transaction the
// store could not run or commit: an I/O error, a full disk, a read-only
// file, a lost connection, a race lost Options.MaxAttempts times. No rule
// refused the operation, and running it again (a settle, like a reserve,
// is idempotent by its hold id) may succeed once the store recovers. A
// rule's refusal (EINVALID, ENOTFOUND, ECONFLICT, EINSUFFICIENT), a
// Service shutting down and a caller's ended context never wrap it.
// Nothing of the operation was written, except after a PostgreSQL commit
// of unknown outcome (postgres.ErrCommitUnknown), which a repeat resolves.
var ErrStore = errors.New("ledger: the store failed")

// storeError marks a transaction's failure as the store's (ErrStore),
// keeping its message and its chain (codes, ErrRetry) as they were.
type storeError struct{ err error }

func (e storeError) Error() string        { return e.err.Error() }
func (e storeError) Unwrap() error        { return e.err }
func (e storeError) Is(target error) bool { return target == ErrStore }

// do runs one op in its own transaction: in the caller's goroutine, or
// with MemoryHolds in the committer's, in queue order.
func (s *Service) do(ctx context.Context, o op) (any, error) {
	if s.mem != nil {
		return s.enqueue(ctx, &pending{op: o, done: make(chan result, 1), alone: true, ctx: ctx})
	}
	return s.runAlone(ctx, o)
}

func (s *Service) runAlone(ctx context.Context, o op) (any, error) {
	rs, err := s.run(ctx, o)
	if err != nil {
		return nil, err
	}
	return rs[0].val, rs[0].err
}

// batched hands o to the group committer and waits for its result. If ctx
// ends first, o is withdrawn when no committer took it yet, else undone
// after its commit when it is an undoer (a reserve is released); see
// enqueue.
func (s *Service) batched(ctx context.Context, o op) (any, error) {
	return s.enqueue(ctx, &pending{op: o, done: make(chan result, 1)})
}

// durable hands o to the group committer like batched, but its batch
// commits strictly (on disk before anyone is answered, whatever
// StrictMetering says): payments and grants share one fsync with the ops
// that queued beside them instead of paying one each. An op that must
// see the memory holds answers errNeedsMemLock in a batch and runs again
// alone under the lock (commit).
func (s *Service) durable(ctx context.Context, o op) (any, error) {
	return s.enqueue(ctx, &pending{op: o, done: make(chan result, 1), strict: true})
}

// track enters p in the inflight set until p.fin, which reply calls.
func (s *Service) track(p *pending) {
	ch := make(chan struct{})
	s.inflightMu.Lock()
	s.inflight[p] = ch
	s.inflightMu.Unlock()
	var once sync.Once
	p.fin = func() {
		once.Do(func() {
			s.inflightMu.Lock()
			delete(s.inflight, p)
			s.inflightMu.Unlock()
			close(ch)
		})
	}
}

// Sync waits until every operation handed to the committers before it was
// called has been answered (committed, and with MemoryHolds published),
// settles queued by SettleLater included, so that a read after it sees
// them. It sends nothing to the store; several committers are fine.
func (s *Service) Sync(ctx context.Context) error {
	s.inflightMu.Lock()
	waits := make([]chan struct{}, 0, len(s.inflight))
	for _, ch := range s.inflight {
		waits = append(waits, ch)
	}
	s.inflightMu.Unlock()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-s.closed: // Close answered all it could; nothing else will commit
			return nil
		case <-ctx.Done():
			return fmt.Errorf("wait for queued ledger operations: %w", ctx.Err())
		}
	}
	return nil
}

// closing reports whether Close has begun.
func (s *Service) closing() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// errShuttingDown is the answer to an operation that came after Close.
func errShuttingDown() error {
	return tollgate.Errorf(tollgate.EUNAVAILABLE, "ledger is shutting down")
}

// hand queues p for the committers. When Close has begun or ctx has ended
// first, it answers p with the error (so an op that marked state for its
// outcome, a memory hold's settle, undoes the mark) and returns it. An op
// to keep is queued whether or not ctx has ended.
func (s *Service) hand(ctx context.Context, p *pending) error {
	if p.keep {
		ctx = context.WithoutCancel(ctx)
	}
	err := s.queueUp(ctx, p)
	if err != nil {
		p.reply(result{err: err})
	}
	return err
}

// queueUp puts p on the queue, entered in the inflight set, unless Close
// has begun or ctx has ended.
func (s *Service) queueUp(ctx context.Context, p *pending) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("queue ledger operation: %w", err)
	}
	if s.closing() {
		return errShuttingDown()
	}
	s.track(p)
	select {
	case <-s.stop:
		return errShuttingDown()
	case s.queue <- p:
		// Wake a committer sleeping through a settle window when p waits
		// in the queue and somebody waits for it (an idle committer took it
		// already when the queue is empty: waking another would only split
		// its batch), or when the queue holds a full batch with the op a
		// committer holds.
		if n := len(s.queue); (p.then == nil && n > 0) || n >= s.opt.MaxBatch-1 {
			select {
			case s.urgent <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queue ledger operation: %w", ctx.Err())
	}
}

// enqueue hands p to the committers and waits for its result. When ctx
// ends first, the caller stops waiting: an op to keep commits all the
// same; any other is withdrawn if no committer took it yet, or undone
// after its commit (abandon, undoer). Either way the caller gets ctx's
// error, and nothing it asked for is left half done.
func (s *Service) enqueue(ctx context.Context, p *pending) (any, error) {
	if err := s.hand(ctx, p); err != nil {
		return nil, err
	}
	select {
	case r := <-p.done:
		return r.val, r.err
	case <-s.closed:
		// Close drains the queue before it closes s.closed, so an op
		// still unanswered came in after: it never ran.
		select {
		case r := <-p.done:
			return r.val, r.err
		default: // it never ran: answer it, as hand does
			err := errShuttingDown()
			p.reply(result{err: err})
			return nil, err
		}
	case <-ctx.Done():
		if p.keep {
			return nil, fmt.Errorf("wait for ledger operation (it still commits): %w", ctx.Err())
		}
		if !p.abandon() {
			r := <-p.done // answered just now: the result stands
			return r.val, r.err
		}
		return nil, fmt.Errorf("wait for ledger operation (abandoned: withdrawn or undone): %w", ctx.Err())
	}
}

func (s *Service) commitLoop() {
	defer s.wg.Done()
	if s.opt.CommitterStart != nil {
		if end := s.opt.CommitterStart(); end != nil {
			defer end()
		}
	}
	var next *pending // an alone op that ended the previous batch
	for {
		first := next
		if first == nil {
			select {
			case <-s.stop:
				s.drain()
				return
			case first = <-s.queue:
			}
			if !first.take() {
				continue
			}
		}
		var batch []*pending
		batch, next = s.collect(first)
		s.commit(batch)
	}
}

// drain commits what is still queued when Close runs, so an accepted
// operation (a settle handed over with SettleLater) is not lost to an
// orderly shutdown.
func (s *Service) drain() {
	for {
		select {
		case first := <-s.queue:
			if !first.take() {
				continue
			}
			for first != nil {
				var batch []*pending
				batch, first = s.collect(first)
				s.commit(batch)
			}
		default:
			return
		}
	}
}

// collect gathers the operations queued behind first, waiting up to
// BatchWindow for more (LaterWindow when first is a settle nobody waits
// for, until an op somebody waits for or a full batch is queued), up to
// MaxBatch. An op that must run alone ends the batch: it is returned as
// next.
//
// Through a LaterWindow the committer sleeps and then takes what queued,
// rather than taking each settle as it comes: every one would wake it, a
// thread hand-off (a futex call) on the path of the request that queued
// the settle.
func (s *Service) collect(first *pending) (batch []*pending, next *pending) {
	batch = []*pending{first}
	if first.alone {
		return batch, nil
	}
	window := s.opt.BatchWindow
	if first.strict {
		// A payment waits for no window: it takes what queued while the
		// previous transaction ran, as group commit does without one.
		window = 0
	}
	later := first.then != nil && s.opt.LaterWindow > window
	if later {
		window = s.opt.LaterWindow
	}
	var timer <-chan time.Time
	if window > 0 {
		t := time.NewTimer(window)
		defer t.Stop()
		timer = t.C
	}
	for len(batch) < s.opt.MaxBatch {
		var p *pending
		select {
		case p = <-s.queue:
		default:
			if timer == nil {
				return batch, nil
			}
			if later {
				select {
				case <-timer:
				case <-s.urgent:
				case <-s.stop: // Close: commit now
				}
				timer = nil // take what queued meanwhile, then commit
				continue
			}
			select {
			case p = <-s.queue:
			case <-timer:
				return batch, nil
			case <-s.stop: // Close: commit now
				return batch, nil
			}
		}
		if !p.take() {
			continue
		}
		if p.alone {
			return batch, p
		}
		batch = append(batch, p)
	}
	return batch, nil
}

// commit runs a batch in one transaction. If the transaction as a whole
// fails, each op runs alone, so one op that breaks the store cannot fail
// the others. An op that must see the memory holds (errNeedsMemLock) runs
// again alone under the memory lock.
func (s *Service) commit(batch []*pending) {
	if p := batch[0]; p.alone {
		// With the lock held from its reads to its publication, no memory
		// hold starts while the op decides what is free to take.
		s.answer(batch, []result{s.runLocked(p.ctx, p.op)})
		return
	}
	strict := s.opt.StrictMetering
	for _, p := range batch {
		strict = strict || p.strict
	}
	ctx := context.Background()
	if !strict {
		ctx = WithRelaxedCommit(ctx)
	}
	s.batches.Add(1)
	s.batchedOps.Add(int64(len(batch)))
	ops := make([]op, len(batch))
	for i, p := range batch {
		ops[i] = p.op
	}
	rs := make([]result, len(batch))
	out, err := s.run(ctx, ops...)
	switch {
	case err == nil:
		copy(rs, out)
	case len(batch) > 1:
		for i, p := range batch {
			v, err := s.runAlone(opCtx(ctx, p), p.op)
			rs[i] = result{val: v, err: err}
		}
	default:
		rs[0] = result{err: err}
	}
	for i, p := range batch {
		if errors.Is(rs[i].err, errNeedsMemLock) {
			rs[i] = s.runLocked(opCtx(ctx, p), p.op)
		}
	}
	s.answer(batch, rs)
}

// opCtx is the context an op of a batch runs with alone (after its batch
// failed, or under the memory lock): a strict op's is never relaxed.
func opCtx(batchCtx context.Context, p *pending) context.Context {
	if p.strict {
		return context.Background()
	}
	return batchCtx
}

// runLocked runs o alone with the memory lock held from its reads to its
// publication (memory holds exist only with MemoryHolds, and so do the ops
// that need this).
func (s *Service) runLocked(ctx context.Context, o op) result {
	s.mem.mu.Lock()
	defer s.mem.mu.Unlock()
	v, err := s.runAlone(context.WithValue(ctx, memLockedKey{}, true), o)
	return result{val: v, err: err}
}

// answer delivers each op's result to its caller. An op whose caller
// stopped waiting after a committer took it (orphaned) is undone first
// when it committed something to undo (a reserve's hold is released, in
// a batch of its own right after this one), and answered only then, so
// that Sync and the reads after it see the undoing. If the undoing fails
// too, the hold expires as any abandoned hold would.
func (s *Service) answer(batch []*pending, rs []result) {
	var undo, orphans []*pending
	var orphaned []result
	for i, p := range batch {
		if p.stage.CompareAndSwap(opTaken, opAnswered) {
			p.reply(rs[i])
			continue
		}
		if u, ok := p.op.(undoer); ok && rs[i].err == nil {
			if o := u.undo(rs[i].val); o != nil {
				q := &pending{op: o, then: func(result) {}}
				q.stage.Store(opTaken)
				undo = append(undo, q)
			}
		}
		orphans, orphaned = append(orphans, p), append(orphaned, rs[i])
	}
	if len(undo) > 0 {
		s.commit(undo)
	}
	for i, p := range orphans {
		p.reply(orphaned[i])
	}
}

// reply delivers an op's result: to its waiting caller, or to the op's
// own callback when nobody waits (SettleLater).
func (p *pending) reply(r result) {
	if f, ok := p.op.(interface{ finish(result) }); ok {
		f.finish(r)
	}
	if p.then != nil {
		// The callback runs before the op leaves the inflight set, so that
		// what it does (a meter keeping a failed settle for retry) is done
		// when Sync returns.
		p.then(r)
		if p.fin != nil {
			p.fin()
		}
		return
	}
	if p.fin != nil {
		p.fin()
	}
	p.done <- r
}

// View runs fn in a read-only snapshot of the store, taken after every
// operation queued before it has committed (Sync), so that a read after
// an answer whose settle went SettleLater sees that settle. Readers of the
// ledger's rows outside this package use it rather than Store().View.
func (s *Service) View(ctx context.Context, fn func(ReadTx) error) error {
	if err := s.Sync(ctx); err != nil {
		return err
	}
	if err := s.store.View(ctx, fn); err != nil {
		return fmt.Errorf("ledger read: %w", err)
	}
	return nil
}
