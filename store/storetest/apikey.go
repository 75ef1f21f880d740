package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
)

// APIKeyStore is a store that keeps both the ledger and API keys (keys
// reference accounts).
type APIKeyStore interface {
	ledger.Store
	auth.Store
	auth.ProfileStore
	auth.PlatformStore
}

// APIKeyOpenFunc returns a fresh, empty, migrated store. The suite closes it.
type APIKeyOpenFunc func(tb testing.TB) APIKeyStore

// RunAPIKeys is the conformance suite of auth.Store: store/sqlite and
// store/postgres run it from their tests.
func RunAPIKeys(t *testing.T, open APIKeyOpenFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s APIKeyStore, svc *ledger.Service)
	}{
		{"CreateAndFind", testKeyCreateAndFind},
		{"Errors", testKeyErrors},
		{"Revoke", testKeyRevoke},
		{"Authenticate", testKeyAuthenticate},
		{"Limits", testKeyLimits},
		{"List", testKeyList},
		{"Profiles", testProfiles},
		{"ProfilePages", testProfilePages},
		{"AccountSearch", testAccountSearch},
		{"DisabledKeys", testDisabledKeys},
		{"Platforms", testPlatforms},
		{"PlatformAccounts", testPlatformAccounts},
		{"PlatformAccountRace", testPlatformAccountRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			svc := ledger.New(s, ledger.Options{})
			t.Cleanup(func() {
				svc.Close()
				s.Close()
			})
			tc.fn(t, s, svc)
		})
	}
}

var keyEpoch = time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)

func mustAccount(t *testing.T, svc *ledger.Service, id tollgate.AccountID) {
	t.Helper()
	if _, err := svc.CreateAccount(context.Background(), id); err != nil {
		t.Fatalf("create account %s: %v", id, err)
	}
}

func testKey(id string, account tollgate.AccountID) auth.Key {
	return auth.Key{ID: id, Account: account, Hash: auth.Hash("plain-" + id), Prefix: "tg-" + id[:3], CreatedAt: keyEpoch}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := tollgate.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func testKeyCreateAndFind(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "a1")
	k := testKey("key_1", "a1")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("create: %v", err)
	}
	k2 := testKey("key_2", "a1")
	if err := s.CreateAPIKey(ctx, k2); err != nil {
		t.Fatalf("create second key of the same account: %v", err)
	}
	got, err := s.APIKeyByHash(ctx, k.Hash)
	if err != nil {
		t.Fatalf("by hash: %v", err)
	}
	if got.ID != k.ID || got.Account != k.Account || got.Hash != k.Hash || got.Prefix != k.Prefix ||
		!got.CreatedAt.Equal(k.CreatedAt) || !got.RevokedAt.IsZero() {
		t.Fatalf("by hash: got %+v, want %+v", got, k)
	}
	_, err = s.APIKeyByHash(ctx, auth.Hash("nobody"))
	wantCode(t, "unknown hash", err, tollgate.ENOTFOUND)
}

func testKeyErrors(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "a1")
	k := testKey("key_1", "a1")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("create: %v", err)
	}
	sameID := testKey("key_1", "a1")
	sameID.Hash = auth.Hash("other")
	wantCode(t, "same id", s.CreateAPIKey(ctx, sameID), tollgate.ECONFLICT)
	sameHash := k
	sameHash.ID = "key_9"
	wantCode(t, "same hash", s.CreateAPIKey(ctx, sameHash), tollgate.ECONFLICT)
	wantCode(t, "no account", s.CreateAPIKey(ctx, testKey("key_3", "ghost")), tollgate.ENOTFOUND)
	if _, err := s.APIKeyByHash(ctx, auth.Hash("plain-key_3")); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("a refused key was stored: %v", err)
	}
}

func testKeyRevoke(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "a1")
	mustAccount(t, svc, "a2")
	k := testKey("key_1", "a1")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("create: %v", err)
	}
	wantCode(t, "other account", s.RevokeAPIKey(ctx, "a2", k.ID, keyEpoch), tollgate.ENOTFOUND)
	wantCode(t, "unknown key", s.RevokeAPIKey(ctx, "a1", "key_x", keyEpoch), tollgate.ENOTFOUND)
	first := keyEpoch.Add(time.Hour)
	if err := s.RevokeAPIKey(ctx, "a1", k.ID, first); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "a1", k.ID, first.Add(time.Hour)); err != nil {
		t.Fatalf("revoke again: %v", err)
	}
	got, err := s.APIKeyByHash(ctx, k.Hash)
	if err != nil {
		t.Fatalf("by hash: %v", err)
	}
	if !got.RevokedAt.Equal(first) {
		t.Fatalf("revoked at %v, want the first revocation %v", got.RevokedAt, first)
	}
}

