package reconcile_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"tollgate"
	"tollgate/reconcile"
	"tollgate/wxpay"
)

const (
	txA = "4200000001202611200000000001"
	txB = "4200000002202611200000000002"
	txC = "4200000003202611200000000003"
)

// standardLedger credits what testdata/clean.csv lists for 2026-11-20:
// tg_a (100.00), tg_b (50.00), tg_c (0.01, paid at 23:59:59 and credited
// after midnight) and the refund tg_r_a of tg_a. skip leaves out the order
// or refund numbers it names; amountB is what tg_b is credited with.
func standardLedger(f *fixture, amountB tollgate.Fen, skip ...string) {
	skipped := func(no string) bool {
		for _, s := range skip {
			if s == no {
				return true
			}
		}
		return false
	}
	if !skipped("tg_a") {
		f.pay("2026-11-20 00:00:03", "tg_a", txA, 10000)
	}
	if !skipped("tg_b") {
		f.pay("2026-11-20 12:30:02", "tg_b", txB, amountB)
	}
	if !skipped("tg_c") {
		f.pay("2026-11-21 00:00:02", "tg_c", txC, 1)
	}
	if !skipped("tg_r_a") {
		f.refund("2026-11-20 17:59:59", "tg_r_a", "tg_a", !skipped("complete"))
	}
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name     string
		bill     string // testdata file; "" for a day without a bill
		adjacent []string
		ledger   func(f *fixture)
		want     []row
	}{
		{name: "Clean", bill: "clean.csv", ledger: func(f *fixture) { standardLedger(f, 5000) }},
		{name: "RefundProcessingInBillSucceededInLedger", bill: "refund_processing.csv",
			ledger: func(f *fixture) { standardLedger(f, 5000) }},
		{name: "Missing", bill: "clean.csv", ledger: func(f *fixture) { standardLedger(f, 5000, "tg_b") },
			want: []row{{reconcile.Missing, "tg_b", ""}}},
		{name: "Extra", bill: "clean.csv", ledger: func(f *fixture) {
			standardLedger(f, 5000)
			f.pay("2026-11-20 08:00:00", "tg_x", "4200000099202611200000000099", 700)
		}, want: []row{{reconcile.Extra, "tg_x", ""}}},
		{name: "ExtraOnAnotherDayIsNotThisDays", bill: "clean.csv", ledger: func(f *fixture) {
			standardLedger(f, 5000)
			f.pay("2026-11-19 23:59:59", "tg_x", "4200000099202611200000000099", 700)
			f.pay("2026-11-21 00:00:00", "tg_y", "4200000098202611200000000098", 700)
		}},
		{name: "MismatchedAmount", bill: "clean.csv", ledger: func(f *fixture) { standardLedger(f, 4999) },
			want: []row{{reconcile.Mismatched, "tg_b", ""}}},
		{name: "MismatchedTransactionID", bill: "pairing.csv", ledger: func(f *fixture) { standardLedger(f, 5000) },
			want: []row{{reconcile.Mismatched, "tg_b", ""}}},
		{name: "RefundMissing", bill: "clean.csv", ledger: func(f *fixture) { standardLedger(f, 5000, "tg_r_a") },
			want: []row{{reconcile.RefundMissing, "tg_a", "tg_r_a"}}},
		{name: "RefundPendingInLedger", bill: "clean.csv", ledger: func(f *fixture) { standardLedger(f, 5000, "complete") },
			want: []row{{reconcile.RefundMissing, "tg_a", "tg_r_a"}}},
		{name: "RefundExtra", bill: "no_refund.csv", ledger: func(f *fixture) { standardLedger(f, 5000) },
			want: []row{{reconcile.RefundExtra, "tg_a", "tg_r_a"}}},
		{name: "RefundMismatchedAmount", bill: "refund_amount.csv", ledger: func(f *fixture) { standardLedger(f, 5000) },
			want: []row{{reconcile.RefundMismatched, "tg_a", "tg_r_a"}}},
		{name: "LateCreditWithoutPreviousBill", bill: "clean.csv", ledger: func(f *fixture) {
			standardLedger(f, 5000)
			f.pay("2026-11-20 00:00:05", "tg_late", "4200000000202611190000000099", 2000)
		}, want: []row{{reconcile.Extra, "tg_late", ""}}},
		{name: "LateCreditFoundInPreviousBill", bill: "clean.csv", adjacent: []string{"previous_day.csv"}, ledger: func(f *fixture) {
			standardLedger(f, 5000)
			f.pay("2026-11-20 00:00:05", "tg_late", "4200000000202611190000000099", 2000)
		}},
		{name: "NoBill", ledger: func(f *fixture) { f.pay("2026-11-20 09:00:00", "tg_a", txA, 10000) },
			want: []row{{reconcile.Extra, "tg_a", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := MustFixture(t)
			tc.ledger(f)
			lots, refunds := f.dump()
			in := reconcile.Input{Day: at(t, "2026-11-20 15:00:00"), Lots: lots, Refunds: refunds}
			if tc.bill != "" {
				in.Bill = MustBill(t, tc.bill)
			}
			for _, a := range tc.adjacent {
				in.Adjacent = append(in.Adjacent, MustBill(t, a))
			}
			rep := reconcile.Compare(in)
			checkRows(t, rep, tc.want...)
			if rep.Date != "2026-11-20" {
				t.Errorf("date %q", rep.Date)
			}
			if len(rep.Notes) != 0 {
				t.Errorf("notes on a sound bill: %q", rep.Notes)
			}
			tot := rep.Totals
			if rep.Clean() && (tot.BillGrossFen != tot.LedgerGrossFen || tot.BillRefundFen != tot.LedgerRefundFen) {
				t.Errorf("clean report with unequal totals: %+v", tot)
			}
		})
	}
}

