package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/internal/clocktest"
	"tollgate/ledger"
	"tollgate/payment"
)

// UpgradeStore is what an upgrade test fills and reads back: the ledger,
// payment orders and refunds, API keys.
type UpgradeStore interface {
	ledger.Store
	payment.Store
	auth.Store
}

// UpgradeFixture names what FillUpgrade wrote.
type UpgradeFixture struct {
	Accounts []tollgate.AccountID
	Orders   []string // out_trade_no
	Refunds  []string // out_refund_no of payment refund records
}

// UpgradeSnapshot is every row FillUpgrade wrote, read through the store.
type UpgradeSnapshot struct {
	Dump     *ledger.Dump
	Balances []ledger.Balance
	Keys     [][]auth.Key
	Orders   []payment.Order
	Refunds  []payment.RefundRecord
}

// FillUpgrade writes, through the Service and the store, what a running
// business has by the time it upgrades, using nothing a later migration
// added (adjustments, 0-fen lots, who asked for a refund): accounts with
// paid lots, API keys (one with limits, one revoked), settled usage,
// active and released holds, a grant confirmed by its payment, a revoked
// grant whose usage became debt, orders in several states, and refunds
// succeeded, pending and failed both in the ledger and as payment refund
// records. Its clock starts at Start; the returned clock is where it
// stopped.
func FillUpgrade(tb testing.TB, s UpgradeStore) (UpgradeFixture, *clocktest.Clock) {
	tb.Helper()
	ctx := context.Background()
	clock := clocktest.New(Start)
	svc := ledger.New(s, ledger.Options{Clock: clock})
	defer svc.Close()
	must := func(what string, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatalf("fill: %s: %v", what, err)
		}
	}
	var f UpgradeFixture
	for _, a := range []tollgate.AccountID{"alice", "bob", "carol", "dave"} {
		_, err := svc.CreateAccount(ctx, a)
		must("account "+string(a), err)
		f.Accounts = append(f.Accounts, a)
		clock.Advance(time.Second)
	}
	must("key", s.CreateAPIKey(ctx, auth.Key{ID: "key_a1", Account: "alice", Hash: auth.Hash("plain-a1"), Prefix: "tg-a1",
		CreatedAt: clock.Now()}))
	must("key", s.CreateAPIKey(ctx, auth.Key{ID: "key_a2", Account: "alice", Hash: auth.Hash("plain-a2"), Prefix: "tg-a2",
		CreatedAt: clock.Now(), Limits: tollgate.KeyLimits{Models: []string{"gpt-4o-mini"}, RequestsPerMinute: 60,
			TokensPerMinute: 100_000, ExpiresAt: Start.Add(90 * 24 * time.Hour), MaxCreditsPerRequest: 5000, MaxOutputTokens: 1024}}))
	must("key", s.CreateAPIKey(ctx, auth.Key{ID: "key_b1", Account: "bob", Hash: auth.Hash("plain-b1"), Prefix: "tg-b1",
		CreatedAt: clock.Now()}))
	must("revoke key", s.RevokeAPIKey(ctx, "alice", "key_a1", clock.Now().Add(time.Second)))

	// order places an order and, when paid, pays it: the order SUCCESS
	// and its lot credited.
	order := func(no string, a tollgate.AccountID, fen tollgate.Fen, credits tollgate.Credits, paid bool, grant string) {
		tb.Helper()
		o := SampleOrder(no, a, clock.Now())
		o.Fen, o.Credits = fen, credits
		mustCreateOrder(tb, ctx, s, o)
		f.Orders = append(f.Orders, no)
		clock.Advance(time.Second)
		if !paid {
			return
		}
		_, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: a, OutTradeNo: no, TransactionID: "42" + no,
			Fen: fen, Credits: credits, GrantID: grant})
		must("credit "+no, err)
		_, err = payment.UpdateOrder(ctx, s, no, func(o *payment.Order) error {
			o.Status, o.TransactionID, o.UpdatedAt = payment.StatusSuccess, "42"+no, clock.Now()
			return nil
		})
		must("pay "+no, err)
	}
	usage := func(hold string, a tollgate.AccountID, grant string, amount, cost tollgate.Credits) {
		tb.Helper()
		_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: hold, Account: a, GrantID: grant, Amount: amount, TTL: time.Hour})
		must("reserve "+hold, err)
		clock.Advance(1500 * time.Millisecond)
		_, err = svc.Settle(ctx, ledger.SettleRequest{HoldID: hold, Cost: cost, Usage: ledger.Usage{KeyID: "key_a2",
			Model: "gpt-4o-mini", Provider: "openai", Deployment: "openai-1", InputTokens: 1200, CachedTokens: 200,
			CacheWriteTokens: 50, OutputTokens: 300, Latency: 1500 * time.Millisecond, Status: "ok"}})
		must("settle "+hold, err)
	}

	order("tg20260331UP000001", "alice", 5000, 1_000_000, true, "")
	order("tg20260331UP000002", "alice", 1000, 200_000, true, "")
	usage("req-a1", "alice", "", 20_000, 12_345)
	usage("req-a2", "alice", "", 900_000, 880_000) // draws both lots
	_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "req-a3", Account: "alice", Amount: 7_000, TTL: time.Hour})
	must("active hold", err)

	order("tg20260331UP000003", "bob", 5000, 1_000_000, true, "")
	order("tg20260331UP000004", "bob", 3000, 600_000, true, "")
	usage("req-b1", "bob", "", 50_000, 40_000)
	_, err = svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "req-b2", Account: "bob", Amount: 9_000, TTL: time.Hour})
	must("hold", err)
	_, err = svc.Release(ctx, "req-b2")
	must("release", err)
	// bob's refunds: the rest of one order succeeded, part of another
	// failed, and one pending.
	refund := func(no, trade string, a tollgate.AccountID, credits tollgate.Credits, end string) {
		tb.Helper()
		r, err := svc.BeginRefund(ctx, ledger.RefundRequest{OutRefundNo: no, Account: a, OutTradeNo: trade, Credits: credits})
		must("refund "+no, err)
		rec := payment.RefundRecord{OutRefundNo: no, OutTradeNo: trade, Account: a, Fen: r.Fen, Credits: r.Credits,
			Status: payment.RefundPending, CreatedAt: clock.Now(), UpdatedAt: clock.Now(), NextPollAt: clock.Now().Add(5 * time.Second),
			RequestedBy: payment.RequestedByAccount}
		_, err = s.CreateRefund(ctx, rec)
		must("refund record "+no, err)
		f.Refunds = append(f.Refunds, no)
		clock.Advance(time.Second)
		status := payment.RefundPending
		switch end {
		case "succeeded":
			_, err = svc.CompleteRefund(ctx, no)
			status = payment.RefundSucceeded
		case "failed":
			_, err = svc.FailRefund(ctx, no)
			status = payment.RefundFailed
		}
		must("end refund "+no, err)
		if status != payment.RefundPending {
			_, err = payment.UpdateRefund(ctx, s, no, func(r *payment.RefundRecord) error {
				r.Status, r.UpdatedAt = status, clock.Now()
				return nil
			})
			must("end refund record "+no, err)
			if status == payment.RefundSucceeded {
				_, err = payment.UpdateOrder(ctx, s, trade, func(o *payment.Order) error {
					o.Status, o.UpdatedAt = payment.StatusRefund, clock.Now()
					return nil
				})
				must("refund order "+trade, err)
			}
		}
	}
	refund("tg20260331UP000003R1", "tg20260331UP000003", "bob", 0, "succeeded")
	refund("tg20260331UP000004R1", "tg20260331UP000004", "bob", 100_000, "failed")
	refund("tg20260331UP000004R2", "tg20260331UP000004", "bob", 150_000, "")

	// carol pays through a provisional grant she spends before the
	// payment confirms it.
	_, err = svc.IssueGrant(ctx, ledger.GrantRequest{ID: "tg20260331UP000005", Account: "carol", Cap: 20_000, TTL: 30 * time.Minute})
	must("grant", err)
	usage("req-c1", "carol", "tg20260331UP000005", 15_000, 11_000)
	order("tg20260331UP000005", "carol", 5000, 1_000_000, true, "tg20260331UP000005")
	usage("req-c2", "carol", "", 10_000, 9_999)

	// dave spends a grant whose order is never paid: revoked, its usage
	// is debt. His second order is still pending, the third closed.
	_, err = svc.IssueGrant(ctx, ledger.GrantRequest{ID: "tg20260331UP000006", Account: "dave", Cap: 20_000, TTL: 30 * time.Minute})
	must("grant", err)
	usage("req-d1", "dave", "tg20260331UP000006", 12_000, 8_000)
	order("tg20260331UP000006", "dave", 5000, 1_000_000, false, "")
	_, err = svc.RevokeGrant(ctx, "tg20260331UP000006")
	must("revoke grant", err)
	order("tg20260331UP000007", "dave", 1000, 200_000, false, "")
	order("tg20260331UP000008", "dave", 1000, 200_000, false, "")
	_, err = payment.UpdateOrder(ctx, s, "tg20260331UP000008", func(o *payment.Order) error {
		o.Status, o.UpdatedAt = payment.StatusClosed, clock.Now()
		return nil
	})
	must("close order", err)
	must("sync", svc.Sync(ctx))
	if b, err := svc.Balance(ctx, "dave"); err != nil || b.Debt != 8_000 {
		tb.Fatalf("fill: dave's balance = %+v, %v; want 8000 debt", b, err)
	}
	return f, clock
}

