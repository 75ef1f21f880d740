package reconcile_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/reconcile"
	"tollgate/wxpay"
	"tollgate/wxpay/wxpaysim"
)

// merchant is the part of a WeChat Pay client the end-to-end test needs,
// for one API version.
type merchant struct {
	bills  reconcile.BillSource
	order  func(ctx context.Context, outTradeNo string, fen int64) error
	refund func(ctx context.Context, outTradeNo, outRefundNo string, fen int64) error // nil: not supported
}

// simMerchant starts an emulator whose clock stands still at now and
// returns a client of the given API version for it.
func simMerchant(t *testing.T, version int, now time.Time) (*wxpaysim.Server, merchant) {
	t.Helper()
	clock := func() time.Time { return now }
	sim := &wxpaysim.Server{Clock: tollgate.ClockFunc(clock), RefundDelay: -1, NoHandshake: true, Logf: t.Logf}
	api := httptest.NewServer(sim)
	notify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>")
	}))
	t.Cleanup(notify.Close)
	t.Cleanup(api.Close)
	t.Cleanup(func() { _ = sim.Close() })
	cfg := sim.Config()
	if version == 2 {
		c := &wxpay.V2Client{BaseURL: api.URL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey, HTTPClient: api.Client()}
		return sim, merchant{
			bills: reconcile.V2Bills{Client: c},
			order: func(ctx context.Context, no string, fen int64) error {
				_, err := c.UnifiedOrder(ctx, &wxpay.V2UnifiedOrderRequest{OutTradeNo: no, Body: "credits", TotalFee: fen,
					SpbillCreateIP: "127.0.0.1", NotifyURL: notify.URL, TradeType: wxpay.V2TradeTypeNative, ProductID: "p1"})
				return err
			},
		}
	}
	keyring := wxpay.NewV3Keyring()
	if err := keyring.AddPublicKeyPEM(cfg.PlatformKeyID, []byte(cfg.PlatformPublicKeyPEM)); err != nil {
		t.Fatal(err)
	}
	key, err := wxpay.LoadRSAPrivateKeyPEM([]byte(cfg.MerchantPrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	c := &wxpay.V3Client{BaseURL: api.URL, MchID: cfg.MchID, AppID: cfg.AppID, MerchantSerialNo: cfg.MerchantSerial,
		MerchantKey: key, APIv3Key: cfg.APIv3Key, Keyring: keyring, HTTPClient: api.Client(), Clock: tollgate.ClockFunc(clock)}
	return sim, merchant{
		bills: reconcile.V3Bills{Client: c},
		order: func(ctx context.Context, no string, fen int64) error {
			_, err := c.NativeOrder(ctx, &wxpay.V3NativeOrderRequest{Description: "credits", OutTradeNo: no,
				NotifyURL: notify.URL, Total: fen})
			return err
		},
		refund: func(ctx context.Context, no, rno string, fen int64) error {
			_, err := c.Refund(ctx, &wxpay.V3RefundRequest{OutTradeNo: no, OutRefundNo: rno, Refund: fen, Total: fen})
			return err
		},
	}
}

// TestReconcileWithEmulator pays orders through the emulator and credits
// them through the ledger, then credits one lot without a payment and
// leaves one payment uncredited: the report lists exactly those two rows.
func TestReconcileWithEmulator(t *testing.T) {
	for _, version := range []int{2, 3} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			ctx := context.Background()
			f := MustFixture(t)
			f.set("2026-11-20 12:00:00")
			sim, m := simMerchant(t, version, f.clock())

			pay := func(no string, fen int64, credit bool) {
				t.Helper()
				if err := m.order(ctx, no, fen); err != nil {
					t.Fatalf("order %s: %v", no, err)
				}
				o, err := sim.Pay(no)
				if err != nil {
					t.Fatalf("pay %s: %v", no, err)
				}
				if credit {
					f.pay("2026-11-20 12:00:01", no, o.TransactionID, tollgate.Fen(fen))
				}
			}
			for i, fen := range []int64{1, 990, 5000, 12345} {
				pay(fmt.Sprintf("tg_e2e_%d", i), fen, true)
			}
			if m.refund != nil {
				f.refund("2026-11-20 12:00:02", "tg_e2e_r1", "tg_e2e_1", false)
				if err := m.refund(ctx, "tg_e2e_1", "tg_e2e_r1", 990); err != nil {
					t.Fatalf("refund: %v", err)
				}
				if _, err := sim.CompleteRefund("tg_e2e_r1"); err != nil {
					t.Fatalf("complete refund at emulator: %v", err)
				}
				if _, err := f.svc.CompleteRefund(ctx, "tg_e2e_r1"); err != nil {
					t.Fatalf("complete refund in ledger: %v", err)
				}
			}
			pay("tg_e2e_uncredited", 777, false)
			f.pay("2026-11-20 13:00:00", "tg_e2e_extra", "4200000000000000000000000042", 888)
			f.dump() // the ledger itself is sound

			r := reconcile.Reconciler{Bills: m.bills, Store: f.store}
			rep, err := r.Reconcile(ctx, at(t, "2026-11-20 00:00:00"))
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			checkRows(t, rep, row{reconcile.Missing, "tg_e2e_uncredited", ""}, row{reconcile.Extra, "tg_e2e_extra", ""})
			tot := rep.Totals
			if tot.BillGrossFen != 1+990+5000+12345+777 || tot.LedgerGrossFen != 1+990+5000+12345+888 {
				t.Errorf("totals %+v", tot)
			}
			if m.refund != nil && (tot.BillRefundFen != 990 || tot.LedgerRefundFen != 990) {
				t.Errorf("refund totals %+v", tot)
			}
		})
	}
}

