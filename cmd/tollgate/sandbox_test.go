package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// mustStartSandbox runs `tollgate sandbox` with args on a free port until
// the test ends and returns its URL and start-up output.
func mustStartSandbox(t *testing.T, args ...string) (url, printed string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, append([]string{"sandbox", "--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sandbox returned %v after cancel", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("sandbox printed nothing")
	}
	first := sc.Text()
	url = first[strings.LastIndex(first, " ")+1:]
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q does not end with the URL", first)
	}
	var b strings.Builder
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "====") {
		b.WriteString(sc.Text() + "\n")
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return url, b.String()
}

// TestSandboxPlacesAnOrder runs `tollgate sandbox` on a free port, reads the
// URL it prints, places a v2 NATIVE order signed with the printed key and
// pays it through the simulation API.
func TestSandboxPlacesAnOrder(t *testing.T) {
	url, printed := mustStartSandbox(t, "--mch-id", "1900000109", "--api-key", "0123456789abcdef0123456789abcdef", "--handshake=false")
	for _, want := range []string{"1900000109", "0123456789abcdef0123456789abcdef", wxpaysim.DefaultPlatformKeyID, "BEGIN PUBLIC KEY"} {
		if !strings.Contains(printed, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, printed)
		}
	}

	p := map[string]string{
		"appid": wxpaysim.DefaultAppID, "mch_id": "1900000109", "nonce_str": "ibuaiVcKdpRxkhJA", "body": "credits",
		"out_trade_no": "SANDBOX-CMD-1", "total_fee": "990", "spbill_create_ip": "127.0.0.1",
		"notify_url": "http://127.0.0.1:1/notify", "trade_type": "NATIVE", "product_id": "p1",
	}
	sig, err := wxpay.SignV2(p, wxpay.SignTypeMD5, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sig
	resp, err := http.Post(url+"/pay/unifiedorder", "text/xml", bytes.NewReader(wxpay.EncodeV2XML(p)))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := wxpay.ReadV2XML(resp.Body)
	resp.Body.Close()
	if err != nil || ans["result_code"] != "SUCCESS" || ans["code_url"] == "" {
		t.Fatalf("unifiedorder: %v %v", ans, err)
	}
	resp, err = http.Post(url+"/sim/orders/SANDBOX-CMD-1/pay", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sim pay: %d", resp.StatusCode)
	}
}

func TestSandboxRefusesBadKeys(t *testing.T) {
	err := Run(context.Background(), []string{"sandbox", "--addr", "127.0.0.1:0", "--api-key", "short"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "32 characters") {
		t.Fatalf("err = %v, want a key length error", err)
	}
}

func TestSandboxReadsEnvironment(t *testing.T) {
	t.Setenv("TOLLGATE_MCH_ID", "1900000777")
	t.Setenv("TOLLGATE_APPID", "wx0000000000000777")
	_, printed := mustStartSandbox(t)
	for _, want := range []string{"mch_id:           1900000777", "appid:            wx0000000000000777"} {
		if !strings.Contains(printed, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, printed)
		}
	}
}
