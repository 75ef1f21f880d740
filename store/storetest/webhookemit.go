package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
	"tollgate/webhook"
)

// outbox reads the events appended since the last call (claimed for an
// endpoint subscribed to every type, so each is returned once), in seq
// order per account.
type outbox struct {
	w *webhookEnv
	n int
}

func (o *outbox) next(t *testing.T) []webhook.Event {
	t.Helper()
	o.n++
	var out []webhook.Event
	for _, c := range o.w.claim(t, fmt.Sprintf("reader-%d", o.n), 100) {
		out = append(out, c.Event)
	}
	slices.SortFunc(out, func(a, b webhook.Event) int {
		if c := strings.Compare(string(a.Account.ID), string(b.Account.ID)); c != 0 {
			return c
		}
		return int(a.Seq - b.Seq)
	})
	return out
}

// expect checks that exactly the events of types want (in order) were
// appended since the last call.
func (o *outbox) expect(t *testing.T, what string, want ...string) []webhook.Event {
	t.Helper()
	evs := o.next(t)
	var got []string
	for _, e := range evs {
		got = append(got, e.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: events %v, want %v", what, got, want)
	}
	return evs
}

func eventData(t *testing.T, e webhook.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("event %s data %s: %v", e.Type, e.Data, err)
	}
	return m
}

