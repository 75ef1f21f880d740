package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/store/sqlite"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// exitStatus is the process exit status main gives err.
func exitStatus(err error) int {
	var ec interface{ ExitCode() int }
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ec):
		return ec.ExitCode()
	default:
		return 1
	}
}

// runCLI runs the command line and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	if err != nil {
		t.Logf("%s: %v", args[0], err)
	}
	return exitStatus(err), out.String(), errOut.String()
}

// withLedger opens the SQLite ledger in dir with its clock stopped at now,
// runs fn on it and closes it again, as a separate process would.
func withLedger(t *testing.T, dir string, now time.Time, fn func(svc *ledger.Service)) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	svc := ledger.New(st, ledger.Options{Clock: tollgate.ClockFunc(func() time.Time { return now })})
	fn(svc)
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustCredit(t *testing.T, svc *ledger.Service, outTradeNo, transactionID string, fen tollgate.Fen) {
	t.Helper()
	_, _, err := svc.CreditPayment(context.Background(), ledger.Payment{Account: "acct-cli", OutTradeNo: outTradeNo,
		TransactionID: transactionID, Fen: fen, Credits: tollgate.Credits(fen) * 100})
	if err != nil {
		t.Fatalf("credit %s: %v", outTradeNo, err)
	}
}

// reconcileSim is an emulator with a v2 client that places and pays orders.
type reconcileSim struct {
	sim       *wxpaysim.Server
	url       string
	notifyURL string
	client    *wxpay.V2Client
}

func startReconcileSim(t *testing.T, now func() time.Time) *reconcileSim {
	t.Helper()
	var clock tollgate.Clock // nil now: the real clock
	if now != nil {
		clock = tollgate.ClockFunc(now)
	}
	sim := &wxpaysim.Server{Clock: clock, NoHandshake: true, RefundDelay: -1, Logf: t.Logf}
	api := httptest.NewServer(sim)
	notify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>"))
	}))
	t.Cleanup(notify.Close)
	t.Cleanup(api.Close)
	t.Cleanup(func() { _ = sim.Close() })
	cfg := sim.Config()
	c := &wxpay.V2Client{BaseURL: api.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey}
	return &reconcileSim{sim: sim, url: api.URL, notifyURL: notify.URL, client: c}
}

// pay places an order of fen and pays it at the emulator.
func (s *reconcileSim) pay(t *testing.T, outTradeNo string, fen int64) wxpaysim.Order {
	t.Helper()
	_, err := s.client.UnifiedOrder(context.Background(), &wxpay.V2UnifiedOrderRequest{OutTradeNo: outTradeNo, Body: "credits",
		TotalFee: fen, SpbillCreateIP: "127.0.0.1", NotifyURL: s.notifyURL,
		TradeType: wxpay.V2TradeTypeNative, ProductID: "p1"})
	if err != nil {
		t.Fatalf("order %s: %v", outTradeNo, err)
	}
	o, err := s.sim.Pay(outTradeNo)
	if err != nil {
		t.Fatalf("pay %s: %v", outTradeNo, err)
	}
	return o
}

func TestReconcileCommand(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, tollgate.Beijing)
	s := startReconcileSim(t, func() time.Time { return now })
	cfg := s.sim.Config()
	dir := t.TempDir()
	withLedger(t, dir, now, func(svc *ledger.Service) {
		if _, err := svc.CreateAccount(context.Background(), "acct-cli"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			no  string
			fen int64
		}{{"tg_cli_1", 100}, {"tg_cli_2", 2500}} {
			o := s.pay(t, p.no, p.fen)
			mustCredit(t, svc, p.no, o.TransactionID, tollgate.Fen(p.fen))
		}
	})
	args := []string{"reconcile", "--date", "2026-11-20", "--data", dir, "--wxpay-url", s.url,
		"--wxpay-mch-id", cfg.MchID, "--wxpay-appid", cfg.AppID, "--wxpay-api-key", cfg.APIKey}

	status, out, _ := runCLI(t, args...)
	if status != 0 || !strings.Contains(out, "Clean") {
		t.Fatalf("clean day: status %d\n%s", status, out)
	}

	// One payment never credited, one lot credited without a payment.
	s.pay(t, "tg_cli_uncredited", 300)
	withLedger(t, dir, now, func(svc *ledger.Service) {
		mustCredit(t, svc, "tg_cli_extra", "4200000000000000000000000077", 400)
	})
	status, out, _ = runCLI(t, append(args, "--format", "json")...)
	if status != 1 {
		t.Fatalf("differences: status %d, want 1\n%s", status, out)
	}
	var rep reconcile.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, out)
	}
	var got []string
	for _, d := range rep.Differences {
		got = append(got, string(d.Kind)+" "+d.OutTradeNo)
	}
	if want := "MISSING tg_cli_uncredited,EXTRA tg_cli_extra"; strings.Join(got, ",") != want {
		t.Errorf("differences %q, want %q", got, want)
	}
	if rep.Totals.BillGrossFen != 2900 || rep.Totals.LedgerGrossFen != 3000 {
		t.Errorf("totals %+v", rep.Totals)
	}

	status, out, _ = runCLI(t, args...)
	if status != 1 || !strings.Contains(out, "MISSING") || !strings.Contains(out, "2 difference(s) found") {
		t.Errorf("text report: status %d\n%s", status, out)
	}
}

