package auth_test

import (
	"context"
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
	mu   sync.Mutex
	keys map[[32]byte]auth.Key
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
	k, ok := m.keys[h]
	if !ok {
		return auth.Key{}, tollgate.Errorf(tollgate.ENOTFOUND, "no key")
	}
	return k, nil
}

func (m *memStore) RevokeAPIKey(ctx context.Context, a tollgate.AccountID, id string, at time.Time) error {
	return tollgate.Errorf(tollgate.ENOTFOUND, "unused")
}

func (m *memStore) APIKeys(ctx context.Context, a tollgate.AccountID) ([]auth.Key, error) {
	return nil, tollgate.Errorf(tollgate.ENOTFOUND, "unused")
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

func TestLimitsValidate(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		l    auth.Limits
		ok   bool
	}{
		{"Zero", auth.Limits{}, true},
		{"All", auth.Limits{Models: []string{"a", "b"}, RequestsPerMinute: 5, TokensPerMinute: 100, ExpiresAt: now.Add(time.Second)}, true},
		{"ErrNegativeRPM", auth.Limits{RequestsPerMinute: -1}, false},
		{"ErrNegativeTPM", auth.Limits{TokensPerMinute: -1}, false},
		{"ErrHugeRPM", auth.Limits{RequestsPerMinute: auth.MaxRate + 1}, false},
		{"ErrHugeTPM", auth.Limits{TokensPerMinute: auth.MaxRate + 1}, false},
		{"ErrExpiresNow", auth.Limits{ExpiresAt: now}, false},
		{"ErrEmptyModel", auth.Limits{Models: []string{""}}, false},
		{"ErrRepeatedModel", auth.Limits{Models: []string{"a", "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate(now)
			if tc.ok != (err == nil) || (err != nil && tollgate.ErrorCode(err) != tollgate.EINVALID) {
				t.Fatalf("Validate(%+v) = %v", tc.l, err)
			}
		})
	}
}

func TestExpiredKeyIsRefused(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := &memStore{}
	s := &auth.Service{Store: st, Accounts: &accounts{}, Now: func() time.Time { return now }}
	c, err := s.CreateAccountWithLimits(context.Background(), auth.Limits{ExpiresAt: now.Add(time.Minute)})
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
	if _, err := s.CreateAccountWithLimits(context.Background(), auth.Limits{RequestsPerMinute: -1}); tollgate.ErrorCode(err) != tollgate.EINVALID || len(acc.made) != 0 {
		t.Fatalf("bad limits: %v, accounts made %v", err, acc.made)
	}
}
