// Package interop_test runs an independent WeChat Pay client, the npm
// package wechatpay-axios-plugin, against the wxpaysim emulator: interop.js
// over v2 and v3 with the emulator's test keys, mounted under a prefix as
// tollgate serve mounts it in dev; production.js over v3 with an operator's
// generated keys, as `tollgate sandbox` runs in the production tests,
// checking tollgate's JSAPI paySign with the plugin's own RSA verification
// (from wxpay.V3Client.JSAPIParams, and from a real `serve --mode
// production`'s answers, whose orders it pays).
package interop_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/internal/testenv"
	"tollgate/wxpay/wxpaysim"
)

// need skips the test when a tool is missing, unless services are required.
func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if testenv.Required() {
			t.Fatalf("%s is required (TOLLGATE_REQUIRE_SERVICES=1) but not found: %v", tool, err)
		}
		t.Skipf("skipping: %s not found (%v); set TOLLGATE_REQUIRE_SERVICES=1 to make this a failure", tool, err)
	}
}

// mustNodeModules installs the pinned packages with npm ci when they are
// not there yet.
func mustNodeModules(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node_modules", "wechatpay-axios-plugin", "package.json")); err == nil {
		return
	}
	need(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund").CombinedOutput()
	if err != nil {
		if testenv.Required() {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
		t.Skipf("skipping: npm ci failed (offline?): %v\n%s", err, out)
	}
}

func TestWechatpayAxiosPluginAgainstEmulator(t *testing.T) {
	need(t, "node")
	mustNodeModules(t)

	sim := &wxpaysim.Server{TimeScale: 0.001, RefundDelay: -1, Logf: t.Logf}
	mux := http.NewServeMux()
	mux.Handle("/sandbox/wxpay/", http.StripPrefix("/sandbox/wxpay", sim))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "interop.js")
	cmd.Env = append(os.Environ(), "WXPAYSIM_URL="+srv.URL+"/sandbox/wxpay")
	out, err := cmd.CombinedOutput()
	t.Logf("interop.js:\n%s", out)
	if err != nil || !strings.Contains(string(out), "INTEROP OK") {
		t.Fatalf("interop.js failed: %v", err)
	}

	states := map[string]int{}
	for _, o := range sim.Orders() {
		states[o.State]++
	}
	// v3: one paid then refunded, one closed; v2: two paid, one closed.
	want := map[string]int{wxpaysim.StateRefund: 1, wxpaysim.StateClosed: 2, wxpaysim.StateSuccess: 2}
	for s, n := range want {
		if states[s] != n {
			t.Errorf("%d orders %s, want %d (all: %v)", states[s], s, n, states)
		}
	}
}
