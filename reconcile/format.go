package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText writes r as an aligned table followed by the totals, for people.
// Amounts are integer fen.
func WriteText(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Reconciliation of %s (China time)", r.Date)
	if r.NoBill {
		fmt.Fprint(tw, ": WeChat Pay has no bill for this day")
	}
	fmt.Fprintln(tw)
	if len(r.Differences) > 0 {
		fmt.Fprintln(tw, "\nKIND\tOUT_TRADE_NO\tTRANSACTION_ID\tOUT_REFUND_NO\tLOT\tBILL_FEN\tLEDGER_FEN\tDETAIL")
		for _, d := range r.Differences {
			lot := "-"
			if d.LotID != 0 {
				lot = fmt.Sprint(d.LotID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Kind, dash(d.OutTradeNo), dash(d.TransactionID),
				dash(d.OutRefundNo), lot, d.BillFen, d.LedgerFen, d.Detail)
		}
	}
	t := r.Totals
	fmt.Fprintln(tw, "\nTOTALS\tBILL_ROWS\tBILL_FEN\tLEDGER_ROWS\tLEDGER_FEN\tDIFF_FEN")
	fmt.Fprintf(tw, "payments\t%d\t%d\t%d\t%d\t%d\n", t.BillPayments, t.BillGrossFen, t.LedgerPayments, t.LedgerGrossFen,
		t.BillGrossFen-t.LedgerGrossFen)
	fmt.Fprintf(tw, "refunds\t%d\t%d\t%d\t%d\t%d\n", t.BillRefunds, t.BillRefundFen, t.LedgerRefunds, t.LedgerRefundFen,
		t.BillRefundFen-t.LedgerRefundFen)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("reconcile: write report: %w", err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	var err error
	if r.Clean() {
		_, err = fmt.Fprintln(w, "\nClean: the bill and the ledger agree.")
	} else {
		_, err = fmt.Fprintf(w, "\n%d difference(s) found.\n", len(r.Differences))
	}
	if err != nil {
		return fmt.Errorf("reconcile: write report: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON writes r as one indented JSON object, for programs.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("reconcile: write report: %w", err)
	}
	return nil
}
