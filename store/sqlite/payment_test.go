package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"tollgate/payment"
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

// TestPaymentMethodsUpgrade: an order written before migration 0010 (no
// method column) reads back as native once the store is opened again.
func TestPaymentMethodsUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Back to schema 0009, with an order of that time in it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`ALTER TABLE payment_orders DROP COLUMN method`, `ALTER TABLE payment_orders DROP COLUMN openid`,
		`ALTER TABLE payment_orders DROP COLUMN h5_url`, `ALTER TABLE payment_orders DROP COLUMN prepay_id`,
		`DELETE FROM schema_migrations WHERE version = 10`,
		`INSERT INTO payment_orders (out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status,
			code_url, transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap,
			expires_at, created_at, updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen)
			VALUES ('tg20261127OLD00001', 'alice', 5000, 1000000, 'p50', 'v2', 'MD5', 'NOTPAY', 'weixin://wxpay/bizpayurl?pr=x',
			'', 'fp0123456789abcdef', '203.0.113.7', '', 0, 0, 1, 1, 1, 1, 0, '', 0, '', 0)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Order(ctx, "tg20261127OLD00001")
	if err != nil || o.Method != payment.MethodNative || o.OpenID != "" || o.H5URL != "" || o.PrepayID != "" ||
		o.CodeURL != "weixin://wxpay/bizpayurl?pr=x" || !o.Placed() {
		t.Fatalf("old order after 0010: %+v, %v", o, err)
	}
}

// BenchmarkPages: an admin page of accounts or orders among 100,000 costs
// what the first page costs.
func BenchmarkPages(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	n := storetest.PageRows
	storetest.BenchmarkPages(b, s, []string{
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		INSERT INTO accounts (id, left_credits, held, debt, created_at, version, label, external_id)
		SELECT printf('acct_%%08d', i), 0, 0, 0, i * 1000000, 1, printf('user %%d', i), printf('ext-%%d', i) FROM n`, n),
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		INSERT INTO payment_orders (out_trade_no, account_id, fen, credits, package_id, api_version, sign_type, status, code_url,
			transaction_id, device_fingerprint, client_ip, token_hash, token_expires_at, grant_cap, expires_at, created_at,
			updated_at, next_poll_at, poll_attempts, lease_owner, lease_until, review, fee_fen)
		SELECT printf('tgbench%%08d', i), printf('acct_%%08d', i), 100, 1000, 'starter', 'v2', 'MD5', 'SUCCESS', '',
			printf('42%%026d', i), '', '127.0.0.1', '', 0, 0, 0, i * 1000000, i * 1000000, 0, 0, '', 0, '', 0 FROM n`, n),
	})
}
