package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate"
	"tollgate/kv"
)

// TokenAdmitter is the optional capability of an Admitter to limit tokens:
// the gateway calls AdmitTokens once per request, after pricing its hold
// and before reserving it, with the tokens the hold covers (the prompt
// estimate with its margin plus the output cap). Errors are as for Admit.
type TokenAdmitter interface {
	AdmitTokens(ctx context.Context, c tollgate.Caller, model string, tokens int64) error
}

// admitTokens asks the Admitter for tokens when it limits them.
func (g *Gateway) admitTokens(ctx context.Context, c tollgate.Caller, model string, tokens int64) error {
	if ta, ok := g.opts.Admitter.(TokenAdmitter); ok {
		return ta.AdmitTokens(ctx, c, model, tokens)
	}
	return nil
}

// DefaultLimiterTimeout bounds one limiter call; see Limits.Timeout.
const DefaultLimiterTimeout = 100 * time.Millisecond

// Limits is the Admitter (and TokenAdmitter) enforcing each key's
// tollgate.KeyLimits across requests: RequestsPerMinute and
// TokensPerMinute over a kv.Limiter, ExpiresAt, and the key's Models.
// Refusals are 429 with a Retry-After for rates, 401 for an expired key,
// 403 for a model. With a shared limiter (kv/redis) every instance draws
// on one budget per key.
//
// Both rates are sliding-window quotas (kv.Window): at most rpm requests,
// and holds covering at most tpm tokens, in any 60 seconds, as many at
// once as the key has left. A key's rate is also a promise to the
// operator's upstream budget, so it holds for every minute, not only on
// average: a token bucket of a minute's worth, as used until issue 17,
// let almost twice the rate through in one sliding minute. The quota
// counts per second over 61 of them, so a key pacing itself at exactly
// its rate gets about 60/61 of it, and after a burst Retry-After is up to
// 61 s.
//
// Tokens are counted when the hold is made, at the hold's estimate: the
// prompt plus the output cap, the worst case, since the real usage is not
// known yet (the quota cannot give tokens back). A request whose estimate
// is above the whole per-minute budget is refused at once with 429 and no
// Retry-After: it could never pass, and the client must lower max_tokens
// instead of waiting.
//
// When the limiter fails (Redis down or slower than Timeout) Limits fails
// OPEN: the request is admitted, the error is logged (at most once per
// LogEvery) and counted in tollgate_gateway_limiter_errors_total. That is
// deliberate: rate limits protect capacity and fairness, not money. Every
// request still needs a hold on the ledger, which bounds what a key can
// spend whatever the limiter says, so an outage of Redis must not turn
// into an outage of paid traffic. Fail-closed would make Redis a hard
// dependency of every API call; alert on the counter instead.
type Limits struct {
	// Limiter keeps the budgets; nil enforces only expiry and models.
	Limiter kv.Limiter
	// Clock is the clock for key expiry; SystemClock when nil.
	Clock tollgate.Clock
	// Timeout bounds each limiter call (DefaultLimiterTimeout when zero),
	// so that an unreachable Redis delays requests by at most this much.
	Timeout time.Duration
	// Logger receives limiter failures; discarded when nil.
	Logger *slog.Logger
	// LogEvery is the least time between two logged failures (10 s when zero).
	LogEvery time.Duration

	refused *prometheus.CounterVec
	errs    prometheus.Counter
	lastLog atomic.Int64
}

var (
	_ Admitter      = (*Limits)(nil)
	_ TokenAdmitter = (*Limits)(nil)
)

// NewLimits returns Limits over l, registering its counters with reg when
// reg is not nil:
//
//	tollgate_gateway_limit_refusals_total{limit}  limit is rpm, tpm, expired or model
//	tollgate_gateway_limiter_errors_total         limiter failures, each admitted (fail-open)
func NewLimits(l kv.Limiter, reg prometheus.Registerer) *Limits {
	lim := &Limits{
		Limiter: l,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_gateway_limit_refusals_total", Help: "Requests refused by per-key limits, by limit (rpm, tpm, expired, model).",
		}, []string{"limit"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_gateway_limiter_errors_total", Help: "Rate limiter failures; each request was admitted (fail-open).",
		}),
	}
	if reg != nil {
		reg.MustRegister(lim.refused, lim.errs)
	}
	return lim
}

