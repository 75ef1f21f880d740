package reliability_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"tollgate/ledger"
	"tollgate/reliability"
	"tollgate/store/postgres"
	"tollgate/webhook"
)

// startWebhooks starts the app's webhook receiver (https in production,
// with the test CA the instances trust) and registers it on the cluster
// for every event type, before any money changes.
func startWebhooks(t *testing.T, ctx context.Context, cl *reliability.Cluster, seed int64, production bool) (*reliability.Receiver, string) {
	t.Helper()
	rc := &reliability.Receiver{Seed: seed, FailRate: 0.2, StallRate: 0.05, StallMax: 1500 * time.Millisecond}
	if production {
		cert, err := tls.LoadX509KeyPair(cl.TLS.ServerCert, cl.TLS.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		rc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	ep, secret, err := reliability.WebhookEndpoint(ctx, cl.Addrs[0], cl.AdminToken, rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	return rc, ep
}

// webhooks is the webhook part of the run (issue 20): a few adjustments
// by the operator while the receiver still fails, then the receiver's
// faults stop and the harness waits (bounded) until every delivery is
// delivered and the checks W1–W5 hold, making pending deliveries due at
// once with POST /admin/webhooks/{id}/deliveries/{delivery}/retry (the
// dispatcher's backoff may be minutes, a lease of a killed instance 2
// minutes); then it fails the run for every broken invariant.
func webhooks(t *testing.T, ctx context.Context, st *postgres.Store, cl *reliability.Cluster, rc *reliability.Receiver, ep string, seed int64) {
	d, err := dump(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	adjusted := adjust(t, ctx, cl, d, seed)
	rc.StopFaults()

	const limit = 90 * time.Second
	start := time.Now()
	pendingSince := map[string]time.Time{}
	var rep *reliability.WebhookReport
	var retried, lastGot, lastSent int
	lastChange := start
	for {
		got := rc.Events()
		d, err := dump(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		closed, err := reliability.ClosedOrders(ctx, st.OrdersPage)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := reliability.Deliveries(ctx, st, ep)
		if err != nil {
			t.Fatal(err)
		}
		rep = reliability.CheckWebhooks(got, ds, reliability.WebhookLedger{Dump: d, Closed: closed})
		if len(rep.Problems) == 0 || time.Since(start) > limit {
			break
		}
		now := time.Now()
		// Settled yet wrong: every delivery delivered, nothing new taken
		// or sent for 5 s (the dispatchers fan out every second).
		allDelivered := !slices.ContainsFunc(ds, func(dl webhook.Delivery) bool { return dl.Status == webhook.StatusPending })
		if len(got) != lastGot || len(ds) != lastSent || !allDelivered {
			lastGot, lastSent, lastChange = len(got), len(ds), now
		} else if now.Sub(lastChange) > 5*time.Second {
			break
		}
		for _, dl := range ds {
			if dl.Status != webhook.StatusPending {
				delete(pendingSince, dl.ID)
				continue
			}
			since, ok := pendingSince[dl.ID]
			if !ok {
				pendingSince[dl.ID] = now
				continue
			}
			if now.Sub(since) < 2*time.Second {
				continue
			}
			url := fmt.Sprintf("%s/admin/webhooks/%s/deliveries/%s/retry", cl.Addrs[retried%len(cl.Addrs)], ep, dl.ID)
			if r := reliability.Call(ctx, "POST", url, cl.AdminToken, nil, nil); r.Outcome != reliability.OK {
				t.Logf("webhooks: retry %s: %s", dl.ID, r)
			}
			retried++
			pendingSince[dl.ID] = now
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	wait := time.Since(start).Round(time.Millisecond)
	if len(rep.Problems) > 0 {
		t.Errorf("webhooks: the checks still fail %v after the receiver's faults stopped (every delivery delivered, or the limit of %v passed)", wait, limit)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
	for _, p := range rc.Problems() {
		t.Error(p)
	}
	t.Logf("webhooks: %d events taken (%d duplicate copies dropped by webhook-id) by type %v; %d deliveries, %d attempts; "+
		"receiver: %d requests, %d answered 500, %d answered 503 down (%d down windows), %d stalled, %d cut by a kill; "+
		"%d operator adjustments at the end; all delivered %v after the faults stopped, %d pending deliveries made due by the admin API",
		rep.Events, rep.Copies, rep.ByType, rep.Deliveries, rep.Attempts, rc.Attempts.Load(), rc.Failed.Load(), rc.DownAnswers.Load(),
		rc.Downs(), rc.Stalled.Load(), rc.Cut.Load(), adjusted, wait, retried)
	for _, c := range []struct {
		what string
		n    int64
	}{
		{"webhook delivery answered 500", rc.Failed.Load()},
		{"webhook receiver down window", int64(rc.Downs())},
		{"webhook delivery cut by a kill", rc.Cut.Load()},
		{"payment.succeeded taken", int64(rep.ByType[webhook.PaymentSucceeded])},
		{"payment.closed taken", int64(rep.ByType[webhook.PaymentClosed])},
		{"refund.succeeded taken", int64(rep.ByType[webhook.RefundSucceeded])},
		{"account.created taken", int64(rep.ByType[webhook.AccountCreated])},
		{"adjustment.created taken", int64(rep.ByType[webhook.AdjustmentCreated])},
		{"grant.debt_recorded taken", int64(rep.ByType[webhook.GrantDebtRecorded])},
	} {
		if c.n == 0 {
			t.Errorf("vacuous run: no %s", c.what)
		}
	}
}

// adjust makes a few operator adjustments (admin API) on seeded accounts,
// some adding credit, some removing it, and returns how many succeeded:
// adjustment.created is a money change the app must hear of too.
func adjust(t *testing.T, ctx context.Context, cl *reliability.Cluster, d *ledger.Dump, seed int64) int {
	if len(d.Accounts) == 0 {
		return 0
	}
	rng := rand.New(rand.NewSource(seed ^ 0xad1))
	var ok int
	for k := range 6 {
		a := d.Accounts[rng.Intn(len(d.Accounts))]
		credits := int64(100 + rng.Intn(900))
		if k%2 == 1 {
			credits = -int64(1 + rng.Intn(50))
		}
		url := fmt.Sprintf("%s/admin/accounts/%s/adjustments", cl.Addrs[k%len(cl.Addrs)], a.ID)
		// A removal may take the account into debt.
		r := reliability.Call(ctx, "POST", url, cl.AdminToken, map[string]string{"Idempotency-Key": fmt.Sprintf("harness-%d-%d", seed, k)},
			map[string]any{"credits": credits, "reason": "reliability harness", "as_debt": credits < 0})
		if r.Outcome == reliability.OK {
			ok++
		} else {
			t.Errorf("webhooks: adjustment of %d credits on %s: %s", credits, a.ID, r)
		}
	}
	return ok
}