func TestCompareTotals(t *testing.T) {
	f := MustFixture(t)
	standardLedger(f, 5000, "tg_b")
	lots, refunds := f.dump()
	rep := reconcile.Compare(reconcile.Input{Day: at(t, "2026-11-20 00:00:00"), Bill: MustBill(t, "clean.csv"), Lots: lots, Refunds: refunds})
	want := reconcile.Totals{
		BillPayments: 3, BillGrossFen: 15001, LedgerPayments: 2, LedgerGrossFen: 10001,
		BillRefunds: 1, BillRefundFen: 10000, LedgerRefunds: 1, LedgerRefundFen: 10000,
		BillSummaryRows: 4, BillSummaryTotal: 15001, BillSummaryRefund: 10000,
	}
	if rep.Totals != want {
		t.Errorf("totals\n got  %+v\n want %+v", rep.Totals, want)
	}
	d := rep.Differences[0]
	if d.BillFen != 5000 || d.LedgerFen != 0 || d.TransactionID != txB {
		t.Errorf("missing row %+v", d)
	}
}

// The day is the calendar date in China time, whatever zone Day is in:
// 2026-11-19 20:00 UTC is 2026-11-20 04:00 in Shanghai.
func TestCompareDayIsChinaDate(t *testing.T) {
	f := MustFixture(t)
	standardLedger(f, 5000)
	lots, refunds := f.dump()
	day := at(t, "2026-11-20 04:00:00").UTC()
	rep := reconcile.Compare(reconcile.Input{Day: day, Bill: MustBill(t, "clean.csv"), Lots: lots, Refunds: refunds})
	if rep.Date != "2026-11-20" {
		t.Fatalf("date %s", rep.Date)
	}
	checkRows(t, rep)
}

// A bill that lists a payment twice, or a lot that a second order's
// transaction id points at, is a mismatch, not silently merged.
func TestCompareDuplicatesAndCrossedPairs(t *testing.T) {
	f := MustFixture(t)
	f.pay("2026-11-20 10:00:00", "tg_a", txA, 10000)
	f.pay("2026-11-20 10:00:01", "tg_b", txB, 5000)
	lots, _ := f.dump()
	bill := &wxpay.Bill{Records: []wxpay.BillRecord{
		{TradeState: "SUCCESS", OutTradeNo: "tg_a", TransactionID: txB, TotalFee: 10000},
		{TradeState: "SUCCESS", OutTradeNo: "tg_a", TransactionID: txB, TotalFee: 10000},
	}}
	rep := reconcile.Compare(reconcile.Input{Day: at(t, "2026-11-20 00:00:00"), Bill: bill, Lots: lots})
	checkRows(t, rep, row{reconcile.Mismatched, "tg_a", ""}, row{reconcile.Mismatched, "tg_a", ""})
	if rep.Count(reconcile.Extra) != 0 {
		t.Errorf("tg_b's lot is named by the bill's transaction id, so it is not extra: %+v", rep)
	}
}

func TestWriteTextAndJSON(t *testing.T) {
	f := MustFixture(t)
	standardLedger(f, 4999, "tg_r_a")
	lots, refunds := f.dump()
	rep := reconcile.Compare(reconcile.Input{Day: at(t, "2026-11-20 00:00:00"), Bill: MustBill(t, "clean.csv"), Lots: lots, Refunds: refunds})

	var text bytes.Buffer
	if err := reconcile.WriteText(&text, &rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`MISMATCHED +tg_b +4200000002202611200000000002 +- +2 +5000 +4999 `,
		`REFUND_MISSING +tg_a +\S+ +tg_r_a `, `payments +3 +15001 +3 +15000 +1\n`, `2 difference\(s\) found\.`} {
		if !regexp.MustCompile(s).MatchString(text.String()) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}

	var js bytes.Buffer
	if err := reconcile.WriteJSON(&js, &rep); err != nil {
		t.Fatal(err)
	}
	var back reconcile.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("decode JSON report: %v\n%s", err, js.String())
	}
	checkRows(t, back, rows(rep)...)
	if back.Totals != rep.Totals || !strings.Contains(js.String(), `"bill_gross_fen": 15001`) {
		t.Errorf("JSON totals: %s", js.String())
	}
}

// A bill whose summary does not add up to its records (a truncated
// download) is named in the notes.
func TestCompareNotesBadSummary(t *testing.T) {
	bill := MustBill(t, "clean.csv")
	bill.Records = bill.Records[:3]
	rep := reconcile.Compare(reconcile.Input{Day: at(t, "2026-11-20 00:00:00"), Bill: bill})
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "4 rows, 15001 fen ordered, 10000 fen refunded; the records have 3, 15001, 0") {
		t.Errorf("notes %q", rep.Notes)
	}
}
