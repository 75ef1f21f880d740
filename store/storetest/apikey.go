package storetest

import (
	"context"
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
	a := &auth.Service{Store: s, Accounts: svc, Now: func() time.Time { return keyEpoch }}
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