func mustCreateOrder(tb testing.TB, ctx context.Context, s payment.Store, o payment.Order) {
	tb.Helper()
	if _, created, err := s.CreateOrder(ctx, o, nil); err != nil || !created {
		tb.Fatalf("fill: CreateOrder(%s) = created %v, %v", o.OutTradeNo, created, err)
	}
}

// Read reads back through s every row f names, and the whole ledger.
func (f UpgradeFixture) Read(tb testing.TB, s UpgradeStore) UpgradeSnapshot {
	tb.Helper()
	ctx := context.Background()
	var snap UpgradeSnapshot
	err := s.View(ctx, func(tx ledger.ReadTx) (err error) {
		snap.Dump, err = tx.Dump(ctx)
		return err
	})
	if err != nil {
		tb.Fatalf("dump: %v", err)
	}
	svc := ledger.New(s, ledger.Options{Clock: clocktest.New(Start)})
	defer svc.Close()
	for _, a := range f.Accounts {
		b, err := svc.Balance(ctx, a)
		if err != nil {
			tb.Fatalf("balance %s: %v", a, err)
		}
		snap.Balances = append(snap.Balances, b)
		keys, err := s.APIKeys(ctx, a)
		if err != nil {
			tb.Fatalf("keys of %s: %v", a, err)
		}
		snap.Keys = append(snap.Keys, keys)
	}
	for _, no := range f.Orders {
		o, err := s.Order(ctx, no)
		if err != nil {
			tb.Fatalf("order %s: %v", no, err)
		}
		snap.Orders = append(snap.Orders, o)
	}
	for _, no := range f.Refunds {
		r, err := s.Refund(ctx, no)
		if err != nil {
			tb.Fatalf("refund %s: %v", no, err)
		}
		snap.Refunds = append(snap.Refunds, r)
	}
	return snap
}

