package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

func openPayments(tb testing.TB) storetest.PaymentStore {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatalf("open sqlite store: %v", err)
	}
	return s
}

func TestPaymentConformance(t *testing.T) { storetest.RunPayments(t, openPayments) }
