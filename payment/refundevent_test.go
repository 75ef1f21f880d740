package payment_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
	"tollgate/webhook"
)

// TestRefundEventIsTheAPIView: on each store, the refund.succeeded and
// refund.failed events written with the ledger's change carry the refund
// exactly as the admin API shows it right after (payment.RefundRecord's
// View, which GET /admin/refunds and the order detail answer with): who
// asked, why, the amount asked, the final status and updated_at included.
func TestRefundEventIsTheAPIView(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name+"/succeeded", func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, modes[2], nil)
			outbox := subscribeAll(t, w)
			w.mustAccount("alice")
			res := w.mustOrder("alice", "starter")
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
			r, err := w.svc.AdminRefund(w.ctx, payment.RefundAsk{OutTradeNo: res.OutTradeNo, AmountFen: 500,
				Reason: "the user asked by mail", Actor: "console:ab12", IdempotencyKey: "k-1"})
			if err != nil || r.Status != payment.RefundPending {
				t.Fatalf("AdminRefund = %+v, %v", r, err)
			}
			w.clock.Advance(90 * time.Second) // the record's updated_at is not its created_at
			if _, err := w.sim.CompleteRefund(r.OutRefundNo); err != nil {
				t.Fatal(err)
			}
			w.eventually("the refund to succeed", func() bool {
				rec, _ := w.store.Refund(w.ctx, r.OutRefundNo)
				return rec.Status == payment.RefundSucceeded
			})
			v := wantRefundEvent(t, w, outbox(), webhook.RefundSucceeded, r.OutRefundNo)
			if v["asked_fen"] != 500.0 || v["actor"] != "console:ab12" || v["requested_by"] != "admin" || v["created_at"] == v["updated_at"] {
				t.Fatalf("refund.succeeded data %v", v)
			}
		})
		t.Run(b.name+"/failed", func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, b, modes[2], func(_ *payment.Config, d *payment.Deps) {
				d.Gateway = &refusingRefunds{Gateway: &payment.V3Gateway{Client: d.V3}}
			})
			outbox := subscribeAll(t, w)
			w.mustAccount("bob")
			res := w.mustOrder("bob", "starter")
			if _, err := w.sim.Pay(res.OutTradeNo); err != nil {
				t.Fatal(err)
			}
			w.waitStatus(res.OutTradeNo, payment.StatusSuccess)
			w.clock.Advance(time.Minute)
			_, err := w.svc.Refund(w.ctx, "bob", res.OutTradeNo)
			wantCode(t, err, tollgate.EUPSTREAM)
			recs, _ := w.store.RefundsByOrder(w.ctx, res.OutTradeNo)
			if len(recs) != 1 || recs[0].Status != payment.RefundFailed {
				t.Fatalf("records %+v", recs)
			}
			wantRefundEvent(t, w, outbox(), webhook.RefundFailed, recs[0].OutRefundNo)
		})
	}
}

// subscribeAll registers an endpoint for every event type in w's store
// and returns a reader of the events appended since its last call.
func subscribeAll(t *testing.T, w *world) func() []webhook.Event {
	t.Helper()
	ws, ok := w.store.(webhook.Store)
	if !ok {
		t.Fatalf("%T keeps no outbox", w.store)
	}
	ep, err := webhook.NewEndpoint("", "https://app.example/hooks", webhook.Types(), "refund events", webhook.URLPolicy{}, w.clock.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.CreateEndpoint(w.ctx, ep); err != nil {
		t.Fatal(err)
	}
	n := 0
	return func() []webhook.Event {
		t.Helper()
		n++
		cs, err := ws.Claim(w.ctx, webhook.ClaimRequest{Owner: fmt.Sprintf("reader-%d", n), Now: w.clock.Now().Add(time.Hour),
			Lease: time.Minute, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []webhook.Event
		for _, c := range cs {
			out = append(out, c.Event)
		}
		return out
	}
}

// wantRefundEvent checks that evs hold one event about refund no, of type
// typ, whose data is byte for byte the refund as the admin API answers it
// now.
func wantRefundEvent(t *testing.T, w *world, evs []webhook.Event, typ, no string) map[string]any {
	t.Helper()
	var got []webhook.Event
	for _, e := range evs {
		if e.Type == webhook.RefundSucceeded || e.Type == webhook.RefundFailed {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Type != typ {
		t.Fatalf("refund events %+v, want one %s", got, typ)
	}
	rec, err := w.store.Refund(w.ctx, no)
	if err != nil {
		t.Fatal(err)
	}
	api, err := json.Marshal(rec.View())
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Data) != string(api) {
		t.Fatalf("%s data\n  %s\nthe API shows\n  %s", typ, got[0].Data, api)
	}
	var v map[string]any
	if err := json.Unmarshal(got[0].Data, &v); err != nil {
		t.Fatal(err)
	}
	if v["out_refund_no"] != no || v["requested_by"] == "" || v["actor"] == "" || v["reason"] == "" || v["updated_at"] == nil {
		t.Fatalf("%s data lacks who asked, why or when: %s", typ, got[0].Data)
	}
	return v
}
