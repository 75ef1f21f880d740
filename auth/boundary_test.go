package auth_test

import (
	"context"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/internal/clocktest"
)

// TestKeyBoundaries: an API key's expiry and the key cache's life are
// probed 1µs either side on the injected clock. A key works until 1µs
// before its expiry, cached or not, and not at it; a revocation made by
// another instance is honoured by a cache entry until 1µs before CacheTTL
// and refused at CacheTTL.
func TestKeyBoundaries(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	st := &memStore{}
	const ttl = time.Second
	here := &auth.Service{Store: st, Accounts: &accounts{}, Clock: clock, CacheTTL: ttl}
	there := &auth.Service{Store: st, Accounts: &accounts{}, Clock: clock, CacheTTL: ttl}
	mustAuth := func(s *auth.Service, key, when string, want bool) {
		t.Helper()
		_, err := s.Authenticate(ctx, key)
		if got := err == nil; got != want || (!want && tollgate.ErrorCode(err) != tollgate.EUNAUTHORIZED) {
			t.Fatalf("key %s: err %v, want ok = %v", when, err, want)
		}
	}

	start := clock.Now()
	exp := start.Add(time.Minute)
	a, err := here.CreateAccountWithLimits(ctx, tollgate.KeyLimits{ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(here, a.APIKey, "when made", true) // cached here from now on
	clock.Set(exp.Add(-time.Microsecond))
	mustAuth(here, a.APIKey, "1µs before its expiry, cached", true)
	mustAuth(there, a.APIKey, "1µs before its expiry, from the store", true)
	for _, d := range []time.Duration{0, time.Microsecond} {
		clock.Set(exp.Add(d))
		mustAuth(here, a.APIKey, d.String()+" past its expiry, cached", false)
		mustAuth(there, a.APIKey, d.String()+" past its expiry, from the store", false)
	}

	b, err := here.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cachedAt := clock.Now()
	mustAuth(here, b.APIKey, "when made", true)
	if _, err := there.Revoke(ctx, b.Account, b.Key.ID); err != nil {
		t.Fatal(err)
	}
	mustAuth(there, b.APIKey, "revoked, on the instance that revoked it", false)
	clock.Set(cachedAt.Add(ttl - time.Microsecond))
	mustAuth(here, b.APIKey, "revoked elsewhere, 1µs before the cache entry's end", true)
	clock.Set(cachedAt.Add(ttl))
	mustAuth(here, b.APIKey, "revoked elsewhere, at the cache entry's end", false)
	clock.Set(cachedAt.Add(ttl + time.Microsecond))
	mustAuth(here, b.APIKey, "revoked elsewhere, 1µs after the cache entry's end", false)
}
