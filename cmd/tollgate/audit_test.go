package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/internal/testenv"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

// mustAuditLedger makes a sound SQLite ledger (one account, two lots, one
// completed refund) and returns its data directory.
func mustAuditLedger(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	withLedger(t, dir, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), func(svc *ledger.Service) {
		ctx := context.Background()
		if _, err := svc.CreateAccount(ctx, "acct-cli"); err != nil {
			t.Fatal(err)
		}
		mustCredit(t, svc, "tg_audit_1", "4200000000000000000000000001", 100)
		mustCredit(t, svc, "tg_audit_2", "4200000000000000000000000002", 250)
		if _, err := svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: "r1", Account: "acct-cli", OutTradeNo: "tg_audit_2"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CompleteRefund(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
	})
	return dir
}

func TestAuditCommand(t *testing.T) {
	dir := mustAuditLedger(t)
	status, out, _ := runCLI(t, "audit", "--data", dir)
	if status != 0 || !strings.Contains(out, "Clean") {
		t.Fatalf("sound ledger: status %d\n%s", status, out)
	}
	status, out, _ = runCLI(t, "audit", "--data", dir, "--format", "json", "--hold-grace", "1m")
	if status != 0 || !strings.Contains(out, `"clean": true`) {
		t.Fatalf("sound ledger, JSON: status %d\n%s", status, out)
	}

	// Corrupt one row behind the ledger's back: the account's materialised
	// balance no longer equals the fold of its lots.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ExecRaw(ctx, `UPDATE accounts SET left_credits = left_credits + 7 WHERE id = 'acct-cli'`); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	status, out, _ = runCLI(t, "audit", "--data", dir)
	if status != 1 || !strings.Contains(out, "account.left") || !strings.Contains(out, "1 violation(s) found.") {
		t.Fatalf("corrupted ledger: status %d, want 1\n%s", status, out)
	}
	status, out, _ = runCLI(t, "audit", "--data", dir, "--format", "json")
	var rep struct {
		Clean      bool
		Violations []struct{ Check, Subject, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if status != 1 || rep.Clean || len(rep.Violations) != 1 || rep.Violations[0].Check != "account.left" {
		t.Errorf("corrupted ledger, JSON: status %d %+v", status, rep)
	}

	// A period (the rows were created on 2026-11-20, Beijing) runs the
	// per-row checks only, and says which it skipped: the account's
	// balance is not among them.
	status, out, _ = runCLI(t, "audit", "--data", dir, "--from", "2026-11-20", "--to", "2026-11-20")
	if status != 0 || !strings.Contains(out, "Clean") || !strings.Contains(out, "Skipped") || !strings.Contains(out, "account.left") {
		t.Fatalf("period audit: status %d, want 0 and the skipped checks named\n%s", status, out)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ExecRaw(ctx, `UPDATE lots SET fen = 0, refunded_fen = 0 WHERE out_trade_no = 'tg_audit_1'`); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	status, out, _ = runCLI(t, "audit", "--data", dir, "--from", "2026-11-20", "--format", "json")
	var prep struct {
		Clean            bool
		From             string
		Checked, Skipped []string
		Violations       []struct{ Check, Subject, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &prep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if status != 1 || prep.From != "2026-11-20" || len(prep.Skipped) == 0 || len(prep.Violations) == 0 {
		t.Errorf("period audit of a corrupted lot: status %d %+v", status, prep)
	}
	for _, v := range prep.Violations {
		if v.Check != "adjustment.lot" && v.Check != "lot.nonnegative" {
			t.Errorf("period audit reports %+v, want the lot's violations only", v)
		}
	}
	if status, out, _ = runCLI(t, "audit", "--data", dir, "--from", "2026-11-21", "--to", "2026-11-30"); status != 0 {
		t.Errorf("audit of days without rows: status %d, want 0\n%s", status, out)
	}
}

func TestAuditCommandErrors(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"NoLedger":  {"--data", filepath.Join(dir, "nowhere")},
		"BadFormat": {"--data", mustAuditLedger(t), "--format", "yaml"},
		"BadFlag":   {"--no-such-flag"},
		"ExtraArgs": {"--data", dir, "extra"},
		"BadFrom":   {"--data", mustAuditLedger(t), "--from", "2026-13-01"},
		"BadTo":     {"--data", mustAuditLedger(t), "--to", "yesterday"},
		"Reversed":  {"--data", mustAuditLedger(t), "--from", "2026-12-07", "--to", "2026-12-01"},
	} {
		t.Run(name, func(t *testing.T) {
			if status, out, _ := runCLI(t, append([]string{"audit"}, args...)...); status != 2 {
				t.Errorf("status %d, want 2\n%s", status, out)
			}
		})
	}
	if _, _, errOut := runCLI(t, "audit", "--help"); !strings.Contains(errOut, "1 when any is violated") {
		t.Errorf("help does not state the exit status:\n%s", errOut)
	}
}

// The same commands read a shared PostgreSQL ledger with --database-url
// (skipped when PostgreSQL is absent, unless TOLLGATE_REQUIRE_SERVICES=1).
func TestAuditAndReconcileCommandsPostgres(t *testing.T) {
	url := testenv.MustPostgres(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, tollgate.Beijing)
	s := startReconcileSim(t, func() time.Time { return now })
	cfg := s.sim.Config()

	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc := ledger.New(st, ledger.Options{Clock: tollgate.ClockFunc(func() time.Time { return now })})
	if _, err := svc.CreateAccount(ctx, "acct-cli"); err != nil {
		t.Fatal(err)
	}
	o := s.pay(t, "tg_pg_1", 1234)
	mustCredit(t, svc, "tg_pg_1", o.TransactionID, 1234)
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}

	if status, out, _ := runCLI(t, "audit", "--database-url", url); status != 0 {
		t.Fatalf("audit: status %d\n%s", status, out)
	}
	status, out, _ := runCLI(t, "reconcile", "--database-url", url, "--date", "2026-11-20", "--wxpay-url", s.url,
		"--wxpay-mch-id", cfg.MchID, "--wxpay-appid", cfg.AppID, "--wxpay-api-key", cfg.APIKey)
	if status != 0 {
		t.Fatalf("reconcile: status %d\n%s", status, out)
	}

	if err := st.ExecRaw(ctx, `UPDATE accounts SET left_credits = left_credits + 7 WHERE id = 'acct-cli'`); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if status, out, _ := runCLI(t, "audit", "--database-url", url); status != 1 || !strings.Contains(out, "account.left") {
		t.Fatalf("corrupted: status %d\n%s", status, out)
	}
}
