package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/webhook"
)

// testWebhookPlatformScope: an endpoint of a platform receives the events
// of that platform's accounts and nothing else; the operator's endpoints
// receive every account's. An event of a platform-A account goes to the
// operator's endpoint and A's, never to B's; one of an account without a
// platform only to the operator's. Endpoints list by platform, and a
// platform that does not exist, or one past its bound, gets none.
func testWebhookPlatformScope(t *testing.T, w *webhookEnv) {
	ps, ok := w.s.(auth.PlatformStore)
	if !ok {
		t.Fatalf("%T keeps no platforms", w.s)
	}
	for _, id := range []string{"plat_a", "plat_b"} {
		if err := ps.CreatePlatform(w.ctx, testPlatform(id)); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(platform string) webhook.Endpoint {
		t.Helper()
		e, err := webhook.NewEndpoint(platform, "https://app.example/hooks", webhook.Types(), platform, webhook.URLPolicy{}, w.now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.s.CreateEndpoint(w.ctx, e); err != nil {
			t.Fatalf("create endpoint of %q: %v", platform, err)
		}
		return e
	}
	op, a, b := mk(""), mk("plat_a"), mk("plat_b")
	owner := map[string]string{op.ID: "operator", a.ID: "plat_a", b.ID: "plat_b"}

	e, _ := webhook.NewEndpoint("plat_x", "https://x.example/", webhook.Types(), "", webhook.URLPolicy{}, w.now)
	wantCode(t, "endpoint of no platform", w.s.CreateEndpoint(w.ctx, e), tollgate.ENOTFOUND)

	if got, err := w.s.GetEndpoint(w.ctx, a.ID); err != nil || got.PlatformID != "plat_a" {
		t.Fatalf("GetEndpoint(a) = %+v, %v", got, err)
	}
	if got, err := w.s.GetEndpoint(w.ctx, op.ID); err != nil || got.PlatformID != "" {
		t.Fatalf("GetEndpoint(operator's) = %+v, %v", got, err)
	}
	all, err := w.s.ListEndpoints(w.ctx, webhook.EndpointQuery{Limit: 10})
	if err != nil || len(all) != 3 {
		t.Fatalf("ListEndpoints = %+v, %v; want 3", all, err)
	}
	for _, e := range all {
		if want := map[string]string{op.ID: "", a.ID: "plat_a", b.ID: "plat_b"}[e.ID]; e.PlatformID != want {
			t.Fatalf("listed %s of %q, want %q", e.ID, e.PlatformID, want)
		}
	}
	if got, err := w.s.ListEndpoints(w.ctx, webhook.EndpointQuery{Platform: "plat_b", Limit: 10}); err != nil || len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("ListEndpoints(plat_b) = %+v, %v; want only %s", got, err, b.ID)
	}

	// Accounts: a user of each platform (made by the platform: its
	// account.created), one of the admin's, and events about them.
	for _, u := range []struct {
		plat string
		id   tollgate.AccountID
	}{{"plat_a", "acct_pa"}, {"plat_b", "acct_pb"}} {
		if _, made, err := ps.PlatformAccount(w.ctx, u.plat, "user-1", u.id, w.now); err != nil || !made {
			t.Fatalf("platform account %s: %v, %v", u.id, made, err)
		}
	}
	mustAccount(t, w.svc, "acct_op")
	w.append(t, webhook.PaymentSucceeded, "acct_pa")
	w.append(t, webhook.PaymentSucceeded, "acct_op")

	got := map[string][]string{} // "account type" -> who received it
	for _, c := range w.claim(t, "scope", 100) {
		k := fmt.Sprintf("%s %s", c.Event.Account.ID, c.Event.Type)
		got[k] = append(got[k], owner[c.Endpoint.ID])
		want := map[tollgate.AccountID]string{"acct_pa": "plat_a", "acct_pb": "plat_b"}[c.Event.Account.ID]
		if c.Event.PlatformID != want {
			t.Fatalf("%s: event platform %q, want %q", k, c.Event.PlatformID, want)
		}
		if c.Event.Account.ID != "acct_op" && (c.Event.Account.ExternalID == nil || *c.Event.Account.ExternalID != "user-1") {
			t.Fatalf("%s: external id %v, want user-1", k, c.Event.Account.ExternalID)
		}
		body, err := c.Event.Body()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || len(m) != 7 {
			t.Fatalf("delivered body %s (%v): want object, id, type, created_at, account, seq, data only", body, err)
		}
	}
	for k := range got {
		slices.Sort(got[k])
	}
	want := map[string][]string{
		"acct_pa account.created":   {"operator", "plat_a"},
		"acct_pa payment.succeeded": {"operator", "plat_a"},
		"acct_pb account.created":   {"operator", "plat_b"},
		"acct_op account.created":   {"operator"},
		"acct_op payment.succeeded": {"operator"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries by event:\n%v\nwant\n%v", got, want)
	}

	// One platform has at most MaxPlatformEndpoints; the others keep
	// theirs.
	for range webhook.MaxPlatformEndpoints - 1 {
		mk("plat_a")
	}
	e, _ = webhook.NewEndpoint("plat_a", "https://x.example/", webhook.Types(), "", webhook.URLPolicy{}, w.now)
	wantCode(t, "one endpoint past the platform's bound", w.s.CreateEndpoint(w.ctx, e), tollgate.ECONFLICT)
	mk("plat_b")
	mk("")
}