// WantSameSnapshot fails tb with each part of got that differs from want.
func WantSameSnapshot(tb testing.TB, got, want UpgradeSnapshot) {
	tb.Helper()
	for _, p := range []struct {
		name      string
		got, want any
	}{
		{"accounts", got.Dump.Accounts, want.Dump.Accounts},
		{"lots", got.Dump.Lots, want.Dump.Lots},
		{"holds", got.Dump.Holds, want.Dump.Holds},
		{"grants", got.Dump.Grants, want.Dump.Grants},
		{"ledger refunds", got.Dump.Refunds, want.Dump.Refunds},
		{"usage", got.Dump.Usage, want.Dump.Usage},
		{"adjustments", got.Dump.Adjustments, want.Dump.Adjustments},
		{"constraints", got.Dump.Constraints, want.Dump.Constraints},
		{"balances", got.Balances, want.Balances},
		{"API keys", got.Keys, want.Keys},
		{"orders", got.Orders, want.Orders},
		{"refund records", got.Refunds, want.Refunds},
	} {
		if !reflect.DeepEqual(p.got, p.want) {
			tb.Errorf("%s after the upgrade:\n got %s\nwant %s", p.name, fmt.Sprintf("%+v", p.got), fmt.Sprintf("%+v", p.want))
		}
	}
}

// MustAuditStore fails tb with every violation Audit finds in s at now.
func MustAuditStore(tb testing.TB, s ledger.Store, now time.Time) {
	tb.Helper()
	vs, err := ledger.Audit(context.Background(), s, ledger.AuditOptions{Now: now, Grace: time.Minute})
	if err != nil {
		tb.Fatalf("audit: %v", err)
	}
	for _, v := range vs {
		tb.Errorf("audit violation: %s", v)
	}
}
