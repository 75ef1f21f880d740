package storetest

import (
	"context"
	"testing"
	"time"

	"tollgate/auth"
	"tollgate/webhook"
)

// Upgrade0018Epoch is when the rows a 0018 upgrade test writes at 0017
// were made: endpoint "we_old" (every event type), platform "plat_a" with
// its user "user-1" (account "acct_a1"), and that account's
// account.created event "evt_old" (seq 1), not yet fanned out.
var Upgrade0018Epoch = keyEpoch

// MustWebhooksAfter0018 checks, on a store upgraded past 0018 from such
// rows, that the endpoint made before is the operator's, that the event
// written before (its platform unknown) still reaches it, and that the
// platform's new user's event reaches it and the platform's new endpoint,
// and not another platform's.
func MustWebhooksAfter0018(tb testing.TB, s interface {
	webhook.Store
	auth.PlatformStore
}) {
	tb.Helper()
	ctx := context.Background()
	at := Upgrade0018Epoch.Add(time.Hour)
	if e, err := s.GetEndpoint(ctx, "we_old"); err != nil || e.PlatformID != "" {
		tb.Fatalf("endpoint made before 0018 = %+v, %v; want the operator's", e, err)
	}
	claim := func(what string) map[string]string {
		tb.Helper()
		cs, err := s.Claim(ctx, webhook.ClaimRequest{Owner: what, Now: at.Add(time.Minute), Lease: time.Minute, Limit: 100})
		if err != nil {
			tb.Fatalf("%s: claim: %v", what, err)
		}
		got := map[string]string{}
		for _, c := range cs {
			got[c.Endpoint.ID] = string(c.Event.Account.ID) + " " + c.Event.Type + " " + c.Event.PlatformID
		}
		return got
	}
	if got := claim("old"); len(got) != 1 || got["we_old"] != "acct_a1 account.created " {
		tb.Fatalf("deliveries of the event written before 0018: %v", got)
	}
	if err := s.CreatePlatform(ctx, testPlatform("plat_b")); err != nil {
		tb.Fatal(err)
	}
	for _, p := range []string{"plat_a", "plat_b"} {
		e, err := webhook.NewEndpoint(p, "https://"+p+".example/hooks", webhook.Types(), "", webhook.URLPolicy{}, at)
		if err == nil {
			err = s.CreateEndpoint(ctx, e)
		}
		if err != nil {
			tb.Fatalf("endpoint of %s after 0018: %v", p, err)
		}
	}
	if _, made, err := s.PlatformAccount(ctx, "plat_a", "user-2", "acct_a2", at); err != nil || !made {
		tb.Fatalf("platform account after 0018: %v, %v", made, err)
	}
	got := claim("new")
	if len(got) != 2 || got["we_old"] != "acct_a2 account.created plat_a" {
		tb.Fatalf("deliveries of plat_a's new user: %v; want the operator's endpoint and plat_a's", got)
	}
	for id, ev := range got {
		if e, err := s.GetEndpoint(ctx, id); err != nil || (id != "we_old" && e.PlatformID != "plat_a") {
			tb.Fatalf("plat_a's event %s went to %+v, %v", ev, e, err)
		}
	}
}
