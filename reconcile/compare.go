// Package reconcile compares WeChat Pay's daily trade bill with the ledger
// and reports every payment or refund on which they disagree (docs/DESIGN.md §3.8,
// §7.2 F13, §6 I13). The bill is the ground truth for what money moved;
// the ledger is what tollgate credited. It reads both and changes neither.
package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/wxpay"
)

// Kind names one kind of difference between the bill and the ledger.
type Kind string

// Kinds of difference, in the order a report lists them.
const (
	// Missing: a SUCCESS payment in the bill has no lot — money received
	// but never credited.
	Missing Kind = "MISSING"
	// Extra: a lot credited on the day matches no payment in the bill (nor
	// in the bill of an adjacent day) — credit given without money.
	Extra Kind = "EXTRA"
	// Mismatched: a payment and its lot disagree on the amount, or the
	// out_trade_no / transaction_id pairing differs.
	Mismatched Kind = "MISMATCHED"
	// RefundMissing: a refund in the bill that the ledger has not completed
	// (no ledger refund, or one still pending or failed while the bill says
	// SUCCESS).
	RefundMissing Kind = "REFUND_MISSING"
	// RefundExtra: a refund the ledger completed (accepted on the day) that
	// the bill does not list.
	RefundExtra Kind = "REFUND_EXTRA"
	// RefundMismatched: a refund whose amount, order or final state
	// differs between the bill and the ledger.
	RefundMismatched Kind = "REFUND_MISMATCHED"
)

// kindOrder ranks kinds for sorting.
var kindOrder = map[Kind]int{Missing: 0, Extra: 1, Mismatched: 2, RefundMissing: 3, RefundExtra: 4, RefundMismatched: 5}

// Bill trade states (交易状态) and refund states (退款状态) that Compare
// interprets.
const (
	tradeStateSuccess   = "SUCCESS"
	tradeStateRefund    = "REFUND"
	refundStatusSuccess = "SUCCESS"
	refundStatusClose   = "REFUNDCLOSE"
)

// Difference is one row of a report. Amounts are integer fen; a side that
// has no row has a zero amount.
type Difference struct {
	Kind          Kind         `json:"kind"`
	OutTradeNo    string       `json:"out_trade_no,omitempty"`
	TransactionID string       `json:"transaction_id,omitempty"`
	OutRefundNo   string       `json:"out_refund_no,omitempty"`
	LotID         int64        `json:"lot_id,omitempty"`
	BillFen       tollgate.Fen `json:"bill_fen"`
	LedgerFen     tollgate.Fen `json:"ledger_fen"`
	Detail        string       `json:"detail"`
}

// Totals sums both sides of the day, in fen. Ledger totals cover what is
// attributed to the day: the lots and refunds matched to the bill's rows
// plus those reported as extra. When a report is clean the two sides are
// equal.
type Totals struct {
	// Payments: the bill's SUCCESS rows and 订单金额, and the lots
	// attributed to the day.
	BillPayments   int          `json:"bill_payments"`
	BillGrossFen   tollgate.Fen `json:"bill_gross_fen"`
	LedgerPayments int          `json:"ledger_payments"`
	LedgerGrossFen tollgate.Fen `json:"ledger_gross_fen"`
	// Refunds: the bill's REFUND rows not closed and their 申请退款金额,
	// and the ledger refunds attributed to the day that did not fail.
	BillRefunds     int          `json:"bill_refunds"`
	BillRefundFen   tollgate.Fen `json:"bill_refund_fen"`
	LedgerRefunds   int          `json:"ledger_refunds"`
	LedgerRefundFen tollgate.Fen `json:"ledger_refund_fen"`
	// BillOtherRows counts rows that are neither SUCCESS nor REFUND
	// (e.g. REVOKED micropay rows); they are not compared.
	BillOtherRows int `json:"bill_other_rows,omitempty"`
	// The bill's own summary row: 总交易单数, 订单总金额, 退款总金额.
	BillSummaryRows   int64        `json:"bill_summary_rows"`
	BillSummaryTotal  tollgate.Fen `json:"bill_summary_total_fen"`
	BillSummaryRefund tollgate.Fen `json:"bill_summary_refund_fen"`
}

// Report is the outcome of reconciling one day.
type Report struct {
	// Date is the reconciled day, YYYY-MM-DD in the bill's time zone.
	Date string `json:"date"`
	// NoBill is set when WeChat Pay has no bill for the day (no payment
	// and no refund): every lot credited that day is then extra.
	NoBill      bool         `json:"no_bill,omitempty"`
	Differences []Difference `json:"differences"`
	Totals      Totals       `json:"totals"`
	// Notes say what limited the comparison (an adjacent day's bill that
	// could not be read), not differences.
	Notes []string `json:"notes,omitempty"`
}

