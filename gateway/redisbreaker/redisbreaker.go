// Package redisbreaker is a gateway.BreakerState shared through Redis, so
// that every tollgate instance agrees that a deployment is down: failures
// seen by any instance count towards one breaker, an open breaker is open
// for all, and when its cooldown has passed exactly one instance sends the
// half-open probe. It is an adapter: the gateway defines the interface and
// never imports this package; cmd wires it.
//
// Redis is not asked on every request. What an instance last read of a
// deployment (closed with no failures, open, …) is trusted for Sync, so a
// healthy deployment costs one Redis round trip per Sync per instance, and
// another instance's verdict reaches this one within Sync. Failures always
// go to Redis at once (they are rare, and they are what must be shared).
//
// When Redis fails, each instance falls back to its own in-memory breaker,
// which it keeps up to date all along: breaking degrades to per-instance,
// as with one instance, instead of stopping traffic or hammering a dead
// upstream. Failures to reach Redis are logged at most once per LogEvery.
package redisbreaker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate"
	"tollgate/gateway"
)

// Options configures a Breaker. The zero value uses the defaults below.
type Options struct {
	// Prefix is put in front of every key ("tollgate:" when empty).
	Prefix string
	// Threshold is the consecutive failures, across all instances, that
	// open the breaker (5 when zero).
	Threshold int
	// Cooldown is how long an open breaker stays open (30 s when zero).
	Cooldown time.Duration
	// Sync is how long an instance trusts its last read of a deployment's
	// state (250 ms when zero).
	Sync time.Duration
	// Timeout bounds one Redis call (100 ms when zero).
	Timeout time.Duration
	// LogEvery is the least time between two logged Redis failures (10 s
	// when zero).
	LogEvery time.Duration
	// Clock is the clock of the local cache and fallback; SystemClock when nil.
	// Open and probe durations are kept by Redis itself (PX expiry), so
	// instances' clocks need not agree.
	Clock  tollgate.Clock
	Logger *slog.Logger
}

// Breaker is the shared BreakerState. It is safe for concurrent use.
type Breaker struct {
	c     goredis.UniversalClient
	o     Options
	local *gateway.Breaker // fallback when Redis fails, always kept up to date

	mu    sync.Mutex
	views map[string]view // what this instance last learned per key

	lastLog atomic.Int64
	errs    atomic.Int64
}

// view is one instance's last knowledge of a key.
type view struct {
	at       time.Time // when it was learned
	open     bool      // open at that time
	tripped  bool      // open or half-open: a success must close it in Redis
	failures int64     // consecutive failures recorded
}

var _ gateway.BreakerState = (*Breaker)(nil)

