package sqlite_test

import (
	"testing"

	"tollgate/ledger"
	"tollgate/store/storetest"
)

// TestBoundaries probes every deadline of grants and holds one microsecond
// either side, with the Service keeping lot-funded holds in memory as
// serve does with SQLite.
func TestBoundaries(t *testing.T) {
	storetest.RunBoundaries(t, open, ledger.Options{MemoryHolds: true})
}
