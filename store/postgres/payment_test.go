package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"tollgate/internal/testenv"
	"tollgate/payment"
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

// TestPaymentMethodsUpgrade: an order written before migration 0010 (no
// method column, or by an instance not yet upgraded) reads back as native
// once the store migrates.
func TestPaymentMethodsUpgrade(t *testing.T) {
	ctx := context.Background()
	s, _ := MustOpen(t)
	// Back to schema 0009, with an order of that time in it.
	for _, stmt := range []string{
		`ALTER TABLE payment_orders DROP COLUMN method, DROP COLUMN openid, DROP COLUMN h5_url, DROP COLUMN prepay_id`,
		`DELETE FROM schema_migrations WHERE version = 10`,
		`INSERT INTO payment_orders (out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status,
			code_url, transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap,
			expires_at, created_at, updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen)
			VALUES ('tg20261127OLD00001', 'alice', 5000, 1000000, 'p50', 'v2', 'MD5', 'NOTPAY', 'weixin://wxpay/bizpayurl?pr=x',
			'', 'fp0123456789abcdef', '203.0.113.7', '', 0, 0, 1, 1, 1, 1, 0, '', 0, '', 0)`,
	} {
		if _, err := s.Pool().Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	o, err := s.Order(ctx, "tg20261127OLD00001")
	if err != nil || o.Method != payment.MethodNative || o.OpenID != "" || o.H5URL != "" || o.PrepayID != "" ||
		o.CodeURL != "weixin://wxpay/bizpayurl?pr=x" || !o.Placed() {
		t.Fatalf("old order after 0010: %+v, %v", o, err)
	}
}

// BenchmarkPages: an admin page of accounts or orders among 100,000 costs
// what the first page costs.
func BenchmarkPages(b *testing.B) {
	s, err := postgres.Open(context.Background(), testenv.MustPostgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	n := storetest.PageRows
	storetest.BenchmarkPages(b, s, []string{
		fmt.Sprintf(`INSERT INTO accounts (id, left_credits, held, debt, created_at, version, label, external_id)
		SELECT format('acct_%%s', lpad(i::text, 8, '0')), 0, 0, 0, to_timestamp(i), 1, format('user %%s', i), format('ext-%%s', i)
		FROM generate_series(1, %d) AS i`, n),
		fmt.Sprintf(`INSERT INTO payment_orders (out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status, code_url,
			transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap, expires_at, created_at,
			updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen)
		SELECT format('tgbench%%s', lpad(i::text, 8, '0')), format('acct_%%s', lpad(i::text, 8, '0')), 100, 1000, 'starter', 'v2', 'MD5', 'SUCCESS', '',
			format('42%%s', lpad(i::text, 26, '0')), '', '127.0.0.1', '', 0, 0, 0, i::bigint * 1000000, i::bigint * 1000000, 0, 0, '', 0, '', 0
		FROM generate_series(1, %d) AS i`, n),
		`ANALYZE accounts`, `ANALYZE payment_orders`,
	})
}
