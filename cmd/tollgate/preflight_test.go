package main

import (
	"flag"
	"io"
	"strings"
	"testing"
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
