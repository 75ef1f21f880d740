package httpapi

import (
	"context"
	"net/http"

	"tollgate"
	"tollgate/gateway"
)

// KeyAdmitter is the gateway.Admitter (and gateway.TokenAdmitter) of serve:
// each API key's own limits (auth.Limits, put in the gateway.Caller by
// WithAuth) enforced by gateway.Limits over a kv.Limiter, so that every
// instance sharing the limiter (kv/redis) draws on one budget per key.
// A key without its own requests-per-minute gets DefaultRPM (serve
// --rate-limit). A provisional token's budget is its account's.
//
// Like gateway.Limits it fails open when the limiter is unavailable: a
// short Redis outage must not stop paid traffic, which the ledger's holds
// still bound (see kv.Limiter).
type KeyAdmitter struct {
	// Limits enforces expiry, models, rpm and tpm; required.
	Limits *gateway.Limits
	// DefaultRPM is the requests per minute of a key without its own;
	// 0 means no limit.
	DefaultRPM int
}

var (
	_ gateway.Admitter      = (*KeyAdmitter)(nil)
	_ gateway.TokenAdmitter = (*KeyAdmitter)(nil)
)

// Admit refuses an expired key (401), a model outside the key's list (403)
// and a key over its requests per minute (429 with Retry-After).
func (a *KeyAdmitter) Admit(ctx context.Context, c gateway.Caller, model string) error {
	return a.Limits.Admit(ctx, a.budget(c), model)
}

// AdmitTokens refuses a key over its tokens per minute (429 with
// Retry-After). A request whose hold alone covers more tokens than the
// key's whole minute is refused at once with 429 and no Retry-After: it
// could never pass, and the client must lower max_tokens instead of
// waiting (gateway.Limits on its own would let it through after a minute
// idle, which makes the limit a suggestion).
func (a *KeyAdmitter) AdmitTokens(ctx context.Context, c gateway.Caller, model string, tokens int64) error {
	c = a.budget(c)
	if tpm := c.Limits.TokensPerMinute; tpm > 0 && tokens > tpm {
		return &gateway.StatusError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			Err: tollgate.Errorf(tollgate.ERATELIMITED,
				"this request may use up to %d tokens (prompt estimate plus max_tokens), more than this API key's limit of %d tokens per minute; lower max_tokens or shorten the prompt",
				tokens, tpm)}
	}
	return a.Limits.AdmitTokens(ctx, c, model, tokens)
}

// budget returns c with the default rate filled in, and without the
// shared "provisional" key id so that each account has its own budget.
func (a *KeyAdmitter) budget(c gateway.Caller) gateway.Caller {
	if c.Limits.RequestsPerMinute <= 0 {
		c.Limits.RequestsPerMinute = a.DefaultRPM
	}
	if c.KeyID == "provisional" {
		c.KeyID = ""
	}
	return c
}
