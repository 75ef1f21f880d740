package postgres_test

import (
	"context"
	"testing"

	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestPlatformAccountTwoInstances: callers on two instances (two pools on
// one database) asking at once for the same new user of a platform get
// one account, and one account.created event tells of it.
func TestPlatformAccountTwoInstances(t *testing.T) {
	first, url := MustOpen(t)
	second, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	storetest.PlatformAccountRace(t, first, second)
}
