package ledger

import (
	"cmp"
	"context"
	"slices"

	"tollgate"
)

// dumpSource serves audit from a Dump, as a store's ReadTx serves it from
// the database, so AuditDump and Audit run the same checks.
type dumpSource struct{ d *Dump }

func scanSlice[T any](rows []T, keep func(*T) bool, fn func(T) error) error {
	for i := range rows {
		if !keep(&rows[i]) {
			continue
		}
		if err := fn(rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s dumpSource) Constraints(context.Context) ([]string, error) { return s.d.Constraints, nil }

func (s dumpSource) ScanAccounts(_ context.Context, fn func(Account) error) error {
	return scanSlice(s.d.Accounts, func(*Account) bool { return true }, fn)
}

func (s dumpSource) ScanLots(_ context.Context, p Period, fn func(Lot) error) error {
	return scanSlice(s.d.Lots, func(l *Lot) bool { return p.Contains(l.CreatedAt) }, fn)
}

func (s dumpSource) ScanRefunds(_ context.Context, p Period, fn func(Refund) error) error {
	return scanSlice(s.d.Refunds, func(r *Refund) bool { return p.Contains(r.CreatedAt) }, fn)
}

func (s dumpSource) ScanGrants(_ context.Context, p Period, fn func(Grant) error) error {
	return scanSlice(s.d.Grants, func(g *Grant) bool { return p.Contains(g.CreatedAt) }, fn)
}

func (s dumpSource) ScanAdjustments(_ context.Context, p Period, fn func(Adjustment) error) error {
	return scanSlice(s.d.Adjustments, func(a *Adjustment) bool { return p.Contains(a.CreatedAt) }, fn)
}

// ScanAuditHolds returns every hold active or created in p: a superset of
// what a store returns, which audit re-checks anyway.
func (s dumpSource) ScanAuditHolds(_ context.Context, p Period, fn func(Hold) error) error {
	return scanSlice(s.d.Holds, func(h *Hold) bool { return h.Status == HoldActive || p.Contains(h.CreatedAt) }, fn)
}

func (s dumpSource) SpendSums(_ context.Context, fn func(SpendSum) error) error {
	sums := map[tollgate.AccountID]*SpendSum{}
	get := func(id tollgate.AccountID) *SpendSum {
		if sums[id] == nil {
			sums[id] = &SpendSum{Account: id}
		}
		return sums[id]
	}
	for _, u := range s.d.Usage {
		if !u.CreatedAt.Before(s.d.PrunedBefore) {
			get(u.Account).Usage += u.Credits
		}
	}
	for _, p := range s.d.PrunedUsage {
		get(p.Account).Usage += p.Credits
	}
	for _, h := range s.d.Holds {
		if h.Status == HoldSettled {
			x := get(h.Account)
			x.Settled += h.Cost
			if !h.ResolvedAt.Before(h.ExpiresAt) {
				x.Late += h.Cost
			}
		}
	}
	out := make([]SpendSum, 0, len(sums))
	for _, x := range sums {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b SpendSum) int { return cmp.Compare(a.Account, b.Account) })
	for _, x := range out {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

func (s dumpSource) Lots(_ context.Context, ids []int64) ([]Lot, error) {
	var out []Lot
	for _, l := range s.d.Lots {
		if slices.Contains(ids, l.ID) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s dumpSource) LotsByPayment(_ context.Context, outTradeNos, transactionIDs []string) ([]Lot, error) {
	var out []Lot
	for _, l := range s.d.Lots {
		if slices.Contains(outTradeNos, l.OutTradeNo) || slices.Contains(transactionIDs, l.TransactionID) {
			out = append(out, l)
		}
	}
	return out, nil
}
