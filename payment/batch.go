package payment

import (
	"context"
	"sync"

	"tollgate"
)

// Group commit of order writes (issue 21). Every order creation and most
// order updates go through the Service's orderBatcher: concurrent callers'
// writes are collected and written by Store.WriteOrders in one
// transaction, each in its own savepoint, so one fsync serves them all and
// one bad item (a taken out_trade_no, a refused transition, fn's error)
// fails only itself.
//
// There is no batch window: a batch is what queued while the previous one
// was being written, so an idle service writes at once, and a busy one
// batches as much as its load brings. The committer goroutine starts with
// the first write queued and ends when the queues are empty.
//
// Two queues: urgent (notifications' credits, order creations: a payer
// waits) and low (the poller's reschedules and closes). Low items are
// taken only when no urgent one waits, a few at a time, so a backlog of
// pending orders never delays a notification by more than one small
// batch.

// Priorities of an order write.
type priority int

const (
	urgent priority = iota
	low
)

// Batch sizes: at most maxOrderBatch urgent items, or lowOrderBatch low
// ones, per transaction.
const (
	maxOrderBatch = 256
	lowOrderBatch = 32
)

type orderBatcher struct {
	st Store

	mu        sync.Mutex
	queues    [2][]*orderReq // by priority
	running   bool
	closed    bool
	wg        sync.WaitGroup
	beforeRun func() // tests: called before each batch is written
}

type orderReq struct {
	w    OrderWrite
	err  error
	done chan struct{}
	// taken and cancelled are guarded by orderBatcher.mu: a cancelled
	// request is skipped, a taken one is written whatever its caller does.
	taken, cancelled bool
}

func newOrderBatcher(st Store) *orderBatcher { return &orderBatcher{st: st} }

// write queues w at priority p and waits for its batch. If ctx ends
// before a batch takes w, w is dropped (nothing written) and ctx's error
// returned; once taken, its outcome is waited for and returned (it may be
// written: an error would be a lie). After close, EUNAVAILABLE.
func (b *orderBatcher) write(ctx context.Context, w OrderWrite, p priority) (OrderWrite, error) {
	if err := ctx.Err(); err != nil {
		return w, err
	}
	r := &orderReq{w: w, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return w, &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: "payment.writeOrder", Message: "the payment service is shutting down"}
	}
	b.queues[p] = append(b.queues[p], r)
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.w, r.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !r.taken {
		r.cancelled = true
		b.mu.Unlock()
		return w, ctx.Err()
	}
	b.mu.Unlock()
	<-r.done
	return r.w, r.err
}

// run writes batches until the queues are empty.
func (b *orderBatcher) run() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		batch := b.take()
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if b.beforeRun != nil {
			b.beforeRun()
		}
		ws := make([]OrderWrite, len(batch))
		for i, r := range batch {
			ws[i] = r.w
		}
		// Not a caller's context: one caller leaving must not fail the
		// others' writes.
		errs := b.st.WriteOrders(context.Background(), ws)
		for i, r := range batch {
			r.w, r.err = ws[i], errs[i]
			close(r.done)
		}
	}
}

// take removes the next batch from the queues (b.mu held): urgent items
// first; low ones only when no urgent one waits.
func (b *orderBatcher) take() []*orderReq {
	for p, limit := range [2]int{maxOrderBatch, lowOrderBatch} {
		q := b.queues[p]
		var batch []*orderReq
		n := 0
		for ; n < len(q) && len(batch) < limit; n++ {
			if r := q[n]; !r.cancelled {
				r.taken = true
				batch = append(batch, r)
			}
		}
		clear(q[:n])
		b.queues[p] = q[n:]
		if len(b.queues[p]) == 0 {
			b.queues[p] = nil // let the backing array go
		}
		if len(batch) > 0 {
			return batch
		}
	}
	return nil
}

// close refuses new writes and waits until every queued one is written.
func (b *orderBatcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// Close stops accepting order writes and waits until every order write
// already queued is committed (shutdown drains the group commit). Call it
// after the HTTP server and the poller have stopped; later calls that
// write an order fail with EUNAVAILABLE.
func (s *Service) Close() { s.orders.close() }

// createOrder records an order and its idempotency key through the
// batcher, strictly (the recovery point before WeChat Pay is called).
func (s *Service) createOrder(ctx context.Context, o Order, key *IdempotencyKey) (IdempotencyKey, bool, error) {
	w, err := s.orders.write(ctx, OrderWrite{Create: &o, Key: key}, urgent)
	return w.Stored, w.Created, err
}

// updateOrder is UpdateOrder through the batcher: the change is refused
// when the state machine forbids it (CheckTransition), and
// Deps.EventsCommitted is called when it wrote payment.closed. relaxed
// lets its batch commit without waiting for the disk; p is its priority.
func (s *Service) updateOrder(ctx context.Context, outTradeNo string, relaxed bool, p priority, fn func(*Order) error) (Order, error) {
	w, err := s.orders.write(ctx, OrderWrite{OutTradeNo: outTradeNo, Relaxed: relaxed, Fn: func(o *Order) error {
		from := o.Status
		if err := fn(o); err != nil {
			return err
		}
		return CheckTransition(from, o.Status)
	}}, p)
	if err != nil {
		return Order{}, err
	}
	if s.eventsCommitted != nil {
		if _, closed, _ := ClosedEvent(w.Before, w.Order); closed {
			s.eventsCommitted()
		}
	}
	return w.Order, nil
}
