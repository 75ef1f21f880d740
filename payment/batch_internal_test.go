package payment

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"tollgate"
)

// batchStore is a Store whose WriteOrders writes to memory with the real
// stores' per-item rollback, and records each batch: its numbers and
// whether it committed strictly.
type batchStore struct {
	Store // nil: only WriteOrders is used

	mu      sync.Mutex
	orders  map[string]Order
	batches [][]string
	strict  []bool
}

func newBatchStore(nos ...string) *batchStore {
	st := &batchStore{orders: map[string]Order{}}
	for _, no := range nos {
		st.orders[no] = Order{OutTradeNo: no, Account: "alice", Status: StatusNotPay,
			CreatedAt: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	}
	return st
}

func (st *batchStore) WriteOrders(ctx context.Context, ws []OrderWrite) []error {
	st.mu.Lock()
	defer st.mu.Unlock()
	errs := make([]error, len(ws))
	var names []string
	for i := range ws {
		w := &ws[i]
		if w.Create != nil {
			names = append(names, w.Create.OutTradeNo)
			if _, ok := st.orders[w.Create.OutTradeNo]; ok {
				errs[i] = &tollgate.Error{Code: tollgate.ECONFLICT, Message: "taken"}
				continue
			}
			st.orders[w.Create.OutTradeNo] = *w.Create
			w.Created = true
			continue
		}
		names = append(names, w.OutTradeNo)
		old, ok := st.orders[w.OutTradeNo]
		if !ok {
			errs[i] = &tollgate.Error{Code: tollgate.ENOTFOUND, Message: "no order"}
			continue
		}
		o := old
		if errs[i] = w.Fn(&o); errs[i] == nil {
			st.orders[w.OutTradeNo] = o
			w.Before, w.Order = old, o
		}
	}
	st.batches = append(st.batches, names)
	st.strict = append(st.strict, StrictBatch(ws))
	return errs
}

// gate holds the batcher's next batch until released, so that a test can
// queue writes behind it and know what the next batch takes.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func hold(b *orderBatcher) *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	b.beforeRun = func() {
		once.Do(func() {
			close(g.entered)
			<-g.release
		})
	}
	return g
}

// queued waits until n writes wait in the batcher's queues.
func queued(b *orderBatcher, n int) {
	for {
		b.mu.Lock()
		got := 0
		for _, q := range b.queues {
			for _, r := range q {
				if !r.cancelled {
					got++
				}
			}
		}
		b.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
}

type result struct {
	o   Order
	err error
}

func testService(st Store) *Service {
	return &Service{orders: newOrderBatcher(st)}
}

// A batch never lets one bad item fail the others: a refused transition
// and fn's error fail only their own writes, in the same batch as good
// ones, and each caller gets its own answer. The close of a good item
// calls EventsCommitted.
func TestBatchOneBadItem(t *testing.T) {
	st := newBatchStore("A", "B", "C", "D")
	s := testService(st)
	closed := 0
	s.eventsCommitted = func() { closed++ }
	g := hold(s.orders)
	first := make(chan result)
	go func() {
		o, err := s.updateOrder(context.Background(), "A", false, urgent, func(o *Order) error { o.Review = "a"; return nil })
		first <- result{o, err}
	}()
	<-g.entered
	errFn := errors.New("fn refuses")
	calls := []func(*Order) error{
		func(o *Order) error { o.Status = StatusSuccess; return nil },
		func(o *Order) error { o.Status = StatusRefund; return nil }, // NOTPAY cannot become REFUND
		func(o *Order) error { o.Review = "half"; return errFn },
		func(o *Order) error { o.Status = StatusClosed; return nil },
	}
	nos := []string{"B", "C", "D", "nope"}
	res := make([]chan result, len(calls))
	for i, fn := range calls {
		res[i] = make(chan result, 1)
		go func() {
			o, err := s.updateOrder(context.Background(), nos[i], true, urgent, fn)
			res[i] <- result{o, err}
		}()
		queued(s.orders, i+1)
	}
	// One more, a close, to see EventsCommitted called for it.
	closeRes := make(chan result, 1)
	go func() {
		o, err := s.updateOrder(context.Background(), "A", true, urgent, func(o *Order) error { o.Status = StatusClosed; return nil })
		closeRes <- result{o, err}
	}()
	queued(s.orders, len(calls)+1)
	close(g.release)
	if r := <-first; r.err != nil || r.o.Review != "a" {
		t.Fatalf("first = %+v", r)
	}
	if r := <-res[0]; r.err != nil || r.o.Status != StatusSuccess {
		t.Errorf("good item = %+v", r)
	}
	if r := <-res[1]; tollgate.ErrorCode(r.err) != tollgate.ECONFLICT {
		t.Errorf("refused transition = %+v, want ECONFLICT", r)
	}
	if r := <-res[2]; !errors.Is(r.err, errFn) {
		t.Errorf("fn's error = %+v", r)
	}
	if r := <-res[3]; tollgate.ErrorCode(r.err) != tollgate.ENOTFOUND {
		t.Errorf("missing order = %+v", r)
	}
	if r := <-closeRes; r.err != nil || r.o.Status != StatusClosed {
		t.Errorf("close = %+v", r)
	}
	if st.orders["C"].Status != StatusNotPay || st.orders["D"].Review != "" || st.orders["B"].Status != StatusSuccess {
		t.Errorf("orders after: %+v", st.orders)
	}
	if len(st.batches) != 2 || len(st.batches[1]) != 5 {
		t.Errorf("batches %v, want the first alone and the five queued behind it in one", st.batches)
	}
	if closed != 1 {
		t.Errorf("EventsCommitted called %d times, want once (one close)", closed)
	}
	// Durability: the first batch (a strict item) strict, the second
	// (all relaxed) relaxed.
	if fmt.Sprint(st.strict) != "[true false]" {
		t.Errorf("strict per batch = %v", st.strict)
	}
}

// A caller whose context ends while its write waits in the queue gets the
// context's error and its write is never made; one whose write a batch
// already took gets the write's real outcome.
func TestBatchCallerCancelled(t *testing.T) {
	st := newBatchStore("A", "B", "C")
	s := testService(st)
	g := hold(s.orders)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan result, 1)
	go func() {
		o, err := s.updateOrder(ctx, "A", false, urgent, func(o *Order) error { o.Review = "taken"; return nil })
		first <- result{o, err}
	}()
	<-g.entered
	waiting := make(chan result, 1)
	go func() {
		o, err := s.updateOrder(ctx, "B", false, urgent, func(o *Order) error { o.Review = "dropped"; return nil })
		waiting <- result{o, err}
	}()
	queued(s.orders, 1)
	cancel()
	if r := <-waiting; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("queued write of a cancelled caller = %+v, want context.Canceled", r)
	}
	other := make(chan result, 1)
	go func() {
		o, err := s.updateOrder(context.Background(), "C", false, urgent, func(o *Order) error { o.Review = "c"; return nil })
		other <- result{o, err}
	}()
	queued(s.orders, 1)
	close(g.release)
	if r := <-first; r.err != nil || r.o.Review != "taken" {
		t.Errorf("taken write of a cancelled caller = %+v, want its outcome", r)
	}
	if r := <-other; r.err != nil {
		t.Errorf("other caller: %v", r.err)
	}
	if st.orders["B"].Review != "" || st.orders["A"].Review != "taken" || st.orders["C"].Review != "c" {
		t.Errorf("orders after: %+v", st.orders)
	}
	for _, b := range st.batches {
		for _, no := range b {
			if no == "B" {
				t.Errorf("the cancelled write was in batch %v", b)
			}
		}
	}
	if _, err := s.updateOrder(ctx, "C", false, urgent, func(*Order) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("write with an ended context: %v", err)
	}
}

