package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/gateway/mockllm"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// TestV3KeyFlagsDeclaredOnce: serve, `wxpay check` and reconcile take the
// API v3 key flags under the same names with the same help, and
// reconcile's older names set the same settings.
func TestV3KeyFlagsDeclaredOnce(t *testing.T) {
	c := DefaultServeConfig()
	checkFS, _ := wxpayCheckFlagSet()
	reconcileFS, rf := reconcileFlagSet()
	sets := map[string]*flag.FlagSet{"serve": serveFlagSet(&c), "wxpay check": checkFS, "reconcile": reconcileFS}
	for _, name := range []string{"wxpay-private-key", "wxpay-cert-serial", "wxpay-apiv3-key-file", "wxpay-public-key", "wxpay-public-key-id"} {
		var usage string
		for cmd, fs := range sets {
			f := fs.Lookup(name)
			switch {
			case f == nil:
				t.Errorf("%s has no --%s", cmd, name)
			case usage == "":
				usage = f.Usage
			case f.Usage != usage:
				t.Errorf("--%s of %s says %q, another %q", name, cmd, f.Usage, usage)
			}
		}
	}
	reconcileFS.SetOutput(io.Discard)
	if err := reconcileFS.Parse([]string{"--wxpay-mch-key-file", "k.pem", "--wxpay-mch-serial", "5E3A", "--wxpay-public-key-file", "pub.pem"}); err != nil {
		t.Fatal(err)
	}
	if k := rf.wxpay.v3.v3Keys; k.PrivateKey != "k.pem" || k.CertSerial != "5E3A" || k.PublicKey != "pub.pem" {
		t.Errorf("reconcile's older names set %+v", k)
	}
	for _, older := range []string{"wxpay-mch-key-file", "wxpay-mch-serial", "wxpay-public-key-file"} {
		if serveFlagSet(&c).Lookup(older) != nil {
			t.Errorf("serve declares reconcile's older name --%s", older)
		}
	}
}

// TestWxpayCheckRefusesV2: `wxpay check` with a v2 deployment's
// configuration says the check covers API v3 only (exit 1), rather than
// naming v3 key files the operator never needed.
func TestWxpayCheckRefusesV2(t *testing.T) {
	cfg := writeFile(t, "tollgate.json", `{"mode":"production","wxpay-api-version":"v2","wxpay-url":"https://api.mch.weixin.qq.com",`+
		`"wxpay-mch-id":"1900000109","wxpay-appid":"wxd678efh567hg6787","wxpay-api-key":"`+strings.Repeat("k", 32)+`"}`)
	for _, args := range [][]string{
		{"wxpay", "check", "--config", cfg},
		{"wxpay", "check", "--wxpay-api-version", "v2"},
	} {
		status, out, _ := runCLI(t, args...)
		err := Run(t.Context(), args, io.Discard, io.Discard)
		if status != 1 || err == nil || !strings.Contains(err.Error(), "wxpay check covers WeChat Pay API v3 only") ||
			strings.Contains(err.Error(), "no --wxpay-private-key") || out != "" {
			t.Errorf("%v: status %d, err %v, output %q", args, status, err, out)
		}
	}
	if status, _, _ := runCLI(t, "wxpay", "check", "--wxpay-api-version", "v4"); status != 1 {
		t.Errorf("--wxpay-api-version v4: status %d, want 1", status)
	}
}

