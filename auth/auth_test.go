package auth_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
)

// memStore is an in-memory auth.Store for the Service's own tests; the
// real stores pass store/storetest's RunAPIKeys.
type memStore struct {
	mu      sync.Mutex
	keys    map[[32]byte]auth.Key
	lookups int
}

var _ auth.Store = (*memStore)(nil)

func (m *memStore) CreateAPIKey(ctx context.Context, k auth.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[[32]byte]auth.Key{}
	}
	if _, ok := m.keys[k.Hash]; ok {
		return tollgate.Errorf(tollgate.ECONFLICT, "exists")
	}
	m.keys[k.Hash] = k
	return nil
}

func (m *memStore) APIKeyByHash(ctx context.Context, h [32]byte) (auth.Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	k, ok := m.keys[h]
	if !ok {
		return auth.Key{}, tollgate.Errorf(tollgate.ENOTFOUND, "no key")
	}
	return k, nil
}

func (m *memStore) RevokeAPIKey(ctx context.Context, a tollgate.AccountID, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, k := range m.keys {
		if k.Account == a && k.ID == id {
			if k.RevokedAt.IsZero() {
				k.RevokedAt = at
				m.keys[h] = k
			}
			return nil
		}
	}
	return tollgate.Errorf(tollgate.ENOTFOUND, "no key %s", id)
}

func (m *memStore) APIKeys(ctx context.Context, a tollgate.AccountID) ([]auth.Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auth.Key
	for _, k := range m.keys {
		if k.Account == a {
			out = append(out, k)
		}
	}
	return out, nil
}

func (m *memStore) RecentAPIKeys(ctx context.Context, a tollgate.AccountID, limit int) ([]auth.Key, error) {
	out, _ := m.APIKeys(ctx, a)
	slices.SortFunc(out, func(x, y auth.Key) int {
		return cmp.Or(y.CreatedAt.Compare(x.CreatedAt), cmp.Compare(y.ID, x.ID))
	})
	return out[:min(limit, len(out))], nil
}

type accounts struct{ made []tollgate.AccountID }

func (a *accounts) CreateAccount(ctx context.Context, id tollgate.AccountID) (ledger.Account, error) {
	a.made = append(a.made, id)
	return ledger.Account{ID: id}, nil
}

func TestKeyIsShownOnceAndStoredHashed(t *testing.T) {
	st, acc := &memStore{}, &accounts{}
	s := &auth.Service{Store: st, Accounts: acc}
	c, err := s.CreateAccount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(acc.made) != 1 || acc.made[0] != c.Account {
		t.Fatalf("accounts made %v", acc.made)
	}
	for _, k := range st.keys {
		if k.Hash != auth.Hash(c.APIKey) || strings.Contains(k.Prefix+k.ID, c.APIKey[len(k.Prefix):]) {
			t.Fatalf("stored key %+v reveals the key", k)
		}
		if !strings.HasPrefix(c.APIKey, k.Prefix) {
			t.Fatalf("prefix %q is not the key's start", k.Prefix)
		}
	}
	if _, err := s.Authenticate(context.Background(), c.APIKey); err != nil {
		t.Fatal(err)
	}
	c2, err := s.CreateAccount(context.Background())
	if err != nil || c2.APIKey == c.APIKey || c2.Account == c.Account {
		t.Fatalf("second account %+v, %v", c2, err)
	}
}

func TestTokenEqual(t *testing.T) {
	for _, tc := range []struct {
		presented, expected string
		want                bool
	}{
		{"secret", "secret", true},
		{"secreT", "secret", false},
		{"secret1", "secret", false},
		{"", "", false},
		{"x", "", false},
	} {
		if got := auth.TokenEqual(tc.presented, tc.expected); got != tc.want {
			t.Errorf("TokenEqual(%q, %q) = %v", tc.presented, tc.expected, got)
		}
	}
}

func TestExpiredKeyIsRefused(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := &memStore{}
	s := &auth.Service{Store: st, Accounts: &accounts{}, Clock: tollgate.ClockFunc(func() time.Time { return now })}
	c, err := s.CreateAccountWithLimits(context.Background(), tollgate.KeyLimits{ExpiresAt: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(context.Background(), c.APIKey); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := s.Authenticate(context.Background(), c.APIKey); tollgate.ErrorCode(err) != tollgate.EUNAUTHORIZED {
		t.Fatalf("at expiry: %v", err)
	}
	acc := &accounts{}
	s.Accounts = acc
	if _, err := s.CreateAccountWithLimits(context.Background(), tollgate.KeyLimits{RequestsPerMinute: -1}); tollgate.ErrorCode(err) != tollgate.EINVALID || len(acc.made) != 0 {
		t.Fatalf("bad limits: %v, accounts made %v", err, acc.made)
	}
}

// With a key cache, repeated requests skip the store; a revocation here
// is immediate, one made by another instance holds for at most CacheTTL,
// and expiry is never cached.
func TestAuthenticateCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	clock := tollgate.ClockFunc(func() time.Time { return now })
	st := &memStore{}
	here := &auth.Service{Store: st, Accounts: &accounts{}, Clock: clock, CacheTTL: time.Second}
	there := &auth.Service{Store: st, Accounts: &accounts{}, Clock: clock, CacheTTL: time.Second}
	mustAuth := func(s *auth.Service, key string, want bool) {
		t.Helper()
		_, err := s.Authenticate(ctx, key)
		if got := err == nil; got != want {
			t.Fatalf("Authenticate(%s…) ok = %v, want %v (err %v)", key[:8], got, want, err)
		}
	}

	a, err := here.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mustAuth(here, a.APIKey, true)
	}
	if st.lookups != 1 {
		t.Errorf("5 requests read the store %d times, want 1", st.lookups)
	}

	// Revoked by another instance: honoured here until the entry is
	// CacheTTL old, then refused.
	if _, err := there.Revoke(ctx, a.Account, a.Key.ID); err != nil {
		t.Fatal(err)
	}
	mustAuth(there, a.APIKey, false)
	mustAuth(here, a.APIKey, true)
	now = now.Add(time.Second)
	mustAuth(here, a.APIKey, false)

	// Revoked through this instance: refused at once.
	b, err := here.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(here, b.APIKey, true)
	if _, err := here.Revoke(ctx, b.Account, b.Key.ID); err != nil {
		t.Fatal(err)
	}
	mustAuth(here, b.APIKey, false)

	// Expiry is checked on every use, cached or not.
	plain, _, err := here.NewKey(ctx, b.Account, tollgate.KeyLimits{ExpiresAt: now.Add(300 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(here, plain, true)
	now = now.Add(300 * time.Millisecond)
	mustAuth(here, plain, false)
}
