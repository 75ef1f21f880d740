package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/internal/testenv"
	"tollgate/webhook"
)

// readmeVerifySnippet returns the README's Node.js receiver (the ```js
// block that defines verifyWebhook), exactly as an app developer copies it.
func readmeVerifySnippet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```js\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], "function verifyWebhook") {
			return m[1]
		}
	}
	t.Fatal("README has no ```js block defining verifyWebhook")
	return ""
}

// TestReadmeFiveSteps follows the README's "Selling to your app's users, in
// five steps" against serve, with the README's own Node.js receiver: a
// platform key registers its endpoint, a checkout for user-42 is paid,
// the receiver verifies and prints payment.succeeded with the metadata;
// forged, stale and repeated deliveries are refused or printed once; a
// key minted for the user spends, and /v1/usage/{id} is that call.
func TestReadmeFiveSteps(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		if testenv.Required() {
			t.Fatalf("node is required (TOLLGATE_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("skipping: node not found: %v", err)
	}
	m := MustRunMain(t, "--admin-token", adminToken, "--webhook-allow-private")
	c := client{t, m.URL}

	// 1. A platform key, and the app's endpoint registered with it.
	var plat platformCreated
	c.must(201, "POST", "/admin/platforms", adminToken, `{"name":"My app","return_url_hosts":["app.example.com"]}`, &plat)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	recvURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	var ep struct{ ID, Secret string }
	c.must(201, "POST", "/v1/webhooks", plat.Key,
		`{"url":"`+recvURL+`/hooks","events":["payment.succeeded","refund.succeeded","balance.low"]}`, &ep)
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("endpoint secret %q", ep.Secret)
	}

	// The README's receiver, verbatim.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verify.js"), []byte(readmeVerifySnippet(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	node := exec.CommandContext(ctx, "node", "verify.js")
	node.Dir = dir
	node.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "TOLLGATE_WEBHOOK_SECRET="+ep.Secret)
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	node.Stderr = node.Stdout
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var printed []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			printed = append(printed, sc.Text())
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = node.Wait()
		if t.Failed() {
			t.Logf("receiver printed:\n%s", strings.Join(printed, "\n"))
		}
	})
	lines := func(sub string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, l := range printed {
			if strings.Contains(l, sub) {
				n++
			}
		}
		return n
	}
	eventually(t, "the README's receiver listens", func() bool {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
		}
		return err == nil
	})

	// 2. A checkout for the app's user-42, paid.
	var sess appSession
	c.must(201, "POST", "/v1/checkout/sessions", plat.Key, `{"external_id":"user-42","package_id":"starter",`+
		`"return_url":"https://app.example.com/paid","locale":"en","metadata":{"cart":"c-17"}}`, &sess)
	path := strings.TrimPrefix(sess.URL, m.URL)
	st, b, _ := c.call("POST", path+"/orders", "", `{"package_id":"starter","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": "guide-order-1", "Origin": m.URL})
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
		Credits    int64  `json:"credits"`
	}
	if st != 201 || json.Unmarshal(b, &o) != nil || o.OutTradeNo == "" {
		t.Fatalf("order from the checkout: %d %s", st, b)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)

	// 3. The receiver hears of it, verified, with the metadata.
	eventually(t, "the README receiver prints payment.succeeded for user-42", func() bool {
		return lines("payment.succeeded user-42") == 1 && lines("c-17") == 1
	})
	// Forged, stale and repeated deliveries: refused, or printed once.
	post := func(hdr map[string]string, body string) int {
		req, _ := http.NewRequest("POST", recvURL+"/hooks", strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"object":"event","id":"evt_guide","type":"balance.low","created_at":"2026-12-07T00:00:00Z",` +
		`"account":{"id":"acct_x","external_id":"user-replayed"},"seq":9,"data":{}}`
	signed, err := webhook.SignHeaders([]string{ep.Secret}, "evt_guide", time.Now(), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	stale, _ := webhook.SignHeaders([]string{ep.Secret}, "evt_guide", time.Now().Add(-time.Hour), []byte(body))
	forged, _ := webhook.SignHeaders([]string{webhook.NewSecret()}, "evt_guide", time.Now(), []byte(body))
	if s1, s2 := post(signed, body), post(signed, body); s1 != 204 || s2 != 204 {
		t.Fatalf("a genuine delivery twice: %d, %d", s1, s2)
	}
	for name, h := range map[string]map[string]string{"stale": stale, "forged": forged, "bare": {}} {
		if s := post(h, body); s != 400 {
			t.Errorf("%s delivery answered %d, want 400", name, s)
		}
	}
	if s := post(signed, strings.Replace(body, `"seq":9`, `"seq":10`, 1)); s != 400 {
		t.Errorf("a changed body answered %d, want 400", s)
	}
	eventually(t, "the repeated delivery is printed once", func() bool { return lines("user-replayed") == 1 })

	// 4. A key for the user; a call with it.
	var uk struct {
		AccountID string `json:"account_id"`
		APIKey    string `json:"api_key"`
	}
	c.must(201, "POST", "/v1/account/keys", plat.Key, `{"external_id":"user-42","max_credits_per_request":200000}`, &uk)
	if uk.AccountID != sess.AccountID {
		t.Fatalf("the key's account %s, the checkout's %s", uk.AccountID, sess.AccountID)
	}
	st, b, h := c.call("POST", "/v1/chat/completions", uk.APIKey, `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, nil)
	var chat struct {
		ID    string `json:"id"`
		Model string `json:"model"`
		Usage struct {
			CostCredits int64 `json:"cost_credits"`
		} `json:"usage"`
	}
	if st != 200 || json.Unmarshal(b, &chat) != nil || chat.ID != h.Get("X-Request-Id") || chat.Model != "mock-gpt" {
		t.Fatalf("chat as the user: %d %s (X-Request-Id %s)", st, b, h.Get("X-Request-Id"))
	}

	// 5. Reconcile: the usage row is that call; the balance is what is left.
	var row struct {
		ID          string `json:"id"`
		Model       string `json:"model"`
		Deployment  string `json:"deployment"`
		CostCredits int64  `json:"credits"`
	}
	c.must(200, "GET", "/v1/usage/"+chat.ID, uk.APIKey, "", &row)
	if row.ID != chat.ID || row.CostCredits != chat.Usage.CostCredits || row.CostCredits <= 0 || row.Model != "mock-gpt" ||
		row.Deployment == "" || row.Deployment != h.Get("X-Tollgate-Deployment") {
		t.Fatalf("usage row %+v for answer %+v", row, chat)
	}
	var bal struct {
		Credits int64 `json:"credits"`
	}
	c.must(200, "GET", "/v1/balance", uk.APIKey, "", &bal)
	if bal.Credits != o.Credits-row.CostCredits {
		t.Fatalf("balance %d, want %d paid less %d spent", bal.Credits, o.Credits, row.CostCredits)
	}
}
