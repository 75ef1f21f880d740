package payment_test

import (
	"fmt"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
)

func TestRolloutPercentIsSticky(t *testing.T) {
	t.Parallel()
	r := &payment.Rollout{Percent: 30}
	in := 0
	for i := range 1000 {
		a := tollgate.AccountID(fmt.Sprintf("acct-%d", i))
		got := r.Enabled(a)
		if got != r.Enabled(a) {
			t.Fatal("not sticky")
		}
		if got {
			in++
		}
	}
	if in < 200 || in > 400 {
		t.Fatalf("%d of 1000 accounts enabled at 30%%", in)
	}
	// Raising the percentage keeps everyone who was in.
	wider := &payment.Rollout{Percent: 60}
	for i := range 1000 {
		a := tollgate.AccountID(fmt.Sprintf("acct-%d", i))
		if r.Enabled(a) && !wider.Enabled(a) {
			t.Fatalf("%s dropped out when the rollout widened", a)
		}
	}
	if (&payment.Rollout{Percent: 0}).Enabled("x") || !(&payment.Rollout{Percent: 100}).Enabled("x") {
		t.Fatal("0% / 100%")
	}
	wantCode(t, (&payment.Rollout{Percent: 0}).Check("x"), tollgate.EFORBIDDEN)
}

func TestRolloutFailureGuard(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	paused := 0
	r := &payment.Rollout{Percent: 100, Window: time.Minute, MinSamples: 10, MaxFailureRate: 0.5, Pause: 5 * time.Minute,
		Clock: tollgate.ClockFunc(func() time.Time { return now }), OnPause: func(f, n int) { paused++ }}
	for range 4 { // 4 failures of 4: below MinSamples
		r.Record(false)
	}
	if p, _ := r.Paused(); p {
		t.Fatal("paused below MinSamples")
	}
	now = now.Add(2 * time.Minute) // the window slides: old failures forgotten
	for range 6 {
		r.Record(true)
	}
	for range 4 {
		r.Record(false)
	}
	if p, _ := r.Paused(); p || r.Check("a") != nil {
		t.Fatal("paused at 40% failures")
	}
	if st := r.Status(); st.Paused || st.Samples != 10 || st.Failures != 4 || st.Percent != 100 {
		t.Fatalf("status at 40%%: %+v", st)
	}
	r.Record(false) // 5 of 11
	if p, _ := r.Paused(); p {
		t.Fatal("paused at 45%")
	}
	r.Record(false) // 6 of 12 = 50%
	if p, until := r.Paused(); !p || !until.Equal(now.Add(5*time.Minute)) || paused != 1 {
		t.Fatalf("not paused at 50%%: %v %v %d", p, until, paused)
	}
	wantCode(t, r.Check("a"), tollgate.EUNAVAILABLE)
	if st := r.Status(); !st.Paused || !st.PausedUntil.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("status while paused: %+v", st)
	}
	now = now.Add(5 * time.Minute)
	if p, _ := r.Paused(); p || r.Check("a") != nil {
		t.Fatal("still paused after the pause")
	}
}

// TestRolloutPausesCreate: failures placing orders trip the guard, and
// then CreateOrder refuses with EUNAVAILABLE before calling WeChat Pay.
func TestRolloutPausesCreate(t *testing.T) {
	t.Parallel()
	var w *world
	r := &payment.Rollout{Percent: 100, Window: time.Hour, MinSamples: 2, MaxFailureRate: 0.5, Pause: time.Hour}
	w = newWorld(t, backends[0], modes[0], func(_ *payment.Config, d *payment.Deps) {
		r.Clock = d.Clock // the world's clock
		d.Rollout = r
		d.Gateway = &failingGateway{Gateway: &payment.V2Gateway{Client: d.V2}}
	})
	w.mustAccount("alice")
	for range 2 {
		_, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp})
		wantCode(t, err, tollgate.EUPSTREAM)
	}
	_, err := w.svc.CreateOrder(w.ctx, payment.CreateOrderRequest{Account: "alice", PackageID: "starter", DeviceFingerprint: fp})
	wantCode(t, err, tollgate.EUNAVAILABLE)
	if w.metrics.Get(payment.EventRolloutPaused, "failure_rate") != 1 {
		t.Fatalf("metrics %v", w.metrics.Snapshot())
	}
	if os, _ := w.store.ListOrders(w.ctx, "alice", 10); len(os) != 2 {
		t.Fatalf("%d orders recorded; the paused request must record none", len(os))
	}
}

func TestCheckTransition(t *testing.T) {
	t.Parallel()
	ok := map[[2]payment.Status]bool{
		{payment.StatusNotPay, payment.StatusSuccess}:     true,
		{payment.StatusNotPay, payment.StatusClosed}:      true,
		{payment.StatusUserPaying, payment.StatusNotPay}:  true,
		{payment.StatusClosed, payment.StatusSuccess}:     true,
		{payment.StatusPayError, payment.StatusSuccess}:   true,
		{payment.StatusSuccess, payment.StatusRefund}:     true,
		{payment.StatusSuccess, payment.StatusClosed}:     false,
		{payment.StatusSuccess, payment.StatusNotPay}:     false,
		{payment.StatusRefund, payment.StatusSuccess}:     false,
		{payment.StatusClosed, payment.StatusNotPay}:      false,
		{payment.StatusNotPay, payment.StatusRefund}:      false,
		{payment.StatusPayError, payment.StatusClosed}:    false,
		{payment.StatusSuccess, payment.StatusSuccess}:    true,
		{payment.StatusNotPay, payment.Status("BOGUS")}:   false,
		{payment.StatusUserPaying, payment.StatusSuccess}: true,
	}
	for edge, want := range ok {
		if got := payment.CheckTransition(edge[0], edge[1]) == nil; got != want {
			t.Errorf("%s -> %s allowed = %v, want %v", edge[0], edge[1], got, want)
		}
	}
}
