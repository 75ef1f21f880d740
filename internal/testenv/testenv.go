// Package testenv gives tests real PostgreSQL and Redis services: each call
// makes an isolated database or key prefix and removes it afterwards. When a
// service is absent the test is skipped with a message, unless
// TOLLGATE_REQUIRE_SERVICES=1, in which case it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Defaults used when the TOLLGATE_TEST_* variables are unset.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// Required reports whether services must be present (TOLLGATE_REQUIRE_SERVICES=1).
func Required() bool { return os.Getenv("TOLLGATE_REQUIRE_SERVICES") == "1" }

// PostgresAdminURL is the URL of the server's maintenance database.
func PostgresAdminURL() string {
	if u := os.Getenv("TOLLGATE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// RedisURL is the URL of the test Redis server.
func RedisURL() string {
	if u := os.Getenv("TOLLGATE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultRedisURL
}

func unavailable(tb testing.TB, service string, err error) {
	tb.Helper()
	if Required() {
		tb.Fatalf("%s is required (TOLLGATE_REQUIRE_SERVICES=1) but unavailable: %v", service, err)
	}
	tb.Skipf("skipping: %s unavailable (%v); set TOLLGATE_REQUIRE_SERVICES=1 to make this a failure", service, err)
}

// RandomSuffix returns n random bytes hex-encoded, for unique names.
func RandomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MustPostgres creates a fresh, empty PostgreSQL database for this test and
// returns its URL. The database is dropped when the test ends.
func MustPostgres(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(tb, "PostgreSQL", err)
		return ""
	}
	defer conn.Close(context.Background())
	name := "tollgate_test_" + RandomSuffix(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", admin, err)
	}
	u.Path = "/" + name
	return u.String()
}

// MustRedis checks that Redis answers and returns its URL and a key prefix
// unique to this test. Keys under the prefix are deleted when the test ends.
func MustRedis(tb testing.TB) (redisURL, prefix string) {
	tb.Helper()
	redisURL = RedisURL()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		tb.Fatalf("parse %s: %v", redisURL, err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		unavailable(tb, "Redis", err)
		return "", ""
	}
	prefix = fmt.Sprintf("tollgate-test:%s:", RandomSuffix(6))
	tb.Cleanup(func() {
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return redisURL, prefix
}
