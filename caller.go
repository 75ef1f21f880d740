package tollgate

import (
	"context"
	"slices"
	"time"
)

// Caller is who makes a request, as the HTTP layer authenticated it: the
// account, the API key with its limits, and the provisional grant that
// funds the spending of a provisional access token. It is the one
// description of a caller: the HTTP handlers read it, the gateway enforces
// its limits and hands its grant to the meter in each hold.
type Caller struct {
	Account AccountID
	// KeyID names the API key used; "provisional" for an access token.
	KeyID string
	// GrantID is the provisional grant that funds the caller's spending
	// when it authenticated with a provisional access token; "" otherwise.
	GrantID string
	// Provisional is true for a provisional access token: it may spend
	// and read, not create orders or refunds, and its rate budget is its
	// account's.
	Provisional bool
	// Limits are the API key's own limits; zero for a provisional token.
	Limits KeyLimits
}

// MaxRate bounds RequestsPerMinute and TokensPerMinute, far above any real
// budget, so that every kv.Limiter keeps its arithmetic exact.
const MaxRate = 1_000_000_000

// KeyLimits are what one API key may do. The zero value allows everything:
// every model, the server's default request rate, no token rate, no
// expiry, no bound per request.
type KeyLimits struct {
	// Models are the models the key may use; empty means every model.
	Models []string
	// RequestsPerMinute bounds the key's gateway requests: at most this
	// many in any 60 seconds, all at once if the key was quiet
	// (gateway.Limits); 0 means the server's default (serve --rate-limit).
	RequestsPerMinute int
	// TokensPerMinute bounds the tokens the key's holds cover (prompt
	// estimate plus output cap) in any 60 seconds; 0 means no bound. A
	// request covering more than the whole minute is refused at once: it
	// could never pass (gateway.Limits).
	TokensPerMinute int64
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
	// MaxCreditsPerRequest refuses a request whose hold (its worst case)
	// would cost more; 0 means no bound.
	MaxCreditsPerRequest Credits
	// MaxOutputTokens caps each request's output tokens (max_tokens is
	// lowered to it, or set to it when absent); 0 means no cap.
	MaxOutputTokens int64
}

// Validate returns an EINVALID *Error naming the first unusable limit: a
// negative or too large rate, a negative bound per request, an empty or
// repeated model name, or an expiry not after now. It does not know which
// models exist; the caller checks the names against its price table.
func (l KeyLimits) Validate(now time.Time) error {
	switch {
	case l.RequestsPerMinute < 0 || l.RequestsPerMinute > MaxRate:
		return Errorf(EINVALID, "rpm must be between 0 (the server's default) and %d, got %d", MaxRate, l.RequestsPerMinute)
	case l.TokensPerMinute < 0 || l.TokensPerMinute > MaxRate:
		return Errorf(EINVALID, "tpm must be between 0 (no limit) and %d, got %d", MaxRate, l.TokensPerMinute)
	case l.MaxCreditsPerRequest < 0:
		return Errorf(EINVALID, "max_credits_per_request must be 0 (no limit) or more, got %d", l.MaxCreditsPerRequest)
	case l.MaxOutputTokens < 0:
		return Errorf(EINVALID, "max_output_tokens must be 0 (no limit) or more, got %d", l.MaxOutputTokens)
	case !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(now):
		return Errorf(EINVALID, "expires_at %s is not in the future", l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	for i, m := range l.Models {
		if m == "" {
			return Errorf(EINVALID, "allowed_models[%d] is empty", i)
		}
		if slices.Contains(l.Models[:i], m) {
			return Errorf(EINVALID, "allowed_models lists %q twice", m)
		}
	}
	return nil
}

// Expired reports whether a key with these limits has expired at now.
func (l KeyLimits) Expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// Allows reports whether the key may use model.
func (l KeyLimits) Allows(model string) bool {
	return len(l.Models) == 0 || slices.Contains(l.Models, model) || slices.Contains(l.Models, "*")
}

type callerKey struct{}

// WithCaller returns ctx carrying c; the HTTP layer calls it once it has
// authenticated a request, for its handlers and the gateway's.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller WithCaller stored in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}
