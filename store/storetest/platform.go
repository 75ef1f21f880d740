package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/webhook"
)

func testPlatform(id string, hosts ...string) auth.Platform {
	return auth.Platform{ID: id, Name: "App " + id, Hash: auth.Hash("plain-" + id), Prefix: "tgp-" + id[:3],
		ReturnURLHosts: hosts, CreatedAt: keyEpoch}
}

// testPlatforms: a platform reads back as stored by id and by key hash,
// lists oldest first, refuses a second of the same id or hash, and is
// revoked once (the first time stays).
func testPlatforms(t *testing.T, s APIKeyStore, _ *ledger.Service) {
	ctx := context.Background()
	a, b := testPlatform("plat_a", "app.example.com", "shop.example.com"), testPlatform("plat_b")
	b.CreatedAt = keyEpoch.Add(time.Second)
	for _, p := range []auth.Platform{a, b} {
		if err := s.CreatePlatform(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	b.ReturnURLHosts = nil
	dup := testPlatform("plat_c")
	dup.Hash = a.Hash
	wantCode(t, "same hash", s.CreatePlatform(ctx, dup), tollgate.ECONFLICT)
	wantCode(t, "same id", s.CreatePlatform(ctx, testPlatform("plat_a")), tollgate.ECONFLICT)
	got, err := s.PlatformByHash(ctx, a.Hash)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("PlatformByHash = %+v, %v\nwant %+v", got, err, a)
	}
	if got, err := s.PlatformByID(ctx, "plat_b"); err != nil || got.ID != "plat_b" || len(got.ReturnURLHosts) != 0 {
		t.Fatalf("PlatformByID = %+v, %v", got, err)
	}
	_, err = s.PlatformByHash(ctx, auth.Hash("nope"))
	wantCode(t, "unknown hash", err, tollgate.ENOTFOUND)
	_, err = s.PlatformByID(ctx, "plat_x")
	wantCode(t, "unknown id", err, tollgate.ENOTFOUND)
	list, err := s.Platforms(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != "plat_a" || list[1].ID != "plat_b" {
		t.Fatalf("Platforms = %+v, %v", list, err)
	}
	if list, err := s.Platforms(ctx, 1); err != nil || len(list) != 1 {
		t.Fatalf("Platforms(1) = %+v, %v", list, err)
	}
	at := keyEpoch.Add(time.Hour)
	if err := s.RevokePlatform(ctx, "plat_a", at); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokePlatform(ctx, "plat_a", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PlatformByID(ctx, "plat_a"); err != nil || !got.RevokedAt.Equal(at) {
		t.Fatalf("revoked = %+v, %v; want revoked at %v", got, err, at)
	}
	wantCode(t, "revoke unknown", s.RevokePlatform(ctx, "plat_x", at), tollgate.ENOTFOUND)
}

// testPlatformAccounts: a platform's user is one account, made once and
// found after; the same external id under another platform, or with no
// platform, is another account; an unknown platform is ENOTFOUND with
// nothing made; the made account is an empty ledger account, and the
// admin's profile search by external id finds every one of them.
func testPlatformAccounts(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	for _, p := range []auth.Platform{testPlatform("plat_a"), testPlatform("plat_b")} {
		if err := s.CreatePlatform(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	at := keyEpoch.Add(time.Minute)
	id, created, err := s.PlatformAccount(ctx, "plat_a", "user-42", "acct_a42", at)
	if err != nil || id != "acct_a42" || !created {
		t.Fatalf("first PlatformAccount = %s, %v, %v", id, created, err)
	}
	id, created, err = s.PlatformAccount(ctx, "plat_a", "user-42", "acct_other", at)
	if err != nil || id != "acct_a42" || created {
		t.Fatalf("second PlatformAccount = %s, %v, %v; want acct_a42 found", id, created, err)
	}
	id, created, err = s.PlatformAccount(ctx, "plat_b", "user-42", "acct_b42", at)
	if err != nil || id != "acct_b42" || !created {
		t.Fatalf("other platform's PlatformAccount = %s, %v, %v", id, created, err)
	}
	id, created, err = s.PlatformAccount(ctx, "", "user-42", "acct_n42", at)
	if err != nil || id != "acct_n42" || !created {
		t.Fatalf("no platform's PlatformAccount = %s, %v, %v", id, created, err)
	}
	_, _, err = s.PlatformAccount(ctx, "plat_x", "user-42", "acct_x42", at)
	wantCode(t, "unknown platform", err, tollgate.ENOTFOUND)
	if _, err := s.AccountProfile(ctx, "acct_x42"); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("an unknown platform made an account: %v", err)
	}
	for acct, plat := range map[tollgate.AccountID]string{"acct_a42": "plat_a", "acct_b42": "plat_b", "acct_n42": ""} {
		if got, err := s.AccountPlatform(ctx, acct); err != nil || got != plat {
			t.Fatalf("AccountPlatform(%s) = %q, %v; want %q", acct, got, err, plat)
		}
		p, err := s.AccountProfile(ctx, acct)
		if err != nil || p.ExternalID != "user-42" || !p.CreatedAt.Equal(at) || p.Platform != plat {
			t.Fatalf("profile of %s = %+v, %v", acct, p, err)
		}
		b, err := svc.Balance(ctx, acct)
		if err != nil || b.Credits != 0 || b.Debt != 0 {
			t.Fatalf("balance of %s = %+v, %v", acct, b, err)
		}
	}
	_, err = s.AccountPlatform(ctx, "acct_none")
	wantCode(t, "AccountPlatform of no account", err, tollgate.ENOTFOUND)
	found, err := s.ListAccounts(ctx, auth.AccountQuery{Q: "user-42", Exact: true, Limit: 10})
	if err != nil || len(found) != 3 {
		t.Fatalf("search by external id = %+v, %v; want the 3 accounts", found, err)
	}
	// The admin giving an account of no platform an external id another
	// account of no platform has is still a conflict; one a platform's
	// user has is not.
	mustAccount(t, svc, "acct_admin")
	_, err = s.UpdateAccountProfile(ctx, "acct_admin", func(p *auth.Profile) error { p.ExternalID = "user-42"; return nil })
	wantCode(t, "duplicate external id without platform", err, tollgate.ECONFLICT)
	if _, _, err := s.PlatformAccount(ctx, "plat_a", "user-7", "acct_a7", at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccountProfile(ctx, "acct_admin", func(p *auth.Profile) error { p.ExternalID = "user-7"; return nil }); err != nil {
		t.Fatalf("an admin account's external id one platform's user has: %v", err)
	}
}

// testPlatformAccountRace: many callers asking at once for the same new
// user of a platform all get one account, exactly one made it, and one
// account.created event tells of it.
func testPlatformAccountRace(t *testing.T, s APIKeyStore, _ *ledger.Service) {
	PlatformAccountRace(t, s)
}

// PlatformAccountRace has 8 callers ask at once, through stores in turn
// (two handles on one database: two instances), for the same new user of
// a new platform: all get one account, exactly one made it, the other
// candidates exist nowhere, and the outbox holds exactly one
// account.created for it, with the user's external_id and platform.
func PlatformAccountRace(t *testing.T, stores ...APIKeyStore) {
	ctx := context.Background()
	s := stores[0]
	ws, ok := s.(webhook.Store)
	if !ok {
		t.Fatalf("%T keeps no webhook outbox", s)
	}
	if err := s.CreatePlatform(ctx, testPlatform("plat_r")); err != nil {
		t.Fatal(err)
	}
	ep, err := webhook.NewEndpoint("", "https://op.example/hooks", []string{webhook.AccountCreated}, "", webhook.URLPolicy{}, keyEpoch.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	ids := make([]tollgate.AccountID, n)
	made := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ids[i], made[i], errs[i] = stores[i%len(stores)].PlatformAccount(ctx, "plat_r", "racer", tollgate.AccountID(fmt.Sprintf("acct_r%d", i)), keyEpoch)
		}()
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("callers got %v; want one account", ids)
		}
		if made[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers made the account; want 1", creators)
	}
	for i := range n {
		id := tollgate.AccountID(fmt.Sprintf("acct_r%d", i))
		if _, err := s.AccountProfile(ctx, id); (id == ids[0]) != (err == nil) {
			t.Fatalf("profile of candidate %s: %v (winner %s)", id, err, ids[0])
		}
	}
	cs, err := ws.Claim(ctx, webhook.ClaimRequest{Owner: "race", Now: keyEpoch.Add(time.Hour), Lease: time.Minute, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d events after the race; want one account.created", len(cs))
	}
	e := cs[0].Event
	var data ledger.AccountView
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatal(err)
	}
	if e.Type != webhook.AccountCreated || e.Account.ID != ids[0] || e.Seq != 1 || e.Account.ExternalID == nil ||
		*e.Account.ExternalID != "racer" || e.PlatformID != "plat_r" || data.Account != ids[0] || !data.CreatedAt.Equal(keyEpoch) {
		t.Fatalf("event = %+v (external id %v), data %+v; want account.created of %s, user racer of plat_r", e, e.Account.ExternalID, data, ids[0])
	}
}
