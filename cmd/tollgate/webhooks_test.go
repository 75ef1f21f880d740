package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"tollgate/store/sqlite"
	"tollgate/webhook"
)

// TestServeWebhooks: serve refuses a loopback endpoint without
// --webhook-allow-private, accepts it with the flag, and its dispatcher
// delivers an event appended to the outbox, signed.
func TestServeWebhooks(t *testing.T) {
	strict := MustRunMain(t)
	body := `{"url":"http://127.0.0.1:9/h","events":["payment.succeeded"]}`
	client{t, strict.URL}.must(400, "POST", "/admin/webhooks", strict.AdminToken, body, nil)

	var mu sync.Mutex
	got := map[string]int{}
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(b, r.Header)
		}
		if err != nil {
			t.Errorf("a delivery does not verify: %v", err)
			w.WriteHeader(400)
			return
		}
		got[r.Header.Get("webhook-id")]++
	}))
	defer recv.Close()
	m := MustRunMain(t, "--webhook-allow-private")
	var created struct{ ID, Secret string }
	client{t, m.URL}.must(201, "POST", "/admin/webhooks", m.AdminToken,
		`{"url":"`+recv.URL+`/hooks","events":["payment.succeeded"]}`, &created)
	mu.Lock()
	secret = created.Secret
	mu.Unlock()

	st, err := sqlite.Open(context.Background(), filepath.Join(m.Config.Data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ev, err := webhook.NewEvent(webhook.PaymentSucceeded, "acct-1", time.Now(), map[string]any{"out_trade_no": "T1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event is delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[ev.ID] == 1
	})
	var ds struct {
		Data []struct {
			Status  string `json:"status"`
			EventID string `json:"event_id"`
		}
	}
	eventually(t, "the delivery is recorded", func() bool {
		client{t, m.URL}.must(200, "GET", "/admin/webhooks/"+created.ID+"/deliveries", m.AdminToken, "", &ds)
		return len(ds.Data) == 1 && ds.Data[0].Status == "delivered" && ds.Data[0].EventID == ev.ID
	})
}
