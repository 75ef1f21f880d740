package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate/webhook"
)

// delivery is a payment.succeeded for order no, signed with secret as the
// dispatcher signs it.
func delivery(t *testing.T, secret, id, no string) *http.Request {
	t.Helper()
	body := `{"object":"event","id":"` + id + `","type":"payment.succeeded","data":{"out_trade_no":"` + no + `"}}`
	h, err := webhook.SignHeaders([]string{secret}, id, time.Now(), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body))
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r
}

func TestReceiverVerifiesAndRecords(t *testing.T) {
	secret := webhook.NewSecret()
	rc, err := newReceiver(secret)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(r *http.Request) int {
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		return w.Code
	}
	if code := serve(delivery(t, secret, "evt_1", "TG1")); code != http.StatusNoContent {
		t.Fatalf("a signed delivery: %d", code)
	}
	first, ok := rc.arrival("TG1")
	if !ok {
		t.Fatal("arrival not recorded")
	}
	// The same event again (a retry): counted as a duplicate, the first
	// arrival kept.
	if code := serve(delivery(t, secret, "evt_1", "TG1")); code != http.StatusNoContent || rc.dups != 1 {
		t.Fatalf("repeat: %d, dups %d", code, rc.dups)
	}
	if again, _ := rc.arrival("TG1"); !again.Equal(first) {
		t.Fatal("a repeat moved the arrival")
	}
	// Another secret's signature, a changed body: refused, not recorded.
	if code := serve(delivery(t, webhook.NewSecret(), "evt_2", "TG2")); code != http.StatusBadRequest {
		t.Fatalf("another secret: %d", code)
	}
	r := delivery(t, secret, "evt_3", "TG3")
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(strings.Replace(string(body), "TG3", "TG4", 1)))
	if code := serve(r); code != http.StatusBadRequest || rc.bad != 2 {
		t.Fatalf("changed body: %d, bad %d", code, rc.bad)
	}
	if _, ok := rc.arrival("TG2"); ok {
		t.Fatal("a refused delivery was recorded")
	}
}

// TestReceiverHangs: while hanging, the receiver holds a delivery until
// released (then records it at the release), and marks one the sender
// gave up on as cut.
func TestReceiverHangs(t *testing.T) {
	secret := webhook.NewSecret()
	rc, _ := newReceiver(secret)
	rc.hang.Store(true)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	send := func(id, no string) chan int {
		ch := make(chan int, 1)
		go func() {
			r := delivery(t, secret, id, no)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks", r.Body)
			req.Header = r.Header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ch <- 0
				return
			}
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
		return ch
	}
	held := send("evt_1", "TG1")
	select {
	case code := <-held:
		t.Fatalf("answered %d while hanging", code)
	default:
	}
	rc.release()
	if code := <-held; code != http.StatusNoContent {
		t.Fatalf("after the release: %d", code)
	}
	if _, ok := rc.arrival("TG1"); !ok {
		t.Fatal("held delivery not recorded")
	}
}

func TestWebhooksFlags(t *testing.T) {
	base := []string{"-mode", "webhooks", "-base", "http://127.0.0.1:1", "-key", "k", "-mch-id", testMch, "-appid", testAppID, "-api-key", testAPIKey}
	if _, err := parseFlags(base, io.Discard); err == nil || !strings.Contains(err.Error(), "-admin") {
		t.Fatalf("without -admin: %v", err)
	}
	c, err := parseFlags(append(base, "-admin", "tok", "-backlog", "50"), io.Discard)
	if err != nil || c.Backlog != 50 || c.Admin != "tok" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	if _, err := parseFlags(append(base, "-admin", "tok", "-backlog", "0"), io.Discard); err == nil {
		t.Fatal("-backlog 0 accepted")
	}
	if _, err := parseFlags([]string{"-mode", "webhooks", "-base", "http://10.0.0.1:80", "-key", "k", "-admin", "t", "-mch-id", testMch,
		"-appid", testAppID, "-api-key", testAPIKey}, io.Discard); err == nil {
		t.Fatal("a non-loopback target accepted")
	}
}
