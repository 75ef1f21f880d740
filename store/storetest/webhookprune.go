package storetest

import (
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// testWebhookPrune: PruneEvents deletes, oldest first and at most limit
// per call, the events older than the cutoff that are fanned out and
// finished (every delivery delivered or failed, or none), with their
// deliveries; it never deletes an event with a pending delivery (one
// waiting for a retry, or made pending again by RetryDelivery), one not
// yet fanned out, or a newer one; the account's seq goes on after it.
func testWebhookPrune(t *testing.T, w *webhookEnv) {
	ctx := w.ctx
	w.account(t, "pia")
	mk := func() webhook.Endpoint {
		e, err := webhook.NewEndpoint("", "https://app.example/hooks", []string{webhook.PaymentSucceeded}, "prune", webhook.URLPolicy{}, w.now.Add(-48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.s.CreateEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := mk(), mk()
	old := w.now.Add(-24 * time.Hour)
	appendAt := func(typ string, at time.Time) webhook.Event {
		t.Helper()
		e, err := webhook.NewEvent(typ, "pia", at, map[string]any{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if e, err = w.s.AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	delivered := appendAt(webhook.PaymentSucceeded, old)                  // delivered to both: pruned
	mixed := appendAt(webhook.PaymentSucceeded, old)                      // delivered and failed: pruned
	unheard := appendAt(webhook.BalanceLow, old)                          // no subscriber: pruned
	retrying := appendAt(webhook.PaymentSucceeded, old)                   // one attempt to retry later: kept
	retried := appendAt(webhook.PaymentSucceeded, old)                    // failed, then retried by the admin: kept
	recent := appendAt(webhook.PaymentSucceeded, w.now.Add(-time.Minute)) // newer than the cutoff: kept

	cs := w.claim(t, "pruner-test", 100)
	if len(cs) != 10 {
		t.Fatalf("claimed %d deliveries, want 10", len(cs))
	}
	var retryLater, toRetry string
	for _, c := range cs {
		o := webhook.Outcome{DeliveryID: c.Delivery.ID, Owner: "pruner-test", Now: w.now, Delivered: true}
		switch {
		case c.Event.ID == mixed.ID && c.Endpoint.ID == b.ID:
			o.Delivered, o.Failed = false, true
		case c.Event.ID == retrying.ID && c.Endpoint.ID == b.ID:
			o.Delivered, o.NextAttemptAt, o.HTTPStatus = false, w.now.Add(time.Hour), 500
			retryLater = c.Delivery.ID
		case c.Event.ID == retried.ID:
			o.Delivered, o.Failed = false, true
			if c.Endpoint.ID == a.ID {
				toRetry = c.Delivery.ID
			}
		}
		if _, err := w.s.Complete(ctx, o); err != nil {
			t.Fatalf("complete %+v: %v", o, err)
		}
	}
	if _, err := w.s.RetryDelivery(ctx, a.ID, toRetry, w.now); err != nil {
		t.Fatal(err)
	}
	notFanned := appendAt(webhook.PaymentSucceeded, old) // appended after the claim: kept

	if _, err := w.s.PruneEvents(ctx, w.now, 0); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("limit 0: %v", err)
	}
	cutoff := w.now.Add(-time.Hour)
	// Bounded batches: 2, then the last 1, then nothing.
	for i, want := range []int{2, 1, 0} {
		n, err := w.s.PruneEvents(ctx, cutoff, 2)
		if err != nil || n != want {
			t.Fatalf("prune batch %d: %d, %v; want %d", i, n, err, want)
		}
	}

	// What is left: the deliveries of the kept events only.
	left := map[string]int{}
	for _, ep := range []webhook.Endpoint{a, b} {
		ds, err := w.s.ListDeliveries(ctx, webhook.DeliveryQuery{Endpoint: ep.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			left[d.EventID]++
		}
	}
	for _, gone := range []webhook.Event{delivered, mixed, unheard} {
		if left[gone.ID] != 0 {
			t.Fatalf("event %s pruned but %d deliveries left", gone.ID, left[gone.ID])
		}
	}
	for _, kept := range []webhook.Event{retrying, retried, recent} {
		if left[kept.ID] != 2 {
			t.Fatalf("kept event %s has %d deliveries, want 2 (%v)", kept.ID, left[kept.ID], left)
		}
	}
	// The event not fanned out was kept: a claim fans it out now, and the
	// retried delivery is due.
	got := map[string]bool{}
	for _, c := range w.claim(t, "pruner-test-2", 100) {
		got[c.Event.ID+"/"+c.Delivery.ID] = true
		got[c.Event.ID] = true
	}
	if !got[notFanned.ID] || !got[retried.ID+"/"+toRetry] || got[retrying.ID+"/"+retryLater] {
		t.Fatalf("after pruning, claimed %v", got)
	}
	// The seq goes on.
	if e := appendAt(webhook.PaymentSucceeded, w.now); e.Seq != notFanned.Seq+1 {
		t.Fatalf("seq after pruning %d, want %d", e.Seq, notFanned.Seq+1)
	}
}

// testWebhookPruneConcurrent: two instances pruning one database at once
// delete every prunable event once between them, without an error.
func testWebhookPruneConcurrent(t *testing.T, w *webhookEnv) {
	ctx := w.ctx
	other := w.open(t)
	t.Cleanup(func() { other.Close() })
	w.account(t, "quinn")
	ep, err := webhook.NewEndpoint("", "https://app.example/hooks", []string{webhook.PaymentSucceeded}, "prune", webhook.URLPolicy{}, w.now.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	const events = 40
	for i := 0; i < events; i++ {
		e, err := webhook.NewEvent(webhook.PaymentSucceeded, "quinn", w.now.Add(-24*time.Hour), map[string]any{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.s.AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range w.claim(t, "pruner-conc", 100) {
		if _, err := w.s.Complete(ctx, webhook.Outcome{DeliveryID: c.Delivery.ID, Owner: "pruner-conc", Now: w.now, Delivered: true}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, s := range []webhook.Store{w.s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := s.PruneEvents(ctx, w.now, 3)
				counts[i] += n
				if err != nil || n == 0 {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] != events {
		t.Fatalf("two pruners deleted %v events (errors %v), want %d in all", counts, errs, events)
	}
	if n, err := w.s.PruneEvents(ctx, w.now, 3); n != 0 || err != nil {
		t.Fatalf("prune after both: %d, %v", n, err)
	}
}