// New returns a Breaker on c, which the caller keeps and closes.
func New(c goredis.UniversalClient, o Options) *Breaker {
	if o.Prefix == "" {
		o.Prefix = "tollgate:"
	}
	if o.Threshold <= 0 {
		o.Threshold = 5
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.Sync <= 0 {
		o.Sync = 250 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 10 * time.Second
	}
	o.Clock = tollgate.ClockOr(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Breaker{c: c, o: o, local: gateway.NewBreaker(o.Threshold, o.Cooldown, o.Clock), views: map[string]view{}}
}

// Errors returns how many Redis calls failed (each answered by the
// in-memory fallback), for tests and metrics.
func (b *Breaker) Errors() int64 { return b.errs.Load() }

// keys are one deployment's Redis keys: consecutive failures, open marker
// (expires when the cooldown ends), tripped marker (open or half-open until
// a success) and the half-open probe token. The hash tag keeps them in one
// cluster slot.
func (b *Breaker) keys(key string) []string {
	base := b.o.Prefix + "breaker:{" + key + "}:"
	return []string{base + "f", base + "o", base + "t", base + "p"}
}

// allowScript answers {allowed, open ms left, tripped, failures}. When the
// breaker is half-open it takes the probe token (SET NX) for one caller.
var allowScript = goredis.NewScript(`
local open = redis.call('PTTL', KEYS[2])
if open > 0 then return {0, open, 1, 0} end
if redis.call('EXISTS', KEYS[3]) == 1 then
  if redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[1]) then return {1, 0, 1, 0} end
  return {0, 0, 1, 0}
end
return {1, 0, 0, tonumber(redis.call('GET', KEYS[1]) or '0')}
`)

// failureScript records a failure and answers {failures, open ms}. ARGV:
// threshold, cooldown ms, retry-after ms, how long failures are remembered.
var failureScript = goredis.NewScript(`
local f = redis.call('INCR', KEYS[1])
local keep = tonumber(ARGV[4])
redis.call('PEXPIRE', KEYS[1], keep)
local wasProbe = redis.call('DEL', KEYS[4]) == 1
local open = 0
if f >= tonumber(ARGV[1]) or wasProbe then open = tonumber(ARGV[2]) end
local ra = tonumber(ARGV[3])
if ra > open then open = ra end
local cur = redis.call('PTTL', KEYS[2])
if open > cur then
  redis.call('SET', KEYS[2], '1', 'PX', open)
  redis.call('SET', KEYS[3], '1', 'PX', math.max(keep, open + tonumber(ARGV[2])))
else
  open = math.max(cur, 0)
end
return {f, open}
`)

// stateScript answers 0 closed, 1 half-open, 2 open, changing nothing.
var stateScript = goredis.NewScript(`
if redis.call('PTTL', KEYS[2]) > 0 then return 2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
return 0
`)

// Allow implements gateway.BreakerState.
func (b *Breaker) Allow(key string) bool {
	now := b.o.Clock.Now()
	b.mu.Lock()
	v, ok := b.views[key]
	b.mu.Unlock()
	if ok && now.Sub(v.at) < b.o.Sync {
		switch {
		case v.open:
			return false
		case !v.tripped:
			return true
		}
		// Half-open: the probe token is taken in Redis.
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	res, err := allowScript.Run(ctx, b.c, b.keys(key), b.o.Cooldown.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 4 {
		b.failed("allow", err)
		return b.local.Allow(key)
	}
	b.learn(key, view{at: now, open: res[1] > 0, tripped: res[2] == 1, failures: res[3]})
	return res[0] == 1
}

// Success implements gateway.BreakerState. It goes to Redis only when this
// instance knows of failures to forget.
func (b *Breaker) Success(key string) {
	b.local.Success(key)
	b.mu.Lock()
	v, ok := b.views[key]
	b.mu.Unlock()
	if ok && v.failures == 0 && !v.tripped {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	if err := b.c.Del(ctx, b.keys(key)...).Err(); err != nil {
		b.failed("success", err)
		return
	}
	b.learn(key, view{at: b.o.Clock.Now()})
}

// Failure implements gateway.BreakerState.
func (b *Breaker) Failure(key string, retryAfter time.Duration) {
	b.local.Failure(key, retryAfter)
	keep := max(10*b.o.Cooldown, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	res, err := failureScript.Run(ctx, b.c, b.keys(key), b.o.Threshold, b.o.Cooldown.Milliseconds(),
		retryAfter.Milliseconds(), keep.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		b.failed("failure", err)
		return
	}
	b.learn(key, view{at: b.o.Clock.Now(), open: res[1] > 0, tripped: res[1] > 0, failures: res[0]})
}

// State returns "closed", "open" or "half-open" as Redis knows it (the
// in-memory fallback's when Redis fails), for gateway.Status and metrics.
func (b *Breaker) State(key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	s, err := stateScript.Run(ctx, b.c, b.keys(key)).Int64()
	if err != nil {
		b.failed("state", err)
		return b.local.State(key)
	}
	return [...]string{"closed", "half-open", "open"}[min(max(s, 0), 2)]
}

func (b *Breaker) learn(key string, v view) {
	b.mu.Lock()
	b.views[key] = v
	b.mu.Unlock()
}

// failed counts a Redis failure and logs it, at most once per LogEvery.
func (b *Breaker) failed(op string, err error) {
	b.errs.Add(1)
	now, last := b.o.Clock.Now().UnixNano(), b.lastLog.Load()
	if now-last < int64(b.o.LogEvery) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	b.o.Logger.Error("circuit breaker: Redis failed; using this instance's own breaker", "op", op, "err", err)
}