// Clean reports whether the bill and the ledger agree.
func (r *Report) Clean() bool { return len(r.Differences) == 0 }

// Count returns how many differences of kind k the report lists.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, d := range r.Differences {
		if d.Kind == k {
			n++
		}
	}
	return n
}

// Input is what Compare reads.
type Input struct {
	// Day is any instant of the day to reconcile; its calendar date in
	// Loc is the day.
	Day time.Time
	// Loc is the bill's time zone; China when nil.
	Loc *time.Location
	// Bill is the day's ALL bill (payments by success time, refunds by
	// acceptance time); nil when WeChat Pay has none.
	Bill *wxpay.Bill
	// Adjacent are the bills of the neighbouring days, when known. A lot
	// credited just after midnight for a payment of the previous day, or a
	// refund begun in the ledger just before midnight and accepted after
	// it, is found there and is then not extra. They are never searched
	// for missing rows.
	Adjacent []*wxpay.Bill
	// Lots and Refunds are ledger rows: at least every lot credited and
	// every refund begun on the day, and every lot and refund that a bill
	// row names (wherever credited). More rows are harmless.
	Lots    []ledger.Lot
	Refunds []ledger.Refund
}

// DayBounds returns the first instant of day's calendar date in loc (Beijing
// when nil) and the first instant of the next date.
func DayBounds(day time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = tollgate.Beijing
	}
	d := day.In(loc)
	start = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	return start, start.AddDate(0, 0, 1)
}

// Compare reconciles one day's bill with the ledger. It is a pure function:
// the same input gives the same report, differences sorted by kind, then
// out_trade_no, out_refund_no and lot.
//
// Payments are the bill's SUCCESS rows, matched to lots by out_trade_no
// and by transaction_id; refunds are its REFUND rows, matched to ledger
// refunds by out_refund_no. A refund's status in the bill is a snapshot
// taken when the bill was made: PROCESSING in the bill and succeeded in the
// ledger agree. Pending ledger refunds that the bill does not list are not
// reported: they may not have reached WeChat Pay yet.
func Compare(in Input) Report {
	start, end := DayBounds(in.Day, in.Loc)
	c := &comparison{
		in:      in,
		start:   start,
		end:     end,
		lotByNo: map[string]*ledger.Lot{}, lotByTx: map[string]*ledger.Lot{}, lotByID: map[int64]*ledger.Lot{},
		refundByNo: map[string]*ledger.Refund{},
		usedLots:   map[int64]bool{}, usedRefunds: map[string]bool{},
	}
	c.report.Date = start.Format(time.DateOnly)
	c.report.NoBill = in.Bill == nil
	c.index()
	if in.Bill != nil {
		c.report.Totals.BillSummaryRows = in.Bill.Summary.Count
		c.report.Totals.BillSummaryTotal = tollgate.Fen(in.Bill.Summary.TotalFee)
		c.report.Totals.BillSummaryRefund = tollgate.Fen(in.Bill.Summary.RefundFee)
		c.billRows(in.Bill.Records)
		c.checkSummary(in.Bill)
	}
	c.extraLots()
	c.extraRefunds()
	sortDifferences(c.report.Differences)
	if c.report.Differences == nil {
		c.report.Differences = []Difference{}
	}
	return c.report
}

// comparison is the state of one Compare call.
type comparison struct {
	in         Input
	start, end time.Time
	report     Report

	lotByNo, lotByTx map[string]*ledger.Lot
	lotByID          map[int64]*ledger.Lot
	refundByNo       map[string]*ledger.Refund
	// usedLots and usedRefunds are the ledger rows matched to a bill row.
	usedLots    map[int64]bool
	usedRefunds map[string]bool
}

func (c *comparison) index() {
	for i := range c.in.Lots {
		l := &c.in.Lots[i]
		c.lotByNo[l.OutTradeNo] = l
		c.lotByTx[l.TransactionID] = l
		c.lotByID[l.ID] = l
	}
	for i := range c.in.Refunds {
		r := &c.in.Refunds[i]
		c.refundByNo[r.OutRefundNo] = r
	}
}

func (c *comparison) add(d Difference) { c.report.Differences = append(c.report.Differences, d) }

// inDay reports whether t falls on the reconciled day.
func (c *comparison) inDay(t time.Time) bool { return !t.Before(c.start) && t.Before(c.end) }

