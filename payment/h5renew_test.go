package payment_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// h5Page opens an h5_url as the payer's browser and returns the status and
// page.
func h5Page(t *testing.T, w *world, method, h5URL string) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = w.v3.HTTPClient.Post(h5URL, "application/x-www-form-urlencoded", nil)
	} else {
		resp, err = w.v3.HTTPClient.Get(h5URL)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestH5URLRenewed: WeChat Pay's h5_url is valid 5 minutes. A replay with
// the order's Idempotency-Key (the checkout's "continue paying") answers
// the stored h5_url while it is younger than 4 minutes; from then on it
// places the same order again at WeChat Pay (same out_trade_no, the client
// IP it was made with) and answers, and stores, the fresh h5_url, which
// pays. A paid order is not placed again.
func TestH5URLRenewed(t *testing.T) {
	t.Parallel()
	forEachBackendV3(t, func(t *testing.T, w *world) {
		w.mustAccount("alice")
		req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k-h5", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodH5, ClientIP: "203.0.113.9"}
		first, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if o := w.order(first.OutTradeNo); !o.H5IssuedAt.Equal(w.clock.Now()) {
			t.Fatalf("h5_url issued at %v, want %v", o.H5IssuedAt, w.clock.Now())
		}
		placements := func() int { return w.sim.Stats().Calls["order"] }

		w.clock.Advance(payment.H5URLRenewAfter - time.Second)
		again, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || !again.Replayed || again.H5URL != first.H5URL || placements() != 1 {
			t.Fatalf("replay at 3m59s = %+v, %v, %d placements; want the same h5_url, 1 placement", again, err, placements())
		}

		// At 4 minutes, from another network (the client IP is not part
		// of the request's identity): placed again with the order's IP.
		w.clock.Advance(time.Second)
		moved := req
		moved.ClientIP = "198.51.100.20"
		renewed, err := w.svc.CreateOrder(w.ctx, moved)
		if err != nil || !renewed.Replayed || renewed.OutTradeNo != first.OutTradeNo || renewed.H5URL == "" ||
			renewed.H5URL == first.H5URL || renewed.AccessToken == nil || renewed.AccessToken.Token != first.AccessToken.Token {
			t.Fatalf("replay at 4m = %+v, %v; want a fresh h5_url for the same order\nfirst %+v", renewed, err, first)
		}
		if n := placements(); n != 2 {
			t.Fatalf("%d placements, want 2", n)
		}
		so, _ := w.sim.Order(first.OutTradeNo)
		if len(w.sim.Orders()) != 1 || so.PayerClientIP != "203.0.113.9" || so.State != wxpaysim.StateNotPay {
			t.Fatalf("WeChat Pay has %d orders, this one %+v", len(w.sim.Orders()), so)
		}
		if o := w.order(first.OutTradeNo); o.H5URL != renewed.H5URL || !o.H5IssuedAt.Equal(w.clock.Now()) {
			t.Fatalf("stored h5_url %q issued %v, want %q issued %v", o.H5URL, o.H5IssuedAt, renewed.H5URL, w.clock.Now())
		}
		// Reads answer the stored, fresh one.
		if got, err := w.svc.GetOrder(w.ctx, "alice", first.OutTradeNo); err != nil || got.H5URL != renewed.H5URL {
			t.Fatalf("GetOrder = %+v, %v", got, err)
		}

		// A minute later the first h5_url has expired; the fresh one pays.
		w.clock.Advance(time.Minute)
		if st, page := h5Page(t, w, http.MethodGet, first.H5URL); st != http.StatusGone || !strings.Contains(page, "expired") {
			t.Fatalf("the first h5_url at 5m: %d\n%s", st, page)
		}
		if st, page := h5Page(t, w, http.MethodGet, renewed.H5URL); st != http.StatusOK || !strings.Contains(page, `id="pay"`) {
			t.Fatalf("the renewed h5_url at 5m: %d\n%s", st, page)
		}
		if st, page := h5Page(t, w, http.MethodPost, renewed.H5URL); st != http.StatusOK || !strings.Contains(page, "SUCCESS") {
			t.Fatalf("paying through the renewed h5_url: %d\n%s", st, page)
		}
		w.waitStatus(first.OutTradeNo, payment.StatusSuccess)

		w.clock.Advance(payment.H5URLRenewAfter)
		paid, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || paid.Status != payment.StatusSuccess || placements() != 2 {
			t.Fatalf("replay of the paid order = %+v, %v, %d placements; want no placement", paid, err, placements())
		}
		w.quiesce()
	})
}

// flakyRenewal is the gateway whose H5 placements after the first fail
// with err.
type flakyRenewal struct {
	payment.Gateway
	h5  int
	err error
}

func (g *flakyRenewal) PlaceOrder(ctx context.Context, r payment.PlaceRequest) (payment.Placement, error) {
	if r.Method == payment.MethodH5 {
		if g.h5++; g.h5 > 1 {
			return payment.Placement{}, g.err
		}
	}
	return g.Gateway.PlaceOrder(ctx, r)
}

// TestH5URLRenewalFails: when WeChat Pay does not answer the renewal the
// replay says to retry; when it refuses (the payer paid, or the order
// closed, meanwhile) the order is not closed here: it is answered without
// the expired h5_url and polled at once. An order past its expiry is not
// placed again.
func TestH5URLRenewalFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"unanswered", &wxpay.TransportError{Op: "v3 h5 order", Err: io.ErrUnexpectedEOF}, tollgate.EUNAVAILABLE},
		{"refused", fmt.Errorf("h5 order: %w", payment.ErrOrderPaid), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw := &flakyRenewal{err: tc.err}
			w := newWorld(t, backends[0], v3Mode, func(c *payment.Config, d *payment.Deps) {
				c.PlaceAttempts = 1
				gw.Gateway = &payment.V3Gateway{Client: d.V3}
				d.Gateway = gw
			})
			w.mustAccount("alice")
			req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k-h5", PackageID: "starter",
				DeviceFingerprint: fp, Method: payment.MethodH5, ClientIP: "203.0.113.9"}
			first, err := w.svc.CreateOrder(w.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			w.clock.Advance(payment.H5URLRenewAfter)
			res, err := w.svc.CreateOrder(w.ctx, req)
			o := w.order(first.OutTradeNo)
			if o.Status != payment.StatusNotPay || o.H5URL != first.H5URL {
				t.Fatalf("after a failed renewal the order is %+v", o)
			}
			if tc.code != "" {
				if tollgate.ErrorCode(err) != tc.code || !strings.Contains(tollgate.ErrorMessage(err), "retry with the same Idempotency-Key") {
					t.Fatalf("replay = %+v, %v; want %s", res, err, tc.code)
				}
			} else if err != nil || res.H5URL != "" || res.Status != payment.StatusNotPay || o.NextPollAt.After(w.clock.Now()) {
				t.Fatalf("replay = %+v, %v; next poll %v; want no h5_url and a poll now", res, err, o.NextPollAt)
			}
			w.quiesce()
		})
	}
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, backends[0], v3Mode, nil)
		w.mustAccount("alice")
		req := payment.CreateOrderRequest{Account: "alice", IdempotencyKey: "k-h5", PackageID: "starter",
			DeviceFingerprint: fp, Method: payment.MethodH5, ClientIP: "203.0.113.9"}
		first, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		w.clock.Set(first.ExpiresAt) // the poller has not closed it yet
		res, err := w.svc.CreateOrder(w.ctx, req)
		if err != nil || res.H5URL != first.H5URL || w.sim.Stats().Calls["order"] != 1 {
			t.Fatalf("replay of an expired order = %+v, %v; want no placement", res, err)
		}
		w.quiesce()
	})
}
