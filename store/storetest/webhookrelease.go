package storetest

import (
	"testing"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// testWebhookSkipAndRelease: a claim skips the endpoints it is told to (a
// dispatcher with as many attempts to them in flight as it makes); a
// released delivery is due again at once, for anyone, with neither the
// claim's attempt nor a failure counted.
func testWebhookSkipAndRelease(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	a := w.endpoint(t, webhook.PaymentSucceeded)
	b := w.endpoint(t, webhook.PaymentSucceeded)
	ev := w.append(t, webhook.PaymentSucceeded, "alice")
	cs, err := w.s.Claim(w.ctx, webhook.ClaimRequest{Owner: "d1", Now: w.now, Lease: time.Minute, Limit: 10,
		SkipEndpoints: []string{a.ID, "we_unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Endpoint.ID != b.ID || cs[0].Event.ID != ev.ID {
		t.Fatalf("claimed %+v, want only endpoint b's delivery", cs)
	}
	rest := w.claim(t, "d1", 10)
	if len(rest) != 1 || rest[0].Endpoint.ID != a.ID {
		t.Fatalf("then claimed %+v, want endpoint a's delivery", rest)
	}
	// Released by another than the owner: refused.
	if _, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: cs[0].Delivery.ID, Owner: "d2", Now: w.now, Release: true}); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("release by a non-owner: %v", err)
	}
	later := w.now.Add(time.Second)
	ep, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: cs[0].Delivery.ID, Owner: "d1", Now: later, Release: true})
	if err != nil {
		t.Fatal(err)
	}
	if ep.ID != b.ID || ep.ConsecutiveFailures != 0 || !ep.FailingSince.IsZero() {
		t.Fatalf("endpoint after a release: %+v", ep)
	}
	if _, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: cs[0].Delivery.ID, Owner: "d1", Now: later, Release: true}); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("release twice: %v", err)
	}
	// Due at once (no lease, no backoff), for another dispatcher; the
	// claim is its first attempt.
	again, err := w.s.Claim(w.ctx, webhook.ClaimRequest{Owner: "d2", Now: later, Lease: time.Minute, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Delivery.ID != cs[0].Delivery.ID || again[0].Delivery.Attempts != 1 ||
		again[0].Delivery.Status != webhook.StatusPending || again[0].Delivery.LastError != "" ||
		again[0].Delivery.NextAttemptAt.After(later) {
		t.Fatalf("after the release, claimed %+v", again)
	}
}
