package postgres_test

import (
	"context"
	"testing"

	"tollgate/internal/testenv"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

func openPayments(tb testing.TB) storetest.PaymentStore {
	tb.Helper()
	s, err := postgres.Open(context.Background(), testenv.MustPostgres(tb))
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	return s
}

func TestPaymentConformance(t *testing.T) { storetest.RunPayments(t, openPayments) }