func testKeyAuthenticate(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	a := &auth.Service{Store: s, Accounts: svc, Clock: tollgate.ClockFunc(func() time.Time { return keyEpoch })}
	c, err := a.CreateAccount(ctx)
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	if !auth.LooksLikeKey(c.APIKey) {
		t.Fatalf("key %q has not a key's shape", c.APIKey)
	}
	if _, err := svc.Balance(ctx, c.Account); err != nil {
		t.Fatalf("the ledger account was not made: %v", err)
	}
	k, err := a.Authenticate(ctx, c.APIKey)
	if err != nil || k.Account != c.Account || k.ID != c.Key.ID {
		t.Fatalf("authenticate: %+v, %v", k, err)
	}
	for _, bad := range []string{"", "tg-", c.APIKey + "x", c.APIKey[:len(c.APIKey)-1] + "A", "Bearer " + c.APIKey} {
		if bad == c.APIKey {
			continue
		}
		_, err := a.Authenticate(ctx, bad)
		wantCode(t, "bad key "+bad[:min(len(bad), 5)], err, tollgate.EUNAUTHORIZED)
	}
	if err := s.RevokeAPIKey(ctx, c.Account, c.Key.ID, keyEpoch); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = a.Authenticate(ctx, c.APIKey)
	wantCode(t, "revoked key", err, tollgate.EUNAUTHORIZED)
}

// sameKey reports whether two keys are equal, times compared as instants.
func sameKey(a, b auth.Key) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.RevokedAt.Equal(b.RevokedAt) || !a.Limits.ExpiresAt.Equal(b.Limits.ExpiresAt) {
		return false
	}
	a.CreatedAt, a.RevokedAt, a.Limits.ExpiresAt = time.Time{}, time.Time{}, time.Time{}
	b.CreatedAt, b.RevokedAt, b.Limits.ExpiresAt = time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// testKeyLimits: every limit (models, rates, expiry, the bounds per
// request) comes back as stored, alone or with others, and a key without
// limits comes back with the zero KeyLimits (nil models, not an empty
// list).
func testKeyLimits(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "a1")
	limited := testKey("key_l", "a1")
	limited.Limits = tollgate.KeyLimits{Models: []string{"mock-gpt", "gpt-4o-mini"}, RequestsPerMinute: 7, TokensPerMinute: 1 << 40,
		ExpiresAt: keyEpoch.Add(30 * 24 * time.Hour), MaxCreditsPerRequest: 1 << 50, MaxOutputTokens: 1 << 40}
	only := testKey("key_o", "a1")
	only.Limits = tollgate.KeyLimits{TokensPerMinute: 1}
	perRequest := testKey("key_p", "a1")
	perRequest.Limits = tollgate.KeyLimits{MaxCreditsPerRequest: 1, MaxOutputTokens: 1}
	credits := testKey("key_c", "a1")
	credits.Limits = tollgate.KeyLimits{MaxCreditsPerRequest: 500}
	for _, k := range []auth.Key{limited, only, perRequest, credits, testKey("key_z", "a1")} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("create %s: %v", k.ID, err)
		}
		got, err := s.APIKeyByHash(ctx, k.Hash)
		if err != nil || !sameKey(got, k) {
			t.Fatalf("by hash %s: got %+v, %v; want %+v", k.ID, got, err, k)
		}
	}
}

// testKeyList: an account's keys oldest first, revoked ones included;
// none for an account without keys; ENOTFOUND for no account.
func testKeyList(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "a1")
	mustAccount(t, svc, "a2")
	mustAccount(t, svc, "a3")
	var want []auth.Key
	for i, id := range []string{"key_c", "key_a", "key_b"} {
		k := testKey(id, "a1")
		k.CreatedAt = keyEpoch.Add(time.Duration(i) * time.Second)
		k.Limits.RequestsPerMinute = i + 1
		k.Limits.MaxCreditsPerRequest = tollgate.Credits(100 * i)
		k.Limits.MaxOutputTokens = int64(10 * i)
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		want = append(want, k)
	}
	if err := s.CreateAPIKey(ctx, testKey("key_other", "a2")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "a1", "key_a", keyEpoch.Add(time.Hour)); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	want[1].RevokedAt = keyEpoch.Add(time.Hour)
	got, err := s.APIKeys(ctx, "a1")
	if err != nil || len(got) != len(want) {
		t.Fatalf("list: %+v, %v; want %d keys", got, err, len(want))
	}
	for i := range want {
		if !sameKey(got[i], want[i]) {
			t.Fatalf("list[%d]: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, err := s.APIKeys(ctx, "a3"); err != nil || len(got) != 0 {
		t.Fatalf("account without keys: %+v, %v", got, err)
	}
	_, err = s.APIKeys(ctx, "ghost")
	wantCode(t, "no account", err, tollgate.ENOTFOUND)
	// RecentAPIKeys: the newest first, at most limit.
	for limit, want := range map[int]string{1: "[key_b]", 2: "[key_b key_a]", 10: "[key_b key_a key_c]"} {
		got, err := s.RecentAPIKeys(ctx, "a1", limit)
		var ids []string
		for _, k := range got {
			ids = append(ids, k.ID)
		}
		if err != nil || fmt.Sprint(ids) != want {
			t.Errorf("RecentAPIKeys(a1, %d) = %v, %v; want %s", limit, ids, err, want)
		}
	}
	if got, err := s.RecentAPIKeys(ctx, "a3", 5); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("RecentAPIKeys of an account without keys: %#v, %v", got, err)
	}
}
