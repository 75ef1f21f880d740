package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/payment"
)

// PaymentStore is a store that holds both the ledger and the payment
// package's orders (both adapters implement both).
type PaymentStore interface {
	ledger.Store
	payment.Store
}

// OpenPaymentFunc returns a fresh, empty, migrated store. The suite closes it.
type OpenPaymentFunc func(t testing.TB) PaymentStore

// RunPayments is the conformance suite of payment.Store: every subtest on a
// fresh store.
func RunPayments(t *testing.T, open OpenPaymentFunc) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s PaymentStore)
	}{
		{"OrderRoundTrip", testOrderRoundTrip},
		{"OrderMethods", testOrderMethods},
		{"IdempotencyKey", testIdempotencyKey},
		{"IdempotencyKeyConcurrent", testIdempotencyKeyConcurrent},
		{"OrderTransitions", testOrderTransitions},
		{"ListOrders", testListOrders},
		{"LeaseDueOrders", testLeaseDueOrders},
		{"LeaseDueOrdersConcurrent", testLeaseDueOrdersConcurrent},
		{"Refunds", testPaymentRefunds},
		{"PaymentTotals", testPaymentTotals},
		{"PaymentTotalsRandom", testPaymentTotalsRandom},
		{"Pages", testPaymentPages},
		{"HourlyOrders", testHourlyOrders},
		{"WriteOrdersBadItem", testWriteOrdersBadItem},
		{"WriteOrdersDurability", testWriteOrdersDurability},
		{"WriteOrdersConcurrent", testWriteOrdersConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, context.Background(), s)
		})
	}
}

// T0 is the payment suite's reference time (microsecond precision, as stored).
var T0 = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

// SampleOrder returns a pending native order with every field of its
// method set.
func SampleOrder(no string, account tollgate.AccountID, created time.Time) payment.Order {
	return payment.Order{OutTradeNo: no, Account: account, Fen: 5000, Credits: 1_000_000, PackageID: "p50",
		APIVersion: payment.APIv2, SignType: "HMAC-SHA256", Status: payment.StatusNotPay,
		Method: payment.MethodNative, CodeURL: "weixin://wxpay/bizpayurl?pr=" + no,
		DeviceFingerprint: "fp0123456789abcdef", ClientIP: "203.0.113.7", TokenHash: "hash-" + no,
		TokenExpiresAt: created.Add(5 * time.Minute), GrantCap: 20000, ExpiresAt: created.Add(30 * time.Minute),
		CreatedAt: created, UpdatedAt: created, NextPollAt: created.Add(5 * time.Second)}
}

func mustCreate(t *testing.T, ctx context.Context, s PaymentStore, o payment.Order, k *payment.IdempotencyKey) {
	t.Helper()
	if _, created, err := s.CreateOrder(ctx, o, k); err != nil || !created {
		t.Fatalf("CreateOrder(%s) = created %v, %v", o.OutTradeNo, created, err)
	}
}

func testOrderRoundTrip(t *testing.T, ctx context.Context, s PaymentStore) {
	o := SampleOrder("tg20261127RT000001", "alice", T0.Add(123456*time.Microsecond))
	o.Review, o.PollAttempts, o.LeaseOwner, o.LeaseUntil, o.FeeFen = "r", 3, "x", T0.Add(time.Minute), 17
	o.Metadata = json.RawMessage(`{"cart":"c-9","user":{"tier":"pro"}}`)
	mustCreate(t, ctx, s, o, nil)
	got, err := s.Order(ctx, o.OutTradeNo)
	if err != nil || !sameOrder(got, o) {
		t.Fatalf("Order = %+v, %v\nwant %+v", got, err, o)
	}
	if got, err := s.OrderByTokenHash(ctx, o.TokenHash); err != nil || !sameOrder(got, o) {
		t.Fatalf("OrderByTokenHash = %+v, %v", got, err)
	}
	_, err = s.Order(ctx, "nosuchorder")
	WantCode(t, err, tollgate.ENOTFOUND)
	_, err = s.OrderByTokenHash(ctx, "")
	WantCode(t, err, tollgate.ENOTFOUND)
	_, _, err = s.CreateOrder(ctx, o, nil)
	WantCode(t, err, tollgate.ECONFLICT)
	// An update never loses the metadata written when the order was made.
	got, err = s.UpdateOrder(ctx, o.OutTradeNo, func(x *payment.Order) error { x.Review = "r2"; return nil })
	if err != nil || string(got.Metadata) != string(o.Metadata) {
		t.Fatalf("UpdateOrder = %+v, %v", got, err)
	}
	if got, err = s.Order(ctx, o.OutTradeNo); err != nil || string(got.Metadata) != string(o.Metadata) || got.Review != "r2" {
		t.Fatalf("Order after update = %+v, %v", got, err)
	}
}

