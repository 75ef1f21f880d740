package postgres_test

import (
	"context"
	"sync"
	"testing"

	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestWebhookConformance runs the outbox suite; a second open in one test
// connects a second pool to the same database (a second instance).
func TestWebhookConformance(t *testing.T) {
	var urls sync.Map // test name → database URL
	storetest.RunWebhooks(t, func(tb testing.TB) storetest.WebhookStore {
		tb.Helper()
		if u, ok := urls.Load(tb.Name()); ok {
			s, err := postgres.Open(context.Background(), u.(string))
			if err != nil {
				tb.Fatalf("open a second instance: %v", err)
			}
			return s
		}
		s, u := MustOpen(tb)
		urls.Store(tb.Name(), u)
		return s
	})
}
