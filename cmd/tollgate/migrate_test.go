package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/internal/testenv"
	"tollgate/store/sqlite"
)

func TestMigrateCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name    string
		created bool
	}{
		{"CreatesAndMigrates", true},
		{"SecondRunChangesNothing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := runCLI(t, "migrate", "--data", dir)
			if status != 0 {
				t.Fatalf("status %d\n%s%s", status, out, errOut)
			}
			if got := strings.Contains(out, "created "+filepath.Join(dir, sqlite.FileName)); got != tc.created {
				t.Fatalf("output says created = %v, want %v:\n%s", got, tc.created, out)
			}
			all, err := sqlite.Migrations()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range all {
				if n := strings.Count(out, fmt.Sprintf("%04d_%s  applied", m.Version, m.Name)); n != 1 {
					t.Fatalf("migration %04d_%s listed %d times, want once:\n%s", m.Version, m.Name, n, out)
				}
			}
		})
	}
	if status, _, _ := runCLI(t, "migrate", "--data", dir, "extra"); status == 0 {
		t.Fatal("stray argument accepted")
	}
}

func TestMigrateCommandPostgres(t *testing.T) {
	url := testenv.MustPostgres(t)
	for range 2 {
		status, out, errOut := runCLI(t, "migrate", "--database-url", url)
		if status != 0 || !strings.Contains(out, "every migration is applied") {
			t.Fatalf("status %d\n%s%s", status, out, errOut)
		}
	}
}
