package gateway_test

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
	"tollgate/ledger"
	"tollgate/metering"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

// BenchmarkChatLedger splits a request's cost between the gateway and
// billing: the same non-streaming chat against an in-process mockllm (over
// loopback HTTP), metered by an in-memory meter or by the real ledger on
// SQLite (metering.Meter, group commit, synchronous=FULL), with 1 and 16
// concurrent clients on one account. See docs/BENCHMARKS.md §1.
func BenchmarkChatLedger(b *testing.B) {
	body := []byte(`{"model":"mock-gpt","max_tokens":16,"messages":[{"role":"user","content":"Say hello in a few words."}]}`)
	for _, meter := range []string{"FakeMeter", "SQLiteLedger"} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", meter, clients), func(b *testing.B) {
				mock := httptest.NewServer(&mockllm.Server{})
				defer mock.Close()
				var m gateway.Meter = newFakeMeter(b, 1<<62)
				if meter == "SQLiteLedger" {
					m = ledgerMeter(b)
				}
				gw, err := gateway.New(gateway.DefaultMockProviders(mock.URL), gateway.Options{Meter: m, Pricer: fakePricer{}, Counter: mockCounter{}})
				if err != nil {
					b.Fatal(err)
				}
				h := gw.Handler()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for range clients {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
							r = r.WithContext(tollgate.WithCaller(r.Context(), tollgate.Caller{Account: "bench"}))
							rec := httptest.NewRecorder()
							h.ServeHTTP(rec, r)
							if rec.Code != 200 {
								b.Errorf("status %d: %s", rec.Code, rec.Body)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			})
		}
	}
}

// ledgerMeter is metering.Meter over a ledger on a fresh SQLite file, with
// one funded account "bench".
func ledgerMeter(b *testing.B) gateway.Meter {
	b.Helper()
	st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), sqlite.FileName))
	if err != nil {
		b.Fatal(err)
	}
	svc := ledger.New(st, ledger.Options{})
	b.Cleanup(func() {
		svc.Close()
		st.Close()
	})
	e := &storetest.Env{Store: st, Svc: svc, Clock: &storetest.Clock{}, Ctx: b.Context()}
	storetest.MustAccount(b, e, "bench")
	storetest.MustCredit(b, e, tollgate.AccountID("bench"), "bench-order", 100_000, 1<<50)
	return &metering.Meter{Ledger: svc}
}
