package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"tollgate"
	"tollgate/gateway"
	"tollgate/kv"
)

// KeyAdmitter is a gateway.Admitter that limits each API key (or
// provisional token's account) to Limit requests, shared by every instance
// that uses the same kv.Limiter. It fails open when the limiter is
// unavailable: a short Redis outage must not stop paid traffic, which the
// ledger's holds still bound (see kv.Limiter).
type KeyAdmitter struct {
	Limiter kv.Limiter
	Limit   kv.Limit
	Logger  *slog.Logger
}

var _ gateway.Admitter = (*KeyAdmitter)(nil)

// Admit refuses with 429 and Retry-After once the caller's key is over its
// limit.
func (a *KeyAdmitter) Admit(ctx context.Context, c gateway.Caller, model string) error {
	key := "ratelimit:key:" + c.KeyID
	if c.KeyID == "" || c.KeyID == "provisional" {
		key = "ratelimit:account:" + string(c.Account)
	}
	res, err := a.Limiter.Allow(ctx, key, a.Limit)
	if err != nil {
		if a.Logger != nil {
			a.Logger.WarnContext(ctx, "rate limiter unavailable; admitting", "err", err)
		}
		return nil
	}
	if res.Allowed {
		return nil
	}
	return &gateway.StatusError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
		RetryAfter: res.RetryAfter,
		Err:        tollgate.Errorf(tollgate.ERATELIMITED, "this API key is over its limit of %d requests per %s", a.Limit.Rate, a.Limit.Per)}
}
