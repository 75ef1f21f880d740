package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/sqlite"
)

// memWorld is a SQLite store with a Service keeping holds in memory, alice
// funded with 1,000 credits from order "o".
type memWorld struct {
	st  ledger.Store
	svc *ledger.Service
	ctx context.Context
}

func newMemWorld(t *testing.T, fail func(c *ledger.Changes) error) *memWorld {
	t.Helper()
	st := openSQLite(t) // closed after the audit below: cleanups run last first
	if fail == nil {
		fail = func(*ledger.Changes) error { return nil }
	}
	w := &memWorld{st: st, ctx: context.Background()}
	w.svc = ledger.New(&faultyStore{Store: st, fail: fail}, ledger.Options{MemoryHolds: true, LaterWindow: time.Millisecond})
	t.Cleanup(func() {
		w.svc.Close()
		vs, err := ledger.Audit(w.ctx, st, ledger.AuditOptions{Now: time.Now(), Grace: time.Minute})
		if err != nil {
			t.Errorf("audit: %v", err)
		}
		for _, v := range vs {
			t.Errorf("audit violation: %s", v)
		}
	})
	if _, err := w.svc.CreateAccount(w.ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.svc.CreditPayment(w.ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 5000, Credits: 1000}); err != nil {
		t.Fatal(err)
	}
	return w
}

// openSQLite opens a SQLite store in a fresh directory, closed when the
// test ends.
func openSQLite(t *testing.T) ledger.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fundAlice creates the account alice and credits her a payment of credits
// (order "o").
func fundAlice(t *testing.T, svc *ledger.Service, credits tollgate.Credits) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 1, Credits: credits}); err != nil {
		t.Fatal(err)
	}
}

func (w *memWorld) reserve(t *testing.T, id string, amount tollgate.Credits) {
	t.Helper()
	if _, err := w.svc.Reserve(w.ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: amount, TTL: time.Minute}); err != nil {
		t.Fatalf("reserve %s: %v", id, err)
	}
}

func (w *memWorld) wantBalance(t *testing.T, credits, held tollgate.Credits) {
	t.Helper()
	b, err := w.svc.Balance(w.ctx, "alice")
	if err != nil || b.Credits != credits || b.Held != held {
		t.Fatalf("balance = %+v, %v; want %d available, %d held", b, err, credits, held)
	}
}

// A memory hold writes nothing: the store sees no hold, yet the balance
// counts it and no other request can spend it.
func TestMemoryHoldWritesNothingUntilSettled(t *testing.T) {
	var writes atomic.Int64
	w := newMemWorld(t, func(c *ledger.Changes) error {
		writes.Add(int64(len(c.NewHolds)))
		return nil
	})
	w.reserve(t, "h1", 700)
	if n := writes.Load(); n != 0 {
		t.Fatalf("a reserve wrote %d holds; a memory hold writes none", n)
	}
	w.wantBalance(t, 300, 700)
	_, err := w.svc.Reserve(w.ctx, ledger.ReserveRequest{HoldID: "h2", Account: "alice", Amount: 301, TTL: time.Minute})
	if tollgate.ErrorCode(err) != tollgate.EINSUFFICIENT {
		t.Fatalf("reserve beyond the memory hold: %v, want insufficient", err)
	}
	if _, err := w.svc.Settle(w.ctx, ledger.SettleRequest{HoldID: "h1", Cost: 250}); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("the settle wrote %d holds, want 1", n)
	}
	w.wantBalance(t, 750, 0)
	h, err := w.svc.Hold(w.ctx, "h1")
	if err != nil || h.Status != ledger.HoldSettled || h.Cost != 250 {
		t.Fatalf("settled hold = %+v, %v", h, err)
	}
}

