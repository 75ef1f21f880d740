package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reliability"
	"tollgate/webhook"
)

// webhookWorld is a small ledger and the events an app took of it.
type webhookWorld struct {
	dump   *ledger.Dump
	closed map[string]bool
	got    map[string]reliability.Received
	ds     []webhook.Delivery
	seq    map[tollgate.AccountID]int64
}

var epoch = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

func (w *webhookWorld) take(t *testing.T, typ string, account tollgate.AccountID, data any) string {
	t.Helper()
	e, err := webhook.NewEvent(typ, account, epoch, data)
	if err != nil {
		t.Fatal(err)
	}
	w.seq[account]++
	e.Seq = w.seq[account]
	body, err := e.Body()
	if err != nil {
		t.Fatal(err)
	}
	w.got[e.ID] = reliability.Received{Event: e, Body: body, Copies: 1}
	w.ds = append(w.ds, webhook.Delivery{ID: "wd_" + e.ID, EventID: e.ID, EventType: typ, Status: webhook.StatusDelivered, Attempts: 1})
	return e.ID
}

// newWebhookWorld: two accounts; alice paid, refunded part, was adjusted
// and had an order closed; bob spent a grant that was revoked with debt.
func newWebhookWorld(t *testing.T) *webhookWorld {
	w := &webhookWorld{got: map[string]reliability.Received{}, seq: map[tollgate.AccountID]int64{}, closed: map[string]bool{"o-closed": true}}
	w.dump = &ledger.Dump{
		Accounts:    []ledger.Account{{ID: "alice"}, {ID: "bob"}},
		Lots:        []ledger.Lot{{ID: 1, Account: "alice", OutTradeNo: "o-paid", Fen: 100, Granted: 1000}, {ID: 2, Account: "alice", Granted: 50}},
		Refunds:     []ledger.Refund{{OutRefundNo: "r-1", LotID: 1, Account: "alice", Credits: 300, Status: ledger.RefundSucceeded}, {OutRefundNo: "r-2", LotID: 1, Account: "alice", Credits: 10, Status: ledger.RefundFailed}},
		Adjustments: []ledger.Adjustment{{ID: "adj_1", Account: "alice", Credits: 50}},
		Grants:      []ledger.Grant{{ID: "o-grant", Account: "bob", Used: 20, Status: ledger.GrantRevoked}},
	}
	w.take(t, webhook.AccountCreated, "alice", ledger.AccountView{Account: "alice"})
	w.take(t, webhook.AccountCreated, "bob", ledger.AccountView{Account: "bob"})
	w.take(t, webhook.PaymentSucceeded, "alice", map[string]any{"out_trade_no": "o-paid", "credits": 1000})
	w.take(t, webhook.RefundSucceeded, "alice", ledger.RefundView{OutRefundNo: "r-1", Credits: 300})
	w.take(t, webhook.RefundFailed, "alice", ledger.RefundView{OutRefundNo: "r-2", Credits: 10})
	w.take(t, webhook.AdjustmentCreated, "alice", ledger.AdjustmentView{AdjustmentID: "adj_1", Credits: 50})
	w.take(t, webhook.PaymentClosed, "alice", map[string]any{"out_trade_no": "o-closed"})
	w.take(t, webhook.GrantDebtRecorded, "bob", ledger.BalanceView{Account: "bob", Debt: 20})
	return w
}

func (w *webhookWorld) check() []string {
	return reliability.CheckWebhooks(w.got, w.ds, reliability.WebhookLedger{Dump: w.dump, Closed: w.closed}).Problems
}

