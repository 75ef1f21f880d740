package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/wxpay/wxpaysim"
)

// The tollgate binary, built once for the tests that run it as another
// process (`tollgate sandbox` as an external WeChat Pay, `wxpay check`'s
// exit status) and removed by TestMain.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// tollgateBinary returns the path of the tollgate binary (no build tags),
// building it on first use.
func tollgateBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the tollgate binary")
	}
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "tollgate-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "tollgate")
		out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// Merchant identity of the tests' sandboxes.
const (
	testMchID = "1900000109"
	testAppID = "wxd678efh567hg6787"
)

// startSandboxProc runs `tollgate sandbox` as another process, as an
// operator's WeChat Pay with the keys k (public key mode, or certificate
// mode with certMode), until the test ends, and returns its URL.
func startSandboxProc(t testing.TB, k *operatorKeys, certMode bool, extra ...string) string {
	t.Helper()
	bin := tollgateBinary(t)
	addr := freeAddr(t)
	args := []string{"sandbox", "--addr", addr, "--mch-id", testMchID, "--appid", testAppID, "--apiv3-key-file", k.APIv3KeyFile,
		"--merchant-public-key", k.MerchantCert, "--wechatpay-private-key", k.WechatpayKey, "--handshake=false"}
	if certMode {
		args = append(args, "--platform-certificates")
	} else {
		args = append(args, "--wechatpay-public-key-id", k.WechatpayKeyID)
	}
	startProc(t, bin, addr, nil, append(args, extra...)...)
	return "http://" + addr
}

// checkArgs are `wxpay check`'s flags for the merchant k at url.
func checkArgs(url string, k *operatorKeys, certMode bool) []string {
	return append([]string{"wxpay", "check", "--wxpay-url", url, "--wxpay-mch-id", testMchID, "--wxpay-appid", testAppID},
		k.serveV3Args(certMode)...)
}

