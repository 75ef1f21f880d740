package gateway_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// TestSimulationMoneyInvariants sends a seeded random mix of requests
// (streaming or not, Anthropic or OpenAI style, some cancelled by the
// client) through failing, cut and usage-less mock upstreams, concurrently,
// and checks the money invariants after: no hold left open, no settle above
// its hold (the fake meter checks), the balance never negative, and every
// answered request's cost equal to what was settled.
func TestSimulationMoneyInvariants(t *testing.T) {
	seed := uint64(20261127)
	t.Logf("seed %d", seed)
	flaky := httptest.NewServer(&mockllm.Server{ErrorRate: 0.5, Seed: seed, RetryAfter: 1})
	cut := httptest.NewServer(&mockllm.Server{FailAfter: 5, OutputTokens: 12})
	silent := httptest.NewServer(&mockllm.Server{OmitUsage: true, OutputTokens: 6})
	anth := httptest.NewServer(&mockllm.Server{CachedTokens: 2, OutputTokens: 9})
	for _, s := range []*httptest.Server{flaky, cut, silent, anth} {
		t.Cleanup(s.Close)
	}
	cfg := &gateway.Config{
		Providers: []gateway.ProviderConfig{
			{Name: "flaky", Kind: gateway.KindOpenAI, BaseURL: flaky.URL + "/v1"},
			{Name: "cut", Kind: gateway.KindOpenAI, BaseURL: cut.URL + "/v1"},
			{Name: "silent", Kind: gateway.KindOpenAI, BaseURL: silent.URL + "/v1"},
			{Name: "anth", Kind: gateway.KindAnthropic, BaseURL: anth.URL},
		},
		Models: map[string][]gateway.DeploymentConfig{"m": {
			{Provider: "flaky", Model: "a", Weight: 3, MaxOutputTokens: 64},
			{Provider: "cut", Model: "b", MaxOutputTokens: 64},
			{Provider: "silent", Model: "c", MaxOutputTokens: 64},
			{Provider: "anth", Model: "d", Priority: 1, MaxOutputTokens: 64},
		}},
	}
	meter := newFakeMeter(t, 40_000)
	gw, err := gateway.New(cfg, gateway.Options{Meter: meter, Pricer: fakePricer{}, Counter: mockCounter{}, Seed: seed,
		Breaker: gateway.NewBreaker(1000, 1, nil), Retry: gateway.RetryPolicy{BackoffBase: 1, BackoffMax: 1}})
	if err != nil {
		t.Fatal(err)
	}

	const n = 120
	var mu sync.Mutex
	shownCost := map[string]int64{}
	statuses := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		stream, messages, cancelEarly := rng.IntN(2) == 0, rng.IntN(4) == 0, rng.IntN(10) == 0
		maxTokens := 1 + rng.IntN(40)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			path, body := "/v1/chat/completions", fmt.Sprintf(`{"model":"m","stream":%v,"max_tokens":%d,"messages":[{"role":"user","content":"request %d says hello"}]}`, stream, maxTokens, i)
			if messages {
				path = "/v1/messages"
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := httptest.NewRequest("POST", path, strings.NewReader(body)).WithContext(tollgate.WithCaller(ctx, tollgate.Caller{Account: "a"}))
			req.Header.Set("X-Request-Id", fmt.Sprintf("sim-%d", i))
			rec := httptest.NewRecorder()
			if cancelEarly {
				cancel()
			}
			gw.Handler().ServeHTTP(rec, req)
			mu.Lock()
			defer mu.Unlock()
			statuses[rec.Code]++
			if rec.Code == 200 && !stream {
				var cost int64
				b := rec.Body.String()
				fmt.Sscanf(b[strings.Index(b, `"cost_credits":`)+len(`"cost_credits":`):], "%d", &cost)
				shownCost[fmt.Sprintf("sim-%d", i)] = cost
			}
		}()
	}
	wg.Wait()
	balance, holds, usages, released := meter.state()
	t.Logf("statuses %v, %d settled, %d released, balance %d", statuses, len(usages), released, balance)
	if holds != 0 || balance < 0 {
		t.Fatalf("holds %d balance %d", holds, balance)
	}
	if len(usages)+released != int(meter.reserves.Load())-countRefused(statuses) {
		t.Fatalf("settled %d + released %d != reserved %d - refused", len(usages), released, meter.reserves.Load())
	}
	var settled int64
	kinds := map[string]int{}
	for _, u := range usages {
		kinds[fmt.Sprintf("%s/%s/estimated=%v", u.Provider, u.Status, u.Estimated)]++
		settled += int64(u.Credits)
		if shown, ok := shownCost[u.RequestID]; ok && shown != int64(u.Credits) {
			t.Fatalf("%s showed cost %d but settled %d", u.RequestID, shown, u.Credits)
		}
		if u.Status != "client_canceled" && u.OutputTokens == 0 {
			t.Fatalf("delivered request billed zero output: %+v", u)
		}
	}
	t.Logf("settled usages: %v", kinds)
	if settled != 40_000-balance {
		t.Fatalf("settled %d but balance moved %d", settled, 40_000-balance)
	}
}

func countRefused(statuses map[int]int) int { return statuses[402] }
