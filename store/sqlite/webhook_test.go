package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

// TestWebhookConformance runs the outbox suite; a second open in one test
// opens the same file (a second process sharing it).
func TestWebhookConformance(t *testing.T) {
	var paths sync.Map // test name → database file
	storetest.RunWebhooks(t, func(tb testing.TB) storetest.WebhookStore {
		tb.Helper()
		p, _ := paths.LoadOrStore(tb.Name(), filepath.Join(tb.TempDir(), sqlite.FileName))
		s, err := sqlite.Open(context.Background(), p.(string))
		if err != nil {
			tb.Fatalf("open sqlite store: %v", err)
		}
		return s
	})
}
