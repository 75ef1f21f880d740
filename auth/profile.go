package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"tollgate"
)

// Bounds of what an operator may attach to an account. The stores' CHECK
// constraints restate them (migration 0011).
const (
	MaxLabel      = 200  // bytes of Profile.Label
	MaxExternalID = 128  // bytes of Profile.ExternalID
	MaxMetadata   = 4096 // bytes of Profile.Metadata, compacted
)

// Profile is what an operator knows of an account besides its money: how
// to find it (label, the app's own user id) and whether it may be used.
type Profile struct {
	Account tollgate.AccountID
	Label   string
	// ExternalID is the app's own id of the user, unique among accounts;
	// "" when unset.
	ExternalID string
	// Metadata is a small JSON object, compacted; "{}" when none.
	Metadata json.RawMessage
	// DisabledAt is when the account was disabled; zero while enabled.
	// A disabled account's keys and provisional tokens are all refused.
	DisabledAt time.Time
	CreatedAt  time.Time
	// Left, Held and Debt are the account's balances as last committed,
	// for lists (with memory holds, what is held in memory is not in
	// Held: ledger.Service.Balance is exact).
	Left, Held, Debt tollgate.Credits
}

// Disabled reports whether the account is disabled.
func (p Profile) Disabled() bool { return !p.DisabledAt.IsZero() }

// ProfilePatch changes some fields of a profile; a nil field is left as
// it is. An ExternalID of "" removes it.
type ProfilePatch struct {
	Label      *string
	ExternalID *string
	Metadata   json.RawMessage
	Disabled   *bool
}

// AccountQuery selects a page of accounts, ordered by id.
type AccountQuery struct {
	// Q, when set, keeps the accounts whose id or external id is Q (with
	// Exact: two index lookups) or else whose label contains Q
	// (case-insensitively for ASCII; a walk of the id index from the
	// cursor that stops when the page is full).
	Q     string
	Exact bool
	// After starts the page after this account id ("" from the first).
	After tollgate.AccountID
	// Limit is how many at most (1 to MaxPage).
	Limit int
}

// MaxPage bounds every page of accounts a store returns.
const MaxPage = 500

// ProfileStore keeps account profiles; the accounts are the ledger's
// rows, so *sqlite.Store and *postgres.Store implement it, checked by
// store/storetest's RunAPIKeys.
type ProfileStore interface {
	// AccountProfile returns an account's profile. Errors: ENOTFOUND.
	AccountProfile(ctx context.Context, id tollgate.AccountID) (Profile, error)
	// UpdateAccountProfile reads the profile locked, lets fn change Label,
	// ExternalID, Metadata and DisabledAt, and writes those back in the
	// same transaction. Errors: ENOTFOUND, ECONFLICT (another account has
	// the external id), fn's.
	UpdateAccountProfile(ctx context.Context, id tollgate.AccountID, fn func(*Profile) error) (Profile, error)
	// ListAccounts returns one page of accounts (q.Limit at most), by id,
	// reading no more rows than it walks the id index for.
	ListAccounts(ctx context.Context, q AccountQuery) ([]Profile, error)
}

// ErrAccountDisabled refuses every credential of a disabled account.
var ErrAccountDisabled = tollgate.Errorf(tollgate.EFORBIDDEN, "this account is disabled; contact the service's support")

// CheckPatch validates p and returns it normalised (metadata compacted).
// Errors: EINVALID naming the field.
func CheckPatch(p ProfilePatch) (ProfilePatch, error) {
	if p.Label != nil {
		if err := checkText("label", *p.Label, 0, MaxLabel); err != nil {
			return p, err
		}
	}
	if p.ExternalID != nil && *p.ExternalID != "" {
		if err := checkText("external_id", *p.ExternalID, 1, MaxExternalID); err != nil {
			return p, err
		}
	}
	if p.Metadata != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.Metadata); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
			return p, tollgate.Errorf(tollgate.EINVALID, "metadata must be a JSON object")
		}
		if buf.Len() > MaxMetadata {
			return p, tollgate.Errorf(tollgate.EINVALID, "metadata is %d bytes; at most %d", buf.Len(), MaxMetadata)
		}
		p.Metadata = buf.Bytes()
	}
	return p, nil
}

// checkText accepts UTF-8 text of lo to hi bytes without control
// characters.
func checkText(field, s string, lo, hi int) error {
	if len(s) < lo || len(s) > hi {
		return tollgate.Errorf(tollgate.EINVALID, "%s must be %d to %d bytes, got %d", field, lo, hi, len(s))
	}
	if !utf8.ValidString(s) {
		return tollgate.Errorf(tollgate.EINVALID, "%s must be UTF-8 text", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return tollgate.Errorf(tollgate.EINVALID, "%s must not contain control characters", field)
		}
	}
	return nil
}

func (s *Service) profiles() (ProfileStore, error) {
	ps, ok := s.Store.(ProfileStore)
	if !ok {
		return nil, tollgate.Errorf(tollgate.EUNAVAILABLE, "this store keeps no account profiles")
	}
	return ps, nil
}

