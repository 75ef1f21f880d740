package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/postgres"
)

// benchClients is how many concurrent clients the hold/settle benchmarks
// run: the gateway's target of 64 concurrent requests.
const benchClients = 64

// benchHoldSettle measures the hot path of every API call — reserve the
// worst case, then settle the real cost with its usage record — from
// benchClients concurrent clients, each on its own account, spread over the
// given Services (one per simulated tollgate instance, each group-committing
// its own operations). It reports hold+settle pairs per second.
func benchHoldSettle(b *testing.B, svcs []*ledger.Service) {
	ctx := context.Background()
	accounts := make([]tollgate.AccountID, benchClients)
	for i := range accounts {
		accounts[i] = tollgate.AccountID(fmt.Sprintf("bench-%02d", i))
		MustFund(b, svcs[i%len(svcs)], accounts[i], 1<<50)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		svc := svcs[c%len(svcs)]
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				id := fmt.Sprintf("b%d", i)
				if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: accounts[c], Amount: 4096, TTL: time.Minute}); err != nil {
					b.Errorf("reserve: %v", err)
					return
				}
				if _, err := svc.Settle(ctx, ledger.SettleRequest{HoldID: id, Cost: 1000, Usage: ledger.Usage{
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
	var batches, ops int64
	for _, svc := range svcs {
		st := svc.Stats()
		batches, ops = batches+st.Batches, ops+st.BatchedOps
	}
	if batches > 0 {
		b.ReportMetric(float64(ops)/float64(batches), "ops/batch")
	}
}

// BenchmarkHoldSettle is one instance with the Service's default of one
// committer: the configuration the figures in docs/BENCHMARKS.md §5 use.
func BenchmarkHoldSettle(b *testing.B) {
	s, _ := MustOpen(b)
	benchHoldSettle(b, []*ledger.Service{MustService(b, s, ledger.Options{})})
}

// BenchmarkHoldSettleCommitters is one instance whose Service commits two
// batches at once on two connections.
func BenchmarkHoldSettleCommitters(b *testing.B) {
	s, _ := MustOpen(b)
	benchHoldSettle(b, []*ledger.Service{MustService(b, s, ledger.Options{Committers: 2})})
}

// BenchmarkHoldSettleTwoInstances is two instances (two pools, two
// Services) sharing one database, half of the clients on each.
func BenchmarkHoldSettleTwoInstances(b *testing.B) {
	first, url := MustOpen(b)
	second, err := postgres.Open(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { second.Close() })
	benchHoldSettle(b, []*ledger.Service{
		MustService(b, first, ledger.Options{}),
		MustService(b, second, ledger.Options{}),
	})
}
