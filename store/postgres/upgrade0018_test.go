package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"tollgate/internal/testenv"
	"tollgate/store/postgres"
	"tollgate/store/storetest"
)

// TestWebhookPlatformsUpgrade: a database at 0017 with an endpoint and an
// event of a platform's user not yet fanned out takes 0018 in place: the
// schema only gains the two platform_id columns, the endpoints' foreign
// key and one index; the endpoint is the operator's and still gets the
// event, and events written after reach a platform's endpoints by their
// account.
func TestWebhookPlatformsUpgrade(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testenv.MustPostgres(t), postgres.WithoutMigrate())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.MigrateTo(ctx, 17); err != nil {
		t.Fatal(err)
	}
	before := pgSchema(t, s.Pool())
	at := storetest.Upgrade0018Epoch
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO platforms (id, name, key_hash, prefix, created_at) VALUES ('plat_a', 'App A', $1, 'tgp-aaa', $2)`,
			[]any{make([]byte, 32), at}},
		{`INSERT INTO accounts (id, left_credits, held, debt, created_at, version, platform_id, external_id)
			VALUES ('acct_a1', 0, 0, 0, $1, 1, 'plat_a', 'user-1')`, []any{at}},
		{`INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES ('we_old', 'https://op.example/hooks', $1, 'whsec_x', $2)`,
			[]any{[]string{"payment.succeeded", "payment.closed", "refund.succeeded", "refund.failed", "grant.debt_recorded",
				"balance.low", "account.created", "adjustment.created"}, at.Add(-time.Microsecond)}},
		{`INSERT INTO webhook_account_seqs (account_id, last_seq) VALUES ('acct_a1', 1)`, nil},
		{`INSERT INTO webhook_events (id, account_id, external_id, seq, type, data, created_at)
			VALUES ('evt_old', 'acct_a1', 'user-1', 1, 'account.created', '{}', $1)`, []any{at}},
	} {
		if _, err := s.Pool().Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	if err := s.MigrateTo(ctx, 18); err != nil {
		t.Fatalf("upgrade to 0018: %v", err)
	}
	at18 := pgSchema(t, s.Pool())
	for obj, was := range before {
		if now, ok := at18[obj]; !ok || now != was {
			t.Errorf("%s after the upgrade: %q (present %v), was %q", obj, now, ok, was)
		}
	}
	var added []string
	for obj := range at18 {
		if _, ok := before[obj]; !ok {
			added = append(added, obj)
		}
	}
	want := []string{"column webhook_endpoints.platform_id", "column webhook_events.platform_id",
		"constraint webhook_endpoints.webhook_endpoints_platform_id_fkey", "index webhook_endpoints_platform"}
	if len(added) != len(want) {
		t.Errorf("the upgrade added %v; want %v", added, want)
	}
	for _, obj := range want {
		if _, ok := at18[obj]; !ok {
			t.Errorf("the upgrade added %v; want %v", added, want)
		}
	}
	for _, col := range []string{"column webhook_endpoints.platform_id", "column webhook_events.platform_id"} {
		if got := at18[col]; !strings.HasPrefix(got, "text C YES") {
			t.Errorf("%s = %q; want nullable text COLLATE \"C\"", col, got)
		}
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	storetest.MustWebhooksAfter0018(t, s)
}
