package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestBrowserConsoleWebhooks is issue 20's console page for webhooks and
// platforms through serve, in headless Chromium: a URL the policy refuses
// (ftp://) shows why and creates nothing; the operator adds an endpoint
// and sees its signing secret once (not after a reload), and the secret is
// the one the receiver verifies deliveries with; a payment's delivery
// fails at the receiver, shows its attempts and HTTP 500, and is retried
// from the page once the receiver is back; rotating shows the new secret
// once; deleting removes the endpoint. A platform is created with its key
// shown once, then revoked. Screenshots: console-webhooks (with
// -update-docs copied to docs/), console-platforms.
func TestBrowserConsoleWebhooks(t *testing.T) {
	var mu sync.Mutex
	failing, secret := true, ""
	got := map[string]int{} // webhook-id → deliveries answered 2xx
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		if err != nil {
			t.Errorf("a delivery does not verify with the secret the console showed: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got[r.Header.Get("webhook-id")]++
	}))
	defer recv.Close()
	m := MustRunMain(t, "--webhook-allow-private")
	c := client{t, m.URL}
	type endpoints struct {
		Data []struct{ ID string } `json:"data"`
	}

	b := mustChromium(t, m.URL)
	b.do("desktop", chromedp.EmulateViewport(1280, 900))
	b.do("open the console", chromedp.Navigate(m.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.do("log in", chromedp.SendKeys(chromedp.CSS("#token"), m.AdminToken), chromedp.Submit(chromedp.CSS("#login")))
	b.until("overview", browserVisible("month"))
	b.do("webhooks", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/webhooks"]`)), chromedp.WaitVisible(chromedp.CSS("#webhook-url")))

	// An ftp:// URL: refused with the reason, nothing created, the form
	// as it was typed.
	b.do("a bad URL", chromedp.SendKeys(chromedp.CSS("#webhook-url"), "ftp://files.example/hooks"),
		chromedp.Click(chromedp.CSS(`input[name=events][value="payment.succeeded"]`)),
		chromedp.SendKeys(chromedp.CSS("#webhook-description"), "shop backend"), chromedp.Click(chromedp.CSS("#webhook-submit")))
	b.until("refused", browserVisible("webhook-err"))
	if got := b.text("webhook-err"); !strings.Contains(got, "http:// or https://") {
		t.Fatalf("the refusal says %q", got)
	}
	var list endpoints
	c.must(200, "GET", "/admin/webhooks", m.AdminToken, "", &list)
	if len(list.Data) != 0 {
		t.Fatalf("a refused URL created %+v", list.Data)
	}
	if b.eval(`String(document.querySelector('input[name=events][value="payment.succeeded"]').checked)`) != "true" {
		t.Fatal("the refused form lost the ticked event")
	}

	// The receiver's URL: created, the secret shown once.
	b.eval(`document.getElementById("webhook-url").value = ""`)
	b.do("add the endpoint", chromedp.SendKeys(chromedp.CSS("#webhook-url"), recv.URL+"/hooks"), chromedp.Click(chromedp.CSS("#webhook-submit")))
	b.until("the secret", browserVisible("new-secret"))
	mu.Lock()
	secret = b.text("new-secret")
	mu.Unlock()
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(b.text("flash"), "Endpoint added.") {
		t.Fatalf("secret %q, flash %q", secret, b.text("flash"))
	}
	page := b.eval(`location.pathname`)
	id := strings.TrimPrefix(page, "/admin/ui/webhooks/")
	if !strings.HasPrefix(id, "we_") || !strings.Contains(b.text("endpoint"), "shop backend") {
		t.Fatalf("landed on %s showing %q", page, b.text("endpoint"))
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#endpoint")))
	if b.eval(`String(document.getElementById("new-secret") === null && !document.body.textContent.includes("whsec_"))`) != "true" {
		t.Fatal("a reload shows the secret again")
	}

	// A payment: its delivery fails at the receiver; the page shows it.
	var a adminAccount
	c.must(201, "POST", "/admin/accounts", m.AdminToken, `{"label":"Li Na"}`, &a)
	mustPaidOrder(t, c, a.APIKey, "console-webhooks-1")
	var ds struct {
		Data []struct {
			ID             string `json:"id"`
			Status         string `json:"status"`
			EventID        string `json:"event_id"`
			EventType      string `json:"event_type"`
			Attempts       int64  `json:"attempts"`
			LastHTTPStatus int    `json:"last_http_status"`
		} `json:"data"`
	}
	eventually(t, "the delivery fails once", func() bool {
		c.must(200, "GET", "/admin/webhooks/"+id+"/deliveries", m.AdminToken, "", &ds)
		return len(ds.Data) == 1 && ds.Data[0].Attempts >= 1 && ds.Data[0].LastHTTPStatus == 500
	})
	d := ds.Data[0]
	if d.EventType != "payment.succeeded" {
		t.Fatalf("delivery %+v", d)
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#deliveries")))
	row := b.eval(`document.querySelector('tr.delivery[data-id="` + d.ID + `"]').textContent`)
	if !strings.Contains(row, "payment.succeeded") || !strings.Contains(row, "HTTP 500") {
		t.Fatalf("the delivery's row %q", row)
	}
	b.shotTo("console-webhooks", "console-webhooks.png")

	// The receiver is back: retry from the page.
	mu.Lock()
	failing = false
	mu.Unlock()
	b.do("retry", chromedp.Click(chromedp.CSS(`tr.delivery[data-id="`+d.ID+`"] button.retry`)))
	b.until("retried", `!!document.getElementById("flash") && document.getElementById("flash").textContent.includes("queued")`)
	eventually(t, "the delivery is delivered", func() bool {
		c.must(200, "GET", "/admin/webhooks/"+id+"/deliveries?status=delivered", m.AdminToken, "", &ds)
		return len(ds.Data) == 1
	})
	b.do("delivered", chromedp.Navigate(m.URL+page+"?status=delivered"), chromedp.WaitVisible(chromedp.CSS("#deliveries")))
	if got := b.eval(`document.querySelector('tr.delivery[data-id="` + d.ID + `"]').dataset.status`); got != "delivered" {
		t.Fatalf("the delivery's status on the page %q", got)
	}
	// Retrying a delivered one sends it again, with the same webhook-id
	// (the dispatcher alone never would).
	mu.Lock()
	n := got[d.EventID]
	mu.Unlock()
	if n < 1 {
		t.Fatalf("the receiver got %d deliveries of %s", n, d.EventID)
	}
	b.do("retry again", chromedp.Click(chromedp.CSS(`tr.delivery[data-id="`+d.ID+`"] button.retry`)))
	b.until("retried again", `location.search === "?status=delivered" && !!document.getElementById("flash")`)
	eventually(t, "the receiver gets the delivery again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[d.EventID] == n+1
	})

	// Rotate: the new secret, once.
	b.do("rotate", chromedp.Click(chromedp.CSS("#rotate")))
	b.until("the new secret", browserVisible("new-secret")+` && document.getElementById("new-secret").textContent !== `+jsString(secret))
	rotated := b.text("new-secret")
	if !strings.HasPrefix(rotated, "whsec_") || !strings.Contains(b.text("previous-secret"), "until") {
		t.Fatalf("rotated secret %q, previous %q", rotated, b.text("previous-secret"))
	}
	mu.Lock()
	secret = rotated
	mu.Unlock()
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#endpoint")))
	if b.eval(`String(document.getElementById("new-secret") === null)`) != "true" {
		t.Fatal("a reload shows the rotated secret again")
	}
	// Deliveries after the rotation verify with the new secret.
	b.do("retry after rotating", chromedp.Click(chromedp.CSS(`tr.delivery[data-id="`+d.ID+`"] button.retry`)))
	eventually(t, "a delivery signed after the rotation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[d.EventID] == n+2
	})

	// Delete.
	b.do("delete", chromedp.SendKeys(chromedp.CSS(`#delete input[name=reason]`), "shop backend retired"),
		chromedp.Click(chromedp.CSS("#delete-webhook")))
	b.until("deleted", `!!document.getElementById("flash") && document.getElementById("flash").textContent === "Endpoint deleted."`)
	if b.eval(`String(document.querySelectorAll("tr.endpoint").length)`) != "0" {
		t.Fatal("the list still shows the deleted endpoint")
	}
	c.must(404, "GET", "/admin/webhooks/"+id, m.AdminToken, "", nil)

	// Platforms: created with the key shown once, then revoked.
	b.do("platforms", chromedp.Click(chromedp.CSS(`nav a[href="/admin/ui/platforms"]`)), chromedp.WaitVisible(chromedp.CSS("#platform-name")))
	b.do("create a platform", chromedp.SendKeys(chromedp.CSS("#platform-name"), "Shop app"),
		chromedp.SendKeys(chromedp.CSS("#platform-hosts"), "shop.example, m.shop.example"), chromedp.Click(chromedp.CSS("#platform-submit")))
	b.until("the platform key", browserVisible("new-platform-key"))
	key := b.text("new-platform-key")
	var ps struct {
		Data []struct {
			ID             string   `json:"id"`
			KeyPrefix      string   `json:"key_prefix"`
			ReturnURLHosts []string `json:"return_url_hosts"`
			RevokedAt      *string  `json:"revoked_at"`
		} `json:"data"`
	}
	c.must(200, "GET", "/admin/platforms", m.AdminToken, "", &ps)
	if len(ps.Data) != 1 || !strings.HasPrefix(key, "tgp-") || !strings.HasPrefix(key, ps.Data[0].KeyPrefix) || len(ps.Data[0].ReturnURLHosts) != 2 {
		t.Fatalf("key %q, platforms %+v", key, ps.Data)
	}
	b.shot("console-platforms")
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#platform-list")))
	if b.eval(`String(document.getElementById("new-platform-key") === null && !document.body.textContent.includes(`+jsString(key)+`))`) != "true" {
		t.Fatal("a reload shows the platform key again")
	}
	b.do("revoke", chromedp.Click(chromedp.CSS(`tr.platform[data-id="`+ps.Data[0].ID+`"] button.revoke`)))
	b.until("revoked", `!!document.getElementById("flash") && document.getElementById("flash").textContent === "Platform key revoked."`)
	if got := b.eval(`document.querySelector('tr.platform[data-id="` + ps.Data[0].ID + `"] .platform-status').textContent`); !strings.Contains(got, "Revoked") {
		t.Fatalf("the platform's status %q", got)
	}
	c.must(200, "GET", "/admin/platforms", m.AdminToken, "", &ps)
	if ps.Data[0].RevokedAt == nil {
		t.Fatal("the admin API does not show the platform revoked")
	}
	b.check("status of 400")
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
