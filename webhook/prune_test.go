package webhook_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"tollgate/internal/clocktest"
	"tollgate/webhook"
)

// pruneStore records PruneEvents calls and has backlog events to prune;
// the rest of webhook.Store is not used by a Pruner.
type pruneStore struct {
	webhook.Store
	mu      sync.Mutex
	backlog int
	calls   []pruneCall
}

type pruneCall struct {
	before time.Time
	limit  int
}

func (s *pruneStore) PruneEvents(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, pruneCall{before, limit})
	n := min(limit, s.backlog)
	s.backlog -= n
	return n, nil
}

func (s *pruneStore) take() []pruneCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// TestPrunerBatchesAndInterval: a Pruner deletes what is older than the
// retention (30 days by default) in batches until one comes back short,
// then again every interval (1 h by default); a negative retention keeps
// everything.
func TestPrunerBatchesAndInterval(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	st := &pruneStore{backlog: 250}
	p := &webhook.Pruner{Store: st, Clock: clock, Batch: 100}
	n, err := p.PruneOnce(context.Background())
	if err != nil || n != 250 {
		t.Fatalf("PruneOnce = %d, %v; want 250", n, err)
	}
	calls := st.take()
	if len(calls) != 3 {
		t.Fatalf("%d batches, want 3 (100, 100, 50): %+v", len(calls), calls)
	}
	for _, c := range calls {
		if c.limit != 100 || !c.before.Equal(t0.Add(-webhook.DefaultRetention)) || webhook.DefaultRetention != 30*24*time.Hour {
			t.Fatalf("batch %+v, want limit 100 before %v", c, t0.Add(-webhook.DefaultRetention))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("Run is not waiting for its interval")
	}
	if c := st.take(); len(c) != 1 { // the first pass, at once: nothing left
		t.Fatalf("first pass %+v", c)
	}
	st.mu.Lock()
	st.backlog = 5
	st.mu.Unlock()
	clock.Advance(webhook.DefaultPruneInterval - time.Second)
	if c := st.take(); len(c) != 0 {
		t.Fatalf("pruned before the interval passed: %+v", c)
	}
	clock.Advance(time.Second)
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("Run did not wait again")
	}
	c := st.take()
	if len(c) != 1 || !c[0].before.Equal(t0.Add(webhook.DefaultPruneInterval-webhook.DefaultRetention)) {
		t.Fatalf("second pass %+v", c)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run = %v", err)
	}

	keep := &webhook.Pruner{Store: st, Clock: clock, Retention: -1}
	if n, err := keep.PruneOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("negative retention PruneOnce = %d, %v", n, err)
	}
	if err := keep.Run(context.Background()); err != nil || len(st.take()) != 0 {
		t.Fatalf("negative retention Run = %v", err)
	}
}
