// Package auth issues and checks tollgate's API keys. A key is shown to its
// owner once, when it is made; only its SHA-256 hash is stored, with a short
// prefix for display. It is not the HTTP middleware (httpapi) and holds no
// money rules.
//
// Why SHA-256 and not a slow KDF (bcrypt, scrypt, argon2): a slow KDF exists
// to make guessing a low-entropy secret (a password) expensive after a
// database leak. An API key here carries 256 bits from crypto/rand, so no
// amount of guessing finds it from its hash; a fast hash keeps the lookup a
// single indexed equality on every request, with no per-request CPU cost.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// KeyPrefix starts every API key, so a leaked key is easy to recognise
// (secret scanners) and a provisional access token, which has another
// prefix, is easy to tell apart.
const KeyPrefix = "tg-"

// secretBytes is the entropy of a key: 32 bytes from crypto/rand.
const secretBytes = 32

// displayLen is how many characters of a key are kept for display.
const displayLen = len(KeyPrefix) + 6

// Key is a stored API key: never the key itself, only its hash.
type Key struct {
	// ID names the key in logs, usage records and lists ("key_" + hex).
	ID      string
	Account tollgate.AccountID
	// Hash is SHA-256 of the whole key string.
	Hash [32]byte
	// Prefix is the key's first characters, for display ("tg-Ab12Cd").
	Prefix    string
	CreatedAt time.Time
	// RevokedAt is when the key was revoked; zero while it is valid.
	RevokedAt time.Time
	// Limits are the key's allowed models, rates, expiry and bounds per
	// request.
	Limits tollgate.KeyLimits
	// AccountDisabled is set, by stores that keep profiles, when the
	// key's account is disabled (Profile.DisabledAt): the key is refused.
	AccountDisabled bool
}

// Store keeps API keys. Implementations: *sqlite.Store, *postgres.Store;
// both pass store/storetest's RunAPIKeys. Methods are safe for concurrent
// use.
type Store interface {
	// CreateAPIKey stores k with its limits. Errors: ENOTFOUND (no such
	// account), ECONFLICT (its ID or hash exists).
	CreateAPIKey(ctx context.Context, k Key) error
	// APIKeyByHash returns the key whose hash is hash, revoked, expired
	// or not. Errors: ENOTFOUND.
	APIKeyByHash(ctx context.Context, hash [32]byte) (Key, error)
	// APIKeys returns every key of account, revoked or not, oldest first
	// (then by ID). Errors: ENOTFOUND (no such account).
	APIKeys(ctx context.Context, account tollgate.AccountID) ([]Key, error)
	// RecentAPIKeys returns up to limit keys of account, revoked or not,
	// newest first (created_at then ID, descending): at most limit rows
	// read, for the admin API's account detail. An unknown account has
	// none.
	RecentAPIKeys(ctx context.Context, account tollgate.AccountID, limit int) ([]Key, error)
	// RevokeAPIKey marks a key of account revoked at time at. Revoking a
	// revoked key keeps its first revocation time. Errors: ENOTFOUND (no
	// such key for that account).
	RevokeAPIKey(ctx context.Context, account tollgate.AccountID, id string, at time.Time) error
}

// Accounts creates ledger accounts; *ledger.Service implements it.
type Accounts interface {
	CreateAccount(ctx context.Context, id tollgate.AccountID) (ledger.Account, error)
}

// Service makes accounts with their first key and authenticates keys.
type Service struct {
	Store    Store
	Accounts Accounts
	// Clock decides key expiry and record times; default
	// tollgate.SystemClock.
	Clock tollgate.Clock
	// Rand is the randomness for ids and keys; default crypto/rand.
	Rand io.Reader
	// CacheTTL, when positive, keeps keys found by Authenticate in memory
	// for that long, sparing the store a read per request. Revoking
	// through this Service takes effect at once; a key revoked (or its
	// limits changed) by another instance is still honoured here for at
	// most CacheTTL. Expiry is checked on every use.
	CacheTTL time.Duration

	cacheMu sync.Mutex
	cache   map[[32]byte]cachedKey
}

// cachedKey is one valid key and when it was read from the store.
type cachedKey struct {
	key Key
	at  time.Time
}

// maxCachedKeys bounds the key cache; when full it starts over.
const maxCachedKeys = 10000

func (s *Service) cached(h [32]byte, now time.Time) (Key, bool) {
	if s.CacheTTL <= 0 {
		return Key{}, false
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c, ok := s.cache[h]
	if !ok || now.Sub(c.at) >= s.CacheTTL || now.Before(c.at) {
		return Key{}, false
	}
	return c.key, true
}

func (s *Service) remember(h [32]byte, k Key, now time.Time) {
	if s.CacheTTL <= 0 {
		return
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cache == nil || len(s.cache) >= maxCachedKeys {
		s.cache = make(map[[32]byte]cachedKey)
	}
	s.cache[h] = cachedKey{key: k, at: now}
}

// forget drops account's key id from the cache.
func (s *Service) forget(account tollgate.AccountID, id string) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for h, c := range s.cache {
		if c.key.Account == account && c.key.ID == id {
			delete(s.cache, h)
		}
	}
}

// Created is what CreateAccount returns: the plaintext key is here and
// nowhere else, ever.
type Created struct {
	Account tollgate.AccountID
	APIKey  string
	Key     Key
}

func (s *Service) now() time.Time {
	return tollgate.ClockOr(s.Clock).Now().UTC()
}

func (s *Service) random(n int) ([]byte, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("auth: read random: %w", err)
	}
	return b, nil
}

// CreateAccount creates a new empty ledger account and its first API key,
// without limits. The plaintext key is in the result only. Errors: those
// of the ledger and the store.
func (s *Service) CreateAccount(ctx context.Context) (Created, error) {
	return s.CreateAccountWithLimits(ctx, tollgate.KeyLimits{})
}

