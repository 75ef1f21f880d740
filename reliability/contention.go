package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ContentionResult is what the S9 phase saw.
type ContentionResult struct {
	Balance        int64 // credits bought (the starter package)
	MaxTokens      int
	Requests       int
	OK, Refused402 int64
	Other, Unknown int64
	MinCost        int64 // lowest usage.cost_credits of a success
	Samples        int64 // GET /v1/balance reads during the burst
	Final          BalanceReply
	Problems       []string
}

// BalanceReply is GET /v1/balance.
type BalanceReply struct {
	Credits     int64 `json:"credits"`
	Held        int64 `json:"held"`
	Provisional int64 `json:"provisional"`
	Debt        int64 `json:"debt"`
}

// Contention is S9: a fresh account buys the starter package, then n
// concurrent chats on SlowModel, each holding about 1/50 of the balance,
// race for it while the balance is sampled. Never more may be spent than
// was bought, and available credits may never read negative without debt.
func Contention(ctx context.Context, cl *Cluster, n int) (*ContentionResult, error) {
	res := &ContentionResult{Requests: n}
	var problemsMu sync.Mutex
	problem := func(f string, a ...any) {
		problemsMu.Lock()
		defer problemsMu.Unlock()
		if len(res.Problems) < 20 {
			res.Problems = append(res.Problems, fmt.Sprintf(f, a...))
		}
	}
	call := func(i int, method, path, bearer string, hdr map[string]string, body any) Reply {
		var r Reply
		for attempt := range 8 {
			r = Call(ctx, method, cl.Addrs[(i+attempt)%len(cl.Addrs)]+path, bearer, hdr, body)
			if r.Outcome != Unknown && r.Status < 500 {
				return r
			}
			time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
		}
		return r
	}
	r := call(0, "POST", "/admin/accounts", cl.AdminToken, nil, nil)
	var acct struct {
		APIKey string `json:"api_key"`
	}
	if r.Status != 201 || r.Decode(&acct) != nil {
		return res, fmt.Errorf("S9: create account: %s", r)
	}
	hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("s9-%d", time.Now().UnixNano())}
	r = call(0, "POST", "/v1/payments/orders", acct.APIKey, hdr, map[string]any{"package_id": "starter", "device_fingerprint": "fps9contention000000"})
	var o createdOrder
	if r.Outcome != OK || r.Decode(&o) != nil || o.OutTradeNo == "" {
		return res, fmt.Errorf("S9: order: %s", r)
	}
	if r := Call(ctx, "POST", cl.Sim+"/sim/orders/"+o.OutTradeNo+"/pay", "", nil, nil); r.Outcome != OK {
		return res, fmt.Errorf("S9: pay: %s", r)
	}
	res.Balance = o.Credits
	deadline := time.Now().Add(60 * time.Second)
	for {
		var b BalanceReply
		r := call(0, "GET", "/v1/balance", acct.APIKey, nil, nil)
		if r.Outcome == OK && r.Decode(&b) == nil && b.Credits >= o.Credits && b.Provisional == 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("S9: %d credits not granted after 60 s: %s", o.Credits, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Hold ≈ (prompt + prompt/4 + 16) + 2 × max_tokens ≈ balance / 50.
	res.MaxTokens = int(o.Credits / 50 / 2)
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"contention"}],"max_tokens":%d}`, SlowModel, res.MaxTokens)

	var minCost atomic.Int64
	minCost.Store(-1)
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	check := func(b BalanceReply, when string) {
		if b.Credits < 0 && b.Debt == 0 {
			problem("S9: %s: available %d < 0 without debt (held %d)", when, b.Credits, b.Held)
		}
	}
	for i := range 2 {
		sampler.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var b BalanceReply
				r := Call(ctx, "GET", cl.Addrs[i%len(cl.Addrs)]+"/v1/balance", acct.APIKey, nil, nil)
				if r.Outcome == OK && r.Decode(&b) == nil {
					atomic.AddInt64(&res.Samples, 1)
					check(b, "sample")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			r := Call(ctx, "POST", cl.Addrs[i%len(cl.Addrs)]+"/v1/chat/completions", acct.APIKey, nil, body)
			switch {
			case r.Outcome == OK:
				atomic.AddInt64(&res.OK, 1)
				var c struct {
					Usage struct {
						CostCredits int64 `json:"cost_credits"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(r.Body, &c); err != nil || c.Usage.CostCredits <= 0 {
					problem("S9: success without cost_credits: %.200s", r.Body)
					return
				}
				for {
					m := minCost.Load()
					if m >= 0 && m <= c.Usage.CostCredits || minCost.CompareAndSwap(m, c.Usage.CostCredits) {
						break
					}
				}
			case r.Status == 402:
				atomic.AddInt64(&res.Refused402, 1)
			case r.Outcome == Unknown:
				atomic.AddInt64(&res.Unknown, 1)
			default:
				atomic.AddInt64(&res.Other, 1)
				problem("S9: chat answered %s", r)
			}
		})
	}
	close(gate)
	wg.Wait()
	close(stop)
	sampler.Wait()
	res.MinCost = minCost.Load()
	r = call(0, "GET", "/v1/balance", acct.APIKey, nil, nil)
	if r.Outcome != OK || r.Decode(&res.Final) != nil {
		return res, fmt.Errorf("S9: final balance: %s", r)
	}
	check(res.Final, "final")
	// The verdicts below are kept even when the samples filled the list.
	problem = func(f string, a ...any) { res.Problems = append(res.Problems, fmt.Sprintf(f, a...)) }
	if res.Final.Credits < 0 || res.Final.Debt != 0 {
		problem("S9: final balance %+v: negative or in debt", res.Final)
	}
	if res.MinCost > 0 && res.OK*res.MinCost > res.Balance {
		problem("S9: %d successes × %d credits (cheapest) = %d > %d credits bought: over-reserved",
			res.OK, res.MinCost, res.OK*res.MinCost, res.Balance)
	}
	return res, nil
}