// TestPreflightFailures: the failures serve and `wxpay check` report, and
// which of them are WeChat Pay out of reach only.
func TestPreflightFailures(t *testing.T) {
	ok := func(name string) wxpay.CheckResult { return wxpay.CheckResult{Name: name, OK: true} }
	bad := func(name, problem string) wxpay.CheckResult { return wxpay.CheckResult{Name: name, Problem: problem} }
	notChecked := func(name string) wxpay.CheckResult { return bad(name, "not checked: WeChat Pay could not be reached") }
	unreachable := bad(wxpay.CheckConnection, "cannot reach WeChat Pay at https://api.mch.weixin.qq.com (connection refused): check --wxpay-url and the network")
	fault := bad(wxpay.CheckConnection, "WeChat Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)")
	for _, tc := range []struct {
		name    string
		results []wxpay.CheckResult
		failed  int
		outage  bool
	}{
		{"all passed", []wxpay.CheckResult{ok(wxpay.CheckConfig), ok(wxpay.CheckConnection), ok(wxpay.CheckClock)}, 0, false},
		{"unreachable", []wxpay.CheckResult{ok(wxpay.CheckConfig), unreachable, notChecked(wxpay.CheckClock), notChecked(wxpay.CheckMerchant)}, 3, true},
		{"WeChat Pay's 5xx", []wxpay.CheckResult{ok(wxpay.CheckConfig), fault, ok(wxpay.CheckClock), notChecked(wxpay.CheckMerchant), ok(wxpay.CheckWechatpay)}, 2, true},
		{"a setting", []wxpay.CheckResult{ok(wxpay.CheckConfig), ok(wxpay.CheckConnection), bad(wxpay.CheckMerchant, "check --wxpay-mch-id")}, 1, false},
		{"configuration", []wxpay.CheckResult{bad(wxpay.CheckConfig, "no merchant id"), bad(wxpay.CheckConnection, "not checked: fix the configuration first")}, 2, false},
		{"unreachable and a clock problem", []wxpay.CheckResult{unreachable, bad(wxpay.CheckClock, "the machine clock is 10m0s behind")}, 2, false},
	} {
		failed, outage := preflightFailures(tc.results)
		if len(failed) != tc.failed || outage != tc.outage {
			t.Errorf("%s: %d failed %q, outage %v; want %d, %v", tc.name, len(failed), failed, outage, tc.failed, tc.outage)
		}
	}
}

