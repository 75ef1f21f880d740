package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/webhook"
)

// WebhookStore is a store that keeps the ledger and the webhook outbox.
type WebhookStore interface {
	ledger.Store
	ledger.RawExecer
	webhook.Store
	// AppendEventsInLedgerTx appends evs in one ledger transaction, as
	// the ledger's Apply does, and returns fail from it (non-nil: the
	// transaction and its events roll back).
	AppendEventsInLedgerTx(ctx context.Context, evs []webhook.Event, fail error) error
}

// WebhookOpenFunc returns a fresh, empty, migrated store. The suite closes
// it. Called twice in one test with the same tb, it must return two
// handles on one database when the store can (two instances).
type WebhookOpenFunc func(tb testing.TB) WebhookStore

// RunWebhooks is the conformance suite of webhook.Store: store/sqlite and
// store/postgres run it from their tests.
func RunWebhooks(t *testing.T, open WebhookOpenFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, w *webhookEnv)
	}{
		{"AppendSeq", testWebhookAppendSeq},
		{"AppendConcurrent", testWebhookAppendConcurrent},
		{"AppendInLedgerTx", testWebhookAppendInLedgerTx},
		{"Endpoints", testWebhookEndpoints},
		{"FanOutAndClaim", testWebhookFanOutAndClaim},
		{"SkipAndRelease", testWebhookSkipAndRelease},
		{"LeaseExpiry", testWebhookLeaseExpiry},
		{"ClaimRace", testWebhookClaimRace},
		{"DeliveriesAndRetry", testWebhookDeliveries},
		{"Disabled", testWebhookDisabled},
		{"EmitInMoneyTx", testWebhookEmit},
		{"EmitAtomic", testWebhookEmitAtomic},
		{"EmitRetried", testWebhookEmitRetried},
		{"BalanceLow", testWebhookBalanceLow},
		{"PaymentClosed", testWebhookPaymentClosed},
		{"PlatformScope", testWebhookPlatformScope},
		{"Prune", testWebhookPrune},
		{"PruneConcurrent", testWebhookPruneConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			// The ledger's clock is the suite's: its events are
			// created after the endpoints (fan-out) and due at once.
			svc := ledger.New(s, ledger.Options{Clock: tollgate.ClockFunc(func() time.Time { return keyEpoch })})
			t.Cleanup(func() {
				svc.Close()
				s.Close()
			})
			tc.fn(t, &webhookEnv{s: s, svc: svc, ctx: context.Background(), now: keyEpoch, open: open})
		})
	}
}

type webhookEnv struct {
	s    WebhookStore
	svc  *ledger.Service
	ctx  context.Context
	now  time.Time
	open WebhookOpenFunc
}

