package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

const refundButton = `class="btn small ghost refund"`

// refundAccountPage opens a checkout session for key and returns its account
// page in English.
func refundAccountPage(t *testing.T, m *Main, c client, key string) string {
	t.Helper()
	var sess struct {
		AccountURL string `json:"account_url"`
	}
	c.must(201, "POST", "/v1/checkout/sessions", key, `{}`, &sess)
	st, page, _ := c.call("GET", strings.TrimPrefix(sess.AccountURL, m.URL)+"?lang=en", "", "", nil)
	if st != 200 {
		t.Fatalf("account page: %d %s", st, page)
	}
	return string(page)
}

// TestServeRefundPolicyPage: under the default --refund-policy admin a
// user's account page offers no refund button (a /v1 refund is refused)
// but says the operator refunds and names the catalog's support contact,
// as does the refusal, following a catalog reload; under self with no
// catalog, the page offers the button and names no contact.
func TestServeRefundPolicyPage(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_UP_KEY", "up-key")
	upSrv := httptest.NewServer(&gatedUpstream{arrived: make(chan struct{})})
	t.Cleanup(upSrv.Close)
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	writeCatalog(t, path, houseCatalog(upSrv.URL, "10.00", "20.00"))
	const admin = "refund-page-admin-token-for-tests"
	m := MustRunMain(t, "--catalog", path, "--admin-token", admin)
	c := client{t, m.URL}
	a := mustAccount(c, admin)
	st, b, _ := c.call("POST", "/v1/payments/orders", a.APIKey, `{"package_id":"p1","device_fingerprint":"`+fingerprint+`"}`,
		map[string]string{"Idempotency-Key": "refund-page-1"})
	var o orderResult
	if st != 201 || json.Unmarshal(b, &o) != nil {
		t.Fatalf("order p1: %d %s", st, b)
	}
	c.must(200, "POST", "/sandbox/wxpay/sim/orders/"+o.OutTradeNo+"/pay", "", "", nil)
	mustOrderStatus(c, a.APIKey, o.OutTradeNo, "SUCCESS")

	st, b, _ = c.call("POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", a.APIKey, "", nil)
	if st != 403 || !bytes.Contains(b, []byte("(help@harness.example)")) {
		t.Fatalf("/v1 refund under the admin policy: %d %s", st, b)
	}
	page := refundAccountPage(t, m, c, a.APIKey)
	if strings.Contains(page, refundButton) || !strings.Contains(page, o.OutTradeNo) ||
		!strings.Contains(page, `id="refund-note">Refunds are made by the operator of this service, not on this page. To ask for one: help@harness.example</p>`) {
		t.Fatalf("account page under the admin policy: %s", page)
	}

	// A reload's contact shows at once, on the page and in the refusal.
	writeCatalog(t, path, strings.Replace(houseCatalog(upSrv.URL, "10.00", "20.00"), "help@harness.example", "refunds@harness.example", 1))
	c.must(200, "POST", "/admin/catalog/reload", admin, "", nil)
	if st, b, _ = c.call("POST", "/v1/payments/orders/"+o.OutTradeNo+"/refund", a.APIKey, "", nil); st != 403 || !bytes.Contains(b, []byte("(refunds@harness.example)")) {
		t.Fatalf("/v1 refund after the reload: %d %s", st, b)
	}
	if page = refundAccountPage(t, m, c, a.APIKey); !strings.Contains(page, "To ask for one: refunds@harness.example</p>") {
		t.Fatalf("account page after the reload: %s", page)
	}

	// Self, no catalog: the button, no note.
	m2 := MustRunMain(t, "--refund-policy", "self")
	c2 := client{t, m2.URL}
	a2 := mustAccount(c2, m2.AdminToken)
	o2 := mustPaidOrder(t, c2, a2.APIKey, "refund-page-2")
	page = refundAccountPage(t, m2, c2, a2.APIKey)
	if !strings.Contains(page, refundButton+` data-order="`+o2.OutTradeNo+`"`) || strings.Contains(page, `id="refund-note"`) {
		t.Fatalf("account page under the self policy: %s", page)
	}
}