// apply changes p by patch at now.
func (patch ProfilePatch) apply(p *Profile, now time.Time) {
	if patch.Label != nil {
		p.Label = *patch.Label
	}
	if patch.ExternalID != nil {
		p.ExternalID = *patch.ExternalID
	}
	if patch.Metadata != nil {
		p.Metadata = patch.Metadata
	}
	if patch.Disabled != nil {
		switch {
		case *patch.Disabled && p.DisabledAt.IsZero():
			p.DisabledAt = now
		case !*patch.Disabled:
			p.DisabledAt = time.Time{}
		}
	}
}

// CreateProfiledAccount is CreateAccountWithLimits that also sets the new
// account's profile. Everything is checked first — the limits, the patch,
// that the external id is free — so a bad request makes nothing. Errors:
// EINVALID, ECONFLICT (the external id belongs to another account), the
// ledger's and the store's.
func (s *Service) CreateProfiledAccount(ctx context.Context, l tollgate.KeyLimits, patch ProfilePatch) (Created, Profile, error) {
	patch, err := CheckPatch(patch)
	if err != nil {
		return Created{}, Profile{}, err
	}
	if patch.Disabled != nil && *patch.Disabled {
		return Created{}, Profile{}, tollgate.Errorf(tollgate.EINVALID, "a new account cannot be disabled")
	}
	if err := l.Validate(s.now()); err != nil {
		return Created{}, Profile{}, err
	}
	ps, err := s.profiles()
	if err != nil {
		return Created{}, Profile{}, err
	}
	if patch.ExternalID != nil && *patch.ExternalID != "" {
		taken, err := ps.ListAccounts(ctx, AccountQuery{Q: *patch.ExternalID, Exact: true, Limit: MaxPage})
		if err != nil {
			return Created{}, Profile{}, err
		}
		for _, p := range taken {
			if p.ExternalID == *patch.ExternalID {
				return Created{}, Profile{}, tollgate.Errorf(tollgate.ECONFLICT, "external_id %q belongs to account %s", p.ExternalID, p.Account)
			}
		}
	}
	c, err := s.CreateAccountWithLimits(ctx, l)
	if err != nil {
		return Created{}, Profile{}, err
	}
	p, err := ps.UpdateAccountProfile(ctx, c.Account, func(p *Profile) error {
		patch.apply(p, s.now())
		return nil
	})
	if err != nil {
		return Created{}, Profile{}, fmt.Errorf("auth: set profile of %s: %w", c.Account, err)
	}
	return c, p, nil
}

// Profile returns an account's profile. Errors: ENOTFOUND.
func (s *Service) Profile(ctx context.Context, id tollgate.AccountID) (Profile, error) {
	ps, err := s.profiles()
	if err != nil {
		return Profile{}, err
	}
	return ps.AccountProfile(ctx, id)
}

// UpdateProfile applies patch to an account's profile. Disabling takes
// effect at once for keys cached here; another instance honours a cached
// key for at most CacheTTL. Errors: EINVALID, ENOTFOUND, ECONFLICT.
func (s *Service) UpdateProfile(ctx context.Context, id tollgate.AccountID, patch ProfilePatch) (Profile, error) {
	patch, err := CheckPatch(patch)
	if err != nil {
		return Profile{}, err
	}
	ps, err := s.profiles()
	if err != nil {
		return Profile{}, err
	}
	p, err := ps.UpdateAccountProfile(ctx, id, func(p *Profile) error {
		patch.apply(p, s.now())
		return nil
	})
	if err != nil {
		return Profile{}, err
	}
	if patch.Disabled != nil {
		s.forgetAccount(id)
	}
	return p, nil
}

// ListAccounts returns one page of accounts. Errors: EINVALID (a limit
// outside 1 to MaxPage).
func (s *Service) ListAccounts(ctx context.Context, q AccountQuery) ([]Profile, error) {
	if q.Limit < 1 || q.Limit > MaxPage {
		return nil, tollgate.Errorf(tollgate.EINVALID, "limit must be from 1 to %d", MaxPage)
	}
	ps, err := s.profiles()
	if err != nil {
		return nil, err
	}
	if q.Q != "" && q.After == "" && !q.Exact {
		// An id or external id is found at once; only a search that
		// names neither walks the labels.
		exact := q
		exact.Exact = true
		if found, err := ps.ListAccounts(ctx, exact); err != nil || len(found) > 0 {
			return found, err
		}
	}
	return ps.ListAccounts(ctx, q)
}

// CheckAccount refuses a disabled account (ErrAccountDisabled), for
// credentials that are not API keys (provisional access tokens). A store
// without profiles has no disabled accounts. Errors: ENOTFOUND too.
func (s *Service) CheckAccount(ctx context.Context, id tollgate.AccountID) error {
	ps, ok := s.Store.(ProfileStore)
	if !ok {
		return nil
	}
	p, err := ps.AccountProfile(ctx, id)
	if err != nil {
		return err
	}
	if p.Disabled() {
		return ErrAccountDisabled
	}
	return nil
}

// forgetAccount drops every cached key of account.
func (s *Service) forgetAccount(account tollgate.AccountID) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for h, c := range s.cache {
		if c.key.Account == account {
			delete(s.cache, h)
		}
	}
}