// A refund gives back only what neither a stored nor a memory hold keeps.
func TestRefundLeavesMemoryHeldCredit(t *testing.T) {
	w := newMemWorld(t, nil)
	w.reserve(t, "h1", 600)
	r, err := w.svc.BeginRefund(w.ctx, ledger.RefundRequest{OutRefundNo: "r1", Account: "alice", OutTradeNo: "o"})
	if err != nil || r.Credits != 400 {
		t.Fatalf("refund = %+v, %v; want the 400 unheld credits", r, err)
	}
	w.wantBalance(t, 0, 600)
	if _, err := w.svc.Settle(w.ctx, ledger.SettleRequest{HoldID: "h1", Cost: 600}); err != nil {
		t.Fatal(err)
	}
	b, err := w.svc.Balance(w.ctx, "alice")
	if err != nil || b.Credits != 0 || b.Held != 0 || b.Debt != 0 {
		t.Fatalf("balance after the settle = %+v, %v; want all zero (no debt)", b, err)
	}
}

// 200 concurrent requests on 1,000 credits that each hold 20: exactly 50
// get a hold, and settling them all at the full hold leaves zero.
func TestMemoryHoldContention(t *testing.T) {
	w := newMemWorld(t, nil)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			id := fmt.Sprintf("h%03d", i)
			_, err := w.svc.Reserve(w.ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 20, TTL: time.Minute})
			switch tollgate.ErrorCode(err) {
			case "":
				ok.Add(1)
				if err := w.svc.SettleLater(ledger.SettleRequest{HoldID: id, Cost: 20}, nil); err != nil {
					t.Error(err)
				}
			case tollgate.EINSUFFICIENT:
			default:
				t.Errorf("reserve %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 50 {
		t.Fatalf("%d holds granted on credit for 50", n)
	}
	w.wantBalance(t, 0, 0)
}

