package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/kv"
	"tollgate/kv/kvtest"
	kvredis "tollgate/kv/redis"
)

// mustClient returns a new go-redis client (its own connection pool) for url.
func mustClient(tb testing.TB, url string) *goredis.Client {
	tb.Helper()
	o, err := goredis.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	c := goredis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestRedis runs the conformance suite; Peer is a second go-redis client,
// as a second tollgate instance would have.
func TestRedis(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kvtest.Env {
		url, prefix := testenv.MustRedis(t)
		opts := kvredis.Options{Prefix: prefix}
		return kvtest.Env{
			Store: kvredis.New(mustClient(t, url), opts),
			Peer:  kvredis.New(mustClient(t, url), opts),
			Sleep: time.Sleep,
		}
	})
}

// TestRedisInjectedClock runs the suite again with the limiter scripts on
// the suite's fake clock instead of Redis' TIME (SetLimiterClock), so that
// the exact and sliding-window tests run on Redis too.
func TestRedisInjectedClock(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kvtest.Env {
		url, prefix := testenv.MustRedis(t)
		opts := kvredis.Options{Prefix: prefix}
		clock := kvtest.NewFakeClock()
		store, peer := kvredis.New(mustClient(t, url), opts), kvredis.New(mustClient(t, url), opts)
		store.SetLimiterClock(clock)
		peer.SetLimiterClock(clock)
		return kvtest.Env{Store: store, Peer: peer, Sleep: time.Sleep, Clock: clock}
	})
}

// TestRedisDown checks the documented failure mode: every call returns
// EUNAVAILABLE, and SetNX reports the nonce neither fresh nor seen.
func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	s := kvredis.New(c, kvredis.Options{})

	fresh, err := s.SetNX(ctx, "n", time.Hour)
	if fresh || tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("SetNX = %v, %v; want false, unavailable", fresh, err)
	}
	if _, err := s.Seen(ctx, "n"); tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("Seen: %v, want unavailable", err)
	}
	r, err := s.Allow(ctx, "k", kv.Limit{Rate: 1, Per: time.Second, Burst: 1})
	if r.Allowed || tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("Allow = %+v, %v; want refused, unavailable", r, err)
	}
	if _, _, err := s.Get(ctx, "c"); tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("Get: %v, want unavailable", err)
	}
	if _, err := kvredis.Open(ctx, "redis://127.0.0.1:1/0?max_retries=-1", kvredis.Options{}); tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE {
		t.Errorf("Open: %v, want unavailable", err)
	}
	if _, err := kvredis.Open(ctx, "http://nope", kvredis.Options{}); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Errorf("Open with a bad URL: %v, want invalid", err)
	}
}