// testWebhookEmit: every money change of the ledger appends its event in
// its own transaction, once; repeats and refusals append nothing; seq
// counts the account's events from 1.
func testWebhookEmit(t *testing.T, w *webhookEnv) {
	w.endpoint(t, webhook.Types()...)
	o := &outbox{w: w}
	ctx := w.ctx
	mustAccount(t, w.svc, "carol")
	if err := w.s.ExecRaw(ctx, `UPDATE accounts SET external_id = 'app-user-7' WHERE id = 'carol'`); err != nil {
		t.Fatal(err)
	}
	acc := o.expect(t, "create account", webhook.AccountCreated)[0]
	if acc.Seq != 1 || eventData(t, acc)["account_id"] != "carol" {
		t.Fatalf("account.created: %+v %s", acc, acc.Data)
	}
	if _, err := w.svc.CreateAccount(ctx, "carol"); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("second create: %v", err)
	}
	o.expect(t, "refused create")

	order := json.RawMessage(`{"out_trade_no":"ord-emit-1","status":"SUCCESS","metadata":{"plan":"pro"}}`)
	p := ledger.Payment{Account: "carol", OutTradeNo: "ord-emit-1", TransactionID: "wx-emit-1", Fen: 100, Credits: 1000, Order: order}
	if _, _, err := w.svc.CreditPayment(ctx, p); err != nil {
		t.Fatal(err)
	}
	paid := o.expect(t, "credit", webhook.PaymentSucceeded)[0]
	if paid.Seq != 2 || string(paid.Data) != string(order) || paid.Account.ExternalID == nil || *paid.Account.ExternalID != "app-user-7" ||
		!paid.CreatedAt.Equal(keyEpoch) {
		t.Fatalf("payment.succeeded: %+v %s", paid, paid.Data)
	}
	if _, already, err := w.svc.CreditPayment(ctx, p); err != nil || !already {
		t.Fatalf("repeat credit: already %v, %v", already, err)
	}
	o.expect(t, "repeated credit")
	// Without the order's view the event still says what was paid.
	p2 := ledger.Payment{Account: "carol", OutTradeNo: "ord-emit-2", TransactionID: "wx-emit-2", Fen: 10, Credits: 100}
	if _, _, err := w.svc.CreditPayment(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if d := eventData(t, o.expect(t, "credit without view", webhook.PaymentSucceeded)[0]); d["out_trade_no"] != "ord-emit-2" || d["credits"] != 100.0 {
		t.Fatalf("payment.succeeded without view: %v", d)
	}

	adj := ledger.AdjustRequest{Account: "carol", IdempotencyKey: "k1", Credits: -50, Reason: "goodwill reversal", Actor: "admin"}
	if _, _, err := w.svc.Adjust(ctx, adj); err != nil {
		t.Fatal(err)
	}
	ae := o.expect(t, "adjust", webhook.AdjustmentCreated)[0]
	if d := eventData(t, ae); d["adjustment_id"] != ledger.AdjustmentID("carol", "k1") || d["credits"] != -50.0 || d["actor"] != "admin" || ae.Seq != 4 {
		t.Fatalf("adjustment.created: seq %d %v", ae.Seq, d)
	}
	if _, already, err := w.svc.Adjust(ctx, adj); err != nil || !already {
		t.Fatalf("repeat adjust: %v %v", already, err)
	}
	big := ledger.AdjustRequest{Account: "carol", IdempotencyKey: "k2", Credits: -1_000_000, Reason: "too much", Actor: "admin"}
	if _, _, err := w.svc.Adjust(ctx, big); tollgate.ErrorCode(err) != tollgate.EINSUFFICIENT {
		t.Fatalf("too big: %v", err)
	}
	o.expect(t, "repeated and refused adjustments")

	if _, err := w.svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: "rf-emit-1", Account: "carol", OutTradeNo: "ord-emit-2"}); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "refund begun (not final)")
	if _, err := w.svc.CompleteRefund(ctx, "rf-emit-1"); err != nil {
		t.Fatal(err)
	}
	re := o.expect(t, "refund completed", webhook.RefundSucceeded)[0]
	if d := eventData(t, re); d["out_refund_no"] != "rf-emit-1" || d["out_trade_no"] != "ord-emit-2" || d["status"] != "succeeded" || d["credits"] != 100.0 ||
		d["requested_by"] != "" || d["asked_fen"] != 0.0 || d["updated_at"] == nil { // the API's shape, without a payment record
		t.Fatalf("refund.succeeded: %v", d)
	}
	if _, err := w.svc.CompleteRefund(ctx, "rf-emit-1"); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "repeated completion")
	if _, err := w.svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: "rf-emit-2", Account: "carol", OutTradeNo: "ord-emit-1", Credits: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.FailRefund(ctx, "rf-emit-2"); err != nil {
		t.Fatal(err)
	}
	if d := eventData(t, o.expect(t, "refund failed", webhook.RefundFailed)[0]); d["status"] != "failed" {
		t.Fatalf("refund.failed: %v", d)
	}

	// A provisional grant that was spent and then revoked: debt.
	mustAccount(t, w.svc, "dave")
	o.expect(t, "dave", webhook.AccountCreated)
	if _, err := w.svc.IssueGrant(ctx, ledger.GrantRequest{ID: "ord-grant-1", Account: "dave", Cap: 300, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "h-grant-1", Account: "dave", GrantID: "ord-grant-1", Amount: 200, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Settle(ctx, ledger.SettleRequest{HoldID: "h-grant-1", Cost: 120}); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "grant spent (no event yet)")
	if _, err := w.svc.RevokeGrant(ctx, "ord-grant-1"); err != nil {
		t.Fatal(err)
	}
	de := o.expect(t, "grant revoked", webhook.GrantDebtRecorded)[0]
	if d := eventData(t, de); d["debt"] != 120.0 || d["account_id"] != "dave" || de.Seq != 2 {
		t.Fatalf("grant.debt_recorded: seq %d %v", de.Seq, d)
	}
	if _, err := w.svc.RevokeGrant(ctx, "ord-grant-1"); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "repeated revoke")
}