// TestServeProductionStartsDuringWxpayOutage: WeChat Pay out of reach at
// start is no reason to keep the model API down. Production starts, with a
// warning naming the connection in its banner and log, serves the model
// API, and payments fail until WeChat Pay answers. A bad setting is still
// refused, unreachable WeChat Pay or not.
func TestServeProductionStartsDuringWxpayOutage(t *testing.T) {
	k := newOperatorKeys(t, 0)
	up := httptest.NewServer(&mockllm.Server{})
	t.Cleanup(up.Close)
	down := "http://" + freeAddr(t) // nothing listens there
	run := func(args []string) (banner, logs string, m *Main, err error) {
		var out bytes.Buffer
		var log lockedBuffer
		m = NewMain(&out, io.MultiWriter(&log, tbWriter{t}))
		if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)); err != nil {
			t.Fatal(err)
		}
		err = m.Run(context.Background())
		t.Cleanup(func() { _ = m.Close() })
		return out.String(), log.String(), m, err
	}
	for _, certMode := range []bool{false, true} {
		args := set(set(productionV3Args(t, k, certMode), "--wxpay-url", down), "--providers", providersAt(t, up.URL))
		banner, logs, m, err := run(args)
		if err != nil {
			t.Fatalf("certificate mode %v: WeChat Pay out of reach stopped the start: %v", certMode, err)
		}
		if !strings.Contains(banner, "WARNING: WeChat Pay could not be reached at start: payments fail until it answers") ||
			!strings.Contains(banner, "connection: cannot reach WeChat Pay at "+down) || strings.Contains(banner, "checks passed") {
			t.Errorf("certificate mode %v: banner:\n%s", certMode, banner)
		}
		if !strings.Contains(logs, "WeChat Pay could not be reached at start") {
			t.Errorf("certificate mode %v: nothing logged:\n%s", certMode, logs)
		}
		c := client{t, "http://" + m.ln.Addr().String()}
		c.must(http.StatusOK, "GET", "/readyz", "", "", nil)
		a := mustAccount(c, m.AdminToken)
		// The gateway answers (an unfunded key: 402), WeChat Pay does not.
		c.must(http.StatusPaymentRequired, "POST", "/v1/chat/completions", a.APIKey, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, nil)
		st, b, _ := c.call("POST", "/v1/payments/orders", a.APIKey, `{"package_id":"starter","device_fingerprint":"outage-test-device"}`, nil)
		if st != http.StatusServiceUnavailable || !strings.Contains(string(b), "WeChat Pay did not answer") {
			t.Errorf("certificate mode %v: an order with WeChat Pay out of reach: %d %s", certMode, st, b)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}

	// A setting WeChat Pay would refuse is refused at start, whether or
	// not WeChat Pay can be reached: here a merchant id that is none.
	_, _, _, err := run(set(set(productionV3Args(t, k, false), "--wxpay-url", down), "--wxpay-mch-id", "merchant-1"))
	if err == nil || !strings.Contains(err.Error(), "refuses to start") || !strings.Contains(err.Error(), "configuration: merchant id \"merchant-1\"") {
		t.Errorf("a bad merchant id with WeChat Pay out of reach: %v", err)
	}
	// And a signature WeChat Pay refuses (another certificate's key).
	sim := &wxpaysim.Server{MchID: testMchID, AppID: testAppID, APIv3Key: k.APIv3Key, MerchantSerial: k.MerchantSerial,
		MerchantPublicKey: &k.MerchantPrivateKey.PublicKey, PlatformKey: k.WechatpayPrivateKey, PlatformKeyID: k.WechatpayKeyID, NoHandshake: true, Logf: t.Logf}
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	_, _, _, err = run(set(set(productionV3Args(t, k, false), "--wxpay-url", srv.URL), "--wxpay-private-key", newOperatorKeys(t, 1).MerchantKey))
	if err == nil || !strings.Contains(err.Error(), "refuses to start") || !strings.Contains(err.Error(), "merchant signature:") {
		t.Errorf("a private key of another certificate: %v", err)
	}
}

// TestCertSerialFromOpenSSL: `openssl x509 -noout -serial` prints
// "serial=5E3A…": pasted as it is into --wxpay-cert-serial (or the
// emulator's --merchant-serial) it is the serial, and requests name it
// without the prefix.
func TestCertSerialFromOpenSSL(t *testing.T) {
	k := newOperatorKeys(t, 0)
	sim := &wxpaysim.Server{MchID: testMchID, AppID: testAppID, APIv3Key: k.APIv3Key, MerchantSerial: k.MerchantSerial,
		MerchantPublicKey: &k.MerchantPrivateKey.PublicKey, PlatformKey: k.WechatpayPrivateKey, PlatformKeyID: k.WechatpayKeyID, NoHandshake: true, Logf: t.Logf}
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for _, given := range []string{"serial=" + k.MerchantSerial, "  SERIAL=" + k.MerchantSerial + "\n"} {
		status, out, _ := runCLI(t, set(checkArgs(srv.URL, k, false), "--wxpay-cert-serial", given)...)
		if status != 0 || !strings.Contains(out, "all 6 checks passed") {
			t.Errorf("--wxpay-cert-serial %q: status %d\n%s", given, status, out)
		}
	}
	if err := parseServe(set(productionV3Args(t, k, false), "--wxpay-cert-serial", "serial=")...); err == nil || !strings.Contains(err.Error(), "no --wxpay-cert-serial") {
		t.Errorf("serial= alone: %v", err)
	}
	sk := mustSandboxKeys(t)
	_, printed := mustStartSandbox(t, "--merchant-public-key", sk.merchantPub, "--merchant-serial", "serial=0A1B2C3D")
	if !strings.Contains(printed, "merchant serial:  0A1B2C3D\n") {
		t.Errorf("sandbox --merchant-serial serial=0A1B2C3D:\n%s", printed)
	}
}