// sameOrder compares orders field by field (Metadata is a slice).
func sameOrder(a, b payment.Order) bool { return reflect.DeepEqual(a, b) }

// testOrderMethods: an h5 and a jsapi order keep their method, the payer's
// openid and what WeChat Pay gave (h5_url, prepay_id) through every read:
// Order, OrderByTokenHash, ListOrders, LeaseDueOrders, and UpdateOrder,
// which also records them once the order is placed.
func testOrderMethods(t *testing.T, ctx context.Context, s PaymentStore) {
	h5 := SampleOrder("tg20261127MH000001", "alice", T0)
	h5.APIVersion, h5.SignType, h5.Method, h5.CodeURL, h5.TokenHash = payment.APIv3, "", payment.MethodH5, "", "th5"
	js := SampleOrder("tg20261127MJ000001", "alice", T0.Add(time.Second))
	js.APIVersion, js.SignType, js.Method, js.CodeURL, js.TokenHash = payment.APIv3, "", payment.MethodJSAPI, "", "tjs"
	js.OpenID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	for _, o := range []payment.Order{h5, js} {
		mustCreate(t, ctx, s, o, nil)
		if got, err := s.Order(ctx, o.OutTradeNo); err != nil || !sameOrder(got, o) || got.Placed() {
			t.Fatalf("before placing: Order = %+v, %v\nwant %+v", got, err, o)
		}
	}
	var err error
	h5.H5URL = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016&package=1037687096"
	h5.H5IssuedAt = T0.Add(1234567 * time.Microsecond)
	js.PrepayID = "wx201410272009395522657a690389285100"
	for _, o := range []payment.Order{h5, js} {
		got, err := s.UpdateOrder(ctx, o.OutTradeNo, func(x *payment.Order) error {
			x.H5URL, x.H5IssuedAt, x.PrepayID = o.H5URL, o.H5IssuedAt, o.PrepayID
			return nil
		})
		if err != nil || !sameOrder(got, o) || !got.Placed() {
			t.Fatalf("UpdateOrder = %+v, %v\nwant %+v", got, err, o)
		}
		if got, err := s.Order(ctx, o.OutTradeNo); err != nil || !sameOrder(got, o) {
			t.Fatalf("Order = %+v, %v\nwant %+v", got, err, o)
		}
		if got, err := s.OrderByTokenHash(ctx, o.TokenHash); err != nil || !sameOrder(got, o) {
			t.Fatalf("OrderByTokenHash = %+v, %v\nwant %+v", got, err, o)
		}
	}
	listed, err := s.ListOrders(ctx, "alice", 10)
	if err != nil || len(listed) != 2 || !sameOrder(listed[0], js) || !sameOrder(listed[1], h5) {
		t.Fatalf("ListOrders = %+v, %v", listed, err)
	}
	now := T0.Add(time.Minute)
	leased, err := s.LeaseDueOrders(ctx, "a", now, now.Add(time.Minute), 10)
	if err != nil || len(leased) != 2 {
		t.Fatalf("LeaseDueOrders = %+v, %v", leased, err)
	}
	for _, o := range leased {
		want := h5
		if o.OutTradeNo == js.OutTradeNo {
			want = js
		}
		want.LeaseOwner, want.LeaseUntil = "a", now.Add(time.Minute)
		if !sameOrder(o, want) {
			t.Fatalf("leased %+v\nwant %+v", o, want)
		}
	}
	// An order built without a method is a native one (payment.Order.
	// PayMethod): stored as "native", not refused by the method CHECK.
	plain := SampleOrder("tg20261127ME000001", "alice", T0)
	plain.Method, plain.TokenHash = "", "tplain"
	mustCreate(t, ctx, s, plain, nil)
	if got, err := s.Order(ctx, plain.OutTradeNo); err != nil || got.Method != payment.MethodNative {
		t.Fatalf("order without a method: Order = %+v, %v; want method native", got, err)
	}
	if _, err := s.UpdateOrder(ctx, plain.OutTradeNo, func(x *payment.Order) error { x.Method = ""; return nil }); err != nil {
		t.Fatalf("UpdateOrder clearing the method: %v", err)
	}
	if got, err := s.Order(ctx, plain.OutTradeNo); err != nil || got.Method != payment.MethodNative {
		t.Fatalf("after UpdateOrder clearing the method: Order = %+v, %v; want method native", got, err)
	}
	// A method the store does not know is refused, and nothing is written.
	bad := SampleOrder("tg20261127MB000001", "alice", T0)
	bad.Method, bad.TokenHash = "alipay", "tbad"
	if _, _, err := s.CreateOrder(ctx, bad, nil); err == nil {
		t.Fatal("CreateOrder stored method alipay")
	}
	_, err = s.Order(ctx, bad.OutTradeNo)
	WantCode(t, err, tollgate.ENOTFOUND)
}

