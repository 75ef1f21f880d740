package interop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/internal/operatorkeys"
	"tollgate/wxpay/wxpaysim"
)

// buildTollgate compiles the tollgate command into a temporary directory.
func buildTollgate(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "tollgate/cmd/tollgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// call sends a JSON request to tollgate and decodes a 2xx answer into v.
func call(t *testing.T, method, u, bearer string, hdr map[string]string, body, v any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
}

// TestWechatpayAxiosPluginPaysProductionOrders runs `tollgate serve --mode
// production` (API v3, public key mode: the operator's merchant key files
// and WeChat Pay's pub_key.pem) against the emulator configured with the
// same operator's keys, behind an https front door, and places a JSAPI and
// an H5 order through its API. wechatpay-axios-plugin then checks
// tollgate's JSAPI answer with its own RSA verification (and refuses it
// tampered with), pays both orders as a payer would, and queries them at
// WeChat Pay; tollgate must have been notified and credited both.
func TestWechatpayAxiosPluginPaysProductionOrders(t *testing.T) {
	need(t, "node")
	mustNodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildTollgate(t, ctx)
	k, err := operatorFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tlsFiles, err := operatorkeys.GenerateTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	sim := sandboxWithOperatorKeys(t, k, false, tlsFiles.CACert)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		simSrv.Close()
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	serveURL := "http://" + addr
	// The https front door WeChat Pay notifies: a reverse proxy with a
	// certificate of the test CA the emulator trusts.
	target, _ := url.Parse(serveURL)
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	cert, err := tls.LoadX509KeyPair(tlsFiles.ServerCert, tlsFiles.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	front.StartTLS()
	t.Cleanup(front.Close)

	// Production serves real models only: a provider no chat reaches.
	providers := filepath.Join(dir, "providers.json")
	if err := os.WriteFile(providers, []byte(`{"providers":[{"name":"upstream","kind":"openai","base_url":"http://127.0.0.1:9/v1","timeout":"5s"}],`+
		`"models":{"gpt-4o-mini":[{"provider":"upstream","model":"gpt-4o-mini","weight":1,"max_output_tokens":64}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := "interop-admin-token-0123456789"
	var logs bytes.Buffer
	serve := exec.CommandContext(ctx, bin, "serve", "--mode", "production", "--addr", addr, "--data", filepath.Join(dir, "data"),
		"--admin-token", admin, "--public-url", front.URL, "--providers", providers,
		"--wxpay-url", simSrv.URL, "--wxpay-mch-id", k.MchID, "--wxpay-appid", k.AppID,
		"--wxpay-private-key", k.MerchantKey, "--wxpay-cert-serial", k.MerchantSerial, "--wxpay-apiv3-key-file", k.APIv3KeyFile,
		"--wxpay-public-key", k.WechatpayPub, "--wxpay-public-key-id", k.WechatpayKeyID,
		// The test is the proxy in front: H5 orders need the payer's public
		// IP, which it sends as X-Forwarded-For.
		"--trusted-proxy-header", "X-Forwarded-For")
	serve.Env = append(os.Environ(), "TOLLGATE_CONFIG=")
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = serve.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = serve.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("serve:\n%s", logs.String())
		}
	})
	waitReady(t, serveURL+"/readyz", exited)

	var acct struct {
		APIKey string `json:"api_key"`
	}
	call(t, "POST", serveURL+"/admin/accounts", admin, nil, nil, &acct)
	openid := "oIOPserve" + fmt.Sprint(time.Now().UnixNano()%1e9)
	orders := map[string]any{"openid": openid}
	for method, body := range map[string]map[string]any{
		"jsapi": {"amount_fen": 2600, "method": "jsapi", "openid": openid, "device_fingerprint": "interop-device-jsapi"},
		"h5":    {"amount_fen": 1800, "method": "h5", "device_fingerprint": "interop-device-h5"},
	} {
		var answer map[string]any
		call(t, "POST", serveURL+"/v1/payments/orders", acct.APIKey,
			map[string]string{"Idempotency-Key": "interop-" + method, "X-Forwarded-For": "203.0.113.7"}, body, &answer)
		orders[method] = answer
	}
	ordersJSON, err := json.Marshal(orders)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, "node", "production.js")
	cmd.Env = append(os.Environ(),
		"WXPAYSIM_URL="+simSrv.URL, "MCH_ID="+k.MchID, "APPID="+k.AppID,
		"MERCHANT_KEY_FILE="+k.MerchantKey, "MERCHANT_CERT_FILE="+k.MerchantCert, "MERCHANT_SERIAL="+k.MerchantSerial,
		"APIV3_KEY_FILE="+k.APIv3KeyFile, "WECHATPAY_PUBLIC_KEY_FILE="+k.WechatpayPub, "WECHATPAY_PUBLIC_KEY_ID="+k.WechatpayKeyID,
		"TOLLGATE_ORDERS="+string(ordersJSON))
	out, err := cmd.CombinedOutput()
	t.Logf("production.js:\n%s", out)
	if err != nil || !strings.Contains(string(out), "INTEROP OK") {
		t.Fatalf("production.js failed: %v", err)
	}

	// tollgate was notified (over https, through the front door) and
	// credited both orders.
	for _, method := range []string{"jsapi", "h5"} {
		no := orders[method].(map[string]any)["out_trade_no"].(string)
		deadline := time.Now().Add(15 * time.Second)
		for {
			var o struct{ Status string }
			call(t, "GET", serveURL+"/v1/payments/orders/"+no, acct.APIKey, nil, nil, &o)
			if o.Status == "SUCCESS" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s order %s reads %s 15 s after it was paid", method, no, o.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, d := range sim.Notifications() {
		if d.Method == "POST" && (d.Outcome != wxpaysim.OutcomeAcked || !strings.HasPrefix(d.URL, front.URL+"/wxpay/notify/v3")) {
			t.Errorf("notification %s to %s attempt %d: %s (%d %s)", d.OutTradeNo, d.URL, d.Attempt, d.Outcome, d.Status, d.Reply)
		}
	}
	var bal struct {
		Credits int64 `json:"credits"`
	}
	call(t, "GET", serveURL+"/v1/balance", acct.APIKey, nil, nil, &bal)
	if bal.Credits <= 0 {
		t.Errorf("balance after two paid orders: %+v", bal)
	}
	t.Logf("tollgate credited both orders: balance %d credits", bal.Credits)
}

// waitReady polls url until it answers 200, or fails the test when the
// process exits or 60 s pass.
func waitReady(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatal("serve exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60 s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