// Close drains: every write queued before it is written, Close returns
// after them, and a write after Close is refused (EUNAVAILABLE) without
// touching the store.
func TestBatchCloseDrains(t *testing.T) {
	st := newBatchStore()
	s := testService(st)
	g := hold(s.orders)
	const n = 10
	errs := make(chan error, n)
	create := func(no string) error {
		_, _, err := s.createOrder(context.Background(), Order{OutTradeNo: no, Status: StatusNotPay}, nil)
		return err
	}
	go func() { errs <- create("first") }()
	<-g.entered
	for i := range n - 1 {
		go func() { errs <- create(fmt.Sprintf("o%d", i)) }()
	}
	queued(s.orders, n-1)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	for {
		s.orders.mu.Lock()
		c := s.orders.closed
		s.orders.mu.Unlock()
		if c {
			break
		}
		runtime.Gosched()
	}
	if err := create("late"); tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("write after Close: %v, want EUNAVAILABLE", err)
	}
	close(g.release)
	<-closed
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if len(st.orders) != n {
		t.Errorf("%d orders written, want %d", len(st.orders), n)
	}
	if _, ok := st.orders["late"]; ok {
		t.Error("the write after Close was made")
	}
}

// The poller's writes (low) wait while urgent ones (notifications, new
// orders) are queued, and go a few at a time.
func TestBatchUrgentFirst(t *testing.T) {
	nos := []string{"L0", "L1", "L2", "U0", "U1"}
	st := newBatchStore(append(nos, "first")...)
	s := testService(st)
	g := hold(s.orders)
	var wg sync.WaitGroup
	wg.Go(func() {
		s.updateOrder(context.Background(), "first", true, urgent, func(*Order) error { return nil })
	})
	<-g.entered
	for i, no := range nos {
		p := low
		if no[0] == 'U' {
			p = urgent
		}
		wg.Go(func() {
			if _, err := s.updateOrder(context.Background(), no, true, p, func(*Order) error { return nil }); err != nil {
				t.Error(err)
			}
		})
		queued(s.orders, i+1)
	}
	close(g.release)
	wg.Wait()
	if got := fmt.Sprint(st.batches); got != "[[first] [U0 U1] [L0 L1 L2]]" {
		t.Errorf("batches %s, want the urgent writes before the low ones", got)
	}
	// A backlog of low writes goes lowOrderBatch at a time.
	st.batches = nil
	g = hold(s.orders)
	wg.Go(func() {
		s.updateOrder(context.Background(), "first", true, urgent, func(*Order) error { return nil })
	})
	<-g.entered
	for i := range lowOrderBatch + 3 {
		wg.Go(func() {
			s.updateOrder(context.Background(), "L0", true, low, func(o *Order) error { o.PollAttempts++; return nil })
		})
		queued(s.orders, i+1)
	}
	close(g.release)
	wg.Wait()
	if len(st.batches) != 3 || len(st.batches[1]) != lowOrderBatch || len(st.batches[2]) != 3 {
		t.Errorf("low batches of %d, %d, %d; want %d then 3", len(st.batches[0]), len(st.batches[1]), len(st.batches[2]), lowOrderBatch)
	}
	if st.orders["L0"].PollAttempts != lowOrderBatch+3 {
		t.Errorf("%d low writes made", st.orders["L0"].PollAttempts)
	}
}
