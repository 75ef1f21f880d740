package web_test

import (
	"strings"
	"testing"
	"time"

	"tollgate/web"
)

const refundButton = `class="btn small ghost refund"`

// paidOrder places and pays a "plus" order, returning its number.
func (f *fixture) paidOrder(t *testing.T, key string) string {
	t.Helper()
	no := f.createOrder(t, "plus", key)["out_trade_no"].(string)
	if err := f.flow.Pay(no); err != nil {
		t.Fatal(err)
	}
	return no
}

// TestAccountPageRefundByOperator: under --refund-policy admin the account
// page offers no refund button (it would only be refused) and says, in
// the visitor's language, that the operator makes refunds and how to
// reach them when a support contact is set.
func TestAccountPageRefundByOperator(t *testing.T) {
	f := MustFixture(t)
	f.h.RefundByOperator, f.h.RefundWindow = true, 7*24*time.Hour
	f.paidOrder(t, "key-0000000001")

	r := f.do("GET", "/account/"+f.token(), "", "Accept-Language", "en")
	if r.Status != 200 || strings.Contains(r.Body, refundButton) {
		t.Fatalf("admin policy shows a refund button: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(r.Body, `id="refund-note">Refunds are made by the operator of this service, not on this page.</p>`) {
		t.Fatalf("no operator note (or a contact with none set): %s", r.Body)
	}

	f.h.Branding = func() web.Branding { return web.Branding{Name: "Example AI", Support: "help@example.com"} }
	r = f.do("GET", "/account/"+f.token(), "", "Accept-Language", "zh")
	if r.Status != 200 || strings.Contains(r.Body, refundButton) || !strings.Contains(r.Body, "退款由本服务的运营方办理") || !strings.Contains(r.Body, "如需退款请联系：help@example.com") {
		t.Fatalf("zh page under admin policy with a contact: %d %s", r.Status, r.Body)
	}
	r = f.do("GET", "/account/"+f.token(), "", "Accept-Language", "en")
	if !strings.Contains(r.Body, "To ask for one: help@example.com") {
		t.Fatalf("en page does not name the contact: %s", r.Body)
	}
}

// TestAccountPageRefundWindow: under --refund-policy self the page shows
// the refund button for a paid order within the window only, and no
// operator note.
func TestAccountPageRefundWindow(t *testing.T) {
	f := MustFixture(t)
	f.h.RefundWindow = 2 * time.Hour
	old := f.paidOrder(t, "key-0000000001")
	f.clk.Advance(90 * time.Minute)
	recent := f.paidOrder(t, "key-0000000002")
	unpaid := f.createOrder(t, "plus", "key-0000000003")["out_trade_no"].(string)

	buttons := func() string {
		t.Helper()
		r := f.do("GET", "/account/"+f.token(), "", "Accept-Language", "en")
		if r.Status != 200 || strings.Contains(r.Body, `id="refund-note"`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		var got []string
		for _, no := range []string{old, recent, unpaid} {
			if strings.Contains(r.Body, refundButton+` data-order="`+no+`"`) {
				got = append(got, no)
			}
		}
		return strings.Join(got, ",")
	}
	if got := buttons(); got != old+","+recent {
		t.Fatalf("within the window, buttons for %q, want both paid orders", got)
	}
	f.clk.Advance(31 * time.Minute) // old is 2h1m old, recent 31m
	if got := buttons(); got != recent {
		t.Fatalf("after the first left the window, buttons for %q, want %s", got, recent)
	}
	f.h.RefundWindow = 0 // no window: every paid order
	if got := buttons(); got != old+","+recent {
		t.Fatalf("without a window, buttons for %q", got)
	}
}
