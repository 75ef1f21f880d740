package auth

import (
	"slices"
	"time"

	"tollgate"
)

// MaxRate bounds RequestsPerMinute and TokensPerMinute, far above any real
// budget, so that every kv.Limiter keeps its arithmetic exact.
const MaxRate = 1_000_000_000

// Limits are what one key may do. The zero value allows everything: every
// model, the server's default request rate, no token rate, no expiry.
type Limits struct {
	// Models are the models the key may use; empty means every model.
	Models []string
	// RequestsPerMinute bounds the key's gateway requests; 0 means the
	// server's default (serve --rate-limit).
	RequestsPerMinute int
	// TokensPerMinute bounds the tokens the key's holds cover (prompt
	// estimate plus output cap); 0 means no bound.
	TokensPerMinute int64
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
}

// Validate returns an EINVALID *tollgate.Error naming the first unusable
// limit: a negative or too large rate, an empty or repeated model name, or
// an expiry not after now. It does not know which models exist; the
// caller checks the names against its price table.
func (l Limits) Validate(now time.Time) error {
	switch {
	case l.RequestsPerMinute < 0 || l.RequestsPerMinute > MaxRate:
		return tollgate.Errorf(tollgate.EINVALID, "rpm must be between 0 (the server's default) and %d, got %d", MaxRate, l.RequestsPerMinute)
	case l.TokensPerMinute < 0 || l.TokensPerMinute > MaxRate:
		return tollgate.Errorf(tollgate.EINVALID, "tpm must be between 0 (no limit) and %d, got %d", MaxRate, l.TokensPerMinute)
	case !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(now):
		return tollgate.Errorf(tollgate.EINVALID, "expires_at %s is not in the future", l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	for i, m := range l.Models {
		if m == "" {
			return tollgate.Errorf(tollgate.EINVALID, "allowed_models[%d] is empty", i)
		}
		if slices.Contains(l.Models[:i], m) {
			return tollgate.Errorf(tollgate.EINVALID, "allowed_models lists %q twice", m)
		}
	}
	return nil
}

// Expired reports whether a key with these limits has expired at now.
func (l Limits) Expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}