// SettleLater returns before the commit; Balance waits for queued settles,
// so a read right after an answer sees its charge.
func TestSettleLaterThenBalance(t *testing.T) {
	w := newMemWorld(t, nil)
	var done sync.WaitGroup
	for i := range 10 {
		id := fmt.Sprintf("h%d", i)
		w.reserve(t, id, 50)
		done.Add(1)
		if err := w.svc.SettleLater(ledger.SettleRequest{HoldID: id, Cost: 30}, func(h ledger.Hold, err error) {
			defer done.Done()
			if err != nil || h.Status != ledger.HoldSettled {
				t.Errorf("settle %s: %+v, %v", id, h, err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	w.wantBalance(t, 700, 0)
	done.Wait()
}

// Close commits the settles still queued: an orderly shutdown loses none.
func TestCloseCommitsQueuedSettles(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	// A long window keeps the settles queued until Close.
	svc := ledger.New(st, ledger.Options{MemoryHolds: true, LaterWindow: time.Hour})
	fundAlice(t, svc, 1000)
	for i := range 5 {
		id := fmt.Sprintf("h%d", i)
		if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 100, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := svc.SettleLater(ledger.SettleRequest{HoldID: id, Cost: 40}, nil); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan struct{})
	go func() { svc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: it waited out the settle window")
	}
	if err := svc.SettleLater(ledger.SettleRequest{HoldID: "late", Cost: 1}, nil); tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Fatalf("SettleLater after Close: %v, want unavailable", err)
	}
	again := ledger.New(st, ledger.Options{})
	defer again.Close()
	b, err := again.Balance(ctx, "alice")
	if err != nil || b.Credits != 800 || b.Held != 0 {
		t.Fatalf("balance after reopening = %+v, %v; want 800 available (5 settles of 40), none held", b, err)
	}
}

// TestSettleWindowEndsEarly: a batch of settles nobody waits for sleeps
// through LaterWindow, but not when an op somebody waits for is queued
// behind them, nor when a full batch is.
func TestSettleWindowEndsEarly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBatch int
		settles  int
		waited   bool // then a Settle whose caller waits
	}{
		{"an op somebody waits for", 256, 3, true},
		{"full batches", 4, 9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openSQLite(t)
			ctx := context.Background()
			svc := ledger.New(st, ledger.Options{MemoryHolds: true, LaterWindow: time.Hour, MaxBatch: tc.maxBatch})
			defer svc.Close()
			fundAlice(t, svc, 1000)
			for i := range tc.settles + 1 {
				if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: fmt.Sprintf("h%d", i), Account: "alice", Amount: 10, TTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
			}
			var committed sync.WaitGroup
			for i := range tc.settles {
				id := fmt.Sprintf("h%d", i)
				committed.Add(1)
				if err := svc.SettleLater(ledger.SettleRequest{HoldID: id, Cost: 5}, func(_ ledger.Hold, err error) {
					if err != nil {
						t.Errorf("settle %s: %v", id, err)
					}
					committed.Done()
				}); err != nil {
					t.Fatal(err)
				}
				// Let the committer fall asleep in the window between settles,
				// so that only the wake-ups under test can end it.
				time.Sleep(20 * time.Millisecond)
			}
			if tc.waited {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := svc.Settle(wctx, ledger.SettleRequest{HoldID: fmt.Sprintf("h%d", tc.settles), Cost: 5}); err != nil {
					t.Fatalf("waited-for settle behind a sleeping batch: %v", err)
				}
			}
			// Without a waited-for op, every full batch commits; what is
			// left (fewer than a batch) may wait out the hour. Where the
			// batches start depends on when the committer fell asleep (a
			// loaded machine can wake it between settles), so the awaited
			// count is all but one short batch.
			want := tc.settles
			if !tc.waited {
				want = tc.settles - (tc.maxBatch - 1)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if s := svc.Stats(); s.BatchedOps >= int64(want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 10 s %d ops committed, want %d: the batch waited out its window", svc.Stats().BatchedOps, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tc.waited {
				committed.Wait()
			}
		})
	}
}

// A crash loses memory holds and charges nothing for them: a new Service
// on the same store sees the whole balance, and the store is consistent.
func TestCrashDropsMemoryHolds(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	crashed := ledger.New(st, ledger.Options{MemoryHolds: true})
	fundAlice(t, crashed, 1000)
	if _, err := crashed.Reserve(ctx, ledger.ReserveRequest{HoldID: "h", Account: "alice", Amount: 900, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// The process dies here: crashed is never closed, its memory is gone.
	after := ledger.New(st, ledger.Options{MemoryHolds: true})
	defer after.Close()
	b, err := after.Balance(ctx, "alice")
	if err != nil || b.Credits != 1000 || b.Held != 0 {
		t.Fatalf("balance after the crash = %+v, %v; want 1000, nothing held", b, err)
	}
	vs, err := ledger.Audit(ctx, st, ledger.AuditOptions{Now: time.Now(), Grace: time.Minute})
	if err != nil || len(vs) > 0 {
		t.Fatalf("audit after the crash: %v %v", vs, err)
	}
}

// A settle whose transaction fails keeps the memory hold active, as a
// stored hold would stay: the credit stays held, a later settle charges it.
func TestFailedSettleKeepsMemoryHold(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	w := newMemWorld(t, func(c *ledger.Changes) error {
		if failing.Load() && slices.ContainsFunc(c.NewHolds, func(h ledger.Hold) bool { return h.ID == "h1" }) {
			return errors.New("disk full")
		}
		return nil
	})
	w.reserve(t, "h1", 500)
	if _, err := w.svc.Settle(w.ctx, ledger.SettleRequest{HoldID: "h1", Cost: 200}); err == nil {
		t.Fatal("settle succeeded on a failing store")
	}
	w.wantBalance(t, 500, 500)
	if _, err := w.svc.Release(w.ctx, "h1"); err != nil {
		t.Fatalf("release after a failed settle: %v", err)
	}
	w.wantBalance(t, 1000, 0)
	failing.Store(false)
	if _, err := w.svc.Settle(w.ctx, ledger.SettleRequest{HoldID: "h1", Cost: 200}); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("settle of a released hold: %v, want conflict", err)
	}
}

// A settle whose caller gave up before it was queued still runs (it is
// revenue): the memory hold is settled and charged, not left active, nor
// stuck as "being settled" with its credit held.
func TestSettleOfGoneCallerCommits(t *testing.T) {
	w := newMemWorld(t, nil)
	w.reserve(t, "h1", 500)
	gone, cancel := context.WithCancel(w.ctx)
	cancel()
	if _, err := w.svc.Settle(gone, ledger.SettleRequest{HoldID: "h1", Cost: 200}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("settle with a cancelled context: %v", err)
	}
	if err := w.svc.Sync(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.wantBalance(t, 800, 0)
	if h, err := w.svc.Hold(w.ctx, "h1"); err != nil || h.Status != ledger.HoldSettled || h.Cost != 200 {
		t.Fatalf("hold after the settle = %+v, %v; want settled at 200", h, err)
	}
}

// With several committers a settle queued before a read may still be in
// another committer's transaction when the read's turn comes; Sync waits
// for every op handed over before it, wherever it runs.
func TestSyncWaitsForEveryCommitter(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	svc := ledger.New(st, ledger.Options{Committers: 4, LaterWindow: 5 * time.Millisecond})
	defer svc.Close()
	fundAlice(t, svc, 100_000)
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range 8 {
			id := fmt.Sprintf("h%d-%d", round, i)
			wg.Go(func() {
				if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 100, TTL: time.Minute}); err != nil {
					t.Error(err)
					return
				}
				if err := svc.SettleLater(ledger.SettleRequest{HoldID: id, Cost: 10}, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		b, err := svc.Balance(ctx, "alice")
		want := tollgate.Credits(100_000 - 80*(round+1))
		if err != nil || b.Credits != want || b.Held != 0 {
			t.Fatalf("round %d: balance = %+v, %v; want %d available, none held", round, b, err, want)
		}
	}
}

// TestCommitterStartRunsBeforeAnyOperation: the hook runs once in each
// committer, and no operation is taken until it has returned (serve lowers
// the committer's priority there before the first commit); the func it
// returns runs when the committer ends, at Close.
func TestCommitterStartRunsBeforeAnyOperation(t *testing.T) {
	st := openSQLite(t)
	var started, ended atomic.Int32
	release := make(chan struct{})
	svc := ledger.New(st, ledger.Options{Committers: 3, CommitterStart: func() func() {
		started.Add(1)
		<-release
		return func() { ended.Add(1) }
	}})
	defer func() {
		if n := ended.Load(); n != 3 {
			t.Errorf("the end func ran %d times after Close, want once per committer (3)", n)
		}
	}()
	defer svc.Close()
	defer close(release) // before Close, which waits for the committers
	reserve := func(ctx context.Context) error {
		_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "h", Account: "nobody", Amount: 1, TTL: time.Minute})
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := reserve(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve while the committers start = %v, want it still waiting", err)
	}
	release <- struct{}{}
	release <- struct{}{}
	release <- struct{}{}
	if err := reserve(context.Background()); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("Reserve for an unknown account once started = %v, want ENOTFOUND", err)
	}
	if n := started.Load(); n != 3 {
		t.Fatalf("CommitterStart ran %d times, want once per committer (3)", n)
	}
}

// BenchmarkMemoryReserveRelease is the request path of a hold kept in
// memory: Reserve then Release, no transaction. Its allocs/op is the
// figure to compare across changes on a shared machine.
func BenchmarkMemoryReserveRelease(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := ledger.New(st, ledger.Options{MemoryHolds: true})
	defer svc.Close()
	ctx := context.Background()
	if _, err := svc.CreateAccount(ctx, "alice"); err != nil {
		b.Fatal(err)
	}
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "alice", OutTradeNo: "o", TransactionID: "t", Fen: 5000, Credits: 1000}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("h%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: ids[i], Account: "alice", Amount: 10, TTL: time.Minute}); err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Release(ctx, ids[i]); err != nil {
			b.Fatal(err)
		}
	}
}
