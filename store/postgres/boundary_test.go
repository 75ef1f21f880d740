package postgres_test

import (
	"testing"

	"tollgate/ledger"
	"tollgate/store/storetest"
)

// TestBoundaries probes every deadline of grants and holds one microsecond
// either side, every hold a row.
func TestBoundaries(t *testing.T) { storetest.RunBoundaries(t, open, ledger.Options{}) }