// TestRedisFlushed models docs/RELIABILITY.md S8: after the keys are lost the
// limiter starts a fresh budget and the nonce store forgets, without errors.
// (SCRIPT FLUSH is not exercised here because the test Redis is shared;
// go-redis' Script.Run falls back from EVALSHA to EVAL on NOSCRIPT.)
func TestRedisFlushed(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.MustRedis(t)
	c := mustClient(t, url)
	s := kvredis.New(c, kvredis.Options{Prefix: prefix})
	l := kv.Limit{Rate: 1, Per: time.Hour, Burst: 1}
	if r, err := s.Allow(ctx, "k", l); err != nil || !r.Allowed {
		t.Fatalf("first Allow = %+v, %v", r, err)
	}
	if _, err := s.SetNX(ctx, "n", time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Allow(ctx, "k", l); err != nil || !r.Allowed {
		t.Fatalf("Allow after flush = %+v, %v; want a fresh budget", r, err)
	}
	if fresh, err := s.SetNX(ctx, "n", time.Hour); err != nil || !fresh {
		t.Fatalf("SetNX after flush = %v, %v; want fresh", fresh, err)
	}
}

func TestRedisOpen(t *testing.T) {
	url, prefix := testenv.MustRedis(t)
	s, err := kvredis.Open(context.Background(), url, kvredis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetNX(context.Background(), "n", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRedisProbeWrite: ProbeWrite sets a key under the prefix that
// expires, and fails, saying why, against a Redis that answers reads but
// refuses writes (a user without write rights), where a read (the
// readiness check before) still succeeded.
func TestRedisProbeWrite(t *testing.T) {
	ctx := context.Background()
	t.Run("Writable", func(t *testing.T) {
		url, prefix := testenv.MustRedis(t)
		c := mustClient(t, url)
		if err := kvredis.New(c, kvredis.Options{Prefix: prefix}).ProbeWrite(ctx); err != nil {
			t.Fatal(err)
		}
		ttl, err := c.PTTL(ctx, prefix+"probe").Result()
		if err != nil || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("probe key under the prefix: ttl %v, %v; want a short expiry", ttl, err)
		}
	})
	t.Run("ReadOnly", func(t *testing.T) {
		url, prefix := testenv.MustRedisReadOnly(t)
		s, err := kvredis.Open(ctx, url, kvredis.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, _, err := s.Get(ctx, "readyz"); err != nil {
			t.Fatalf("a read as the read-only user: %v", err)
		}
		err = s.ProbeWrite(ctx)
		if tollgate.ErrorCode(err) != tollgate.EUNAVAILABLE || tollgate.ErrorMessage(err) != "the Redis user may not write" {
			t.Fatalf("ProbeWrite on a Redis refusing writes: %v (%q), want unavailable: the Redis user may not write", err, tollgate.ErrorMessage(err))
		}
	})
}

func BenchmarkRedisSetNX(b *testing.B) {
	url, prefix := testenv.MustRedis(b)
	s := kvredis.New(mustClient(b, url), kvredis.Options{Prefix: prefix})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.SetNX(ctx, strconv.Itoa(i), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	url, prefix := testenv.MustRedis(b)
	s := kvredis.New(mustClient(b, url), kvredis.Options{Prefix: prefix})
	ctx := context.Background()
	l := kv.Limit{Rate: 1 << 30, Per: time.Second, Burst: 1 << 20}
	for b.Loop() {
		if _, err := s.Allow(ctx, "k", l); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRedisKeysExpire checks that Redis memory stays bounded: every key the
// store writes carries a TTL no longer than it needs (a limiter key lives
// until its bucket is full again, a window key until its slot stops
// counting).
func TestRedisKeysExpire(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.MustRedis(t)
	c := mustClient(t, url)
	s := kvredis.New(c, kvredis.Options{Prefix: prefix})
	l := kv.Limit{Rate: 10, Per: time.Minute, Burst: 5} // 6 s per event
	if _, err := s.AllowN(ctx, "k", l, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetNX(ctx, "n", kv.NonceTTL); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "c", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllowWindow(ctx, "w", kv.Window{Budget: 5, Length: time.Minute}, 2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key      string
		min, max time.Duration
	}{
		{prefix + "rl:k", 11 * time.Second, 12 * time.Second},
		{prefix + "nonce:n", kv.NonceTTL - time.Minute, kv.NonceTTL},
		{prefix + "cache:c", 59 * time.Second, time.Minute},
		{prefix + "rw:w", 59 * time.Second, 61 * time.Second}, // until its slot stops counting
	}
	for _, tt := range tests {
		ttl, err := c.PTTL(ctx, tt.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < tt.min || ttl > tt.max {
			t.Errorf("PTTL(%s) = %v, want in [%v, %v]", tt.key, ttl, tt.min, tt.max)
		}
	}
}

// TestRedisDefaultPrefix checks that keys land under DefaultPrefix when no
// prefix is configured.
func TestRedisDefaultPrefix(t *testing.T) {
	ctx := context.Background()
	url, prefix := testenv.MustRedis(t)
	c := mustClient(t, url)
	s := kvredis.New(c, kvredis.Options{})
	key := prefix + "n" // unique; cleaned up below
	if _, err := s.SetNX(ctx, key, time.Minute); err != nil {
		t.Fatal(err)
	}
	full := kvredis.DefaultPrefix + "nonce:" + key
	t.Cleanup(func() { c.Del(context.Background(), full) })
	if n, err := c.Exists(ctx, full).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %d, %v; want 1", full, n, err)
	}
}
