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
	// Platform is the platform the account was made for (its user
	// ExternalID), "" for an account the admin made (migration 0017).
	Platform string
	// ExternalID is the app's own id of the user, unique among the
	// accounts of its platform (accounts of none count as one);
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
	// LowBalance is the account's low_balance_credits, the threshold of
	// its balance.low webhook events (nil: none). The ledger writes it
	// (ledger.Service.SetLowBalance); the profile only shows it.
	LowBalance *tollgate.Credits
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
//
// A search (Q set) matches an account whose id is Q, whose external id
// is Q, or whose label contains Q (ASCII letters compared without case,
// any other character exactly). Service.ListAccounts answers it in two
// parts: first the exact matches (one by id; by external id one per
// platform, accounts of none counting as one), then the label matches that are not exact ones, each part
// by id. Labels is which part After is in, so a cursor never repeats or
// skips a row across the two.
type AccountQuery struct {
	// Q, when set, keeps, at the store, with Exact the accounts whose id
	// or external id is Q (two index lookups); without Exact those whose
	// label contains Q and whose id and external id are not Q (a walk of
	// the id index from the cursor that stops when the page is full).
	Q     string
	Exact bool
	// Labels says After is a label match of a search, for
	// Service.ListAccounts (the stores ignore it).
	Labels bool
	// After starts the page after this account id ("" from the first).
	After tollgate.AccountID
	// Limit is how many at most (1 to MaxPage).
	Limit int
}

// FoldASCII lowers the ASCII letters of s and nothing else, as both
// stores compare labels in a search (SQLite's lower() does only ASCII;
// PostgreSQL's is told to with translate()).
func FoldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
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
			// A platform's user may share the id: it is unique per
			// platform, and an admin-made account has none.
			if p.ExternalID == *patch.ExternalID && p.Platform == "" {
				return Created{}, Profile{}, tollgate.Errorf(tollgate.ECONFLICT, "external_id %q belongs to account %s", p.ExternalID, p.Account)
			}
		}
	}
	var c Created
	if patch.ExternalID != nil && *patch.ExternalID != "" {
		c, err = s.createWithExternalID(ctx, l, *patch.ExternalID)
	} else {
		c, err = s.CreateAccountWithLimits(ctx, l)
	}
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

// createWithExternalID is CreateAccountWithLimits for an account (of no
// platform) that has the app's user id externalID from the start, so its
// account.created event, written with it, names the user as every later
// event does. Errors: ECONFLICT (another account has the id), those of
// CreateAccountWithLimits.
func (s *Service) createWithExternalID(ctx context.Context, l tollgate.KeyLimits, externalID string) (Created, error) {
	if _, ok := s.Store.(PlatformStore); !ok {
		return s.CreateAccountWithLimits(ctx, l)
	}
	id, created, err := s.PlatformAccount(ctx, "", externalID)
	if err != nil {
		return Created{}, fmt.Errorf("auth: create account: %w", err)
	}
	if !created {
		return Created{}, tollgate.Errorf(tollgate.ECONFLICT, "external_id %q belongs to account %s", externalID, id)
	}
	plain, k, err := s.NewKey(ctx, id, l)
	if err != nil {
		return Created{}, err
	}
	return Created{Account: id, APIKey: plain, Key: k}, nil
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

// ListAccounts returns one page of accounts and the query of the next
// page (nil on the last). A search gives its exact matches first, then
// its label matches (see AccountQuery). Every store read is a keyset
// query with a LIMIT of the page plus one (that row only tells whether
// there is a next page). Errors: EINVALID (a limit outside 1 to MaxPage).
func (s *Service) ListAccounts(ctx context.Context, q AccountQuery) ([]Profile, *AccountQuery, error) {
	if q.Limit < 1 || q.Limit > MaxPage {
		return nil, nil, tollgate.Errorf(tollgate.EINVALID, "limit must be from 1 to %d", MaxPage)
	}
	ps, err := s.profiles()
	if err != nil {
		return nil, nil, err
	}
	// part reads up to n rows of one part after after and appends them
	// to out; the next page starts after the last row it kept.
	out := []Profile{}
	part := func(pq AccountQuery, n int) (more bool, err error) {
		pq.Limit = n + 1
		found, err := ps.ListAccounts(ctx, pq)
		if err != nil {
			return false, err
		}
		if len(found) > n {
			found, more = found[:n], true
		}
		out = append(out, found...)
		return more, nil
	}
	next := q
	if q.Q == "" || q.Exact {
		more, err := part(AccountQuery{Q: q.Q, Exact: q.Exact, After: q.After}, q.Limit)
		if err != nil || !more {
			return out, nil, err
		}
		next.After = out[len(out)-1].Account
		return out, &next, nil
	}
	if !q.Labels {
		more, err := part(AccountQuery{Q: q.Q, Exact: true, After: q.After}, q.Limit)
		if err != nil {
			return nil, nil, err
		}
		if more {
			next.After = out[len(out)-1].Account
			return out, &next, nil
		}
		q.After = "" // the label matches start from the first
	}
	n := len(out)
	more, err := part(AccountQuery{Q: q.Q, After: q.After}, q.Limit-n)
	if err != nil || !more {
		return out, nil, err
	}
	next.Labels, next.After = true, q.After
	if len(out) > n {
		next.After = out[len(out)-1].Account
	}
	return out, &next, nil
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