// CreateAccountWithLimits is CreateAccount whose first key carries l.
// Errors: EINVALID (l, checked before anything is made), those of the
// ledger and the store.
func (s *Service) CreateAccountWithLimits(ctx context.Context, l tollgate.KeyLimits) (Created, error) {
	if err := l.Validate(s.now()); err != nil {
		return Created{}, err
	}
	b, err := s.random(10)
	if err != nil {
		return Created{}, err
	}
	id := tollgate.AccountID("acct_" + hex.EncodeToString(b))
	if _, err := s.Accounts.CreateAccount(ctx, id); err != nil {
		return Created{}, fmt.Errorf("auth: create account: %w", err)
	}
	plain, k, err := s.NewKey(ctx, id, l)
	if err != nil {
		return Created{}, err
	}
	return Created{Account: id, APIKey: plain, Key: k}, nil
}

// NewKey makes and stores a new key with limits l for an existing account
// and returns the plaintext, which is not kept. Errors: EINVALID (l),
// ENOTFOUND (account), ECONFLICT.
func (s *Service) NewKey(ctx context.Context, account tollgate.AccountID, l tollgate.KeyLimits) (string, Key, error) {
	if err := l.Validate(s.now()); err != nil {
		return "", Key{}, err
	}
	b, err := s.random(8 + secretBytes)
	if err != nil {
		return "", Key{}, err
	}
	plain := KeyPrefix + base64.RawURLEncoding.EncodeToString(b[8:])
	k := Key{
		ID:        "key_" + hex.EncodeToString(b[:8]),
		Account:   account,
		Hash:      Hash(plain),
		Prefix:    plain[:displayLen],
		CreatedAt: s.now(),
		Limits:    l,
	}
	if len(l.Models) == 0 {
		k.Limits.Models = nil
	}
	if !l.ExpiresAt.IsZero() {
		k.Limits.ExpiresAt = l.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	if err := s.Store.CreateAPIKey(ctx, k); err != nil {
		return "", Key{}, fmt.Errorf("auth: store key: %w", err)
	}
	return plain, k, nil
}

// Hash returns the SHA-256 of a key as stored.
func Hash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// LooksLikeKey reports whether s has an API key's shape, so callers can
// tell keys from other bearer tokens without a lookup.
func LooksLikeKey(s string) bool {
	return strings.HasPrefix(s, KeyPrefix) && len(s) == len(KeyPrefix)+base64.RawURLEncoding.EncodedLen(secretBytes)
}

// errBadKey is the one answer for every failure: it does not tell a
// missing key from a revoked one or a malformed one.
var errBadKey = tollgate.Errorf(tollgate.EUNAUTHORIZED, "invalid API key")

// Authenticate returns the valid key whose plaintext is presented. The key
// is found by its hash and the stored hash compared in constant time.
// Errors: EUNAUTHORIZED for a malformed, unknown, revoked or expired key;
// ErrAccountDisabled (EFORBIDDEN) for a valid key of a disabled account;
// the store's errors (EUNAVAILABLE) otherwise.
func (s *Service) Authenticate(ctx context.Context, presented string) (Key, error) {
	if !LooksLikeKey(presented) {
		return Key{}, errBadKey
	}
	h := Hash(presented)
	now := s.now()
	if k, ok := s.cached(h, now); ok && !k.Limits.Expired(now) {
		return k, nil
	}
	k, err := s.Store.APIKeyByHash(ctx, h)
	if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
		return Key{}, errBadKey
	}
	if err != nil {
		return Key{}, fmt.Errorf("auth: look up key: %w", err)
	}
	if subtle.ConstantTimeCompare(k.Hash[:], h[:]) != 1 || !k.RevokedAt.IsZero() || k.Limits.Expired(now) {
		return Key{}, errBadKey
	}
	if k.AccountDisabled {
		return Key{}, ErrAccountDisabled
	}
	s.remember(h, k, now)
	return k, nil
}

// Keys returns every key of account, revoked or not, oldest first.
// Errors: ENOTFOUND (no such account), the store's.
func (s *Service) Keys(ctx context.Context, account tollgate.AccountID) ([]Key, error) {
	ks, err := s.Store.APIKeys(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("auth: list keys: %w", err)
	}
	return ks, nil
}

// RecentKeys returns up to limit keys of account, newest first.
func (s *Service) RecentKeys(ctx context.Context, account tollgate.AccountID, limit int) ([]Key, error) {
	ks, err := s.Store.RecentAPIKeys(ctx, account, limit)
	if err != nil {
		return nil, fmt.Errorf("auth: recent keys: %w", err)
	}
	return ks, nil
}

// Revoke revokes the key id of account now and returns it as stored.
// Revoking a revoked key changes nothing. Errors: ENOTFOUND (no such key
// for that account: another account's key is not found), the store's.
func (s *Service) Revoke(ctx context.Context, account tollgate.AccountID, id string) (Key, error) {
	if err := s.Store.RevokeAPIKey(ctx, account, id, s.now()); err != nil {
		return Key{}, fmt.Errorf("auth: revoke key: %w", err)
	}
	s.forget(account, id)
	ks, err := s.Keys(ctx, account)
	if err != nil {
		return Key{}, err
	}
	for _, k := range ks {
		if k.ID == id {
			return k, nil
		}
	}
	return Key{}, tollgate.Errorf(tollgate.ENOTFOUND, "no API key %s for account %s", id, account)
}

// TokenEqual compares a presented secret (such as the admin token) with the
// expected one in constant time. An empty expected value matches nothing.
func TokenEqual(presented, expected string) bool {
	if expected == "" {
		return false
	}
	p, e := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(p[:], e[:]) == 1
}