// account creates an account and forgets its account.created event, so
// the tests of the outbox itself count only their own events.
func (w *webhookEnv) account(t *testing.T, id tollgate.AccountID) {
	t.Helper()
	mustAccount(t, w.svc, id)
	for _, q := range []string{
		`DELETE FROM webhook_events WHERE account_id = '` + string(id) + `' AND type = 'account.created'`,
		`DELETE FROM webhook_account_seqs WHERE account_id = '` + string(id) + `'`,
	} {
		if err := w.s.ExecRaw(w.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *webhookEnv) event(t *testing.T, typ string, acct tollgate.AccountID) webhook.Event {
	t.Helper()
	e, err := webhook.NewEvent(typ, acct, w.now, map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (w *webhookEnv) append(t *testing.T, typ string, acct tollgate.AccountID) webhook.Event {
	t.Helper()
	e, err := w.s.AppendEvent(w.ctx, w.event(t, typ, acct))
	if err != nil {
		t.Fatalf("append %s for %s: %v", typ, acct, err)
	}
	return e
}

func (w *webhookEnv) endpoint(t *testing.T, events ...string) webhook.Endpoint {
	t.Helper()
	e, err := webhook.NewEndpoint("", "https://app.example/hooks", events, "test", webhook.URLPolicy{}, w.now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.s.CreateEndpoint(w.ctx, e); err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	return e
}

func (w *webhookEnv) claim(t *testing.T, owner string, limit int) []webhook.Claimed {
	t.Helper()
	cs, err := w.s.Claim(w.ctx, webhook.ClaimRequest{Owner: owner, Now: w.now, Lease: time.Minute, Limit: limit})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return cs
}

func testWebhookAppendSeq(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	w.account(t, "bob")
	if err := w.s.ExecRaw(w.ctx, `UPDATE accounts SET external_id = 'user-42' WHERE id = 'alice'`); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 3; i++ {
		a := w.append(t, webhook.PaymentSucceeded, "alice")
		if a.Seq != i || a.Account.ExternalID == nil || *a.Account.ExternalID != "user-42" {
			t.Fatalf("alice's event %d: seq %d, external id %v", i, a.Seq, a.Account.ExternalID)
		}
	}
	if b := w.append(t, webhook.BalanceLow, "bob"); b.Seq != 1 || b.Account.ExternalID != nil {
		t.Fatalf("bob's first event: %+v", b)
	}
	// Bad events are refused and take no seq.
	bad := w.event(t, webhook.PaymentSucceeded, "alice")
	bad.Type = "payment.nope"
	if _, err := w.s.AppendEvent(w.ctx, bad); tollgate.ErrorCode(err) != tollgate.EINVALID {
		t.Fatalf("unknown type: %v", err)
	}
	dup := w.append(t, webhook.PaymentClosed, "alice")
	if dup.Seq != 4 {
		t.Fatalf("seq after a refused event = %d, want 4", dup.Seq)
	}
	if _, err := w.s.AppendEvent(w.ctx, dup); err == nil {
		t.Fatal("an event id appended twice")
	}
	if a := w.append(t, webhook.PaymentClosed, "alice"); a.Seq != 5 {
		t.Fatalf("seq after a duplicate = %d, want 5 (no gap)", a.Seq)
	}
}

func testWebhookAppendConcurrent(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	const workers, each = 6, 8
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				e, err := webhook.NewEvent(webhook.AdjustmentCreated, "alice", w.now, nil)
				if err == nil {
					e, err = w.s.AppendEvent(w.ctx, e)
				}
				for n := 0; errors.Is(err, ledger.ErrRetry) && n < 20; n++ {
					e, err = w.s.AppendEvent(w.ctx, e)
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent append: %v", err)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seqs = %v; want 1..%d, each once", seqs, workers*each)
		}
	}
}

func testWebhookAppendInLedgerTx(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	w.account(t, "bob")
	ep := w.endpoint(t, webhook.Types()...)
	// Committed: both accounts' events, each numbered.
	evs := []webhook.Event{w.event(t, webhook.PaymentSucceeded, "bob"), w.event(t, webhook.PaymentSucceeded, "alice"),
		w.event(t, webhook.BalanceLow, "alice")}
	if err := w.s.AppendEventsInLedgerTx(w.ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	// Rolled back: nothing, and no seq taken.
	boom := errors.New("the money change failed")
	if err := w.s.AppendEventsInLedgerTx(w.ctx, []webhook.Event{w.event(t, webhook.RefundFailed, "alice")}, boom); !errors.Is(err, boom) {
		t.Fatalf("rolled back tx = %v", err)
	}
	if e := w.append(t, webhook.RefundSucceeded, "alice"); e.Seq != 3 {
		t.Fatalf("seq after a rolled-back append = %d, want 3", e.Seq)
	}
	got := map[string]int64{}
	for _, c := range w.claim(t, "d1", 50) {
		got[c.Event.Type+"/"+string(c.Event.Account.ID)] = c.Event.Seq
		if c.Endpoint.ID != ep.ID {
			t.Fatalf("claimed for endpoint %s", c.Endpoint.ID)
		}
	}
	want := map[string]int64{"payment.succeeded/bob": 1, "payment.succeeded/alice": 1, "balance.low/alice": 2, "refund.succeeded/alice": 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed events %v, want %v", got, want)
	}
}

func testWebhookEndpoints(t *testing.T, w *webhookEnv) {
	a := w.endpoint(t, webhook.PaymentSucceeded)
	got, err := w.s.GetEndpoint(w.ctx, a.ID)
	if err != nil || got.URL != a.URL || got.Secret != a.Secret || !slices.Equal(got.Events, a.Events) ||
		!got.CreatedAt.Equal(a.CreatedAt) || got.Disabled() || got.PreviousSecret != "" {
		t.Fatalf("get = %+v, %v; want %+v", got, err, a)
	}
	if _, err := w.s.GetEndpoint(w.ctx, "we_nope"); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("get unknown: %v", err)
	}
	for range 4 {
		w.endpoint(t, webhook.BalanceLow)
	}
	var all []string
	after := ""
	for {
		page, err := w.s.ListEndpoints(w.ctx, webhook.EndpointQuery{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			all = append(all, e.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(all) != 5 || !slices.IsSorted(all) {
		t.Fatalf("listed %v", all)
	}
	// Rotation keeps the old secret for its overlap.
	r, err := webhook.Rotate(w.ctx, w.s, a.ID, w.now)
	if err != nil || r.PreviousSecret != a.Secret || r.Secret == a.Secret || !r.PreviousUntil.Equal(w.now.Add(webhook.RotationOverlap)) {
		t.Fatalf("rotate = %+v, %v", r, err)
	}
	if _, err := webhook.Rotate(w.ctx, w.s, "we_nope", w.now); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("rotate unknown: %v", err)
	}
	// Disable and enable.
	d, err := w.s.SetEndpointDisabled(w.ctx, a.ID, w.now, "failing")
	if err != nil || !d.Disabled() || d.DisabledReason != "failing" {
		t.Fatalf("disable = %+v, %v", d, err)
	}
	if d, err = w.s.SetEndpointDisabled(w.ctx, a.ID, time.Time{}, ""); err != nil || d.Disabled() || d.DisabledReason != "" {
		t.Fatalf("enable = %+v, %v", d, err)
	}
	// Delete.
	if err := w.s.DeleteEndpoint(w.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.s.DeleteEndpoint(w.ctx, a.ID); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
	// At most MaxEndpoints.
	for range webhook.MaxEndpoints - 4 {
		w.endpoint(t, webhook.BalanceLow)
	}
	e, _ := webhook.NewEndpoint("", "https://x.example/", []string{webhook.BalanceLow}, "", webhook.URLPolicy{}, w.now)
	if err := w.s.CreateEndpoint(w.ctx, e); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("endpoint past the bound: %v", err)
	}
}

func testWebhookFanOutAndClaim(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	pay := w.endpoint(t, webhook.PaymentSucceeded)
	all := w.endpoint(t, webhook.Types()...)
	e1 := w.append(t, webhook.PaymentSucceeded, "alice")
	e2 := w.append(t, webhook.BalanceLow, "alice")
	cs := w.claim(t, "d1", 10)
	got := map[string]bool{}
	for _, c := range cs {
		got[c.Endpoint.ID+"/"+c.Event.ID] = true
		if c.Delivery.Attempts != 1 || c.Delivery.Status != webhook.StatusPending || c.Event.Seq == 0 ||
			len(c.Event.Data) == 0 || c.Endpoint.Secret == "" || c.Delivery.EventID != c.Event.ID {
			t.Fatalf("claimed %+v", c)
		}
		if !c.Event.CreatedAt.Equal(w.now) {
			t.Fatalf("event time %v, want %v", c.Event.CreatedAt, w.now)
		}
	}
	want := map[string]bool{pay.ID + "/" + e1.ID: true, all.ID + "/" + e1.ID: true, all.ID + "/" + e2.ID: true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}
	// Leased: nobody else gets them.
	if again := w.claim(t, "d2", 10); len(again) != 0 {
		t.Fatalf("claimed again while leased: %d", len(again))
	}
	// Outcomes: delivered, retry later, failed.
	for i, c := range cs {
		o := webhook.Outcome{DeliveryID: c.Delivery.ID, Owner: "d1", Now: w.now, HTTPStatus: 500, Error: "answered 500"}
		switch i {
		case 0:
			o.Delivered, o.HTTPStatus, o.Error = true, 204, ""
		case 1:
			o.NextAttemptAt = w.now.Add(10 * time.Second)
		case 2:
			o.Failed = true
		}
		if _, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: c.Delivery.ID, Owner: "d2", Now: w.now, Delivered: true}); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
			t.Fatalf("complete by a non-owner: %v", err)
		}
		ep, err := w.s.Complete(w.ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if o.Delivered && (ep.ConsecutiveFailures != 0 || !ep.LastSuccessAt.Equal(w.now)) ||
			!o.Delivered && (ep.ConsecutiveFailures == 0 || !ep.FailingSince.Equal(w.now)) {
			t.Fatalf("endpoint after outcome %+v: %+v", o, ep)
		}
		if _, err := w.s.Complete(w.ctx, o); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
			t.Fatalf("complete twice: %v", err)
		}
	}
	if n := len(w.claim(t, "d2", 10)); n != 0 {
		t.Fatalf("claimed %d before the retry is due", n)
	}
	w.now = w.now.Add(10 * time.Second)
	retry := w.claim(t, "d2", 10)
	if len(retry) != 1 || retry[0].Delivery.ID != cs[1].Delivery.ID || retry[0].Delivery.Attempts != 2 ||
		retry[0].Delivery.LastStatus != 500 || retry[0].Delivery.LastError != "answered 500" {
		t.Fatalf("retry claim = %+v", retry)
	}
	// Events appended after an endpoint is deleted are not fanned out to it.
	if err := w.s.DeleteEndpoint(w.ctx, all.ID); err != nil {
		t.Fatal(err)
	}
	w.append(t, webhook.BalanceLow, "alice")
	if n := len(w.claim(t, "d3", 10)); n != 0 {
		t.Fatalf("claimed %d deliveries for a deleted endpoint", n)
	}
}

func testWebhookLeaseExpiry(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	w.endpoint(t, webhook.PaymentSucceeded)
	e := w.append(t, webhook.PaymentSucceeded, "alice")
	first := w.claim(t, "crashed", 10)
	if len(first) != 1 {
		t.Fatalf("claimed %d", len(first))
	}
	// The owner delivered, then died before recording it. The lease
	// runs out: another dispatcher delivers again, the same event id.
	w.now = w.now.Add(59 * time.Second)
	if n := len(w.claim(t, "other", 10)); n != 0 {
		t.Fatalf("re-claimed %d before the lease ran out", n)
	}
	w.now = w.now.Add(time.Second)
	second := w.claim(t, "other", 10)
	if len(second) != 1 || second[0].Delivery.ID != first[0].Delivery.ID || second[0].Event.ID != e.ID ||
		second[0].Delivery.Attempts != 2 || string(second[0].Event.Data) != string(first[0].Event.Data) {
		t.Fatalf("re-claim = %+v", second)
	}
	if _, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: first[0].Delivery.ID, Owner: "crashed", Now: w.now, Delivered: true}); tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("the dead owner's late outcome: %v", err)
	}
	if _, err := w.s.Complete(w.ctx, webhook.Outcome{DeliveryID: first[0].Delivery.ID, Owner: "other", Now: w.now, Delivered: true}); err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(time.Hour)
	if n := len(w.claim(t, "third", 10)); n != 0 {
		t.Fatalf("a delivered delivery was claimed again: %d", n)
	}
}

