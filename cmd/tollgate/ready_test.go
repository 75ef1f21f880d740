package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/internal/testenv"
	"tollgate/store/sqlite"
)

// readyz is GET /readyz's answer.
type readyz struct {
	Status string
	Checks map[string]string
}

func mustReadyz(c client, want int) readyz {
	c.tb.Helper()
	var r readyz
	c.must(want, "GET", "/readyz", "", "", &r)
	return r
}

// TestServeReadyzProvesTheStoreWrites: /readyz answers 200 while the store
// takes writes and 503, saying why, once it does not, on SQLite (its file
// made immutable, as a read-only mount would) and on PostgreSQL (the
// role's write privileges revoked); before, it only read, and answered
// 200 while every payment and settle failed.
func TestServeReadyzProvesTheStoreWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  func(t *testing.T) (m *Main, refuse func())
		reason string
	}{
		{"SQLite", func(t *testing.T) (*Main, func()) {
			m := MustRunMain(t)
			db := filepath.Join(m.Config.Data, sqlite.FileName)
			return m, func() { testenv.MustFreeze(t, db, db+"-wal") }
		}, "the database file cannot be written (I/O error)"},
		{"PostgreSQL", func(t *testing.T) (*Main, func()) {
			db := testenv.MustPostgresRole(t)
			m := MustRunMain(t, "--database-url", db.URL)
			return m, func() { db.RevokeWrites(t) }
		}, "the database user may not write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, refuse := tc.serve(t)
			c := client{t, m.URL}
			if r := mustReadyz(c, 200); r.Status != "ok" || r.Checks["store"] != "ok" {
				t.Fatalf("readyz on a writable store: %+v", r)
			}
			refuse()
			if r := mustReadyz(c, 503); r.Status != "unavailable" || r.Checks["store"] != tc.reason {
				t.Fatalf("readyz on a store refusing writes: %+v, want store: %q", r, tc.reason)
			}
			// It tells the truth: writes do fail.
			if st, b, _ := c.call("POST", "/admin/accounts", m.AdminToken, "", nil); st < 500 {
				t.Fatalf("an account made on a store refusing writes: %d %s", st, b)
			}
		})
	}
}

// TestServeReadyzProvesRedisWrites: with a Redis that answers reads but
// refuses writes, /readyz answers 503 naming Redis; before, its check was
// a read, and answered 200.
func TestServeReadyzProvesRedisWrites(t *testing.T) {
	redisURL, prefix := testenv.MustRedisReadOnly(t)
	m := MustRunMain(t, "--redis-url", redisURL, "--redis-prefix", prefix)
	if r := mustReadyz(client{t, m.URL}, 503); r.Checks["redis"] != "the Redis user may not write" || r.Checks["store"] != "ok" {
		t.Fatalf("readyz with a Redis refusing writes: %+v", r)
	}
}

// makeUnwritable makes path unwritable until the test ends: by its mode
// for a user, by the immutable attribute for root (whom modes do not stop).
func makeUnwritable(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if os.Geteuid() == 0 {
		testenv.MustFreeze(t, path)
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, fi.Mode().Perm()) })
}

// TestServeRefusesAnUnwritableDataDirectory: serve refuses to start, naming
// the directory, on a data directory that holds its SQLite database and
// admin token but cannot be written; before, it started with a warning
// and every write failed.
func TestServeRefusesAnUnwritableDataDirectory(t *testing.T) {
	// A data directory a first serve filled: its database and admin token.
	filled := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "data")
		m := NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", dir}); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name string
		data func(t *testing.T) string
	}{
		{"AFileInItsPlace", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(p, []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"ReadOnlyDirectory", func(t *testing.T) string {
			dir := filled(t)
			makeUnwritable(t, dir, 0o500)
			return dir
		}},
		{"ReadOnlyDatabase", func(t *testing.T) string {
			dir := filled(t)
			makeUnwritable(t, filepath.Join(dir, sqlite.FileName), 0o400)
			return dir
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.data(t)
			m := NewMain(io.Discard, io.Discard)
			if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", dir}); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), "data directory "+dir+" is not writable") {
				t.Fatalf("serve on an unwritable data directory: %v, want a refusal naming %s", err, dir)
			}
		})
	}
}
