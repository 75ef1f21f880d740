// Package redis implements kv's NonceStore, Limiter and Cache on Redis (go-redis
// v9), so that several tollgate instances share one nonce set, one rate
// budget per key and one cache. It is an adapter: it knows kv and Redis,
// nothing of payments.
//
// When Redis cannot be reached every method returns an *tollgate.Error with
// code EUNAVAILABLE wrapping the Redis error. The nonce store then answers
// neither fresh nor seen: callers rely on the ledger's unique constraints,
// which is why losing Redis can never double-credit a payment. The limiter
// does not choose fail-open or fail-closed: the caller does (see kv.Limiter).
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate"
	"tollgate/kv"
)

// Options configures a Store.
type Options struct {
	// Prefix is put in front of every key, e.g. "tollgate:" (the default
	// when empty), so that one Redis can serve several deployments.
	Prefix string
}

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "tollgate:"

// Store is the Redis kv implementation. It is safe for concurrent use.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	owned  bool
	// now, when set (only by tests, export_test.go), is the limiter's
	// clock instead of Redis' TIME.
	now func() time.Time
}

var (
	_ kv.NonceStore = (*Store)(nil)
	_ kv.Limiter    = (*Store)(nil)
	_ kv.Cache      = (*Store)(nil)
)

// New returns a Store using c, which the caller keeps and closes.
func New(c goredis.UniversalClient, opts Options) *Store {
	p := opts.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	return &Store{c: c, prefix: p}
}

// Open connects to the Redis at url (redis://[user:pass@]host:port/db) and
// checks that it answers. The Store owns the connection; call Close.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	c, err := Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	s := New(c, opts)
	s.owned = true
	return s, nil
}

// Connect connects to the Redis at url (redis://[user:pass@]host:port/db)
// and checks that it answers: one client a process can share between the
// Store (New) and other users of the same Redis. The caller closes it.
func Connect(ctx context.Context, url string) (*goredis.Client, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, &tollgate.Error{Code: tollgate.EINVALID, Op: "kv/redis.Open", Message: "bad Redis URL", Err: err}
	}
	c := goredis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, unavailable("kv/redis.Open", err)
	}
	return c, nil
}

// Close closes the connection if Open made it; otherwise it does nothing.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("kv/redis: close: %w", err)
	}
	return nil
}

func unavailable(op string, err error) error {
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: "shared state (Redis) unavailable", Err: err}
}

// SetNX implements kv.NonceStore with SET key 1 NX EX ttl (PX when ttl is
// not a whole number of seconds).
func (s *Store) SetNX(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	const op = "kv/redis.SetNX"
	if err := kv.CheckTTL(op, ttl); err != nil {
		return false, err
	}
	ok, err := s.c.SetNX(ctx, s.prefix+"nonce:"+key, 1, ttl).Result()
	if err != nil {
		return false, unavailable(op, err)
	}
	return ok, nil
}

// Seen implements kv.NonceStore with EXISTS.
func (s *Store) Seen(ctx context.Context, key string) (bool, error) {
	n, err := s.c.Exists(ctx, s.prefix+"nonce:"+key).Result()
	if err != nil {
		return false, unavailable("kv/redis.Seen", err)
	}
	return n == 1, nil
}

// clockLua defines the clock both limiter scripts read, prepended to each.
//
//go:embed clock.lua
var clockLua string

//go:embed gcra.lua
var gcraLua string

var gcraScript = goredis.NewScript(clockLua + gcraLua)

// Allow implements kv.Limiter.
func (s *Store) Allow(ctx context.Context, key string, limit kv.Limit) (kv.Result, error) {
	return s.AllowN(ctx, key, limit, 1)
}