// testWebhookClaimRace: dispatchers on two handles of the store (two
// instances, where the store can) claim at once until nothing is due;
// every delivery is claimed exactly once.
func testWebhookClaimRace(t *testing.T, w *webhookEnv) {
	other := w.open(t)
	t.Cleanup(func() { other.Close() })
	w.account(t, "alice")
	w.account(t, "bob")
	w.endpoint(t, webhook.Types()...)
	w.endpoint(t, webhook.BalanceLow)
	const events = 40
	for i := range events {
		w.append(t, webhook.BalanceLow, []tollgate.AccountID{"alice", "bob"}[i%2])
	}
	stores := []webhook.Store{w.s, other, w.s, other}
	var mu sync.Mutex
	seen := map[string]string{}
	var dup []string
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for i, s := range stores {
		owner := fmt.Sprintf("d%d", i)
		wg.Go(func() {
			for empty := 0; empty < 3; {
				cs, err := s.Claim(w.ctx, webhook.ClaimRequest{Owner: owner, Now: w.now, Lease: time.Hour, Limit: 3})
				if errors.Is(err, ledger.ErrRetry) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if len(cs) == 0 {
					empty++
					continue
				}
				mu.Lock()
				for _, c := range cs {
					if prev, ok := seen[c.Delivery.ID]; ok {
						dup = append(dup, c.Delivery.ID+" by "+prev+" and "+owner)
					}
					seen[c.Delivery.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("claim: %v", err)
	}
	if len(dup) > 0 {
		t.Fatalf("claimed twice: %v", dup)
	}
	if len(seen) != 2*events {
		t.Fatalf("claimed %d deliveries, want %d", len(seen), 2*events)
	}
}

func testWebhookDeliveries(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	ep := w.endpoint(t, webhook.BalanceLow)
	for range 5 {
		w.append(t, webhook.BalanceLow, "alice")
	}
	cs := w.claim(t, "d1", 10)
	if len(cs) != 5 {
		t.Fatalf("claimed %d", len(cs))
	}
	for i, c := range cs {
		o := webhook.Outcome{DeliveryID: c.Delivery.ID, Owner: "d1", Now: w.now, Delivered: i < 2, Failed: i >= 2,
			HTTPStatus: 200, Error: ""}
		if o.Failed {
			o.HTTPStatus, o.Error = 0, fmt.Sprintf("%0600d", i) // longer than MaxError: bounded when stored
		}
		if _, err := w.s.Complete(w.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	list := func(status string, limit int) []webhook.Delivery {
		var out []webhook.Delivery
		q := webhook.DeliveryQuery{Endpoint: ep.ID, Status: status, Limit: limit}
		for {
			page, err := w.s.ListDeliveries(w.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page...)
			if len(page) < limit {
				return out
			}
			last := page[len(page)-1]
			q.AfterTime, q.AfterID = last.CreatedAt, last.ID
		}
	}
	if n := len(list("", 2)); n != 5 {
		t.Fatalf("listed %d deliveries", n)
	}
	failed := list(webhook.StatusFailed, 2)
	if len(failed) != 3 {
		t.Fatalf("listed %d failed", len(failed))
	}
	for _, d := range failed {
		if len(d.LastError) > webhook.MaxError || d.Status != webhook.StatusFailed || d.Attempts != 1 {
			t.Fatalf("failed delivery %+v", d)
		}
	}
	delivered := list(webhook.StatusDelivered, 10)
	if len(delivered) != 2 || !delivered[0].DeliveredAt.Equal(w.now) {
		t.Fatalf("delivered = %+v", delivered)
	}
	if _, err := w.s.ListDeliveries(w.ctx, webhook.DeliveryQuery{Endpoint: "we_nope", Limit: 5}); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("unknown endpoint: %v", err)
	}
	// Retry a failed one: pending, due now, claimed with its event.
	w.now = w.now.Add(time.Minute)
	d, err := w.s.RetryDelivery(w.ctx, ep.ID, failed[0].ID, w.now)
	if err != nil || d.Status != webhook.StatusPending || !d.NextAttemptAt.Equal(w.now) {
		t.Fatalf("retry = %+v, %v", d, err)
	}
	if _, err := w.s.RetryDelivery(w.ctx, ep.ID, "wd_nope", w.now); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("retry unknown: %v", err)
	}
	if _, err := w.s.RetryDelivery(w.ctx, "we_other", failed[0].ID, w.now); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("retry through another endpoint: %v", err)
	}
	again := w.claim(t, "d2", 10)
	if len(again) != 1 || again[0].Delivery.ID != failed[0].ID || again[0].Delivery.Attempts != 2 {
		t.Fatalf("claim after retry = %+v", again)
	}
}

func testWebhookDisabled(t *testing.T, w *webhookEnv) {
	w.account(t, "alice")
	ep := w.endpoint(t, webhook.BalanceLow)
	w.append(t, webhook.BalanceLow, "alice")
	if _, err := w.s.Claim(w.ctx, webhook.ClaimRequest{Owner: "fan", Now: w.now, Lease: time.Minute, Limit: 0}); err != nil {
		t.Fatal(err)
	}
	// The one delivery was claimed by "fan"; let its lease run out.
	w.now = w.now.Add(time.Hour)
	if _, err := w.s.SetEndpointDisabled(w.ctx, ep.ID, w.now, "gone"); err != nil {
		t.Fatal(err)
	}
	w.append(t, webhook.BalanceLow, "alice") // fanned out, held while disabled
	if n := len(w.claim(t, "d1", 10)); n != 0 {
		t.Fatalf("claimed %d for a disabled endpoint", n)
	}
	if _, err := w.s.SetEndpointDisabled(w.ctx, ep.ID, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	// Enabled again, it gets what happened while it was disabled too:
	// nothing is lost to an outage.
	cs := w.claim(t, "d1", 10)
	if len(cs) != 2 {
		t.Fatalf("after enabling, claimed %d; want 2: the one made before it was disabled and the one made while it was", len(cs))
	}
}
