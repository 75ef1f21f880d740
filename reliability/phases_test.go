package reliability_test

import (
	"context"
	"strconv"
	"testing"

	"tollgate/reliability"
)

// upstreamFaults reports what the flaky and healthy mock LLMs answered
// and fails the run as vacuous when the flaky one never failed (a fault
// that never fired proves nothing) or no streaming chat was answered.
func upstreamFaults(t *testing.T, ctx context.Context, up *reliability.Upstreams, w *reliability.Workload) {
	flaky, err := reliability.MockStats(ctx, up.Flaky)
	if err != nil {
		t.Fatal(err)
	}
	healthy, err := reliability.MockStats(ctx, up.Healthy)
	if err != nil {
		t.Fatal(err)
	}
	var errs int64
	for code, n := range flaky {
		if c, _ := strconv.Atoi(code); c >= 400 {
			errs += n
		}
	}
	t.Logf("upstreams: flaky mock answered %v (%d errors injected), healthy mock (failover tier) %v; streaming chats answered %d",
		flaky, errs, healthy, w.Stats.ChatStreams.Load())
	if errs == 0 {
		t.Errorf("vacuous run: no upstream error injected")
	}
	if healthy["200"] == 0 {
		t.Errorf("vacuous run: no chat failed over to the healthy upstream")
	}
	if w.Stats.ChatStreams.Load() == 0 {
		t.Errorf("vacuous run: no streaming chat answered")
	}
}

// contention runs S9 and checks its pass criteria.
func contention(t *testing.T, ctx context.Context, cl *reliability.Cluster) {
	res, err := reliability.Contention(ctx, cl, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("S9 contention: %d chats at once on %d credits, max_tokens %d: ok %d, 402 %d, unknown %d, other %d; cheapest success %d credits (%d × %d = %d); %d balance samples; final %+v",
		res.Requests, res.Balance, res.MaxTokens, res.OK, res.Refused402, res.Unknown, res.Other,
		res.MinCost, res.OK, res.MinCost, res.OK*res.MinCost, res.Samples, res.Final)
	for _, p := range res.Problems {
		t.Error(p)
	}
	if res.Refused402 == 0 {
		t.Errorf("vacuous run: S9 contention refused no chat with 402")
	}
	if res.OK == 0 {
		t.Errorf("vacuous run: S9 contention answered no chat")
	}
}

// bankReader reports S14.
func bankReader(t *testing.T, b *reliability.BankReader) {
	t.Logf("S14 bank reader: %d snapshots read (%d failed reads), %d violations", b.Reads.Load(), b.Errors.Load(), len(b.Violations()))
	for _, v := range b.Violations() {
		t.Error("S14: " + v)
	}
	if b.Reads.Load() == 0 {
		t.Errorf("vacuous run: S14 bank reader read no snapshot")
	}
}

// redisLoss reports S8; the exactly-once checks at the end are its
// verdict.
func redisLoss(t *testing.T, w *reliability.Workload, err error) {
	if err != nil {
		t.Error(err)
	}
	t.Logf("S8 Redis loss: %d wipe(s), %d keys deleted", w.Stats.RedisWipes.Load(), w.Stats.RedisKeysDeleted.Load())
	if w.Stats.RedisWipes.Load() == 0 || w.Stats.RedisKeysDeleted.Load() == 0 {
		t.Errorf("vacuous run: S8 deleted no Redis key mid-run")
	}
}