// A day without a bill at WeChat Pay is an empty bill: every lot credited
// that day is extra. Other download failures are errors.
func TestReconcileNoBill(t *testing.T) {
	ctx := context.Background()
	f := MustFixture(t)
	f.set("2026-11-20 12:00:00")
	_, m := simMerchant(t, 2, f.clock())
	rep, err := (&reconcile.Reconciler{Bills: m.bills, Store: f.store}).Reconcile(ctx, at(t, "2026-11-20 00:00:00"))
	if err != nil || !rep.NoBill || !rep.Clean() {
		t.Fatalf("empty day: %+v, %v", rep, err)
	}
	f.pay("2026-11-20 10:00:00", "tg_1", "4200000000000000000000000001", 100)
	rep, err = (&reconcile.Reconciler{Bills: m.bills, Store: f.store}).Reconcile(ctx, at(t, "2026-11-20 00:00:00"))
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rep, row{reconcile.Extra, "tg_1", ""})

	boom := errors.New("boom")
	_, err = (&reconcile.Reconciler{Bills: failingBills{boom}, Store: f.store}).Reconcile(ctx, at(t, "2026-11-20 00:00:00"))
	if !errors.Is(err, boom) {
		t.Fatalf("download failure: %v", err)
	}
}

type failingBills struct{ err error }

func (b failingBills) Bill(context.Context, time.Time) (*wxpay.Bill, error) { return nil, b.err }

// TestReconcileInjectedRows is docs/RELIABILITY.md's S13 in its CI size: three
// rows of each kind injected at once among sound ones, through the emulator
// (v3, so refunds are real too); the report lists exactly the injected rows.
func TestReconcileInjectedRows(t *testing.T) {
	ctx := context.Background()
	f := MustFixture(t)
	f.set("2026-11-20 12:00:00")
	sim, m := simMerchant(t, 3, f.clock())
	var want []row
	order := func(no string, fen int64) string {
		t.Helper()
		if err := m.order(ctx, no, fen); err != nil {
			t.Fatalf("order %s: %v", no, err)
		}
		o, err := sim.Pay(no)
		if err != nil {
			t.Fatalf("pay %s: %v", no, err)
		}
		return o.TransactionID
	}
	refundAtWeChat := func(no, rno string, fen int64) {
		t.Helper()
		if err := m.refund(ctx, no, rno, fen); err != nil {
			t.Fatalf("refund %s: %v", rno, err)
		}
		if _, err := sim.CompleteRefund(rno); err != nil {
			t.Fatalf("complete %s: %v", rno, err)
		}
	}
	refundInLedger := func(no, rno string) {
		t.Helper()
		f.refund("2026-11-20 12:00:02", rno, no, true)
	}
	for i := range 21 {
		no, fen := fmt.Sprintf("tg_s13_%02d", i), int64(100+i)
		switch i % 7 {
		case 0: // sound payment, sound refund
			f.pay("2026-11-20 12:00:01", no, order(no, fen), tollgate.Fen(fen))
			refundAtWeChat(no, no+"_r", fen)
			refundInLedger(no, no+"_r")
		case 1: // sound payment
			f.pay("2026-11-20 12:00:01", no, order(no, fen), tollgate.Fen(fen))
		case 2: // paid, never credited
			order(no, fen)
			want = append(want, row{reconcile.Missing, no, ""})
		case 3: // credited, never paid
			f.pay("2026-11-20 12:00:01", no, fmt.Sprintf("42000000000000000000000%05d", i), tollgate.Fen(fen))
			want = append(want, row{reconcile.Extra, no, ""})
		case 4: // credited with another amount
			f.pay("2026-11-20 12:00:01", no, order(no, fen), tollgate.Fen(fen+1))
			want = append(want, row{reconcile.Mismatched, no, ""})
		case 5: // refunded at WeChat Pay, not in the ledger
			f.pay("2026-11-20 12:00:01", no, order(no, fen), tollgate.Fen(fen))
			refundAtWeChat(no, no+"_r", fen)
			want = append(want, row{reconcile.RefundMissing, no, no + "_r"})
		case 6: // refunded in the ledger, never at WeChat Pay
			f.pay("2026-11-20 12:00:01", no, order(no, fen), tollgate.Fen(fen))
			refundInLedger(no, no+"_r")
			want = append(want, row{reconcile.RefundExtra, no, no + "_r"})
		}
	}
	f.dump()
	slices.SortStableFunc(want, func(a, b row) int {
		order := []reconcile.Kind{reconcile.Missing, reconcile.Extra, reconcile.Mismatched, reconcile.RefundMissing, reconcile.RefundExtra}
		return cmp.Or(cmp.Compare(slices.Index(order, a.Kind), slices.Index(order, b.Kind)), strings.Compare(a.OutTradeNo, b.OutTradeNo))
	})
	later := func() time.Time { return at(t, "2026-11-25 10:00:00") }
	rep, err := (&reconcile.Reconciler{Bills: m.bills, Store: f.store, Clock: tollgate.ClockFunc(later)}).Reconcile(ctx, at(t, "2026-11-20 00:00:00"))
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rep, want...)
	// The emulator's clock stands on 2026-11-20 and it refuses a bill date
	// in its future: the reconciler, whose clock is later, says so.
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "bill of 2026-11-21 unavailable") {
		t.Errorf("notes: %q", rep.Notes)
	}
	// On the emulator's own clock the next day has not ended: not asked.
	r := reconcile.Reconciler{Bills: m.bills, Store: f.store, Clock: tollgate.ClockFunc(f.clock)}
	if rep, err = r.Reconcile(ctx, at(t, "2026-11-20 00:00:00")); err != nil {
		t.Fatal(err)
	}
	checkRows(t, rep, want...)
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "bill of 2026-11-21 not made yet") {
		t.Errorf("notes: %q", rep.Notes)
	}
}