func (c *comparison) billRows(records []wxpay.BillRecord) {
	seenPay := map[string]bool{}
	seenRefund := map[string]bool{}
	for i := range records {
		row := &records[i]
		switch row.TradeState {
		case tradeStateSuccess:
			if seenPay[row.OutTradeNo] {
				c.add(Difference{Kind: Mismatched, OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID,
					BillFen: tollgate.Fen(row.TotalFee), Detail: "payment listed twice in the bill"})
				continue
			}
			seenPay[row.OutTradeNo] = true
			c.payment(row)
		case tradeStateRefund:
			if seenRefund[row.OutRefundNo] {
				c.add(Difference{Kind: RefundMismatched, OutTradeNo: row.OutTradeNo, OutRefundNo: row.OutRefundNo,
					BillFen: tollgate.Fen(billRefundFen(row)), Detail: "refund listed twice in the bill"})
				continue
			}
			seenRefund[row.OutRefundNo] = true
			c.refund(row)
		default:
			c.report.Totals.BillOtherRows++
		}
	}
}

// checkSummary notes a summary row that does not add up to the bill's
// records: a truncated or altered download. It is a note, not a difference,
// because it says the bill is suspect, not that the ledger is wrong.
func (c *comparison) checkSummary(b *wxpay.Bill) {
	var total, refund int64
	for i := range b.Records {
		total += b.Records[i].TotalFee
		refund += b.Records[i].RefundFee
	}
	s := b.Summary
	if s.Count != int64(len(b.Records)) || s.TotalFee != total || s.RefundFee != refund {
		c.report.Notes = append(c.report.Notes, fmt.Sprintf(
			"bill summary does not add up: %d rows, %d fen ordered, %d fen refunded; the records have %d, %d, %d",
			s.Count, s.TotalFee, s.RefundFee, len(b.Records), total, refund))
	}
}

// payment matches one SUCCESS row of the bill to its lot.
func (c *comparison) payment(row *wxpay.BillRecord) {
	t := &c.report.Totals
	t.BillPayments++
	t.BillGrossFen += tollgate.Fen(row.TotalFee)
	byNo, byTx := c.lotByNo[row.OutTradeNo], c.lotByTx[row.TransactionID]
	d := Difference{OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID, BillFen: tollgate.Fen(row.TotalFee)}
	lot := cmp.Or(byNo, byTx)
	if lot == nil {
		d.Kind, d.Detail = Missing, "paid at WeChat Pay, no lot credited"
		c.add(d)
		return
	}
	var problems []string
	if byNo != nil && byTx != nil && byNo.ID != byTx.ID {
		problems = append(problems, fmt.Sprintf("transaction_id credited as lot %d for order %s", byTx.ID, byTx.OutTradeNo))
		c.attribute(byTx)
	}
	if lot.OutTradeNo != row.OutTradeNo {
		problems = append(problems, fmt.Sprintf("transaction_id credited for order %s", lot.OutTradeNo))
	}
	if lot.TransactionID != row.TransactionID {
		problems = append(problems, fmt.Sprintf("lot has transaction_id %s", lot.TransactionID))
	}
	if int64(lot.Fen) != row.TotalFee {
		problems = append(problems, fmt.Sprintf("amount: bill %d fen, lot %d fen", row.TotalFee, lot.Fen))
	}
	c.attribute(lot)
	if len(problems) > 0 {
		d.Kind, d.LotID, d.LedgerFen, d.Detail = Mismatched, lot.ID, lot.Fen, strings.Join(problems, "; ")
		c.add(d)
	}
}

// attribute counts a lot as the day's, once.
func (c *comparison) attribute(l *ledger.Lot) {
	if c.usedLots[l.ID] {
		return
	}
	c.usedLots[l.ID] = true
	c.report.Totals.LedgerPayments++
	c.report.Totals.LedgerGrossFen += l.Fen
}

// billRefundFen is the amount of a refund row: the requested amount (what
// the ledger records), or the refunded amount when the bill type lacks it.
func billRefundFen(row *wxpay.BillRecord) int64 {
	return cmp.Or(row.RequestRefundFee, row.RefundFee)
}

