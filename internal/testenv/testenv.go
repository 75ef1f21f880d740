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
	return mustDatabase(tb, "")
}

// PostgresRole is a fresh test database owned by a login role of its own,
// not a superuser, so that privileges can be taken from it (a
// superuser's cannot). Make it with MustPostgresRole.
type PostgresRole struct {
	// URL connects to the database as the role.
	URL string

	adminURL string // the database, as the administrator
	role     string
}

// MustPostgresRole is MustPostgres for a database owned by a new role: what
// the role creates there (tables, by migrations) is its own. The database
// and then the role are dropped when the test ends.
func MustPostgresRole(tb testing.TB) *PostgresRole {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(tb, "PostgreSQL", err)
		return nil
	}
	defer conn.Close(context.Background())
	role := "tollgate_test_role_" + RandomSuffix(6)
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		tb.Fatalf("create test role: %v", err)
	}
	// Registered before the database's: it runs after the drop.
	tb.Cleanup(func() { cleanupExec(tb, admin, "DROP ROLE IF EXISTS "+role) })
	adminDB := mustDatabase(tb, role)
	u, err := url.Parse(adminDB)
	if err != nil {
		tb.Fatalf("parse %s: %v", adminDB, err)
	}
	u.User = url.User(role)
	return &PostgresRole{URL: u.String(), adminURL: adminDB, role: role}
}

// RevokeWrites takes from the role the right to change any table of its
// database, as an administrator locking it down would: from then on every
// INSERT, UPDATE, DELETE and TRUNCATE fails with insufficient_privilege
// (SQLSTATE 42501), while reads still work.
func (p *PostgresRole) RevokeWrites(tb testing.TB) {
	tb.Helper()
	if err := adminExec(p.adminURL, "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM "+p.role); err != nil {
		tb.Fatalf("revoke writes: %v", err)
	}
}

// mustDatabase creates a database owned by owner (the administrator when
// empty), dropped when the test ends, and returns its URL as the
// administrator.
func mustDatabase(tb testing.TB, owner string) string {
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
	create := "CREATE DATABASE " + name
	if owner != "" {
		create += " OWNER " + owner
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() { cleanupExec(tb, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", admin, err)
	}
	u.Path = "/" + name
	return u.String()
}

// adminExec runs one statement at dbURL.
func adminExec(dbURL, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, stmt)
	return err
}

// cleanupExec is adminExec for a cleanup: a failure is logged.
func cleanupExec(tb testing.TB, dbURL, stmt string) {
	if err := adminExec(dbURL, stmt); err != nil {
		tb.Logf("%s: %v", stmt, err)
	}
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

// MustRedisReadOnly is MustRedis for a Redis user of its own that may read
// keys under the prefix but write none, as a read-only replica or a
// locked-down account would: every write fails with NOPERM. It returns a
// URL that connects as that user; the user is deleted when the test ends.
func MustRedisReadOnly(tb testing.TB) (redisURL, prefix string) {
	tb.Helper()
	admin, prefix := MustRedis(tb)
	opt, err := redis.ParseURL(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", admin, err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	user, pass := "tollgate-test-ro-"+RandomSuffix(6), RandomSuffix(12)
	if err := client.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pass, "~"+prefix+"*", "+@connection", "+@read", "-@write").Err(); err != nil {
		tb.Fatalf("make a read-only Redis user: %v", err)
	}
	tb.Cleanup(func() {
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
			tb.Logf("delete Redis user %s: %v", user, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", admin, err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String(), prefix
}