// testWebhookEmitAtomic: a money change and its event commit together or
// not at all, on the Apply path the ledger uses.
func testWebhookEmitAtomic(t *testing.T, w *webhookEnv) {
	w.endpoint(t, webhook.Types()...)
	o := &outbox{w: w}
	ev := func(id tollgate.AccountID) webhook.Event {
		e, err := webhook.NewEvent(webhook.AccountCreated, id, keyEpoch, ledger.AccountView{Account: id, CreatedAt: keyEpoch})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A failure after Apply wrote the row and the event: neither stays.
	boom := errors.New("fails after the event insert")
	err := w.s.Update(w.ctx, func(tx ledger.Tx) error {
		if err := tx.Apply(w.ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "erin", CreatedAt: keyEpoch}},
			NewEvents: []webhook.Event{ev("erin")}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	if _, err := w.svc.Account(w.ctx, "erin"); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("account after rollback: %v", err)
	}
	o.expect(t, "rolled back")
	// A bad event fails the money change with it.
	bad := ev("erin")
	bad.Type = "payment.nope"
	err = w.s.Update(w.ctx, func(tx ledger.Tx) error {
		return tx.Apply(w.ctx, &ledger.Changes{NewAccounts: []ledger.Account{{ID: "erin", CreatedAt: keyEpoch}}, NewEvents: []webhook.Event{bad}})
	})
	if err == nil {
		t.Fatal("a bad event committed")
	}
	if _, err := w.svc.Account(w.ctx, "erin"); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("account after a bad event: %v", err)
	}
	// A stale update (a lost race: ErrRetry) takes its event with it.
	mustAccount(t, w.svc, "erin")
	o.expect(t, "created", webhook.AccountCreated)
	a, err := w.svc.Account(w.ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	a.Version++ // not what is stored
	a.Left = 5
	e2, _ := webhook.NewEvent(webhook.AdjustmentCreated, "erin", keyEpoch, nil)
	err = w.s.Update(w.ctx, func(tx ledger.Tx) error {
		return tx.Apply(w.ctx, &ledger.Changes{Accounts: []ledger.Account{a}, NewEvents: []webhook.Event{e2}})
	})
	if !errors.Is(err, ledger.ErrRetry) {
		t.Fatalf("stale update = %v, want ErrRetry", err)
	}
	o.expect(t, "lost race")
	// The counter did not move either: the next event is seq 2.
	if e := w.append(t, webhook.BalanceLow, "erin"); e.Seq != 2 {
		t.Fatalf("seq after rollbacks = %d, want 2", e.Seq)
	}
}

// testWebhookEmitRetried: concurrent money changes of one account (which
// lose races and are run again) append exactly one event each, numbered
// 1..n without gaps.
func testWebhookEmitRetried(t *testing.T, w *webhookEnv) {
	w.endpoint(t, webhook.Types()...)
	o := &outbox{w: w}
	w.account(t, "fran")
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				_, _, err := w.svc.Adjust(w.ctx, ledger.AdjustRequest{Account: "fran", IdempotencyKey: fmt.Sprintf("k-%d-%d", i, j),
					Credits: 10, Reason: "race", Actor: "test"})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("adjust: %v", err)
	}
	evs := o.next(t)
	if len(evs) != workers*each {
		t.Fatalf("%d events for %d adjustments", len(evs), workers*each)
	}
	ids := map[any]bool{}
	for i, e := range evs {
		if e.Type != webhook.AdjustmentCreated || e.Seq != int64(i+1) {
			t.Fatalf("event %d: %s seq %d", i, e.Type, e.Seq)
		}
		ids[eventData(t, e)["adjustment_id"]] = true
	}
	if len(ids) != workers*each {
		t.Fatalf("%d distinct adjustments in %d events", len(ids), len(evs))
	}
}

