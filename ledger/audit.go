package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"tollgate"
)

// Violation is one broken invariant, as data.
type Violation struct {
	// Check names the invariant, e.g. "lot.conservation" (see Audit).
	Check string
	// Subject is the row or account concerned, e.g. "lot 7".
	Subject string
	Detail  string
}

// String formats v for logs and the audit command.
func (v Violation) String() string { return v.Check + " " + v.Subject + ": " + v.Detail }

// AuditOptions tunes Audit. The zero value checks everything except hold
// age.
type AuditOptions struct {
	// Now, when set, enables the hold-age check: no hold may still be
	// active after ExpiresAt + Grace.
	Now   time.Time
	Grace time.Duration
}

// Audit reads the whole store in one snapshot and returns every violation
// of the ledger's invariants (an empty slice when all hold). The error is
// only for failing to read. Checks:
//
//   - lot.nonnegative, lot.conservation: per lot, every amount ≥ 0 and
//     granted = used + left + refunding + refunded (I3);
//   - total.conservation: the same over all lots (I4);
//   - lot.refunds: per lot, succeeded refunds sum to refunded and
//     refunded_fen, pending ones to refunding; refunded fen ≤ fen paid;
//     each refund's fen is floor(fen × credits / granted) (I7);
//   - account.left, account.held, account.debt: materialised balances equal
//     the fold of lots, active holds and debt (I11);
//   - hold.cost, hold.resolution, hold.expired: cost ≤ amount, cost only on
//     settled holds, resolved holds have a resolution time, no active hold
//     past expiry + grace (I5);
//   - grant.held, grant.cap, grant.live: a grant's held is the sum of its
//     active holds, used + held ≤ cap, at most one live grant per account
//     (I9);
//   - usage.settled, usage.lots: per account, usage credits = settled
//     holds = lots used + debt + used of live grants (I6);
//   - account.debt_origin: an account's debt is no more than its revoked
//     grants used, plus what its confirmed grants' caps exceed their lots
//     by, plus the cost of its holds settled at or after their expiry —
//     the only ways debt arises — so spending beyond the available
//     balance cannot hide as debt (I5);
//   - adjustment.lot: a lot of 0 fen is a positive adjustment's and
//     carries exactly its credits for its account; every positive
//     adjustment has such a lot, and what it paid of the debt (DebtPaid)
//     is within its credits and within what its lot has used; a negative
//     one's debt is within its credits and it paid no debt (negative
//     adjustments are counted by usage.lots, their debt by
//     account.debt_origin);
//   - schema.unique: the unique constraints exactly-once rests on exist (I1).
func Audit(ctx context.Context, s Store, opt AuditOptions) ([]Violation, error) {
	var d *Dump
	err := s.View(ctx, func(tx ReadTx) (err error) {
		d, err = tx.Dump(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: read store: %w", err)
	}
	return AuditDump(d, opt), nil
}

type auditor struct {
	out []Violation
}

func (a *auditor) add(check, subject, format string, args ...any) {
	a.out = append(a.out, Violation{Check: check, Subject: subject, Detail: fmt.Sprintf(format, args...)})
}

// AuditDump checks the invariants over an already-read Dump. See Audit.
func AuditDump(d *Dump, opt AuditOptions) []Violation {
	a := &auditor{out: []Violation{}}
	a.lots(d)
	a.accounts(d)
	a.holds(d, opt)
	a.grants(d)
	a.usage(d)
	a.debt(d)
	a.adjustments(d)
	for _, c := range RequiredConstraints {
		if !slices.Contains(d.Constraints, c) {
			a.add("schema.unique", c, "unique constraint missing")
		}
	}
	return a.out
}

func (a *auditor) lots(d *Dump) {
	type sums struct {
		credits, pending tollgate.Credits
		fen              tollgate.Fen
	}
	byLot := map[int64]*sums{}
	lots := map[int64]Lot{}
	for _, l := range d.Lots {
		lots[l.ID] = l
		byLot[l.ID] = &sums{}
	}
	for _, r := range d.Refunds {
		l, ok := lots[r.LotID]
		if !ok {
			a.add("lot.refunds", "refund "+r.OutRefundNo, "refers to missing lot %d", r.LotID)
			continue
		}
		if r.Credits <= 0 || r.Credits > l.Granted {
			a.add("lot.refunds", "refund "+r.OutRefundNo, "credits %d outside (0, %d]", r.Credits, l.Granted)
		} else if want := RefundFen(l.Fen, r.Credits, l.Granted); r.Fen != want {
			a.add("lot.refunds", "refund "+r.OutRefundNo, "fen %d, want floor(%d*%d/%d) = %d", r.Fen, l.Fen, r.Credits, l.Granted, want)
		}
		switch r.Status {
		case RefundSucceeded:
			byLot[r.LotID].credits += r.Credits
			byLot[r.LotID].fen += r.Fen
		case RefundPending:
			byLot[r.LotID].pending += r.Credits
		}
	}
	adjLot := map[string]bool{}
	for _, adj := range d.Adjustments {
		if adj.Credits > 0 {
			adjLot[adj.ID] = true
		}
	}
	var granted, parts tollgate.Credits
	for _, l := range d.Lots {
		subj := fmt.Sprintf("lot %d", l.ID)
		minFen := tollgate.Fen(1)
		if adjLot[l.OutTradeNo] {
			minFen = 0 // an adjustment's lot: nothing was paid
		}
		if l.Granted <= 0 || l.Used < 0 || l.Left < 0 || l.Refunding < 0 || l.Refunded < 0 || l.Fen < minFen || l.RefundedFen < 0 {
			a.add("lot.nonnegative", subj, "granted %d used %d left %d refunding %d refunded %d fen %d refunded_fen %d",
				l.Granted, l.Used, l.Left, l.Refunding, l.Refunded, l.Fen, l.RefundedFen)
		}
		if l.Granted != l.Used+l.Left+l.Refunding+l.Refunded {
			a.add("lot.conservation", subj, "granted %d ≠ used %d + left %d + refunding %d + refunded %d",
				l.Granted, l.Used, l.Left, l.Refunding, l.Refunded)
		}
		s := byLot[l.ID]
		if s.credits != l.Refunded || s.fen != l.RefundedFen || s.pending != l.Refunding {
			a.add("lot.refunds", subj, "refunds sum to %d credits/%d fen succeeded and %d pending; lot says %d/%d and %d",
				s.credits, s.fen, s.pending, l.Refunded, l.RefundedFen, l.Refunding)
		}
		if l.RefundedFen > l.Fen {
			a.add("lot.refunds", subj, "refunded %d fen of %d paid", l.RefundedFen, l.Fen)
		}
		granted += l.Granted
		parts += l.Used + l.Left + l.Refunding + l.Refunded
	}
	if granted != parts {
		a.add("total.conservation", "all lots", "granted %d ≠ used + left + refunding + refunded %d", granted, parts)
	}
}

func (a *auditor) accounts(d *Dump) {
	left := map[tollgate.AccountID]tollgate.Credits{}
	held := map[tollgate.AccountID]tollgate.Credits{}
	confirmed := map[string]bool{}
	for _, g := range d.Grants {
		confirmed[g.ID] = g.Status == GrantConfirmed
	}
	for _, l := range d.Lots {
		left[l.Account] += l.Left
	}
	for _, h := range d.Holds {
		if h.Status == HoldActive && (h.GrantID == "" || confirmed[h.GrantID]) {
			held[h.Account] += h.Amount
		}
	}
	known := map[tollgate.AccountID]bool{}
	for _, acc := range d.Accounts {
		known[acc.ID] = true
		subj := "account " + string(acc.ID)
		if acc.Left != left[acc.ID] {
			a.add("account.left", subj, "left %d ≠ Σ lot left %d", acc.Left, left[acc.ID])
		}
		if acc.Held != held[acc.ID] {
			a.add("account.held", subj, "held %d ≠ Σ active lot-funded holds %d", acc.Held, held[acc.ID])
		}
		if acc.Debt < 0 || acc.Left < 0 || acc.Held < 0 {
			a.add("account.debt", subj, "negative balance: left %d held %d debt %d", acc.Left, acc.Held, acc.Debt)
		}
	}
	for id := range left {
		if !known[id] {
			a.add("account.left", "account "+string(id), "lots of a missing account")
		}
	}
}

func (a *auditor) holds(d *Dump, opt AuditOptions) {
	for _, h := range d.Holds {
		subj := "hold " + h.ID
		if h.Cost < 0 || h.Cost > h.Amount || h.Amount <= 0 {
			a.add("hold.cost", subj, "cost %d of amount %d", h.Cost, h.Amount)
		}
		if h.Status != HoldSettled && h.Cost != 0 {
			a.add("hold.cost", subj, "%s hold carries cost %d", h.Status, h.Cost)
		}
		if (h.Status == HoldActive) != h.ResolvedAt.IsZero() {
			a.add("hold.resolution", subj, "status %s with resolved_at %v", h.Status, h.ResolvedAt)
		}
		if h.Status == HoldActive && !opt.Now.IsZero() && opt.Now.After(h.ExpiresAt.Add(opt.Grace)) {
			a.add("hold.expired", subj, "active %s past its expiry %s", opt.Now.Sub(h.ExpiresAt), h.ExpiresAt.Format(time.RFC3339))
		}
	}
}

func (a *auditor) grants(d *Dump) {
	held := map[string]tollgate.Credits{}
	for _, h := range d.Holds {
		if h.Status == HoldActive && h.GrantID != "" {
			held[h.GrantID] += h.Amount
		}
	}
	live := map[tollgate.AccountID]int{}
	for _, g := range d.Grants {
		subj := "grant " + g.ID
		want := held[g.ID]
		if g.Status == GrantConfirmed {
			want = 0 // its holds are lot-funded now
		}
		if g.Held != want {
			a.add("grant.held", subj, "held %d ≠ Σ active holds %d", g.Held, want)
		}
		if g.Used < 0 || g.Held < 0 || g.Used+g.Held > g.Cap {
			a.add("grant.cap", subj, "used %d + held %d outside cap %d", g.Used, g.Held, g.Cap)
		}
		if g.Status == GrantLive {
			live[g.Account]++
		}
	}
	for acc, n := range live {
		if n > 1 {
			a.add("grant.live", "account "+string(acc), "%d live grants", n)
		}
	}
}

func (a *auditor) usage(d *Dump) {
	usage := map[tollgate.AccountID]tollgate.Credits{}
	settled := map[tollgate.AccountID]tollgate.Credits{}
	spent := map[tollgate.AccountID]tollgate.Credits{}
	for _, u := range d.Usage {
		usage[u.Account] += u.Credits
	}
	for _, h := range d.Holds {
		if h.Status == HoldSettled {
			settled[h.Account] += h.Cost
		}
	}
	for _, l := range d.Lots {
		spent[l.Account] += l.Used
	}
	for _, acc := range d.Accounts {
		spent[acc.ID] += acc.Debt
	}
	// A negative adjustment is spent like usage: from lots, the rest as
	// debt.
	removed := map[tollgate.AccountID]tollgate.Credits{}
	for _, adj := range d.Adjustments {
		if adj.Credits < 0 {
			removed[adj.Account] -= adj.Credits
		}
	}
	for _, g := range d.Grants {
		if g.Status == GrantLive {
			spent[g.Account] += g.Used
		}
	}
	for _, acc := range d.Accounts {
		subj := "account " + string(acc.ID)
		if usage[acc.ID] != settled[acc.ID] {
			a.add("usage.settled", subj, "usage credits %d ≠ settled holds %d", usage[acc.ID], settled[acc.ID])
		}
		if settled[acc.ID]+removed[acc.ID] != spent[acc.ID] {
			a.add("usage.lots", subj, "settled holds %d + credits removed by adjustments %d ≠ lots used + debt + live grants used %d",
				settled[acc.ID], removed[acc.ID], spent[acc.ID])
		}
	}
}

// debt checks where debt comes from. Lot-funded holds are reserved only
// against available credit, so settling them never outgrows the lots
// unless a grant's usage moved onto them: a revoked grant's usage (at
// revocation and from its holds settled after) becomes debt, and a
// confirmed grant can overflow its lot by at most its cap minus the lot's
// credits. The one other way is a late settle: a hold that expired before
// its call ended is charged what the account can spare, the rest as debt
// (settleLate), so at most its cost; such a hold was settled at or after
// its expiry (a settle in time is before it). Paying debt off only lowers
// it, so the sum of those is a bound.
func (a *auditor) debt(d *Dump) {
	granted := make(map[int64]tollgate.Credits, len(d.Lots))
	for _, l := range d.Lots {
		granted[l.ID] = l.Granted
	}
	origin := map[tollgate.AccountID]tollgate.Credits{}
	for _, g := range d.Grants {
		switch g.Status {
		case GrantRevoked:
			origin[g.Account] += g.Used
		case GrantConfirmed:
			origin[g.Account] += max(0, g.Cap-granted[g.LotID])
		}
	}
	for _, h := range d.Holds {
		if h.Status == HoldSettled && !h.ResolvedAt.Before(h.ExpiresAt) {
			origin[h.Account] += h.Cost
		}
	}
	for _, adj := range d.Adjustments {
		origin[adj.Account] += adj.Debt // an operator's adjustment recorded as debt
	}
	for _, acc := range d.Accounts {
		if acc.Debt > origin[acc.ID] {
			a.add("account.debt_origin", "account "+string(acc.ID),
				"debt %d exceeds the %d credits revoked or overflowing grants and late settles account for: credit was spent beyond the available balance",
				acc.Debt, origin[acc.ID])
		}
	}
}

func (a *auditor) adjustments(d *Dump) {
	lots := map[string]Lot{}
	for _, l := range d.Lots {
		lots[l.OutTradeNo] = l
	}
	positive := map[string]bool{}
	for _, adj := range d.Adjustments {
		subj := "adjustment " + adj.ID
		switch {
		case adj.Credits > 0:
			positive[adj.ID] = true
			l, ok := lots[adj.ID]
			if !ok || l.ID != adj.LotID || l.Fen != 0 || l.Granted != adj.Credits || l.Account != adj.Account {
				a.add("adjustment.lot", subj, "adds %d credits to %s but its lot (id %d) is %+v", adj.Credits, adj.Account, adj.LotID, l)
			}
			if adj.Debt != 0 {
				a.add("adjustment.lot", subj, "a positive adjustment records debt %d", adj.Debt)
			}
			if adj.DebtPaid < 0 || adj.DebtPaid > adj.Credits || (ok && adj.DebtPaid > l.Used) {
				a.add("adjustment.lot", subj, "adds %d credits and paid %d of the debt, but its lot has used %d", adj.Credits, adj.DebtPaid, l.Used)
			}
		case adj.Credits < 0:
			if adj.Debt < 0 || adj.Debt > -adj.Credits || adj.LotID != 0 || adj.DebtPaid != 0 {
				a.add("adjustment.lot", subj, "removes %d credits with debt %d, debt paid %d and lot %d", -adj.Credits, adj.Debt, adj.DebtPaid, adj.LotID)
			}
		default:
			a.add("adjustment.lot", subj, "adjusts 0 credits")
		}
	}
	for _, l := range d.Lots {
		if l.Fen == 0 && !positive[l.OutTradeNo] {
			a.add("adjustment.lot", fmt.Sprintf("lot %d", l.ID), "0 fen paid, and no adjustment carries it")
		}
	}
}