func testIdempotencyKey(t *testing.T, ctx context.Context, s PaymentStore) {
	o := SampleOrder("tg20261127IK000001", "alice", T0)
	k := &payment.IdempotencyKey{Account: "alice", Key: "k1", RequestHash: "h1", OutTradeNo: o.OutTradeNo,
		CreatedAt: T0, ExpiresAt: T0.Add(payment.IdempotencyTTL)}
	mustCreate(t, ctx, s, o, k)
	got, err := s.IdempotencyKey(ctx, "alice", "k1", T0.Add(time.Hour))
	if err != nil || got != *k {
		t.Fatalf("IdempotencyKey = %+v, %v", got, err)
	}
	// The same key again: nothing written, the stored key returned.
	o2 := SampleOrder("tg20261127IK000002", "alice", T0)
	o2.TokenHash = "other"
	k2 := *k
	k2.OutTradeNo, k2.RequestHash = o2.OutTradeNo, "h2"
	stored, created, err := s.CreateOrder(ctx, o2, &k2)
	if err != nil || created || stored != *k {
		t.Fatalf("CreateOrder with a used key = %+v, %v, %v", stored, created, err)
	}
	_, err = s.Order(ctx, o2.OutTradeNo)
	WantCode(t, err, tollgate.ENOTFOUND)
	// Keys are per account.
	_, err = s.IdempotencyKey(ctx, "bob", "k1", T0)
	WantCode(t, err, tollgate.ENOTFOUND)
	// Expired keys are not found, are deleted, and may be reused.
	later := T0.Add(payment.IdempotencyTTL)
	_, err = s.IdempotencyKey(ctx, "alice", "k1", later)
	WantCode(t, err, tollgate.ENOTFOUND)
	k3 := *k
	k3.OutTradeNo, k3.CreatedAt, k3.ExpiresAt = o2.OutTradeNo, later, later.Add(payment.IdempotencyTTL)
	if _, created, err := s.CreateOrder(ctx, o2, &k3); err != nil || !created {
		t.Fatalf("CreateOrder reusing an expired key: %v, %v", created, err)
	}
	if n, err := s.DeleteExpiredKeys(ctx, later.Add(payment.IdempotencyTTL)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredKeys = %d, %v", n, err)
	}
}

