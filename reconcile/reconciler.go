package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/wxpay"
)

// ErrNoBill is returned by a BillSource for a day WeChat Pay has no bill for:
// nothing was paid or refunded that day (v2 error_code 20002 "No Bill
// Exist", v3 NO_STATEMENT_EXIST).
var ErrNoBill = errors.New("reconcile: no bill for this day")

// BillSource downloads trade bills.
type BillSource interface {
	// Bill returns the ALL bill (payments and refunds) of day's calendar
	// date in China time. A day without a bill returns an error wrapping
	// ErrNoBill; a bill not generated yet (WeChat Pay makes day T's bill
	// from 09:00 on T+1) or any other failure returns another error. It is
	// read-only and safe to retry.
	Bill(ctx context.Context, day time.Time) (*wxpay.Bill, error)
}

// V2Bills downloads bills through API v2 (/pay/downloadbill).
type V2Bills struct{ Client *wxpay.V2Client }

var _ BillSource = V2Bills{}

// Bill implements BillSource.
func (s V2Bills) Bill(ctx context.Context, day time.Time) (*wxpay.Bill, error) {
	b, err := s.Client.DownloadBill(ctx, wxpay.V2BillRequest{Date: day, BillType: wxpay.V2BillTypeAll, Gzip: true})
	var apiErr *wxpay.APIError
	if errors.As(err, &apiErr) && apiErr.Code == "20002" {
		return nil, fmt.Errorf("%w: %w", ErrNoBill, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: download v2 bill: %w", err)
	}
	return b, nil
}

// V3Bills downloads bills through API v3 (/v3/bill/tradebill, then the
// signed download of its link, SHA-1 checked).
type V3Bills struct{ Client *wxpay.V3Client }

var _ BillSource = V3Bills{}

// Bill implements BillSource.
func (s V3Bills) Bill(ctx context.Context, day time.Time) (*wxpay.Bill, error) {
	b, err := s.Client.Bill(ctx, wxpay.V3BillRequest{Date: day, BillType: wxpay.V3BillTypeAll, Gzip: true})
	var apiErr *wxpay.APIError
	if errors.As(err, &apiErr) && apiErr.Code == "NO_STATEMENT_EXIST" {
		return nil, fmt.Errorf("%w: %w", ErrNoBill, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: download v3 bill: %w", err)
	}
	return b, nil
}

// Reconciler reconciles whole days: it downloads the bill and reads the
// ledger, then calls Compare.
type Reconciler struct {
	Bills BillSource
	Store ledger.Store
	// Loc is the bill's time zone; China when nil.
	Loc *time.Location
	// Clock is the clock, SystemClock when nil. The next day's bill is not
	// asked for before that day has ended.
	Clock tollgate.Clock
}

// Reconcile reconciles day's calendar date in the bill's time zone. When
// the first comparison finds extra lots or refunds, it also downloads the
// bills of the day before and after (once that day has ended), so that a
// payment credited just after midnight, or a refund begun just before it,
// is not reported; an adjacent bill that cannot be read is named in the
// report's notes. The error is
// only for failing to read the day's bill or the ledger.
func (r *Reconciler) Reconcile(ctx context.Context, day time.Time) (Report, error) {
	start, _ := DayBounds(day, r.Loc)
	in := Input{Day: start, Loc: r.Loc}
	bill, err := r.Bills.Bill(ctx, start)
	switch {
	case errors.Is(err, ErrNoBill):
	case err != nil:
		return Report{}, fmt.Errorf("reconcile %s: %w", start.Format(time.DateOnly), err)
	default:
		in.Bill = bill
	}
	err = r.Store.View(ctx, func(tx ledger.ReadTx) (err error) {
		in.Lots, in.Refunds, err = DayRows(ctx, tx, start, in.Bill, r.Loc)
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("reconcile %s: read ledger: %w", start.Format(time.DateOnly), err)
	}
	rep := Compare(in)
	if rep.Count(Extra) == 0 && rep.Count(RefundExtra) == 0 {
		return rep, nil
	}
	var notes []string
	clock := tollgate.ClockOr(r.Clock)
	for _, d := range []time.Time{start.AddDate(0, 0, -1), start.AddDate(0, 0, 1)} {
		if clock.Now().Before(d.AddDate(0, 0, 1)) { // the day has not ended
			notes = append(notes, fmt.Sprintf("bill of %s not made yet: rows of just before midnight may be listed as extra",
				d.Format(time.DateOnly)))
			continue
		}
		b, err := r.Bills.Bill(ctx, d)
		switch {
		case errors.Is(err, ErrNoBill):
		case err != nil:
			notes = append(notes, fmt.Sprintf("bill of %s unavailable, boundary rows not checked against it: %v",
				d.Format(time.DateOnly), err))
		default:
			in.Adjacent = append(in.Adjacent, b)
		}
	}
	rep = Compare(in)
	rep.Notes = append(rep.Notes, notes...)
	return rep, nil
}

// lookupChunk bounds the keys of one lookup query.
const lookupChunk = 500

// DayRows reads what Compare needs of the ledger for day (its calendar
// date in loc, China when nil) and its bill (nil when none): the lots and
// refunds created on the day, the lots and refunds the bill names (wherever
// credited), and the lots of those refunds — never the whole ledger. Lots
// are by ID, refunds by out_refund_no. Its memory is the day's, as the
// bill's is.
func DayRows(ctx context.Context, tx ledger.ReadTx, day time.Time, bill *wxpay.Bill, loc *time.Location) ([]ledger.Lot, []ledger.Refund, error) {
	start, end := DayBounds(day, loc)
	p := ledger.Period{From: start, To: end}
	lots := map[int64]ledger.Lot{}
	refunds := map[string]ledger.Refund{}
	if err := tx.ScanLots(ctx, p, func(l ledger.Lot) error { lots[l.ID] = l; return nil }); err != nil {
		return nil, nil, err
	}
	if err := tx.ScanRefunds(ctx, p, func(r ledger.Refund) error { refunds[r.OutRefundNo] = r; return nil }); err != nil {
		return nil, nil, err
	}
	if bill != nil {
		var nos, txs, refundNos []string
		for i := range bill.Records {
			switch row := &bill.Records[i]; row.TradeState {
			case tradeStateSuccess:
				nos, txs = append(nos, row.OutTradeNo), append(txs, row.TransactionID)
			case tradeStateRefund:
				if _, ok := refunds[row.OutRefundNo]; !ok {
					refundNos = append(refundNos, row.OutRefundNo)
				}
			}
		}
		for i := 0; i < len(nos); i += lookupChunk {
			j := min(i+lookupChunk, len(nos))
			ls, err := tx.LotsByPayment(ctx, nos[i:j], txs[i:j])
			if err != nil {
				return nil, nil, err
			}
			for _, l := range ls {
				lots[l.ID] = l
			}
		}
		for chunk := range slices.Chunk(refundNos, lookupChunk) {
			rs, err := tx.Refunds(ctx, chunk)
			if err != nil {
				return nil, nil, err
			}
			for _, r := range rs {
				refunds[r.OutRefundNo] = r
			}
		}
	}
	var need []int64
	for _, r := range refunds {
		if _, ok := lots[r.LotID]; !ok {
			need = append(need, r.LotID)
		}
	}
	slices.Sort(need)
	for chunk := range slices.Chunk(slices.Compact(need), lookupChunk) {
		ls, err := tx.Lots(ctx, chunk)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range ls {
			lots[l.ID] = l
		}
	}
	outLots := slices.SortedFunc(maps.Values(lots), func(a, b ledger.Lot) int { return cmp.Compare(a.ID, b.ID) })
	outRefunds := slices.SortedFunc(maps.Values(refunds), func(a, b ledger.Refund) int { return cmp.Compare(a.OutRefundNo, b.OutRefundNo) })
	return outLots, outRefunds, nil
}
