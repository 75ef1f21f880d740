package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

// TestWebhookPlatformsUpgrade: a database at 0017 with an endpoint and an
// event of a platform's user not yet fanned out takes 0018 in place: the
// two webhook tables only gain platform_id, one index is added, nothing
// else changes; the endpoint is the operator's and still gets the event,
// and events written after reach a platform's endpoints by their account.
func TestWebhookPlatformsUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	if err := sqlite.MigrateFileTo(ctx, path, 17); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	before := schema(t, db)
	at := storetest.Upgrade0018Epoch.UnixMicro()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO platforms (id, name, key_hash, prefix, created_at) VALUES ('plat_a', 'App A', ?, 'tgp-aaa', ?)`,
			[]any{make([]byte, 32), at}},
		{`INSERT INTO accounts (id, left_credits, held, debt, created_at, version, platform_id, external_id)
			VALUES ('acct_a1', 0, 0, 0, ?, 1, 'plat_a', 'user-1')`, []any{at}},
		{`INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES ('we_old', 'https://op.example/hooks', ?, 'whsec_x', ?)`,
			[]any{`["payment.succeeded","payment.closed","refund.succeeded","refund.failed","grant.debt_recorded","balance.low","account.created","adjustment.created"]`, at - 1}},
		{`INSERT INTO webhook_account_seqs (account_id, last_seq) VALUES ('acct_a1', 1)`, nil},
		{`INSERT INTO webhook_events (id, account_id, external_id, seq, type, data, created_at)
			VALUES ('evt_old', 'acct_a1', 'user-1', 1, 'account.created', '{}', ?)`, []any{at}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	if err := sqlite.MigrateFileTo(ctx, path, 18); err != nil {
		t.Fatalf("upgrade to 0018: %v", err)
	}
	at18 := schema(t, rawDB(t, path))
	added := map[string]string{
		"table webhook_endpoints": ", platform_id TEXT REFERENCES platforms (id)",
		"table webhook_events":    ", platform_id TEXT",
	}
	for obj, was := range before {
		now, ok := at18[obj]
		switch {
		case !ok:
			t.Errorf("%s lost in the upgrade", obj)
		case added[obj] != "":
			// SQLite writes the added column after the last one.
			if !strings.Contains(now, added[obj]) || strings.Replace(now, added[obj], "", 1) != was {
				t.Errorf("%s after the upgrade:\n%s\ndoes not extend with platform_id:\n%s", obj, now, was)
			}
		case now != was:
			t.Errorf("%s after the upgrade:\n%s\nwas:\n%s", obj, now, was)
		}
	}
	if _, ok := at18["index webhook_endpoints_platform"]; !ok || len(at18) != len(before)+1 {
		t.Errorf("the upgrade made %d tables and indexes from %d; want one more, webhook_endpoints_platform", len(at18), len(before))
	}

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	applied, err := s.AppliedMigrations(ctx)
	if err != nil || !hasMigration(applied, 18, "webhook_platforms") {
		t.Fatalf("applied migrations = %+v, %v; want 0018_webhook_platforms", applied, err)
	}
	storetest.MustWebhooksAfter0018(t, s)
}
