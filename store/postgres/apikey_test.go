package postgres_test

import (
	"testing"

	"tollgate/store/storetest"
)

func TestAPIKeyConformance(t *testing.T) {
	storetest.RunAPIKeys(t, func(tb testing.TB) storetest.APIKeyStore {
		s, _ := MustOpen(tb)
		return s
	})
}
