package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"tollgate"
)

// PlatformKeyPrefix starts every platform key: an app's credential, told
// apart at a glance from an account's API key ("tg-").
const PlatformKeyPrefix = "tgp-"

// Bounds of a platform (the stores' CHECKs restate them, migration 0017).
const (
	MaxPlatformName = 200
	// MaxReturnURLHosts bounds Platform.ReturnURLHosts; each host is at
	// most 253 bytes (a DNS name), lower case.
	MaxReturnURLHosts = 10
	// MaxPlatforms bounds the admin's list of platforms.
	MaxPlatforms = 500
)

// Platform is an app that sells to its own users through tollgate
// (docs/DESIGN.md §4.10). Its key finds or creates the account of one of
// its users by the app's user id (external_id) and makes checkout links
// for it; it reaches no account of another platform, nor any the admin
// made.
type Platform struct {
	// ID names the platform ("plat_" + hex).
	ID   string
	Name string
	// Hash is SHA-256 of the whole key; Prefix its first characters.
	Hash   [32]byte
	Prefix string
	// ReturnURLHosts, when not empty, are the only hosts a checkout of
	// the platform may send the user back to.
	ReturnURLHosts []string
	CreatedAt      time.Time
	// RevokedAt is when the key was revoked; zero while it is valid.
	RevokedAt time.Time
}

// PlatformStore keeps platforms and their users' accounts;
// *sqlite.Store and *postgres.Store implement it, checked by
// store/storetest's RunPlatforms.
type PlatformStore interface {
	// CreatePlatform stores p. Errors: ECONFLICT (its id or hash exists).
	CreatePlatform(ctx context.Context, p Platform) error
	// PlatformByHash returns the platform whose key hash is hash, revoked
	// or not. Errors: ENOTFOUND.
	PlatformByHash(ctx context.Context, hash [32]byte) (Platform, error)
	// PlatformByID returns a platform, revoked or not. Errors: ENOTFOUND.
	PlatformByID(ctx context.Context, id string) (Platform, error)
	// Platforms returns up to limit platforms, oldest first.
	Platforms(ctx context.Context, limit int) ([]Platform, error)
	// RevokePlatform marks a platform's key revoked at time at (a revoked
	// one keeps its first time). Errors: ENOTFOUND.
	RevokePlatform(ctx context.Context, id string, at time.Time) error
	// PlatformAccount returns the account of the user externalID of
	// platform ("" for accounts without a platform), creating it as the
	// empty account candidate, made at time at, when there is none. It is
	// one atomic step: any number of callers on any number of instances
	// asking for the same user all get the one account, and created is
	// true for exactly one of them. Errors: ENOTFOUND (no such
	// platform).
	PlatformAccount(ctx context.Context, platform, externalID string, candidate tollgate.AccountID, at time.Time) (account tollgate.AccountID, created bool, err error)
	// AccountPlatform returns the platform an account belongs to ("" for
	// none). Errors: ENOTFOUND (no such account).
	AccountPlatform(ctx context.Context, account tollgate.AccountID) (string, error)
}

// Platforms makes and authenticates platform keys; Store must implement
// PlatformStore.
func (s *Service) platforms() (PlatformStore, error) {
	ps, ok := s.Store.(PlatformStore)
	if !ok {
		return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "this store keeps no platforms")
	}
	return ps, nil
}

