package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
)

// testHourlyOrders: the overview's payments and failures per hour count
// orders by the hour they were placed, inside the period only, and tell a
// placement WeChat Pay refused from an order left unpaid.
func testHourlyOrders(t *testing.T, ctx context.Context, s PaymentStore) {
	r, ok := s.(payment.HourlyReporter)
	if !ok {
		t.Fatalf("%T does not count orders per hour", s)
	}
	if got, err := r.HourlyOrders(ctx, T0, T0.Add(24*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("empty store: HourlyOrders = %+v, %v; want none", got, err)
	}
	for i, o := range []struct {
		at      time.Duration
		status  payment.Status
		codeURL string
	}{
		{0, payment.StatusSuccess, "q"},
		{10 * time.Minute, payment.StatusNotPay, "q"},
		{59*time.Minute + 59*time.Second, payment.StatusClosed, ""}, // refused
		{2 * time.Hour, payment.StatusRefund, "q"},
		{2*time.Hour + time.Minute, payment.StatusClosed, "q"}, // expired unpaid
		{2*time.Hour + 2*time.Minute, payment.StatusPayError, "q"},
		{-time.Microsecond, payment.StatusSuccess, "q"}, // before the period
		{3 * time.Hour, payment.StatusSuccess, "q"},     // at its end: outside
	} {
		no := "tg20261127HR" + string(rune('A'+i)) + "00000"
		ord := SampleOrder(no, "alice", T0.Add(o.at))
		mustCreate(t, ctx, s, ord, nil)
		if _, err := s.UpdateOrder(ctx, no, func(x *payment.Order) error {
			x.Status, x.CodeURL = o.status, o.codeURL
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.HourlyOrders(ctx, T0, T0.Add(3*time.Hour))
	want := []payment.OrderHour{
		{Hour: T0, Placed: 3, Paid: 1, Failed: 1, Refused: 1},
		{Hour: T0.Add(2 * time.Hour), Placed: 3, Paid: 1, Failed: 2},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("HourlyOrders = %+v, %v\nwant %+v", got, err, want)
	}
	for _, p := range [][2]time.Time{
		{T0, T0.Add(8 * 24 * time.Hour)},         // over a week
		{T0.Add(time.Minute), T0.Add(time.Hour)}, // not on an hour
		{T0, T0},                                 // empty
	} {
		if _, err := r.HourlyOrders(ctx, p[0], p[1]); tollgate.ErrorCode(err) != tollgate.EINVALID {
			t.Errorf("HourlyOrders(%v, %v) = %v; want EINVALID", p[0], p[1], err)
		}
	}
}
