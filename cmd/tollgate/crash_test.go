package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tollgate/internal/failpoint"
	"tollgate/wxpay/wxpaysim"
)

// hookTags build a tollgate binary with every test hook compiled in (the
// failpoints and the mutants, which stay off unless their variable is set).
var hookTags = []string{failpoint.FailpointsTag, failpoint.MutantsTag}

// mustBuild compiles the tollgate binary with the build tags into a temp
// dir, once per test.
func mustBuild(tb testing.TB, tags ...string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "tollgate")
	cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address no one listens on right now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startProc starts bin with args and env, logging its output to the test,
// and waits until addr accepts connections.
func startProc(tb testing.TB, bin, addr string, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	return startProcTo(tb, tbWriter{tb}, bin, addr, env, args...)
}

// startProcTo is startProc with the process's output (stdout and stderr)
// written to out.
func startProcTo(tb testing.TB, out io.Writer, bin, addr string, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	eventually(tb, args[0]+" listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

// TestKillBetweenCreditAndAck kills tollgate with SIGKILL after a payment
// notification was credited and before WeChat Pay got its answer (the crash
// window F9 of docs/DESIGN.md §7.2). WeChat Pay retries the notification; the
// restarted instance must answer success and credit nothing more.
func TestKillBetweenCreditAndAck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := mustBuild(t, hookTags...) // the failpoint is compiled in only with its tag
	data := t.TempDir()
	simAddr, addr := freeAddr(t), freeAddr(t)
	startProc(t, bin, simAddr, nil, "sandbox", "--addr", simAddr, "--time-scale", "0.01", "--handshake=false")
	const admin = "crash-test-admin-token-0123456789"
	serveArgs := []string{"serve", "--addr", addr, "--data", data, "--admin-token", admin,
		"--wxpay-url", "http://" + simAddr, "--wxpay-api-version", "v2",
		"--wxpay-mch-id", wxpaysim.DefaultMchID, "--wxpay-appid", wxpaysim.DefaultAppID,
		"--wxpay-api-key", wxpaysim.DefaultAPIKey}
	first := startProc(t, bin, addr, []string{"TOLLGATE_FAILPOINTS=" + failpoint.AfterCreditBeforeAck + "=1*kill"}, serveArgs...)

	c := client{tb: t, base: "http://" + addr}
	acct := mustAccount(c, admin)
	order := mustOrder(c, acct.APIKey, "crash-1")
	sim := client{tb: t, base: "http://" + simAddr}
	sim.must(200, "POST", "/sim/orders/"+order.OutTradeNo+"/pay", "", "", nil)

	// The notification is credited, then the process kills itself.
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("first instance ended with %v, want SIGKILL at the failpoint", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the failpoint never fired: the notification was not credited")
	}

	// WeChat Pay saw no answer: its delivery log has a failed attempt.
	startProc(t, bin, addr, nil, serveArgs...)
	eventually(t, "a retried notification acknowledged by the restarted instance", func() bool {
		var ds []wxpaysim.Delivery
		sim.must(200, "GET", "/sim/notifications", "", "", &ds)
		failed, acked := 0, 0
		for _, d := range ds {
			if d.OutTradeNo != order.OutTradeNo || d.Method != "POST" {
				continue
			}
			switch d.Outcome {
			case wxpaysim.OutcomeFailed:
				failed++
			case wxpaysim.OutcomeAcked, wxpaysim.OutcomeDuplicateAcked:
				acked++
			}
		}
		return failed >= 1 && acked >= 1
	})
	if got := mustBalance(c, acct.APIKey); got.Credits != order.Credits || got.Debt != 0 {
		t.Fatalf("balance after the retry = %+v, want exactly %d credits (credited once)", got, order.Credits)
	}
	var o struct{ Status string }
	c.must(200, "GET", "/v1/payments/orders/"+order.OutTradeNo, acct.APIKey, "", &o)
	if o.Status != "SUCCESS" {
		t.Fatalf("order status %q after restart", o.Status)
	}
	out, err := exec.Command(bin, "audit", "--data", data).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "no violation") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}