// Admit implements Admitter: expiry, model and requests per minute.
func (l *Limits) Admit(ctx context.Context, c tollgate.Caller, model string) error {
	if !c.Limits.ExpiresAt.IsZero() && !l.now().Before(c.Limits.ExpiresAt) {
		l.count("expired")
		return tollgate.Errorf(tollgate.EUNAUTHORIZED, "this API key expired at %s", c.Limits.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !c.Limits.Allows(model) {
		l.count("model")
		return tollgate.Errorf(tollgate.EFORBIDDEN, "this API key may not use the model %q", model)
	}
	rpm := c.Limits.RequestsPerMinute
	if rpm <= 0 {
		return nil
	}
	return l.take(ctx, "rpm", limiterKey("gw:rpm:", c), kv.Window{Budget: rpm, Length: time.Minute}, 1,
		"this API key's limit of %d requests per minute is reached; retry later", int64(rpm))
}

// AdmitTokens implements TokenAdmitter: tokens per minute. A request
// covering more tokens than the key's whole minute is refused at once,
// without Retry-After.
func (l *Limits) AdmitTokens(ctx context.Context, c tollgate.Caller, model string, tokens int64) error {
	tpm := c.Limits.TokensPerMinute
	if tpm <= 0 {
		return nil
	}
	if tokens > tpm {
		l.count("tpm")
		return &StatusError{Code: "rate_limit_exceeded",
			Err: tollgate.Errorf(tollgate.ERATELIMITED,
				"this request may use up to %d tokens (prompt estimate plus max_tokens), more than this API key's limit of %d tokens per minute; lower max_tokens or shorten the prompt",
				tokens, tpm)}
	}
	n := int(max(1, tokens))
	return l.take(ctx, "tpm", limiterKey("gw:tpm:", c), kv.Window{Budget: int(tpm), Length: time.Minute}, n,
		"this API key's limit of %d tokens per minute is reached; retry later", tpm)
}

// take draws n from key's budget; it refuses with 429 or fails open.
func (l *Limits) take(ctx context.Context, name, key string, w kv.Window, n int, msg string, limit int64) error {
	if l.Limiter == nil {
		return nil
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultLimiterTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	res, err := l.Limiter.AllowWindow(ctx, key, w, n)
	cancel()
	if err != nil {
		l.failOpen(ctx, name, err)
		return nil
	}
	if res.Allowed {
		return nil
	}
	l.count(name)
	return &StatusError{Code: "rate_limit_exceeded",
		RetryAfter: max(res.RetryAfter, time.Second), Err: tollgate.Errorf(tollgate.ERATELIMITED, msg, limit)}
}

// failOpen counts and (rate-limited) logs a limiter failure.
func (l *Limits) failOpen(ctx context.Context, name string, err error) {
	if l.errs != nil {
		l.errs.Inc()
	}
	every := l.LogEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	now, last := l.now().UnixNano(), l.lastLog.Load()
	if l.Logger == nil || now-last < int64(every) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelWarn
	}
	l.Logger.Log(ctx, level, "rate limiter failed; admitting requests (fail-open)", "limit", name, "err", err)
}

func (l *Limits) count(name string) {
	if l.refused != nil {
		l.refused.WithLabelValues(name).Inc()
	}
}

func (l *Limits) now() time.Time { return tollgate.ClockOr(l.Clock).Now() }

// limiterKey names a caller's budget: its key id, else its account.
func limiterKey(prefix string, c tollgate.Caller) string {
	if c.KeyID != "" {
		return prefix + "k:" + c.KeyID
	}
	return prefix + "a:" + string(c.Account)
}