// TestCheckWebhooks: the harness's webhook checks pass on an app that saw
// every money change once, and name the broken invariant otherwise.
func TestCheckWebhooks(t *testing.T) {
	if p := newWebhookWorld(t).check(); len(p) != 0 {
		t.Fatalf("every change taken once: %v", p)
	}
	for _, tc := range []struct {
		name, want string
		change     func(t *testing.T, w *webhookWorld)
	}{
		{"RefundMissing", "W1: refund.succeeded of r-1", func(t *testing.T, w *webhookWorld) {
			for id, r := range w.got {
				if r.Event.Type == webhook.RefundSucceeded {
					delete(w.got, id)
				}
			}
		}},
		{"PaymentTwice", "W1: payment.succeeded of o-paid reached the app as 2 distinct events", func(t *testing.T, w *webhookWorld) {
			w.take(t, webhook.PaymentSucceeded, "alice", map[string]any{"out_trade_no": "o-paid", "credits": 0})
		}},
		{"UnknownAdjustment", "W1: the app got adjustment.created of adj_2", func(t *testing.T, w *webhookWorld) {
			w.take(t, webhook.AdjustmentCreated, "alice", map[string]any{"adjustment_id": "adj_2"})
		}},
		{"DebtMissing", "W1: account bob: 2 grants revoked with debt", func(t *testing.T, w *webhookWorld) {
			w.dump.Grants = append(w.dump.Grants, ledger.Grant{ID: "o-grant-2", Account: "bob", Used: 1, Status: ledger.GrantRevoked})
		}},
		{"NotInOutbox", "W2: the app took event", func(t *testing.T, w *webhookWorld) { w.ds = w.ds[1:] }},
		{"NotDelivered", "W2: delivery", func(t *testing.T, w *webhookWorld) { w.ds[0].Status = webhook.StatusPending }},
		{"SeqGap", "W4: account bob", func(t *testing.T, w *webhookWorld) { w.seq["bob"]++; w.take(t, webhook.BalanceLow, "bob", nil) }},
		{"CreditsDiffer", "W5: account alice: the app counts 750 credits paid in − refunded + adjusted, the ledger 751", func(t *testing.T, w *webhookWorld) { w.dump.Lots[0].Granted = 1001 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWebhookWorld(t)
			tc.change(t, w)
			p := w.check()
			if !strings.Contains(strings.Join(p, "\n"), tc.want) {
				t.Errorf("problems %q, want one containing %q", p, tc.want)
			}
		})
	}
}

// TestReceiver: the receiver takes a correctly signed delivery, answers
// its copy without taking it twice, refuses a bad signature, and reports
// a copy with another body.
func TestReceiver(t *testing.T) {
	rc := &reliability.Receiver{Seed: 1}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	secret := webhook.NewSecret()
	if err := rc.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	e, err := webhook.NewEvent(webhook.AccountCreated, "alice", epoch, ledger.AccountView{Account: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = 1
	body, _ := e.Body()
	post := func(secret string, body []byte) int {
		t.Helper()
		h, err := webhook.SignHeaders([]string{secret}, e.ID, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(context.Background(), "POST", rc.URL, bytes.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 2 {
		if s := post(secret, body); s != http.StatusNoContent {
			t.Fatalf("delivery %d answered %d", i, s)
		}
	}
	if got := rc.Events()[e.ID]; got.Copies != 2 || !bytes.Equal(got.Body, body) {
		t.Fatalf("taken %+v, want 2 copies of the body", got)
	}
	if s := post(webhook.NewSecret(), body); s != http.StatusBadRequest {
		t.Errorf("delivery signed with another secret answered %d, want 400", s)
	}
	other := bytes.Replace(body, []byte(`"seq":1`), []byte(`"seq":2`), 1)
	post(secret, other)
	p := strings.Join(rc.Problems(), "\n")
	if !strings.Contains(p, "refused by the Standard Webhooks verifier") || !strings.Contains(p, "W3: event "+e.ID) {
		t.Errorf("problems %q, want the bad signature and the copy with another body", p)
	}
	var v map[string]any
	if err := json.Unmarshal(rc.Events()[e.ID].Body, &v); err != nil || v["seq"] != 1.0 {
		t.Errorf("the first body is kept: %s", rc.Events()[e.ID].Body)
	}
}
