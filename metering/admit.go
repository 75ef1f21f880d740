package metering

import (
	"context"

	"tollgate"
	"tollgate/gateway"
)

// KeyAdmitter is the gateway.Admitter (and gateway.TokenAdmitter) of serve:
// each API key's own limits (tollgate.KeyLimits, in the tollgate.Caller
// httpapi authenticated) enforced by gateway.Limits over a kv.Limiter, so
// that every instance sharing the limiter (kv/redis) draws on one budget
// per key. A key without its own requests-per-minute gets DefaultRPM
// (serve --rate-limit). A provisional token's budget is its account's.
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
func (a *KeyAdmitter) Admit(ctx context.Context, c tollgate.Caller, model string) error {
	return a.Limits.Admit(ctx, a.budget(c), model)
}

// AdmitTokens refuses a key over its tokens per minute (429 with
// Retry-After, or at once without one for a request bigger than the whole
// minute: see gateway.Limits).
func (a *KeyAdmitter) AdmitTokens(ctx context.Context, c tollgate.Caller, model string, tokens int64) error {
	return a.Limits.AdmitTokens(ctx, a.budget(c), model, tokens)
}

// budget returns c with the default rate filled in, and without the
// shared "provisional" key id so that each account has its own budget.
func (a *KeyAdmitter) budget(c tollgate.Caller) tollgate.Caller {
	if c.Limits.RequestsPerMinute <= 0 {
		c.Limits.RequestsPerMinute = a.DefaultRPM
	}
	if c.Provisional {
		c.KeyID = ""
	}
	return c
}