// refund matches one REFUND row of the bill to a ledger refund.
func (c *comparison) refund(row *wxpay.BillRecord) {
	fen := billRefundFen(row)
	closed := row.RefundStatus == refundStatusClose
	if !closed {
		c.report.Totals.BillRefunds++
		c.report.Totals.BillRefundFen += tollgate.Fen(fen)
	}
	d := Difference{OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID, OutRefundNo: row.OutRefundNo, BillFen: tollgate.Fen(fen)}
	r := c.refundByNo[row.OutRefundNo]
	if r == nil {
		if !closed {
			d.Kind, d.Detail = RefundMissing, fmt.Sprintf("refund %s at WeChat Pay, none in the ledger", row.RefundStatus)
			c.add(d)
		}
		return
	}
	c.usedRefunds[r.OutRefundNo] = true
	d.LedgerFen, d.LotID = r.Fen, r.LotID
	if r.Status != ledger.RefundFailed {
		c.report.Totals.LedgerRefunds++
		c.report.Totals.LedgerRefundFen += r.Fen
	}
	switch {
	case closed && r.Status == ledger.RefundSucceeded:
		d.Kind, d.Detail = RefundMismatched, "closed at WeChat Pay, succeeded in the ledger"
		c.add(d)
		return
	case closed:
		return
	case r.Status == ledger.RefundFailed:
		d.Kind, d.Detail = RefundMissing, fmt.Sprintf("refund %s at WeChat Pay, failed in the ledger", row.RefundStatus)
		c.add(d)
		return
	case r.Status == ledger.RefundPending && row.RefundStatus == refundStatusSuccess:
		d.Kind, d.Detail = RefundMissing, "refunded at WeChat Pay, still pending in the ledger"
		c.add(d)
		return
	}
	var problems []string
	if int64(r.Fen) != fen {
		problems = append(problems, fmt.Sprintf("amount: bill %d fen, ledger %d fen", fen, r.Fen))
	}
	if l := c.lotByID[r.LotID]; l != nil && l.OutTradeNo != row.OutTradeNo {
		problems = append(problems, fmt.Sprintf("ledger refund is for order %s", l.OutTradeNo))
	}
	if len(problems) > 0 {
		d.Kind, d.Detail = RefundMismatched, strings.Join(problems, "; ")
		c.add(d)
	}
}

// inAdjacent reports whether an adjacent day's bill lists the payment
// (refundNo empty) or the refund.
func (c *comparison) inAdjacent(outTradeNo, transactionID, refundNo string) bool {
	for _, b := range c.in.Adjacent {
		if b == nil {
			continue
		}
		for i := range b.Records {
			row := &b.Records[i]
			switch {
			case refundNo == "" && row.TradeState == tradeStateSuccess &&
				(row.OutTradeNo == outTradeNo || row.TransactionID == transactionID):
				return true
			case refundNo != "" && row.TradeState == tradeStateRefund && row.OutRefundNo == refundNo:
				return true
			}
		}
	}
	return false
}

// extraLots reports the lots credited on the day that no bill lists.
func (c *comparison) extraLots() {
	for i := range c.in.Lots {
		l := &c.in.Lots[i]
		if c.usedLots[l.ID] || !c.inDay(l.CreatedAt) || c.inAdjacent(l.OutTradeNo, l.TransactionID, "") {
			continue
		}
		c.attribute(l)
		c.add(Difference{Kind: Extra, OutTradeNo: l.OutTradeNo, TransactionID: l.TransactionID, LotID: l.ID,
			LedgerFen: l.Fen, Detail: "lot credited, no SUCCESS payment in the bill"})
	}
}

// extraRefunds reports the refunds the ledger completed, begun on the day,
// that no bill lists.
func (c *comparison) extraRefunds() {
	for i := range c.in.Refunds {
		r := &c.in.Refunds[i]
		if c.usedRefunds[r.OutRefundNo] || r.Status != ledger.RefundSucceeded || !c.inDay(r.CreatedAt) ||
			c.inAdjacent("", "", r.OutRefundNo) {
			continue
		}
		c.report.Totals.LedgerRefunds++
		c.report.Totals.LedgerRefundFen += r.Fen
		d := Difference{Kind: RefundExtra, OutRefundNo: r.OutRefundNo, LotID: r.LotID, LedgerFen: r.Fen,
			Detail: "refund succeeded in the ledger, not in the bill"}
		if l := c.lotByID[r.LotID]; l != nil {
			d.OutTradeNo, d.TransactionID = l.OutTradeNo, l.TransactionID
		}
		c.add(d)
	}
}

func sortDifferences(ds []Difference) {
	slices.SortStableFunc(ds, func(a, b Difference) int {
		return cmp.Or(
			cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]),
			strings.Compare(a.OutTradeNo, b.OutTradeNo),
			strings.Compare(a.OutRefundNo, b.OutRefundNo),
			cmp.Compare(a.LotID, b.LotID),
		)
	})
}
