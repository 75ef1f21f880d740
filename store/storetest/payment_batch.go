package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/payment"
)

// testWriteOrdersBadItem: in one WriteOrders batch, each failing item
// (a taken out_trade_no, fn's error, a missing order, a statement the
// schema refuses, an item that fails after its first statement) leaves
// nothing of itself, and every good item around them is written, with
// its own result.
func testWriteOrdersBadItem(t *testing.T, ctx context.Context, s PaymentStore) {
	old := SampleOrder("tg20261127WB000001", "alice", T0)
	upd := SampleOrder("tg20261127WB000002", "alice", T0)
	upd.TokenHash = "th-upd"
	keyed := SampleOrder("tg20261127WB000003", "alice", T0)
	keyed.TokenHash = "th-keyed"
	k := &payment.IdempotencyKey{Account: "alice", Key: "k1", RequestHash: "h1", OutTradeNo: keyed.OutTradeNo,
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	mustCreate(t, ctx, s, old, nil)
	mustCreate(t, ctx, s, upd, nil)
	mustCreate(t, ctx, s, keyed, k)

	good1 := SampleOrder("tg20261127WB000010", "bob", T0)
	good1.TokenHash = "th-g1"
	good2 := SampleOrder("tg20261127WB000011", "bob", T0)
	good2.TokenHash = "th-g2"
	k2 := &payment.IdempotencyKey{Account: "bob", Key: "k2", RequestHash: "h2", OutTradeNo: good2.OutTradeNo,
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	dup := SampleOrder(old.OutTradeNo, "bob", T0) // taken
	dup.TokenHash = "th-dup"
	big := SampleOrder("tg20261127WB000012", "bob", T0)
	big.TokenHash, big.Fen = "th-big", -1 // the schema refuses it
	orphan := SampleOrder("tg20261127WB000013", "bob", T0)
	orphan.TokenHash = "th-orphan"
	// Its order inserts, then its key (naming no order) fails: the order
	// must go too.
	orphanKey := &payment.IdempotencyKey{Account: "bob", Key: "k3", RequestHash: "h3", OutTradeNo: "tgNOSUCHORDER0001",
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	lost := SampleOrder("tg20261127WB000014", "bob", T0)
	lost.TokenHash = "th-lost"
	kTaken := &payment.IdempotencyKey{Account: "alice", Key: "k1", RequestHash: "h1", OutTradeNo: lost.OutTradeNo,
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	errFn := errors.New("fn refuses")
	ws := []payment.OrderWrite{
		{Create: &good1},
		{Create: &dup},
		{OutTradeNo: upd.OutTradeNo, Fn: func(o *payment.Order) error { o.Review = "half"; return errFn }},
		{Create: &good2, Key: k2, Relaxed: true},
		{OutTradeNo: "tgNOSUCHORDER0002", Fn: func(o *payment.Order) error { return nil }},
		{Create: &big},
		{Create: &orphan, Key: orphanKey},
		{OutTradeNo: upd.OutTradeNo, Fn: func(o *payment.Order) error { o.PollAttempts = 7; return nil }},
		{OutTradeNo: upd.OutTradeNo, Fn: func(o *payment.Order) error { o.FeeFen = -5; return nil }}, // refused by the schema
		{Create: &lost, Key: kTaken},
		{OutTradeNo: old.OutTradeNo, Fn: func(o *payment.Order) error { o.Status = payment.StatusClosed; return nil }},
	}
	errs := s.WriteOrders(ctx, ws)
	if len(errs) != len(ws) {
		t.Fatalf("%d errors for %d items", len(errs), len(ws))
	}
	for _, i := range []int{0, 3, 7, 9, 10} {
		if errs[i] != nil {
			t.Errorf("item %d: %v, want written", i, errs[i])
		}
	}
	WantCode(t, errs[1], tollgate.ECONFLICT)
	if !errors.Is(errs[2], errFn) {
		t.Errorf("item 2: %v, want fn's error", errs[2])
	}
	WantCode(t, errs[4], tollgate.ENOTFOUND)
	for _, i := range []int{5, 6, 8} {
		if errs[i] == nil {
			t.Errorf("item %d: written, want refused", i)
		}
	}
	// Results.
	if !ws[0].Created || !ws[3].Created || ws[3].Stored != *k2 {
		t.Errorf("creations: %+v / %+v", ws[0], ws[3])
	}
	if ws[9].Created || ws[9].Stored.OutTradeNo != keyed.OutTradeNo {
		t.Errorf("a taken key: created %v, stored %+v; want the stored key of %s", ws[9].Created, ws[9].Stored, keyed.OutTradeNo)
	}
	if ws[7].Order.PollAttempts != 7 || ws[7].Before.PollAttempts != 0 {
		t.Errorf("update result: before %d, after %d", ws[7].Before.PollAttempts, ws[7].Order.PollAttempts)
	}
	if ws[10].Order.Status != payment.StatusClosed || ws[10].Before.Status != payment.StatusNotPay {
		t.Errorf("close result: %s -> %s", ws[10].Before.Status, ws[10].Order.Status)
	}
	// The rows.
	for _, o := range []payment.Order{good1, good2} {
		if got, err := s.Order(ctx, o.OutTradeNo); err != nil || !sameOrder(got, o) {
			t.Errorf("Order(%s) = %+v, %v", o.OutTradeNo, got, err)
		}
	}
	if got, err := s.IdempotencyKey(ctx, "bob", "k2", T0); err != nil || got != *k2 {
		t.Errorf("key k2 = %+v, %v", got, err)
	}
	for _, no := range []string{big.OutTradeNo, orphan.OutTradeNo, lost.OutTradeNo} {
		_, err := s.Order(ctx, no)
		WantCode(t, err, tollgate.ENOTFOUND)
	}
	_, err := s.IdempotencyKey(ctx, "bob", "k3", T0)
	WantCode(t, err, tollgate.ENOTFOUND)
	if got, err := s.Order(ctx, old.OutTradeNo); err != nil || got.Account != "alice" || got.Status != payment.StatusClosed {
		t.Errorf("the taken order = %+v, %v; want alice's, closed", got, err)
	}
	if got, err := s.Order(ctx, upd.OutTradeNo); err != nil || got.Review != "" || got.PollAttempts != 7 || got.FeeFen != 0 {
		t.Errorf("updated order = review %q, attempts %d, fee %d, %v; want only the good update", got.Review, got.PollAttempts, got.FeeFen, err)
	}
	if got, err := s.IdempotencyKey(ctx, "alice", "k1", T0); err != nil || got != *k {
		t.Errorf("key k1 = %+v, %v", got, err)
	}
}

// testWriteOrdersDurability: a batch commits whether its items are all
// strict, all relaxed or mixed (the store picks the commit: strict when any
// item is), and an empty batch is no error.
func testWriteOrdersDurability(t *testing.T, ctx context.Context, s PaymentStore) {
	if errs := s.WriteOrders(ctx, nil); len(errs) != 0 {
		t.Fatalf("empty batch: %v", errs)
	}
	n := 0
	order := func() *payment.Order {
		n++
		o := SampleOrder(fmt.Sprintf("tg20261127WD%06d", n), "alice", T0)
		o.TokenHash = o.OutTradeNo
		return &o
	}
	for _, relaxed := range [][]bool{{false}, {true}, {true, true}, {true, false, true}, {false, false}} {
		ws := make([]payment.OrderWrite, len(relaxed))
		for i, r := range relaxed {
			ws[i] = payment.OrderWrite{Create: order(), Relaxed: r}
		}
		if strict := payment.StrictBatch(ws); strict == !strings.Contains(fmt.Sprint(relaxed), "false") {
			t.Errorf("StrictBatch(%v) = %v", relaxed, strict)
		}
		for i, err := range s.WriteOrders(ctx, ws) {
			if err != nil || !ws[i].Created {
				t.Fatalf("%v: item %d: created %v, %v", relaxed, i, ws[i].Created, err)
			}
			if _, err := s.Order(ctx, ws[i].Create.OutTradeNo); err != nil {
				t.Fatalf("%v: item %d not readable: %v", relaxed, i, err)
			}
		}
		// The connection's durability is back for the next plain write.
		if _, err := s.UpdateOrder(ctx, ws[0].Create.OutTradeNo, func(o *payment.Order) error { o.Review = "x"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// testWriteOrdersConcurrent: concurrent batches updating the same orders in
// different orders (a committer per caller on PostgreSQL) all commit, none
// lost, none deadlocked.
func testWriteOrdersConcurrent(t *testing.T, ctx context.Context, s PaymentStore) {
	const orders, callers, rounds = 4, 8, 5
	nos := make([]string, orders)
	for i := range nos {
		o := SampleOrder(fmt.Sprintf("tg20261127WC%06d", i), "alice", T0)
		o.TokenHash = o.OutTradeNo
		mustCreate(t, ctx, s, o, nil)
		nos[i] = o.OutTradeNo
	}
	var wg sync.WaitGroup
	fails := make(chan error, callers*rounds*orders)
	for c := range callers {
		wg.Go(func() {
			for r := range rounds {
				ws := make([]payment.OrderWrite, 0, orders+1)
				for i := range orders {
					no := nos[(i+c)%orders] // a different order per caller
					if c%2 == 1 {
						no = nos[orders-1-(i+c)%orders]
					}
					ws = append(ws, payment.OrderWrite{OutTradeNo: no, Relaxed: r%2 == 0,
						Fn: func(o *payment.Order) error { o.PollAttempts++; return nil }})
				}
				o := SampleOrder(fmt.Sprintf("tg20261127WN%03d%03d", c, r), "bob", T0)
				o.TokenHash = o.OutTradeNo
				ws = append(ws, payment.OrderWrite{Create: &o})
				for _, err := range s.WriteOrders(ctx, ws) {
					if err != nil {
						fails <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(fails)
	for err := range fails {
		t.Error(err)
	}
	for _, no := range nos {
		if got, err := s.Order(ctx, no); err != nil || got.PollAttempts != callers*rounds {
			t.Errorf("%s: %d updates, %v; want %d", no, got.PollAttempts, err, callers*rounds)
		}
	}
	if os, err := s.ListOrders(ctx, "bob", 100); err != nil || len(os) != callers*rounds {
		t.Errorf("%d orders created, %v; want %d", len(os), err, callers*rounds)
	}
}