// AllowN implements kv.Limiter with one Lua script that runs kv.GCRA on
// Redis' own clock (TIME), so instances with skewed clocks share one budget.
// The state is one string key, "<sec>:<nsec>", expiring when the bucket is
// full again.
func (s *Store) AllowN(ctx context.Context, key string, limit kv.Limit, n int) (kv.Result, error) {
	const op = "kv/redis.AllowN"
	if err := kv.CheckN(op, limit, n); err != nil {
		return kv.Result{}, err
	}
	// kv.Limit.Validate bounds Burst × Interval by kv.MaxWindow (2^53 ns),
	// so every number in the script is exact in Lua's doubles.
	args := s.clockArgs(int64(limit.Interval()), limit.Burst, n)
	res, err := gcraScript.Run(ctx, s.c, []string{s.prefix + "rl:" + key}, args...).Int64Slice()
	return result(op, res, err)
}

//go:embed window.lua
var windowLua string

var windowScript = goredis.NewScript(clockLua + windowLua)

// AllowWindow implements kv.Limiter with one Lua script that runs
// kv.WindowStep on Redis' own clock (TIME). The state is one hash, a field
// per slot still counted, expiring when the newest slot stops counting.
func (s *Store) AllowWindow(ctx context.Context, key string, w kv.Window, n int) (kv.Result, error) {
	const op = "kv/redis.AllowWindow"
	if err := kv.CheckWindow(op, w, n); err != nil {
		return kv.Result{}, err
	}
	args := s.clockArgs(int64(w.SlotWidth()/time.Microsecond), w.Budget, n, kv.WindowSlots)
	res, err := windowScript.Run(ctx, s.c, []string{s.prefix + "rw:" + key}, args...).Int64Slice()
	return result(op, res, err)
}

// clockArgs returns a script's arguments, followed by the injected clock's
// Unix seconds and nanoseconds when a test set one.
func (s *Store) clockArgs(args ...any) []any {
	if s.now != nil {
		t := s.now()
		args = append(args, t.Unix(), t.Nanosecond())
	}
	return args
}

// result turns a limiter script's reply into a kv.Result.
func result(op string, res []int64, err error) (kv.Result, error) {
	if err != nil {
		return kv.Result{}, unavailable(op, err)
	}
	if len(res) != 3 {
		return kv.Result{}, &tollgate.Error{Code: tollgate.EINTERNAL, Op: op, Err: errors.New("limiter script returned a malformed reply")}
	}
	return kv.Result{Allowed: res[0] == 1, RetryAfter: time.Duration(res[1]), Remaining: int(res[2])}, nil
}

// Get implements kv.Cache.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := s.c.Get(ctx, s.prefix+"cache:"+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("kv/redis.Get", err)
	}
	return b, true, nil
}

// Set implements kv.Cache.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	const op = "kv/redis.Set"
	if err := kv.CheckTTL(op, ttl); err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.prefix+"cache:"+key, value, ttl).Err(); err != nil {
		return unavailable(op, err)
	}
	return nil
}

// Delete implements kv.Cache.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.c.Del(ctx, s.prefix+"cache:"+key).Err(); err != nil {
		return unavailable("kv/redis.Delete", err)
	}
	return nil
}

// probeTTL is how long the key ProbeWrite sets lives.
const probeTTL = 10 * time.Second

// ProbeWrite proves Redis takes writes now, for readiness checks: it sets
// one key under the prefix ("probe", expiring after probeTTL), since a
// read-only replica, a full maxmemory or a user without write rights
// still answers reads. Errors carry EUNAVAILABLE and a message saying
// which, safe to show. Safe for concurrent use.
func (s *Store) ProbeWrite(ctx context.Context) error {
	err := s.c.Set(ctx, s.prefix+"probe", 1, probeTTL).Err()
	if err == nil {
		return nil
	}
	const op = "kv/redis.ProbeWrite"
	why := "shared state (Redis) unavailable"
	// A Redis error reply starts with its code.
	switch {
	case goredis.HasErrorPrefix(err, "READONLY"):
		why = "Redis is a read-only replica"
	case goredis.HasErrorPrefix(err, "NOPERM"):
		why = "the Redis user may not write"
	case goredis.HasErrorPrefix(err, "OOM"):
		why = "Redis is out of memory (maxmemory)"
	case goredis.HasErrorPrefix(err, "MISCONF"):
		why = "Redis refuses writes: it cannot save to disk"
	}
	return &tollgate.Error{Code: tollgate.EUNAVAILABLE, Op: op, Message: why, Err: err}
}
