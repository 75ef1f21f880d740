package reconcile_test

import (
	"os"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/reconcile"
	"tollgate/wxpay"
)

// A bill with two payments against a ledger that credited one of them with
// the wrong amount and one that was never paid.
func ExampleCompare() {
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, tollgate.Beijing)
	bill := &wxpay.Bill{
		Records: []wxpay.BillRecord{
			{TradeState: "SUCCESS", OutTradeNo: "tg_1", TransactionID: "4200000001", TotalFee: 5000},
			{TradeState: "SUCCESS", OutTradeNo: "tg_2", TransactionID: "4200000002", TotalFee: 100},
		},
		Summary: wxpay.BillSummary{Count: 2, TotalFee: 5100},
	}
	lots := []ledger.Lot{
		{ID: 1, OutTradeNo: "tg_1", TransactionID: "4200000001", Fen: 4900, CreatedAt: day.Add(time.Hour)},
		{ID: 2, OutTradeNo: "tg_9", TransactionID: "4200000009", Fen: 700, CreatedAt: day.Add(2 * time.Hour)},
	}
	rep := reconcile.Compare(reconcile.Input{Day: day, Bill: bill, Lots: lots})
	_ = reconcile.WriteText(os.Stdout, &rep)
	// Output:
	// Reconciliation of 2026-11-20 (China time)
	//
	// KIND        OUT_TRADE_NO  TRANSACTION_ID  OUT_REFUND_NO  LOT  BILL_FEN  LEDGER_FEN  DETAIL
	// MISSING     tg_2          4200000002      -              -    100       0           paid at WeChat Pay, no lot credited
	// EXTRA       tg_9          4200000009      -              2    0         700         lot credited, no SUCCESS payment in the bill
	// MISMATCHED  tg_1          4200000001      -              1    5000      4900        amount: bill 5000 fen, lot 4900 fen
	//
	// TOTALS    BILL_ROWS  BILL_FEN  LEDGER_ROWS  LEDGER_FEN  DIFF_FEN
	// payments  2          5100      2            5600        -500
	// refunds   0          0         0            0           0
	//
	// 3 difference(s) found.
}
