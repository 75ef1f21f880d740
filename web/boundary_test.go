package web_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"tollgate/web"
)

// TestCheckoutLinkBoundaries: a checkout link ends at its expiry to the
// microsecond. Until 1µs before, its pages open, it creates orders and
// refunds paid ones; from the expiry on, pages answer 410 and creating or
// refunding is refused (401 session_expired) with nothing created. Reading
// the orders it made — unpaid, paid, failed — still works until 1µs before
// expiry + ReadGrace and not from then on. An order's own expiry shows the
// same way: not expired 1µs before it, expired at it.
func TestCheckoutLinkBoundaries(t *testing.T) {
	f := MustFixture(t)
	start := f.clk.Now()
	link := f.token()
	exp := start.Add(30 * time.Minute)
	orders := map[string]string{}
	for _, name := range []string{"unpaid", "paidA", "paidB", "failed"} {
		orders[name] = f.createOrder(t, "starter", "key-"+name+"-00000001")["out_trade_no"].(string)
	}
	for name, act := range map[string]func(string) error{"paidA": f.flow.Pay, "paidB": f.flow.Pay, "failed": f.flow.Fail} {
		if err := act(orders[name]); err != nil {
			t.Fatal(err)
		}
	}
	base := "/checkout/" + link
	create := func(key string) int {
		return f.do("POST", base+"/orders", `{"package_id":"starter","device_fingerprint":"`+fp+`"}`, "Idempotency-Key", key).Status
	}
	refund := func(name string) resp { return f.do("POST", base+"/orders/"+orders[name]+"/refund", "{}") }
	read := func(when, name string, want int) map[string]any {
		t.Helper()
		r := f.do("GET", base+"/orders/"+orders[name], "")
		if r.Status != want || (want != http.StatusOK && r.code(t) != "session_expired") {
			t.Fatalf("reading the %s order %s: %d %s, want %d", name, when, r.Status, r.Body, want)
		}
		if want != http.StatusOK {
			return nil
		}
		var m map[string]any
		r.json(t, &m)
		return m
	}
	wantStatus := func(when string, m map[string]any, status string, expired bool) {
		t.Helper()
		_, qr := m["qr_url"]
		if m["status"] != status || m["expired"] != expired || qr != (status == web.StatusNotPay) {
			t.Fatalf("order %s: %v; want status %s, expired %v", when, m, status, expired)
		}
	}

	f.clk.Set(exp.Add(-time.Microsecond))
	when := "1µs before the link's expiry"
	for _, p := range []string{"/checkout/" + link, "/account/" + link} {
		if r := f.do("GET", p, ""); r.Status != http.StatusOK {
			t.Fatalf("%s %s: %d", p, when, r.Status)
		}
	}
	if st := create("key-edge-00000001"); st != http.StatusCreated {
		t.Fatalf("creating an order %s: %d", when, st)
	}
	if r := refund("paidA"); r.Status != http.StatusOK {
		t.Fatalf("refund %s: %d %s", when, r.Status, r.Body)
	}
	wantStatus(when, read(when, "unpaid", http.StatusOK), web.StatusNotPay, false)
	wantStatus(when, read(when, "paidB", http.StatusOK), web.StatusSuccess, false)
	wantStatus(when, read(when, "failed", http.StatusOK), web.StatusPayError, false)

	for _, d := range []time.Duration{0, time.Microsecond} {
		f.clk.Set(exp.Add(d))
		when := fmt.Sprintf("%v after the link's expiry", d)
		for _, p := range []string{"/checkout/" + link, "/account/" + link} {
			if r := f.do("GET", p, ""); r.Status != http.StatusGone {
				t.Fatalf("%s %s: %d, want 410", p, when, r.Status)
			}
		}
		n := f.orderCount(t)
		if st := create(fmt.Sprintf("key-late-%08d", d)); st != http.StatusUnauthorized || f.orderCount(t) != n {
			t.Fatalf("creating an order %s: %d, %d orders (was %d)", when, st, f.orderCount(t), n)
		}
		if r := refund("paidB"); r.Status != http.StatusUnauthorized || r.code(t) != "session_expired" {
			t.Fatalf("refund %s: %d %s", when, r.Status, r.Body)
		}
		// The unpaid order expired with the link (both 30 minutes).
		wantStatus(when, read(when, "unpaid", http.StatusOK), web.StatusClosed, true)
		if m := read(when, "paidB", http.StatusOK); m["status"] != web.StatusSuccess || m["balance"] == nil {
			t.Fatalf("paid order %s: %v", when, m)
		}
	}

	f.clk.Set(exp.Add(web.ReadGrace - time.Microsecond))
	when = "1µs before the end of the read grace"
	read(when, "paidB", http.StatusOK)
	read(when, "failed", http.StatusOK)
	for _, d := range []time.Duration{0, time.Microsecond} {
		f.clk.Set(exp.Add(web.ReadGrace + d))
		when := fmt.Sprintf("%v after the end of the read grace", d)
		for _, name := range []string{"unpaid", "paidB", "failed"} {
			read(when, name, http.StatusUnauthorized)
		}
	}
}