// testWebhookBalanceLow: balance.low is appended once per downward
// crossing of the account's low_balance_credits, by the change that
// crosses it, and re-armed when the balance rises back.
func testWebhookBalanceLow(t *testing.T, w *webhookEnv) {
	w.endpoint(t, webhook.Types()...)
	o := &outbox{w: w}
	ctx := w.ctx
	w.account(t, "gail")
	if _, _, err := w.svc.CreditPayment(ctx, ledger.Payment{Account: "gail", OutTradeNo: "ord-low-1", TransactionID: "wx-low-1", Fen: 100, Credits: 1000}); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "credit", webhook.PaymentSucceeded)
	bad := tollgate.Credits(-1)
	if _, err := w.svc.SetLowBalance(ctx, "gail", &bad); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("negative threshold: %v", err)
	}
	if _, err := w.svc.SetLowBalance(ctx, "nobody", nil); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("unknown account: %v", err)
	}
	th := tollgate.Credits(300)
	a, err := w.svc.SetLowBalance(ctx, "gail", &th)
	if err != nil || a.LowBalance == nil || *a.LowBalance != 300 {
		t.Fatalf("set threshold: %+v %v", a, err)
	}
	if a, err := w.svc.Account(ctx, "gail"); err != nil || a.LowBalance == nil || *a.LowBalance != 300 {
		t.Fatalf("stored threshold: %+v %v", a, err)
	}
	o.expect(t, "threshold set")
	adj := func(key string, n tollgate.Credits) {
		t.Helper()
		if _, _, err := w.svc.Adjust(ctx, ledger.AdjustRequest{Account: "gail", IdempotencyKey: key, Credits: n, Reason: "test", Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	spend := func(hold string, cost tollgate.Credits) {
		t.Helper()
		if _, err := w.svc.Reserve(ctx, ledger.ReserveRequest{HoldID: hold, Account: "gail", Amount: cost + 10, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Settle(ctx, ledger.SettleRequest{HoldID: hold, Cost: cost}); err != nil {
			t.Fatal(err)
		}
	}
	adj("a1", -600) // 1000 → 400: above
	o.expect(t, "down to 400", webhook.AdjustmentCreated)
	spend("h1", 150) // 400 → 250: crosses (the reservation alone did not)
	low := o.expect(t, "settled to 250", webhook.BalanceLow)[0]
	if d := eventData(t, low); d["credits"] != 250.0 || d["account_id"] != "gail" {
		t.Fatalf("balance.low data: %v", d)
	}
	spend("h2", 50) // 250 → 200: already below
	o.expect(t, "further down")
	adj("a2", 500) // 200 → 700: re-armed
	o.expect(t, "up", webhook.AdjustmentCreated)
	adj("a3", -500) // 700 → 200: crosses again, in the adjustment's transaction
	evs := o.expect(t, "adjusted down", webhook.AdjustmentCreated, webhook.BalanceLow)
	if evs[1].Seq != evs[0].Seq+1 {
		t.Fatalf("seqs %d, %d", evs[0].Seq, evs[1].Seq)
	}
	if _, err := w.svc.SetLowBalance(ctx, "gail", nil); err != nil {
		t.Fatal(err)
	}
	adj("a4", 500)
	adj("a5", -500)
	o.expect(t, "threshold off", webhook.AdjustmentCreated, webhook.AdjustmentCreated)
}

// testWebhookPaymentClosed: the payment store's UpdateOrder appends
// payment.closed in its own transaction when an order becomes CLOSED or
// PAYERROR, once; a failed update appends nothing.
func testWebhookPaymentClosed(t *testing.T, w *webhookEnv) {
	ps, ok := w.s.(PaymentStore)
	if !ok {
		t.Fatalf("%T keeps no payments", w.s)
	}
	w.endpoint(t, webhook.Types()...)
	o := &outbox{w: w}
	w.account(t, "hank")
	for _, no := range []string{"tg-closed-1", "tg-closed-2", "tg-closed-3"} {
		mustCreate(t, w.ctx, ps, SampleOrder(no, "hank", keyEpoch), nil)
	}
	to := func(no string, st payment.Status, fail error) error {
		_, err := ps.UpdateOrder(w.ctx, no, func(x *payment.Order) error {
			x.Status, x.UpdatedAt = st, keyEpoch.Add(time.Second)
			return fail
		})
		return err
	}
	if err := to("tg-closed-1", payment.StatusUserPaying, nil); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "user paying")
	boom := errors.New("refused")
	if err := to("tg-closed-1", payment.StatusClosed, boom); !errors.Is(err, boom) {
		t.Fatalf("failed update: %v", err)
	}
	o.expect(t, "failed update")
	if err := to("tg-closed-1", payment.StatusClosed, nil); err != nil {
		t.Fatal(err)
	}
	e := o.expect(t, "closed", webhook.PaymentClosed)[0]
	if d := eventData(t, e); d["out_trade_no"] != "tg-closed-1" || d["status"] != "CLOSED" || d["credits"] != 1_000_000.0 || e.Seq != 1 ||
		!e.CreatedAt.Equal(keyEpoch.Add(time.Second)) {
		t.Fatalf("payment.closed: seq %d at %v, %v", e.Seq, e.CreatedAt, d)
	}
	if err := to("tg-closed-1", payment.StatusClosed, nil); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "closed again")
	if err := to("tg-closed-2", payment.StatusPayError, nil); err != nil {
		t.Fatal(err)
	}
	if e := o.expect(t, "pay error", webhook.PaymentClosed)[0]; eventData(t, e)["status"] != "PAYERROR" || e.Seq != 2 {
		t.Fatalf("payment.closed of PAYERROR: %+v", e)
	}
	if err := to("tg-closed-3", payment.StatusSuccess, nil); err != nil {
		t.Fatal(err)
	}
	o.expect(t, "paid (payment.succeeded is the ledger's)")
}
