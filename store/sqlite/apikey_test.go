package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

func TestAPIKeyConformance(t *testing.T) {
	storetest.RunAPIKeys(t, func(tb testing.TB) storetest.APIKeyStore {
		tb.Helper()
		s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), sqlite.FileName))
		if err != nil {
			tb.Fatalf("open sqlite store: %v", err)
		}
		return s
	})
}

// TestMigrationsApplyInOrder checks that every embedded NNNN_*.sql is
// applied once, in version order, and that a second run applies nothing.
func TestMigrationsApplyInOrder(t *testing.T) {
	ms, err := sqlite.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			t.Fatalf("migrations out of order: %d after %d", ms[i].Version, ms[i-1].Version)
		}
	}
	if ms[len(ms)-1].Version < 3 {
		t.Fatalf("0003_api_keys is not embedded: %+v", ms)
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, err := s.Migrate(context.Background())
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v, %v", again, err)
	}
}