// NormalizeHosts checks and lower-cases a platform's return URL hosts.
// Errors: EINVALID.
func NormalizeHosts(hosts []string) ([]string, error) {
	if len(hosts) > MaxReturnURLHosts {
		return nil, tollgate.Errorf(tollgate.EINVALID, "return_url_hosts: at most %d hosts", MaxReturnURLHosts)
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = strings.ToLower(h)
		if h == "" || len(h) > 253 || strings.ContainsAny(h, "/?#@ \t\r\n:\\") {
			return nil, tollgate.Errorf(tollgate.EINVALID, "return_url_hosts: %q is not a host name", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// CreatePlatform makes a platform and its key; the plaintext key is
// returned only here. Errors: EINVALID (name, hosts), the store's.
func (s *Service) CreatePlatform(ctx context.Context, name string, hosts []string) (string, Platform, error) {
	if err := checkText("name", name, 1, MaxPlatformName); err != nil {
		return "", Platform{}, err
	}
	hosts, err := NormalizeHosts(hosts)
	if err != nil {
		return "", Platform{}, err
	}
	ps, err := s.platforms()
	if err != nil {
		return "", Platform{}, err
	}
	b, err := s.random(8 + secretBytes)
	if err != nil {
		return "", Platform{}, err
	}
	plain := PlatformKeyPrefix + base64.RawURLEncoding.EncodeToString(b[8:])
	p := Platform{ID: "plat_" + hex.EncodeToString(b[:8]), Name: name, Hash: Hash(plain),
		Prefix: plain[:len(PlatformKeyPrefix)+6], ReturnURLHosts: hosts, CreatedAt: s.now().Truncate(time.Microsecond)}
	if err := ps.CreatePlatform(ctx, p); err != nil {
		return "", Platform{}, fmt.Errorf("auth: store platform: %w", err)
	}
	return plain, p, nil
}

// LooksLikePlatformKey reports whether s has a platform key's shape.
func LooksLikePlatformKey(s string) bool {
	return strings.HasPrefix(s, PlatformKeyPrefix) &&
		len(s) == len(PlatformKeyPrefix)+base64.RawURLEncoding.EncodedLen(secretBytes)
}

var errBadPlatformKey = tollgate.Errorf(tollgate.EUNAUTHORIZED, "invalid platform key")

// AuthenticatePlatform returns the valid platform whose key is presented.
// Errors: EUNAUTHORIZED (malformed, unknown or revoked), the store's.
func (s *Service) AuthenticatePlatform(ctx context.Context, presented string) (Platform, error) {
	if !LooksLikePlatformKey(presented) {
		return Platform{}, errBadPlatformKey
	}
	ps, err := s.platforms()
	if err != nil {
		return Platform{}, err
	}
	h := Hash(presented)
	p, err := ps.PlatformByHash(ctx, h)
	if tollgate.ErrorCode(err) == tollgate.ENOTFOUND {
		return Platform{}, errBadPlatformKey
	}
	if err != nil {
		return Platform{}, fmt.Errorf("auth: look up platform: %w", err)
	}
	if subtle.ConstantTimeCompare(p.Hash[:], h[:]) != 1 || !p.RevokedAt.IsZero() {
		return Platform{}, errBadPlatformKey
	}
	return p, nil
}

// Platform returns a platform by id. Errors: ENOTFOUND, the store's.
func (s *Service) Platform(ctx context.Context, id string) (Platform, error) {
	ps, err := s.platforms()
	if err != nil {
		return Platform{}, err
	}
	return ps.PlatformByID(ctx, id)
}

// Platforms lists up to MaxPlatforms platforms, oldest first.
func (s *Service) Platforms(ctx context.Context) ([]Platform, error) {
	ps, err := s.platforms()
	if err != nil {
		return nil, err
	}
	return ps.Platforms(ctx, MaxPlatforms)
}

// RevokePlatform revokes a platform's key at once (its users' accounts
// and their keys stay) and returns the platform. Errors: ENOTFOUND.
func (s *Service) RevokePlatform(ctx context.Context, id string) (Platform, error) {
	ps, err := s.platforms()
	if err != nil {
		return Platform{}, err
	}
	if err := ps.RevokePlatform(ctx, id, s.now().Truncate(time.Microsecond)); err != nil {
		return Platform{}, err
	}
	return ps.PlatformByID(ctx, id)
}

// PlatformAccount finds or creates the account of the app's user
// externalID under platform ("" for the admin's accounts without a
// platform). Errors: EINVALID (externalID), ENOTFOUND (platform), the
// store's.
func (s *Service) PlatformAccount(ctx context.Context, platform, externalID string) (tollgate.AccountID, bool, error) {
	if err := checkText("external_id", externalID, 1, MaxExternalID); err != nil {
		return "", false, err
	}
	ps, err := s.platforms()
	if err != nil {
		return "", false, err
	}
	b, err := s.random(10)
	if err != nil {
		return "", false, err
	}
	candidate := tollgate.AccountID("acct_" + hex.EncodeToString(b))
	return ps.PlatformAccount(ctx, platform, externalID, candidate, s.now().Truncate(time.Microsecond))
}

// AccountPlatform returns the platform an account belongs to ("" for
// none). Errors: ENOTFOUND.
func (s *Service) AccountPlatform(ctx context.Context, account tollgate.AccountID) (string, error) {
	ps, err := s.platforms()
	if err != nil {
		return "", err
	}
	return ps.AccountPlatform(ctx, account)
}