// set replaces (or adds) flag's value in args.
func set(args []string, flag, value string) []string {
	out := append([]string{}, args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// TestWxpayCheck runs `tollgate wxpay check` against `tollgate sandbox`
// in another process, configured from key files as an operator's WeChat
// Pay: every check passes with the right files, in public key and in
// certificate mode, and each misconfiguration fails with exit status 1 and
// a line naming the flag to fix. No secret is printed.
func TestWxpayCheck(t *testing.T) {
	k, other := newOperatorKeys(t, 0), newOperatorKeys(t, 1)
	pubURL := startSandboxProc(t, k, false)
	certURL := startSandboxProc(t, k, true)
	pub, cert := checkArgs(pubURL, k, false), checkArgs(certURL, k, true)

	for _, tc := range []struct {
		name string
		args []string
		want []string // lines of the output; empty: every check passes
	}{
		{"public key mode", pub, nil},
		{"certificate mode", cert, nil},
		{"wrong mch_id", set(pub, "--wxpay-mch-id", "1900000999"),
			[]string{"FAIL  merchant signature: WeChat Pay does not accept merchant id 1900000999", "check --wxpay-mch-id"}},
		{"private key not matching the serial", set(pub, "--wxpay-private-key", other.MerchantKey),
			[]string{"FAIL  merchant signature: the private key in --wxpay-private-key does not match merchant certificate " + k.MerchantSerial}},
		{"serial of another certificate", set(pub, "--wxpay-cert-serial", other.MerchantSerial),
			[]string{"FAIL  merchant signature: WeChat Pay knows no merchant certificate " + other.MerchantSerial, "check --wxpay-cert-serial"}},
		{"APIv3 key that does not decrypt", set(cert, "--wxpay-apiv3-key-file", other.APIv3KeyFile),
			[]string{"FAIL  APIv3 key: the key in --wxpay-apiv3-key-file does not decrypt the platform certificates"}},
		{"APIv3 key of the wrong length", set(pub, "--wxpay-apiv3-key-file", writeFile(t, "apiv3.key", "0123456789abcdef\n")),
			[]string{"FAIL  configuration: --wxpay-apiv3-key-file", "holds 16 bytes: the APIv3 key is exactly 32 characters", "FAIL  connection: not checked"}},
		{"unknown public key id", set(pub, "--wxpay-public-key-id", other.WechatpayKeyID),
			[]string{"FAIL  WeChat Pay signature: WeChat Pay signs merchant " + testMchID + "'s answers with public key " + k.WechatpayKeyID + ", not " + other.WechatpayKeyID,
				"set --wxpay-public-key-id " + k.WechatpayKeyID}},
		{"public key of another id", set(pub, "--wxpay-public-key", other.WechatpayPub),
			[]string{"FAIL  WeChat Pay signature: answers signed by " + k.WechatpayKeyID + " do not verify with the key in --wxpay-public-key"}},
		{"public key mode against platform certificates", checkArgs(certURL, k, false),
			[]string{"FAIL  WeChat Pay signature: WeChat Pay signs merchant " + testMchID + "'s answers with platform certificate", "run without --wxpay-public-key"}},
		{"certificate mode against a public key", checkArgs(pubURL, k, true),
			[]string{"FAIL  WeChat Pay signature:", "set --wxpay-public-key-id " + k.WechatpayKeyID}},
		{"unreachable URL", set(pub, "--wxpay-url", "http://"+freeAddr(t)),
			[]string{"FAIL  connection: cannot reach WeChat Pay at http://", "check --wxpay-url", "FAIL  clock: not checked"}},
		{"missing key files", []string{"wxpay", "check", "--wxpay-url", pubURL},
			[]string{"FAIL  configuration: no --wxpay-mch-id", "FAIL  configuration: no --wxpay-private-key", "FAIL  configuration: no --wxpay-apiv3-key-file"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			status, out, _ := runCLI(t, tc.args...)
			if strings.Contains(out, k.APIv3Key) || strings.Contains(out, other.APIv3Key) || strings.Contains(out, "PRIVATE KEY") {
				t.Errorf("the output quotes a secret:\n%s", out)
			}
			if tc.want == nil {
				if status != 0 || !strings.Contains(out, "all 6 checks passed") || strings.Contains(out, "FAIL") {
					t.Fatalf("status %d, want 0 with every check passed:\n%s", status, out)
				}
				return
			}
			if status != 1 {
				t.Errorf("status %d, want 1", status)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestWxpayCheckClockSkew: WeChat Pay's clock 10 minutes ahead of the
// machine's. `tollgate sandbox` runs on the system clock, so this WeChat
// Pay is the emulator in an httptest server with its clock moved.
func TestWxpayCheckClockSkew(t *testing.T) {
	k := newOperatorKeys(t, 0)
	sim := &wxpaysim.Server{MchID: testMchID, AppID: testAppID, APIv3Key: k.APIv3Key, MerchantSerial: k.MerchantSerial,
		MerchantPublicKey: &testRSAKey(t, 0).PublicKey, PlatformKey: testRSAKey(t, 1), PlatformKeyID: k.WechatpayKeyID, NoHandshake: true,
		Clock: tollgate.ClockFunc(func() time.Time { return time.Now().Add(10 * time.Minute) }), Logf: t.Logf}
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	status, out, _ := runCLI(t, checkArgs(srv.URL, k, false)...)
	// Whole seconds on both sides: 9m59s or 10m0s.
	if status != 1 || !regexp.MustCompile(`FAIL  clock: the machine clock is (9m59s|10m0s|10m1s) behind WeChat Pay's`).MatchString(out) ||
		!strings.Contains(out, "(NTP)") {
		t.Fatalf("status %d, want 1 naming the clock's skew:\n%s", status, out)
	}
}

// TestWxpayCheckReadsSettingsAsServe: `wxpay check` takes serve's settings
// from the environment and from serve's config file (skipping serve's other
// keys), warns about a key file others may read, and exits 0 and 1 as a
// process.
func TestWxpayCheckReadsSettingsAsServe(t *testing.T) {
	k := newOperatorKeys(t, 0)
	url := startSandboxProc(t, k, false)
	if err := os.Chmod(k.MerchantKey, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "tollgate.json", `{"mode":"production","admin-token-file":"/run/secrets/admin","wxpay-url":"`+url+
		`","wxpay-mch-id":"`+testMchID+`","wxpay-appid":"`+testAppID+`","wxpay-private-key":"`+k.MerchantKey+
		`","wxpay-public-key":"`+k.WechatpayPub+`","wxpay-public-key-id":"`+k.WechatpayKeyID+`"}`)
	env := []string{"TOLLGATE_WXPAY_CERT_SERIAL=" + k.MerchantSerial, "TOLLGATE_WXPAY_APIV3_KEY_FILE=" + k.APIv3KeyFile, "TOLLGATE_CONFIG=" + cfg}
	run := func(args ...string) (int, string) {
		cmd := exec.Command(tollgateBinary(t), append([]string{"wxpay", "check"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	status, out := run()
	if status != 0 || !strings.Contains(out, "all 6 checks passed") {
		t.Fatalf("settings from env and config: exit %d\n%s", status, out)
	}
	if !strings.Contains(out, "warn  --wxpay-private-key "+k.MerchantKey+" can be read by its group or by others (mode 0640)") {
		t.Errorf("no warning about the group-readable key file:\n%s", out)
	}
	status, out = run("--wxpay-mch-id", "1900000999")
	if status != 1 || !strings.Contains(out, "FAIL  merchant signature") || !strings.Contains(out, "checks failed") {
		t.Errorf("wrong mch_id: exit %d, want 1\n%s", status, out)
	}
	if err := Run(context.Background(), []string{"wxpay", "verify"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown wxpay action was accepted")
	}
}

// TestServeProductionRunsPreflight: serve --mode production runs the
// preflight at start, refuses to start when a check fails, naming it, and
// says in its banner that the checks passed.
func TestServeProductionRunsPreflight(t *testing.T) {
	k, other := newOperatorKeys(t, 0), newOperatorKeys(t, 1)
	sim := &wxpaysim.Server{MchID: testMchID, AppID: testAppID, APIv3Key: k.APIv3Key, MerchantSerial: k.MerchantSerial,
		MerchantPublicKey: &testRSAKey(t, 0).PublicKey, PlatformKey: testRSAKey(t, 1), PlatformKeyID: k.WechatpayKeyID, NoHandshake: true, Logf: t.Logf}
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	args := set(productionV3Args(t, k, false), "--wxpay-url", srv.URL)
	run := func(args []string) (string, error) {
		var out bytes.Buffer
		m := NewMain(&out, tbWriter{t})
		if err := m.ParseFlags(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)); err != nil {
			t.Fatal(err)
		}
		err := m.Run(context.Background())
		if cerr := m.Close(); cerr != nil {
			t.Error(cerr)
		}
		return out.String(), err
	}
	out, err := run(args)
	if err != nil || !strings.Contains(out, "preflight: all 6 checks passed") || !strings.Contains(out, "answers verified with WeChat Pay public key "+k.WechatpayKeyID) {
		t.Fatalf("a good configuration: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, k.APIv3Key) || strings.Contains(line, "PRIVATE") {
			t.Errorf("the banner shows a secret: %s", line)
		}
	}
	_, err = run(set(args, "--wxpay-private-key", other.MerchantKey))
	if err == nil || !strings.Contains(err.Error(), "WeChat Pay's preflight (tollgate wxpay check) failed") ||
		!strings.Contains(err.Error(), "merchant signature: the private key in --wxpay-private-key does not match") {
		t.Fatalf("a private key of another certificate: %v", err)
	}

	// WeChat Pay answering SYSTEM_ERROR now and then: the preflight's
	// retries make up for it (seed 13: the order query fails twice, the
	// certificate check once).
	setFaults := func(f wxpaysim.Faults) {
		t.Helper()
		if err := sim.SetFaults(f); err != nil {
			t.Fatal(err)
		}
	}
	setFaults(wxpaysim.Faults{Seed: 13, SystemError: map[string]float64{"query": 0.5}})
	out, err = run(args)
	if err != nil || !strings.Contains(out, "preflight: all 6 checks passed") {
		t.Fatalf("SYSTEM_ERROR on half the queries: %v\n%s", err, out)
	}
	if n := sim.Stats().SystemErrors["query"]; n == 0 {
		t.Errorf("vacuous: no SYSTEM_ERROR answered")
	}
	// Always: WeChat Pay's own fault, not a setting's. serve starts (the
	// model API needs no WeChat Pay), warning that payments fail until
	// WeChat Pay answers, and blames no setting.
	setFaults(wxpaysim.Faults{SystemError: map[string]float64{"query": 1}})
	out, err = run(args)
	if err != nil || !strings.Contains(out, "WARNING: WeChat Pay could not be reached at start") ||
		!strings.Contains(out, "connection: WeChat Pay answered 500 SYSTEM_ERROR (a fault on its side; try again)") {
		t.Fatalf("SYSTEM_ERROR on every query: %v\n%s", err, out)
	}
	_, warning, _ := strings.Cut(out, "WARNING")
	warning, _, _ = strings.Cut(warning, "  providers:")
	for _, flag := range []string{"--wxpay-mch-id", "--wxpay-private-key", "--wxpay-cert-serial", "--wxpay-apiv3-key-file", "--wxpay-public-key"} {
		if strings.Contains(warning, flag) {
			t.Errorf("a fault of WeChat Pay is blamed on %s:\n%s", flag, warning)
		}
	}
	setFaults(wxpaysim.Faults{})
}