// v3 fetches the bill through /v3/bill/tradebill and its signed download.
// The v3 client signs with the real clock, so the emulator runs on it too and
// the date is the payment's own.
func TestReconcileCommandV3(t *testing.T) {
	s := startReconcileSim(t, nil)
	cfg := s.sim.Config()
	dir := t.TempDir()
	o := s.pay(t, "tg_cli_v3", 4200)
	withLedger(t, dir, o.PaidAt, func(svc *ledger.Service) {
		if _, err := svc.CreateAccount(context.Background(), "acct-cli"); err != nil {
			t.Fatal(err)
		}
		mustCredit(t, svc, "tg_cli_v3", o.TransactionID, 4200)
	})
	keyFile, pubFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(keyFile, []byte(cfg.MerchantPrivateKeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, []byte(cfg.PlatformPublicKeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	status, out, _ := runCLI(t, "reconcile", "--date", o.PaidAt.In(tollgate.Beijing).Format(time.DateOnly), "--data", dir,
		"--wxpay-api-version", "v3", "--wxpay-url", s.url, "--wxpay-mch-id", cfg.MchID, "--wxpay-appid", cfg.AppID,
		"--wxpay-mch-serial", cfg.MerchantSerial, "--wxpay-mch-key-file", keyFile,
		"--wxpay-public-key-id", cfg.PlatformKeyID, "--wxpay-public-key-file", pubFile)
	if status != 0 || !regexp.MustCompile(`payments +1 +4200 +1 +4200 +0`).MatchString(out) {
		t.Fatalf("v3: status %d\n%s", status, out)
	}
	// serve's names of the same files, the version following from them.
	status, out, _ = runCLI(t, "reconcile", "--date", o.PaidAt.In(tollgate.Beijing).Format(time.DateOnly), "--data", dir,
		"--wxpay-url", s.url, "--wxpay-mch-id", cfg.MchID, "--wxpay-appid", cfg.AppID,
		"--wxpay-cert-serial", cfg.MerchantSerial, "--wxpay-private-key", keyFile,
		"--wxpay-public-key-id", cfg.PlatformKeyID, "--wxpay-public-key", pubFile)
	if status != 0 || !regexp.MustCompile(`payments +1 +4200 +1 +4200 +0`).MatchString(out) {
		t.Fatalf("v3 with serve's flag names: status %d\n%s", status, out)
	}
}

func TestReconcileCommandErrors(t *testing.T) {
	dir := t.TempDir()
	withLedger(t, dir, time.Now(), func(*ledger.Service) {})
	base := []string{"--data", dir, "--wxpay-mch-id", "1230000109", "--wxpay-appid", "wxd678efh567hg6787",
		"--wxpay-api-key", strings.Repeat("k", 32)}
	cases := map[string][]string{
		"NoDate":        base,
		"BadDate":       append([]string{"--date", "20261120"}, base...),
		"BadFormat":     append([]string{"--date", "2026-11-20", "--format", "xml"}, base...),
		"BadVersion":    append([]string{"--date", "2026-11-20", "--wxpay-api-version", "v4"}, base...),
		"ShortKey":      {"--date", "2026-11-20", "--data", dir, "--wxpay-mch-id", "1", "--wxpay-appid", "a", "--wxpay-api-key", "short"},
		"V3WithoutKeys": append([]string{"--date", "2026-11-20", "--wxpay-api-version", "v3"}, base...),
		"NoLedger":      {"--date", "2026-11-20", "--data", filepath.Join(dir, "nowhere"), "--wxpay-mch-id", "1", "--wxpay-appid", "a", "--wxpay-api-key", strings.Repeat("k", 32)},
		// Nothing listens on port 1: the bill cannot be downloaded.
		"Unreachable": append([]string{"--date", "2026-11-20", "--wxpay-url", "http://127.0.0.1:1"}, base...),
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if status, out, _ := runCLI(t, append([]string{"reconcile"}, args...)...); status != 2 {
				t.Errorf("status %d, want 2\n%s", status, out)
			}
		})
	}
	// Without --date the operator is told to give one, not "parsing time".
	t.Run("NoDateSaysSo", func(t *testing.T) {
		err := Run(context.Background(), append([]string{"reconcile"}, base...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--date is required") || strings.Contains(err.Error(), "parsing time") {
			t.Errorf("no --date: %v", err)
		}
	})
	t.Run("BadDateSaysWhat", func(t *testing.T) {
		err := Run(context.Background(), append([]string{"reconcile", "--date", "20261120"}, base...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `--date must be YYYY-MM-DD, got "20261120"`) {
			t.Errorf("bad --date: %v", err)
		}
	})
	t.Run("HelpSaysExitStatus", func(t *testing.T) {
		status, _, errOut := runCLI(t, "reconcile", "--help")
		if status != 0 {
			t.Errorf("help status %d", status)
		}
		if !strings.Contains(errOut, "1 when differences are") || !strings.Contains(errOut, "2 on errors") {
			t.Errorf("help does not state the exit status:\n%s", errOut)
		}
	})
}
