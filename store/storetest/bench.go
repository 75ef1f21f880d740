package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
)

// Clients is how many concurrent clients BenchmarkHoldSettle runs: the
// gateway's target of 64 concurrent requests.
const Clients = 64

// BenchmarkHoldSettle measures the hot path of every API call: reserve the
// worst case, then settle the real cost (with its usage record), from
// Clients concurrent clients, each on its own account, all through one
// Service (so reserves and settles are group-committed). It reports
// pairs/s. Stores call it from a Benchmark function:
//
//	func BenchmarkHoldSettle(b *testing.B) { storetest.BenchmarkHoldSettle(b, open) }
func BenchmarkHoldSettle(b *testing.B, open OpenFunc) {
	benchHoldSettle(b, open, ledger.Options{})
}

// BenchmarkHoldSettleWith is BenchmarkHoldSettle with Service options, for
// stores that want several committers or a batch window.
func BenchmarkHoldSettleWith(b *testing.B, open OpenFunc, opt ledger.Options) {
	benchHoldSettle(b, open, opt)
}

func benchHoldSettle(b *testing.B, open OpenFunc, opt ledger.Options) {
	st := open(b)
	clock := clocktest.New(Start)
	opt.Clock = clock
	svc := ledger.New(st, opt)
	e := &Env{Store: st, Svc: svc, Clock: clock, Ctx: b.Context()}
	b.Cleanup(func() {
		svc.Close()
		st.Close()
	})
	accounts := make([]tollgate.AccountID, Clients)
	for i := range accounts {
		accounts[i] = tollgate.AccountID(fmt.Sprintf("bench-%02d", i))
		MustAccount(b, e, accounts[i])
		MustCredit(b, e, accounts[i], "bench-order-"+string(accounts[i]), 100_000, 1<<50)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range Clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				id := fmt.Sprintf("b%d", i)
				if _, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: id, Account: accounts[c], Amount: 4096, TTL: time.Minute}); err != nil {
					b.Errorf("reserve: %v", err)
					return
				}
				if _, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: id, Cost: 1000, Usage: ledger.Usage{
					Model: "bench", Provider: "mock", InputTokens: 500, OutputTokens: 500, Status: "ok"}}); err != nil {
					b.Errorf("settle: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pairs/s")
	if st := svc.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.BatchedOps)/float64(st.Batches), "ops/batch")
	}
	if b.N >= 1000 {
		MustAuditClean(b, e)
	}
}
