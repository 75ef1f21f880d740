package postgres_test

import (
	"context"
	"sync"
	"testing"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/store/postgres"
)

// migrationCount returns how many migrations schema_migrations records and
// how many distinct versions they cover.
func migrationCount(t *testing.T, s *postgres.Store) (rows, versions int) {
	t.Helper()
	err := s.Pool().QueryRow(context.Background(),
		"SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &versions)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return rows, versions
}

func TestMigrateConcurrentOpens(t *testing.T) {
	url := testenv.MustPostgres(t)
	ctx := context.Background()
	const instances = 6
	stores := make([]*postgres.Store, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url, postgres.WithMaxConns(2)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: open: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	rows, versions := migrationCount(t, stores[0])
	if rows != versions || rows < 2 {
		t.Fatalf("schema_migrations has %d rows for %d versions; want each migration once", rows, versions)
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if again, _ := migrationCount(t, stores[0]); again != rows {
		t.Fatalf("Migrate is not idempotent: %d rows, then %d", rows, again)
	}
}

func TestMigrateRefusesEditedMigration(t *testing.T) {
	s, url := MustOpen(t)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil {
		t.Fatal("Migrate accepted a database whose migration 1 differs from the embedded one")
	}
	if s2, err := postgres.Open(ctx, url); err == nil {
		s2.Close()
		t.Fatal("Open accepted a database whose migration 1 differs from the embedded one")
	}
	s3, err := postgres.Open(ctx, url, postgres.WithoutMigrate())
	if err != nil {
		t.Fatalf("Open without migrating: %v", err)
	}
	s3.Close()
}

func TestOpenUnavailable(t *testing.T) {
	ctx := context.Background()
	_, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if code := tollgate.ErrorCode(err); code != tollgate.EUNAVAILABLE {
		t.Fatalf("code = %q (%v), want unavailable", code, err)
	}
}

func TestSessionSettings(t *testing.T) {
	show := func(s *postgres.Store, name string) string {
		t.Helper()
		var v string
		if err := s.Pool().QueryRow(context.Background(), "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatalf("show %s: %v", name, err)
		}
		return v
	}
	s, url := MustOpen(t, postgres.WithApplicationName("tollgate-test"))
	for name, want := range map[string]string{
		"application_name":                    "tollgate-test",
		"enable_seqscan":                      "off",
		"idle_in_transaction_session_timeout": "1min",
	} {
		if got := show(s, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The URL wins over the store's defaults.
	s2, err := postgres.Open(context.Background(), url+"&enable_seqscan=on&application_name=mine")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := show(s2, "enable_seqscan"); got != "on" {
		t.Errorf("enable_seqscan from the URL = %q, want on", got)
	}
	if got := show(s2, "application_name"); got != "mine" {
		t.Errorf("application_name from the URL = %q, want mine", got)
	}
}
