package gateway

import (
	"context"
	"time"

	"tollgate"
)

// Hold is the worst-case reservation made before a request goes upstream.
type Hold struct {
	// RequestID is the request's id (Options.RequestID), unique per
	// request: the id of its answer and of its usage record.
	RequestID string
	Account   tollgate.AccountID
	KeyID     string
	Model     string // public model name
	Credits   tollgate.Credits
	// GrantID is the provisional grant that funds the hold (the caller's
	// tollgate.Caller.GrantID), or "": the account's credit funds it.
	GrantID string
}

// Usage is what one request really used, normalised across upstream kinds:
// InputTokens counts every prompt token (the OpenAI convention), those read
// from the provider's cache (CachedInputTokens) and written to it
// (CacheWriteTokens for 5 minutes, CacheWrite1hTokens for an hour)
// included.
type Usage struct {
	// RequestID is the request's id (Hold.RequestID): its answer's id.
	RequestID         string
	Account           tollgate.AccountID
	KeyID             string
	Model             string // public model name
	Deployment        string // provider/upstream model that answered, "" if none
	Provider          string
	UpstreamID        string // the upstream's id of its answer, "" if none
	InputTokens       int64
	CachedInputTokens int64
	CacheWriteTokens  int64
	// CacheWrite1hTokens are cache writes kept an hour, which cost more.
	CacheWrite1hTokens int64
	OutputTokens       int64
	// Units are what the call used beyond text tokens (tollgate.Tokens'
	// unit fields; its token fields are zero): audio tokens, speech
	// characters, audio seconds, images, web calls, the priority tier.
	Units     tollgate.Tokens
	Credits   tollgate.Credits // never more than held
	Latency   time.Duration
	Status    string // "ok", "interrupted", "deadline_exceeded", "client_canceled", "error"
	Estimated bool   // token counts come from the tokenizer, not the upstream
}

// Meter reserves and settles credits for one request. It is implemented by
// an adapter over the ledger; every method must be safe for concurrent use.
type Meter interface {
	// Reserve holds h.Credits for the request, from h.GrantID's
	// provisional grant when set. It returns a *tollgate.Error with code
	// EINSUFFICIENT when the account cannot afford it.
	Reserve(ctx context.Context, h Hold) (holdID string, err error)
	// Settle charges u.Credits (never more than held) and releases the rest
	// of the hold. It is idempotent per holdID and records the usage.
	Settle(ctx context.Context, holdID string, u Usage) error
	// Release drops the hold without charging: nothing was used.
	Release(ctx context.Context, holdID string) error
}

// Renewer is the optional capability of a Meter whose holds expire: while
// a request is in flight the gateway renews its hold every RenewEvery, so
// that a hold lives as long as its request, however long a stream runs.
// The gateway stops renewing when it settles or releases the hold, when
// the request ends, or when Renew says the hold ended.
type Renewer interface {
	// RenewEvery is how often a hold in use must be renewed to stay alive.
	RenewEvery() time.Duration
	// Renew keeps the hold alive for another while. It returns a
	// *tollgate.Error with code ECONFLICT or ENOTFOUND when the hold ended
	// or is unknown (nothing to keep alive); the settle charges it anyway.
	Renew(ctx context.Context, holdID string) error
}

// Pricer turns token counts into credits, each kind at its own price
// (pricing.Pricer.Cost, through an adapter that adds no context). It
// returns ENOTFOUND for a model it has no price for.
type Pricer interface {
	Cost(model string, t tollgate.Tokens) (tollgate.Credits, error)
}

// TokenPricer is the optional capability of a Pricer to price tokens
// without a model's per-call fee (Cost includes it once a call), so that
// GET /v1/models lists the per-1M prices and the per-call fee apart.
type TokenPricer interface {
	TokenCost(model string, t tollgate.Tokens) (tollgate.Credits, error)
}

// Admitter decides whether a caller may start a request now, for per-key
// rate limits (kv's limiter, later). To refuse it returns a *StatusError
// with status 429 and a RetryAfter wrapping a *tollgate.Error ERATELIMITED,
// or just the *tollgate.Error. A nil Admitter admits everything.
type Admitter interface {
	Admit(ctx context.Context, c tollgate.Caller, model string) error
}

// Observer receives events for metrics and logs. Methods must be fast and
// safe for concurrent use; they must not block the request.
type Observer interface {
	// Attempt is called after each upstream attempt.
	Attempt(a Attempt)
	// Done is called once per metered request with its final usage.
	Done(u Usage)
}

// Attempt describes one upstream call made for a request.
type Attempt struct {
	RequestID  string
	Model      string
	Deployment string
	Provider   string
	Status     int // upstream HTTP status, 0 on connection error or timeout
	Err        error
	Latency    time.Duration
}

type nopObserver struct{}

func (nopObserver) Attempt(Attempt) {}
func (nopObserver) Done(Usage)      {}