func testIdempotencyKeyConcurrent(t *testing.T, ctx context.Context, s PaymentStore) {
	const n = 8
	var wg sync.WaitGroup
	results := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := SampleOrder(fmt.Sprintf("tg20261127CC%06d", i), "alice", T0)
			o.TokenHash = o.OutTradeNo
			k := &payment.IdempotencyKey{Account: "alice", Key: "same", RequestHash: "h", OutTradeNo: o.OutTradeNo,
				CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
			_, results[i], errs[i] = s.CreateOrder(ctx, o, k)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateOrder %d: %v", i, errs[i])
		}
		if results[i] {
			created++
		}
	}
	os, err := s.ListOrders(ctx, "alice", 100)
	if created != 1 || err != nil || len(os) != 1 {
		t.Fatalf("%d created, %d orders (%v); want exactly one", created, len(os), err)
	}
}

func testOrderTransitions(t *testing.T, ctx context.Context, s PaymentStore) {
	o := SampleOrder("tg20261127TR000001", "alice", T0)
	mustCreate(t, ctx, s, o, nil)
	// Orders change through payment.UpdateOrder, which applies the state
	// machine around the store's plain read-modify-write.
	set := func(st payment.Status) (payment.Order, error) {
		return payment.UpdateOrder(ctx, s, o.OutTradeNo, func(x *payment.Order) error { x.Status = st; return nil })
	}
	for _, st := range []payment.Status{payment.StatusUserPaying, payment.StatusClosed, payment.StatusSuccess, payment.StatusRefund} {
		if got, err := set(st); err != nil || got.Status != st {
			t.Fatalf("-> %s: %+v, %v", st, got.Status, err)
		}
	}
	for _, st := range []payment.Status{payment.StatusSuccess, payment.StatusNotPay, payment.StatusClosed, "BOGUS"} {
		_, err := set(st)
		if err == nil {
			t.Fatalf("REFUND -> %s allowed", st)
		}
	}
	if got, _ := s.Order(ctx, o.OutTradeNo); got.Status != payment.StatusRefund {
		t.Fatalf("status after refused transitions = %s", got.Status)
	}
	// An error from fn writes nothing.
	_, err := s.UpdateOrder(ctx, o.OutTradeNo, func(x *payment.Order) error {
		x.Review = "changed"
		return &tollgate.Error{Code: tollgate.EINVALID}
	})
	WantCode(t, err, tollgate.EINVALID)
	if got, _ := s.Order(ctx, o.OutTradeNo); got.Review != "" {
		t.Fatal("UpdateOrder wrote despite fn's error")
	}
	_, err = s.UpdateOrder(ctx, "nosuchorder", func(*payment.Order) error { return nil })
	WantCode(t, err, tollgate.ENOTFOUND)
	// SUCCESS is never undone, whatever the route.
	p := SampleOrder("tg20261127TR000002", "alice", T0)
	p.TokenHash = "t2"
	mustCreate(t, ctx, s, p, nil)
	if _, err := payment.UpdateOrder(ctx, s, p.OutTradeNo, func(x *payment.Order) error { x.Status = payment.StatusSuccess; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, st := range []payment.Status{payment.StatusNotPay, payment.StatusUserPaying, payment.StatusClosed, payment.StatusPayError} {
		_, err := payment.UpdateOrder(ctx, s, p.OutTradeNo, func(x *payment.Order) error {
			x.Status, x.Review = st, "undone"
			return nil
		})
		WantCode(t, err, tollgate.ECONFLICT)
	}
	if got, _ := s.Order(ctx, p.OutTradeNo); got.Status != payment.StatusSuccess || got.Review != "" {
		t.Fatalf("a refused transition wrote: %s %q", got.Status, got.Review)
	}
}

func testListOrders(t *testing.T, ctx context.Context, s PaymentStore) {
	for i := range 5 {
		o := SampleOrder(fmt.Sprintf("tg20261127LS%06d", i), "alice", T0.Add(time.Duration(i)*time.Second))
		o.TokenHash = o.OutTradeNo
		mustCreate(t, ctx, s, o, nil)
	}
	b := SampleOrder("tg20261127LSBOB001", "bob", T0)
	b.TokenHash = "bob"
	mustCreate(t, ctx, s, b, nil)
	os, err := s.ListOrders(ctx, "alice", 3)
	if err != nil || len(os) != 3 || os[0].OutTradeNo != "tg20261127LS000004" || os[2].OutTradeNo != "tg20261127LS000002" {
		t.Fatalf("ListOrders = %d orders, %v", len(os), err)
	}
	// OrdersByNo: one IN query, by out_trade_no, unknown numbers left out.
	os, err = s.OrdersByNo(ctx, []string{"tg20261127LS000003", "tg20261127NOSUCH01", "tg20261127LSBOB001", "tg20261127LS000000"})
	var nos []string
	for _, o := range os {
		nos = append(nos, o.OutTradeNo+"/"+string(o.Account))
	}
	if err != nil || fmt.Sprint(nos) != "[tg20261127LS000000/alice tg20261127LS000003/alice tg20261127LSBOB001/bob]" {
		t.Fatalf("OrdersByNo = %v, %v", nos, err)
	}
	if os, err := s.OrdersByNo(ctx, nil); err != nil || len(os) != 0 {
		t.Fatalf("OrdersByNo(nil) = %v, %v", os, err)
	}
}

func testLeaseDueOrders(t *testing.T, ctx context.Context, s PaymentStore) {
	due := SampleOrder("tg20261127LD000001", "alice", T0)
	later := SampleOrder("tg20261127LD000002", "alice", T0)
	later.TokenHash, later.NextPollAt = "l2", T0.Add(time.Hour)
	paid := SampleOrder("tg20261127LD000003", "alice", T0)
	paid.TokenHash = "l3"
	for _, o := range []payment.Order{due, later, paid} {
		mustCreate(t, ctx, s, o, nil)
	}
	if _, err := s.UpdateOrder(ctx, paid.OutTradeNo, func(x *payment.Order) error { x.Status = payment.StatusSuccess; return nil }); err != nil {
		t.Fatal(err)
	}
	now := T0.Add(time.Minute)
	got, err := s.LeaseDueOrders(ctx, "a", now, now.Add(30*time.Second), 10)
	if err != nil || len(got) != 1 || got[0].OutTradeNo != due.OutTradeNo || got[0].LeaseOwner != "a" || !got[0].LeaseUntil.Equal(now.Add(30*time.Second)) {
		t.Fatalf("LeaseDueOrders = %+v, %v", got, err)
	}
	if got, err := s.LeaseDueOrders(ctx, "b", now.Add(29*time.Second), now.Add(time.Minute), 10); err != nil || len(got) != 0 {
		t.Fatalf("leased while another lease lives: %d, %v", len(got), err)
	}
	if got, err := s.LeaseDueOrders(ctx, "b", now.Add(30*time.Second), now.Add(time.Minute), 10); err != nil || len(got) != 1 || got[0].LeaseOwner != "b" {
		t.Fatalf("expired lease not re-leased: %+v, %v", got, err)
	}
}

func testLeaseDueOrdersConcurrent(t *testing.T, ctx context.Context, s PaymentStore) {
	const orders, workers = 40, 4
	for i := range orders {
		o := SampleOrder(fmt.Sprintf("tg20261127LC%06d", i), "alice", T0)
		o.TokenHash = o.OutTradeNo
		mustCreate(t, ctx, s, o, nil)
	}
	now := T0.Add(time.Minute)
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				got, err := s.LeaseDueOrders(ctx, owner, now, now.Add(time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, o := range got {
					if prev, ok := seen[o.OutTradeNo]; ok {
						t.Errorf("%s leased by %s and %s", o.OutTradeNo, prev, owner)
					}
					seen[o.OutTradeNo] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != orders {
		t.Fatalf("%d of %d orders leased", len(seen), orders)
	}
}

func testPaymentRefunds(t *testing.T, ctx context.Context, s PaymentStore) {
	o := SampleOrder("tg20261127RF000001", "alice", T0)
	mustCreate(t, ctx, s, o, nil)
	r := payment.RefundRecord{OutRefundNo: o.OutTradeNo + "R1", OutTradeNo: o.OutTradeNo, Account: "alice", Fen: 2500,
		Credits: 500_000, Status: payment.RefundPending, CreatedAt: T0, UpdatedAt: T0, NextPollAt: T0.Add(5 * time.Second),
		RequestedBy: payment.RequestedByAdmin, Reason: "paid twice by mistake", AskedFen: 2500, Actor: "console:1a2b3c4d"}
	for range 2 {
		if got, err := s.CreateRefund(ctx, r); err != nil || got != r {
			t.Fatalf("CreateRefund = %+v, %v", got, err)
		}
	}
	other := SampleOrder("tg20261127RF000002", "alice", T0)
	other.TokenHash = "x"
	mustCreate(t, ctx, s, other, nil)
	bad := r
	bad.OutTradeNo = other.OutTradeNo
	_, err := s.CreateRefund(ctx, bad)
	WantCode(t, err, tollgate.ECONFLICT)
	now := T0.Add(time.Minute)
	got, err := s.LeaseDueRefunds(ctx, "a", now, now.Add(time.Minute), 10)
	if err != nil || len(got) != 1 || got[0].LeaseOwner != "a" {
		t.Fatalf("LeaseDueRefunds = %+v, %v", got, err)
	}
	if got, _ := s.LeaseDueRefunds(ctx, "b", now, now.Add(time.Minute), 10); len(got) != 0 {
		t.Fatal("refund leased twice")
	}
	done, err := payment.UpdateRefund(ctx, s, r.OutRefundNo, func(x *payment.RefundRecord) error { x.Status = payment.RefundSucceeded; return nil })
	if err != nil || done.Status != payment.RefundSucceeded {
		t.Fatalf("UpdateRefund = %+v, %v", done, err)
	}
	_, err = payment.UpdateRefund(ctx, s, r.OutRefundNo, func(x *payment.RefundRecord) error { x.Status = payment.RefundFailed; return nil })
	WantCode(t, err, tollgate.ECONFLICT)
	if got, _ := s.Refund(ctx, r.OutRefundNo); got.Status != payment.RefundSucceeded {
		t.Fatalf("a final refund became %s", got.Status)
	}
	r2 := r
	r2.OutRefundNo, r2.CreatedAt = o.OutTradeNo+"R2", T0.Add(time.Second)
	if _, err := s.CreateRefund(ctx, r2); err != nil {
		t.Fatal(err)
	}
	rs, err := s.RefundsByOrder(ctx, o.OutTradeNo)
	if err != nil || len(rs) != 2 || rs[0].OutRefundNo != r.OutRefundNo || rs[1].OutRefundNo != r2.OutRefundNo || rs[0].Actor != r.Actor {
		t.Fatalf("RefundsByOrder = %+v, %v", rs, err)
	}
	// An order's newest refunds, bounded (the admin order detail).
	if rs, err := s.RefundsPage(ctx, payment.RefundQuery{OutTradeNo: o.OutTradeNo, Limit: 1}); err != nil || len(rs) != 1 ||
		rs[0].OutRefundNo != r2.OutRefundNo || rs[0].Actor != r.Actor {
		t.Fatalf("RefundsPage(order, 1) = %+v, %v; want %s alone", rs, err, r2.OutRefundNo)
	}
	// The actor is bounded by the schema too (migration 0012).
	long := r
	long.OutRefundNo, long.Actor = o.OutTradeNo+"R3", strings.Repeat("a", payment.MaxActor+1)
	if _, err := s.CreateRefund(ctx, long); err == nil {
		t.Fatalf("a refund with a %d-byte actor was stored", len(long.Actor))
	}
	_, err = s.Refund(ctx, long.OutRefundNo)
	WantCode(t, err, tollgate.ENOTFOUND)
	if got, _ := s.LeaseDueRefunds(ctx, "c", T0.Add(time.Hour), T0.Add(2*time.Hour), 10); len(got) != 1 || got[0].OutRefundNo != r2.OutRefundNo {
		t.Fatalf("final refunds must not be leased: %+v", got)
	}
	_, err = s.Refund(ctx, "nosuch")
	WantCode(t, err, tollgate.ENOTFOUND)
}

// testPaymentPages: admin pages of orders and refunds follow each other
// newest first without gaps or repeats, even among rows made in the same
// microsecond and with "|" in an order number, and filter by status,
// account and time.
func testPaymentPages(t *testing.T, ctx context.Context, s PaymentStore) {
	var want []string
	for i := range 7 {
		no := fmt.Sprintf("tgPAGE%02d|x", i)
		o := SampleOrder(no, tollgate.AccountID([]string{"alice", "bob"}[i%2]), T0.Add(time.Duration(i/2)*time.Second))
		o.TokenHash = ""
		mustCreate(t, ctx, s, o, nil)
		if _, err := s.CreateRefund(ctx, payment.RefundRecord{OutRefundNo: no + "R1", OutTradeNo: no, Account: o.Account,
			Status: payment.RefundPending, CreatedAt: o.CreatedAt, UpdatedAt: o.CreatedAt, RequestedBy: payment.RequestedByAdmin, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{no}, want...)
	}
	var got, gotRefunds []string
	q, rq := payment.OrderQuery{Limit: 3}, payment.RefundQuery{Limit: 3}
	for {
		page, err := s.OrdersPage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.OutTradeNo)
		}
		if len(page) < q.Limit {
			break
		}
		q.AfterCreated, q.AfterNo = page[len(page)-1].CreatedAt, page[len(page)-1].OutTradeNo
	}
	for {
		page, err := s.RefundsPage(ctx, rq)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			gotRefunds = append(gotRefunds, r.OutTradeNo)
		}
		if len(page) < rq.Limit {
			break
		}
		rq.AfterCreated, rq.AfterNo = page[len(page)-1].CreatedAt, page[len(page)-1].OutRefundNo
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(gotRefunds) != fmt.Sprint(want) {
		t.Fatalf("pages gave orders %v and refunds %v, want %v", got, gotRefunds, want)
	}
	bob, err := s.OrdersPage(ctx, payment.OrderQuery{Account: "bob", From: T0.Add(time.Second), To: T0.Add(2 * time.Second), Limit: 10})
	if err != nil || len(bob) != 1 || bob[0].OutTradeNo != "tgPAGE03|x" {
		t.Fatalf("bob's orders in [1s, 2s): %+v, %v", bob, err)
	}
	paid, err := s.OrdersPage(ctx, payment.OrderQuery{Status: payment.StatusSuccess, Limit: 10})
	if err != nil || len(paid) != 0 {
		t.Fatalf("paid orders: %+v, %v", paid, err)
	}
	refunds, err := s.RefundsPage(ctx, payment.RefundQuery{Account: "alice", OutTradeNo: "tgPAGE02|x", Status: payment.RefundPending, Limit: 10})
	if err != nil || len(refunds) != 1 || refunds[0].RequestedBy != payment.RequestedByAdmin {
		t.Fatalf("alice's refunds of tgPAGE02|x: %+v, %v", refunds, err)
	}
}
