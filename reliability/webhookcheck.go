package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/webhook"
)

// WebhookReport is what the webhook receiver took, checked against the
// ledger and the outbox (docs/RELIABILITY.md, "Webhooks", W1–W5).
type WebhookReport struct {
	Problems []string // each a broken invariant; must be empty
	// Events are the distinct events taken, Copies the duplicates beyond
	// the first copy of each, ByType the events by type.
	Events, Copies int
	ByType         map[string]int
	// Deliveries are the endpoint's delivery rows, Attempts their
	// attempts in all.
	Deliveries int
	Attempts   int64
}

// WebhookLedger is the ledger's side of the webhook check: the dump and
// the orders tollgate closed (CLOSED or PAYERROR).
type WebhookLedger struct {
	Dump   *ledger.Dump
	Closed map[string]bool // out_trade_no
}

// ClosedOrders reads the out_trade_no of every order tollgate closed.
func ClosedOrders(ctx context.Context, pages func(context.Context, payment.OrderQuery) ([]payment.Order, error)) (map[string]bool, error) {
	out := map[string]bool{}
	for _, st := range []payment.Status{payment.StatusClosed, payment.StatusPayError} {
		q := payment.OrderQuery{Status: st, Limit: 500}
		for {
			os, err := pages(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, o := range os {
				out[o.OutTradeNo] = true
			}
			if len(os) < q.Limit {
				break
			}
			q.AfterCreated, q.AfterNo = os[len(os)-1].CreatedAt, os[len(os)-1].OutTradeNo
		}
	}
	return out, nil
}

// Deliveries reads every delivery of an endpoint.
func Deliveries(ctx context.Context, st webhook.Store, endpoint string) ([]webhook.Delivery, error) {
	var out []webhook.Delivery
	q := webhook.DeliveryQuery{Endpoint: endpoint, Limit: 500}
	for {
		ds, err := st.ListDeliveries(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
		if len(ds) < q.Limit {
			return out, nil
		}
		q.AfterTime, q.AfterID = ds[len(ds)-1].CreatedAt, ds[len(ds)-1].ID
	}
}

// eventData is what the check reads of an event's data: the object's id
// and its credits.
type eventData struct {
	OutTradeNo   string           `json:"out_trade_no"`
	OutRefundNo  string           `json:"out_refund_no"`
	AdjustmentID string           `json:"adjustment_id"`
	Credits      tollgate.Credits `json:"credits"`
}

// taken is one event taken about an object.
type taken struct {
	id      string
	account tollgate.AccountID
}

// key names the object an event is about: its type and the object's id.
type key struct{ typ, id string }

// CheckWebhooks checks what the receiver took (got, by webhook-id) against
// the ledger and the endpoint's deliveries:
//
//   - W1: every money change in the ledger — each paid lot, each refund
//     resolved, each adjustment, each account, each order closed, each
//     revoked grant that recorded debt — was taken exactly once as its
//     event (the right type, matched by the object's id), and every
//     event taken is about such a change;
//   - W2: every event taken is one of the endpoint's deliveries, and
//     every delivery was delivered and taken;
//   - W3 (copies of one webhook-id carry the same body) is the receiver's
//     (Receiver.Problems);
//   - W4: per account, the seqs taken are 1..n without gaps or repeats;
//   - W5: per account, the credits the app saw paid in (payment.succeeded)
//     less those refunded (refund.succeeded) plus the adjustments
//     (adjustment.created) equal the ledger's.
func CheckWebhooks(got map[string]Received, deliveries []webhook.Delivery, l WebhookLedger) *WebhookReport {
	rep := &WebhookReport{ByType: map[string]int{}, Deliveries: len(deliveries)}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < 50 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		} else if len(rep.Problems) == 50 {
			rep.Problems = append(rep.Problems, "… more webhook problems left out")
		}
	}
	d := l.Dump

	// What the app saw.
	seen := map[key][]taken{}                // object → events taken
	seqs := map[tollgate.AccountID][]int64{} // account → seqs taken
	appCredits := map[tollgate.AccountID]tollgate.Credits{}
	debtEvents := map[tollgate.AccountID]int{}
	for id, r := range got {
		e := r.Event
		rep.Events++
		rep.Copies += r.Copies - 1
		rep.ByType[e.Type]++
		seqs[e.Account.ID] = append(seqs[e.Account.ID], e.Seq)
		var data eventData
		if err := json.Unmarshal(e.Data, &data); err != nil {
			problem("W1: event %s (%s): data is not an object: %v", id, e.Type, err)
			continue
		}
		var k key
		switch e.Type {
		case webhook.PaymentSucceeded:
			k = key{e.Type, data.OutTradeNo}
			appCredits[e.Account.ID] += data.Credits
		case webhook.PaymentClosed:
			k = key{e.Type, data.OutTradeNo}
		case webhook.RefundSucceeded:
			k = key{e.Type, data.OutRefundNo}
			appCredits[e.Account.ID] -= data.Credits
		case webhook.RefundFailed:
			k = key{e.Type, data.OutRefundNo}
		case webhook.AdjustmentCreated:
			k = key{e.Type, data.AdjustmentID}
			appCredits[e.Account.ID] += data.Credits
		case webhook.AccountCreated:
			k = key{e.Type, string(e.Account.ID)}
		case webhook.GrantDebtRecorded:
			debtEvents[e.Account.ID]++
			continue
		default: // balance.low: no object; counted by type only
			continue
		}
		seen[k] = append(seen[k], taken{id, e.Account.ID})
	}

	// What the ledger did: each change once, of its account.
	want := map[key]tollgate.AccountID{}
	ledgerCredits := map[tollgate.AccountID]tollgate.Credits{}
	debts := map[tollgate.AccountID]int{}
	for _, a := range d.Accounts {
		want[key{webhook.AccountCreated, string(a.ID)}] = a.ID
	}
	lotTrade := map[string]bool{}
	for _, lot := range d.Lots {
		lotTrade[lot.OutTradeNo] = true
		if lot.Fen > 0 {
			want[key{webhook.PaymentSucceeded, lot.OutTradeNo}] = lot.Account
			ledgerCredits[lot.Account] += lot.Granted
		}
	}
	for _, r := range d.Refunds {
		switch r.Status {
		case ledger.RefundSucceeded:
			want[key{webhook.RefundSucceeded, r.OutRefundNo}] = r.Account
			ledgerCredits[r.Account] -= r.Credits
		case ledger.RefundFailed:
			want[key{webhook.RefundFailed, r.OutRefundNo}] = r.Account
		}
	}
	for _, a := range d.Adjustments {
		want[key{webhook.AdjustmentCreated, a.ID}] = a.Account
		ledgerCredits[a.Account] += a.Credits
	}
	for _, g := range d.Grants {
		if g.Status == ledger.GrantRevoked && g.Used > 0 {
			debts[g.Account]++
		}
	}
	for no := range l.Closed {
		// The order's account is the lot's, or unknown (not all closed
		// orders have one): checked through the event's seq instead.
		want[key{webhook.PaymentClosed, no}] = ""
	}

	for _, k := range sortedKeys(want) {
		ids := seen[k]
		switch {
		case len(ids) == 0:
			problem("W1: %s of %s (account %s) never reached the app", k.typ, k.id, want[k])
		case len(ids) > 1:
			problem("W1: %s of %s reached the app as %d distinct events: %v", k.typ, k.id, len(ids), ids)
		case want[k] != "" && ids[0].account != want[k]:
			problem("W1: %s of %s is about account %s, the event says %v", k.typ, k.id, want[k], ids)
		}
	}
	for _, k := range sortedKeys(seen) {
		if _, ok := want[k]; ok {
			continue
		}
		if k.typ == webhook.PaymentClosed && lotTrade[k.id] {
			continue // closed, then paid late: both happened
		}
		problem("W1: the app got %s of %s (%v), which the ledger has no record of", k.typ, k.id, seen[k])
	}
	for a, n := range debts {
		if debtEvents[a] != n {
			problem("W1: account %s: %d grants revoked with debt, %d grant.debt_recorded events reached the app", a, n, debtEvents[a])
		}
	}
	for a, n := range debtEvents {
		if debts[a] == 0 {
			problem("W1: account %s: %d grant.debt_recorded events, no grant revoked with debt", a, n)
		}
	}

	// W2: the outbox and the app agree.
	byEvent := map[string]webhook.Delivery{}
	for _, dl := range deliveries {
		rep.Attempts += dl.Attempts
		if prev, ok := byEvent[dl.EventID]; ok {
			problem("W2: event %s has two deliveries to the endpoint: %s and %s", dl.EventID, prev.ID, dl.ID)
		}
		byEvent[dl.EventID] = dl
		_, took := got[dl.EventID]
		switch {
		case dl.Status != webhook.StatusDelivered:
			problem("W2: delivery %s of %s (%s) is %s after %d attempts (last %d %q)", dl.ID, dl.EventID, dl.EventType, dl.Status, dl.Attempts, dl.LastStatus, dl.LastError)
		case !took:
			problem("W2: delivery %s of %s (%s) is delivered, the app never took it", dl.ID, dl.EventID, dl.EventType)
		}
	}
	for id, r := range got {
		dl, ok := byEvent[id]
		switch {
		case !ok:
			problem("W2: the app took event %s (%s), which the outbox never sent it", id, r.Event.Type)
		case dl.EventType != r.Event.Type:
			problem("W2: event %s taken as %s, the outbox has it as %s", id, r.Event.Type, dl.EventType)
		}
	}

	// W4: per account, seqs 1..n.
	for a, s := range seqs {
		slices.Sort(s)
		for i, n := range s {
			if n != int64(i+1) {
				problem("W4: account %s: the app's events have seqs %v, not 1..%d", a, trimSeqs(s), len(s))
				break
			}
		}
	}

	// W5: the app's view of each account's money is the ledger's.
	for a, c := range ledgerCredits {
		if appCredits[a] != c {
			problem("W5: account %s: the app counts %d credits paid in − refunded + adjusted, the ledger %d", a, appCredits[a], c)
		}
	}
	for a, c := range appCredits {
		if _, ok := ledgerCredits[a]; !ok && c != 0 {
			problem("W5: account %s: the app counts %d credits, the ledger has no money change on it", a, c)
		}
	}
	return rep
}

func trimSeqs(s []int64) []int64 {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

func sortedKeys[V any](m map[key]V) []key {
	ks := make([]key, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b key) int {
		if a.typ != b.typ {
			if a.typ < b.typ {
				return -1
			}
			return 1
		}
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return ks
}

// WebhookEndpoint registers url as an endpoint of every event type on the
// instance at base and returns its id and secret.
func WebhookEndpoint(ctx context.Context, base, adminToken, url string) (id, secret string, err error) {
	body := map[string]any{"url": url, "events": webhook.Types(), "description": "reliability harness receiver"}
	var r Reply
	for range 5 {
		if r = Call(ctx, "POST", base+"/admin/webhooks", adminToken, nil, body); r.Outcome != Unknown {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r.Outcome != OK {
		return "", "", fmt.Errorf("register the webhook receiver: %s", r)
	}
	var v struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := r.Decode(&v); err != nil {
		return "", "", err
	}
	return v.ID, v.Secret, nil
}
