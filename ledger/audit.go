package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// age, over the whole ledger.
type AuditOptions struct {
	// Now, when set, enables the hold-age check: no hold may still be
	// active after ExpiresAt + Grace.
	Now   time.Time
	Grace time.Duration
	// Period, when not zero, limits the audit to the rows created in it:
	// the per-row checks (see PeriodChecks) run over the lots, refunds,
	// holds, grants and adjustments created in Period, reading whatever
	// other rows each one needs (a lot's refunds, a refund's lot, a
	// grant's active holds). The per-account and whole-ledger checks
	// (SkippedInPeriod) need every row of an account and are skipped.
	Period Period
}

// PeriodChecks are the checks an audit over a Period runs; SkippedInPeriod
// are those it cannot, because a balance is the fold of all of an
// account's rows, whenever created.
var (
	PeriodChecks = []string{"lot.nonnegative", "lot.conservation", "lot.refunds", "total.conservation",
		"hold.cost", "hold.resolution", "hold.expired", "grant.held", "grant.cap", "adjustment.lot", "schema.unique"}
	SkippedInPeriod = []string{"account.left", "account.held", "account.debt", "account.debt_origin",
		"usage.settled", "usage.lots", "grant.live"}
)

// Audit reads the store in one snapshot (one View) and returns every
// violation of the ledger's invariants (an empty slice when all hold). The
// error is only for failing to read. Checks:
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
//     holds = lots used + debt + used of live grants (I6); the usage
//     credits of the days before the rollup's PrunedBefore (usage
//     retention) are the daily rollup's, since their per-call records
//     may be deleted (see ReadTx.SpendSums);
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
//
// Audit streams: the big tables (lots, holds, usage) are read a row at a
// time or aggregated in SQL (ReadTx.ScanLots, ScanAuditHolds, SpendSums),
// so its memory grows with the number of accounts, grants, refunds and
// adjustments, not with lots, holds or usage records. AuditDump runs the
// same checks over a Dump and gives the same result.
func Audit(ctx context.Context, s Store, opt AuditOptions) ([]Violation, error) {
	var out []Violation
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = audit(ctx, tx, opt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: read store: %w", err)
	}
	return out, nil
}

// AuditDump checks the invariants over an already-read Dump. See Audit.
func AuditDump(d *Dump, opt AuditOptions) []Violation {
	out, err := audit(context.Background(), dumpSource{d}, opt)
	if err != nil {
		panic(err) // a Dump cannot fail to read
	}
	return out
}

// auditSource is what audit reads: a ReadTx, or a Dump (dumpSource).
type auditSource interface {
	Constraints(ctx context.Context) ([]string, error)
	ScanAccounts(ctx context.Context, fn func(Account) error) error
	ScanLots(ctx context.Context, p Period, fn func(Lot) error) error
	ScanRefunds(ctx context.Context, p Period, fn func(Refund) error) error
	ScanGrants(ctx context.Context, p Period, fn func(Grant) error) error
	ScanAdjustments(ctx context.Context, p Period, fn func(Adjustment) error) error
	ScanAuditHolds(ctx context.Context, p Period, fn func(Hold) error) error
	SpendSums(ctx context.Context, fn func(SpendSum) error) error
	Lots(ctx context.Context, ids []int64) ([]Lot, error)
	LotsByPayment(ctx context.Context, outTradeNos, transactionIDs []string) ([]Lot, error)
}

// acct folds one account's rows.
type acct struct {
	lots                            bool // has lots
	left, used, held                tollgate.Credits
	liveUsed, revokedUsed, overflow tollgate.Credits
	live                            int
	removed, adjDebt                tollgate.Credits
	usage, settled, late            tollgate.Credits
}

// auditor is the state of one audit. Violations are kept per group and
// joined in a fixed order at the end, so the output is the same whatever
// order the rows are read in.
type auditor struct {
	opt   AuditOptions
	whole bool
	accts map[tollgate.AccountID]*acct

	adjs     []Adjustment // every adjustment, by ID
	positive map[string]bool
	adjLots  map[string]Lot // lots carrying a positive adjustment, by out_trade_no

	grants    []Grant // in the period, by ID
	confirmed map[string]bool
	lotOf     map[int64][]int // lot ID → index in grants of confirmed grants on it
	grantHeld map[string]tollgate.Credits

	refunds map[int64][]Refund // every refund, by lot

	granted, parts tollgate.Credits

	refundV                                                []keyed
	lotV, totalV, accountV, missingV, holdV, grantV, liveV []Violation
	usageV, debtV, adjV, adjLotV, schemaV                  []Violation
}

// keyed is a violation with the key it sorts by.
type keyed struct {
	key string
	v   Violation
}

func (a *auditor) acct(id tollgate.AccountID) *acct {
	c := a.accts[id]
	if c == nil {
		c = &acct{}
		a.accts[id] = c
	}
	return c
}

func add(to *[]Violation, check, subject, format string, args ...any) {
	*to = append(*to, Violation{Check: check, Subject: subject, Detail: fmt.Sprintf(format, args...)})
}

func audit(ctx context.Context, src auditSource, opt AuditOptions) ([]Violation, error) {
	a := &auditor{
		opt: opt, whole: opt.Period.All(),
		accts:    map[tollgate.AccountID]*acct{},
		positive: map[string]bool{}, adjLots: map[string]Lot{},
		confirmed: map[string]bool{}, lotOf: map[int64][]int{}, grantHeld: map[string]tollgate.Credits{},
		refunds: map[int64][]Refund{},
	}
	steps := []func() error{
		func() error { return src.ScanAdjustments(ctx, Period{}, a.adjustment) },
		func() error { return src.ScanGrants(ctx, opt.Period, a.grant) },
		func() error { return src.ScanRefunds(ctx, Period{}, a.refund) },
		func() error { return src.ScanAuditHolds(ctx, opt.Period, a.hold) },
		func() error { return src.ScanLots(ctx, opt.Period, a.lot) },
		func() error { return a.leftovers(ctx, src) },
	}
	if a.whole {
		steps = append(steps,
			func() error { return src.SpendSums(ctx, a.spend) },
			func() error { return src.ScanAccounts(ctx, a.account) },
		)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	cs, err := src.Constraints(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range RequiredConstraints {
		if !slices.Contains(cs, c) {
			add(&a.schemaV, "schema.unique", c, "unique constraint missing")
		}
	}
	return a.finish(), nil
}

func (a *auditor) adjustment(adj Adjustment) error {
	a.adjs = append(a.adjs, adj)
	if adj.Credits > 0 {
		a.positive[adj.ID] = true
	}
	if a.whole {
		c := a.acct(adj.Account)
		if adj.Credits < 0 {
			c.removed -= adj.Credits // a negative adjustment is spent like usage: from lots, the rest as debt
		}
		c.adjDebt += adj.Debt // an operator's adjustment recorded as debt
	}
	return nil
}

func (a *auditor) grant(g Grant) error {
	a.grants = append(a.grants, g)
	a.confirmed[g.ID] = g.Status == GrantConfirmed
	if !a.whole {
		return nil
	}
	c := a.acct(g.Account)
	switch g.Status {
	case GrantLive:
		c.live++
		c.liveUsed += g.Used
	case GrantRevoked:
		c.revokedUsed += g.Used
	case GrantConfirmed:
		// Its overflow, cap minus the lot's credits, is known once the
		// lots are read; a missing lot counts as 0 credits.
		a.lotOf[g.LotID] = append(a.lotOf[g.LotID], len(a.grants)-1)
		c.overflow += max(0, g.Cap)
	}
	return nil
}

func (a *auditor) refund(r Refund) error {
	a.refunds[r.LotID] = append(a.refunds[r.LotID], r)
	return nil
}

func (a *auditor) hold(h Hold) error {
	if h.Status == HoldActive {
		if h.GrantID != "" {
			a.grantHeld[h.GrantID] += h.Amount
		}
		if a.whole && (h.GrantID == "" || a.confirmed[h.GrantID]) {
			a.acct(h.Account).held += h.Amount
		}
	}
	if !a.opt.Period.Contains(h.CreatedAt) {
		return nil
	}
	subj := "hold " + h.ID
	if h.Cost < 0 || h.Cost > h.Amount || h.Amount <= 0 {
		add(&a.holdV, "hold.cost", subj, "cost %d of amount %d", h.Cost, h.Amount)
	}
	if h.Status != HoldSettled && h.Cost != 0 {
		add(&a.holdV, "hold.cost", subj, "%s hold carries cost %d", h.Status, h.Cost)
	}
	if (h.Status == HoldActive) != h.ResolvedAt.IsZero() {
		add(&a.holdV, "hold.resolution", subj, "status %s with resolved_at %v", h.Status, h.ResolvedAt)
	}
	if h.Status == HoldActive && !a.opt.Now.IsZero() && a.opt.Now.After(h.ExpiresAt.Add(a.opt.Grace)) {
		add(&a.holdV, "hold.expired", subj, "active %s past its expiry %s", a.opt.Now.Sub(h.ExpiresAt), h.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// refundRow checks one refund against its lot.
func (a *auditor) refundRow(r Refund, l Lot) {
	subj := "refund " + r.OutRefundNo
	var v []Violation
	if r.Credits <= 0 || r.Credits > l.Granted {
		add(&v, "lot.refunds", subj, "credits %d outside (0, %d]", r.Credits, l.Granted)
	} else if want := RefundFen(l.Fen, r.Credits, l.Granted); r.Fen != want {
		add(&v, "lot.refunds", subj, "fen %d, want floor(%d*%d/%d) = %d", r.Fen, l.Fen, r.Credits, l.Granted, want)
	}
	for _, x := range v {
		a.refundV = append(a.refundV, keyed{r.OutRefundNo, x})
	}
}

func (a *auditor) lot(l Lot) error {
	subj := fmt.Sprintf("lot %d", l.ID)
	var credits, pending tollgate.Credits
	var fen tollgate.Fen
	for _, r := range a.refunds[l.ID] {
		if a.opt.Period.Contains(r.CreatedAt) {
			a.refundRow(r, l)
		}
		switch r.Status {
		case RefundSucceeded:
			credits += r.Credits
			fen += r.Fen
		case RefundPending:
			pending += r.Credits
		}
	}
	delete(a.refunds, l.ID)
	minFen := tollgate.Fen(1)
	if a.positive[l.OutTradeNo] {
		minFen = 0 // an adjustment's lot: nothing was paid
		a.adjLots[l.OutTradeNo] = l
	}
	if l.Granted <= 0 || l.Used < 0 || l.Left < 0 || l.Refunding < 0 || l.Refunded < 0 || l.Fen < minFen || l.RefundedFen < 0 {
		add(&a.lotV, "lot.nonnegative", subj, "granted %d used %d left %d refunding %d refunded %d fen %d refunded_fen %d",
			l.Granted, l.Used, l.Left, l.Refunding, l.Refunded, l.Fen, l.RefundedFen)
	}
	if l.Granted != l.Used+l.Left+l.Refunding+l.Refunded {
		add(&a.lotV, "lot.conservation", subj, "granted %d ≠ used %d + left %d + refunding %d + refunded %d",
			l.Granted, l.Used, l.Left, l.Refunding, l.Refunded)
	}
	if credits != l.Refunded || fen != l.RefundedFen || pending != l.Refunding {
		add(&a.lotV, "lot.refunds", subj, "refunds sum to %d credits/%d fen succeeded and %d pending; lot says %d/%d and %d",
			credits, fen, pending, l.Refunded, l.RefundedFen, l.Refunding)
	}
	if l.RefundedFen > l.Fen {
		add(&a.lotV, "lot.refunds", subj, "refunded %d fen of %d paid", l.RefundedFen, l.Fen)
	}
	if l.Fen == 0 && !a.positive[l.OutTradeNo] {
		add(&a.adjLotV, "adjustment.lot", subj, "0 fen paid, and no adjustment carries it")
	}
	a.granted += l.Granted
	a.parts += l.Used + l.Left + l.Refunding + l.Refunded
	if a.whole {
		c := a.acct(l.Account)
		c.lots = true
		c.left += l.Left
		c.used += l.Used
		for _, i := range a.lotOf[l.ID] {
			c := a.acct(a.grants[i].Account)
			c.overflow -= max(0, a.grants[i].Cap) - max(0, a.grants[i].Cap-l.Granted)
		}
	}
	return nil
}

// leftovers checks what the lot scan did not reach: refunds whose lot is
// missing (or, over a period, created outside it) and positive
// adjustments whose lot was not in the scan.
func (a *auditor) leftovers(ctx context.Context, src auditSource) error {
	var ids []int64
	for id, rs := range a.refunds {
		for _, r := range rs {
			if a.opt.Period.Contains(r.CreatedAt) {
				ids = append(ids, id)
				break
			}
		}
	}
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, 500) {
		found := map[int64]Lot{}
		if !a.whole {
			ls, err := src.Lots(ctx, chunk)
			if err != nil {
				return err
			}
			for _, l := range ls {
				found[l.ID] = l
			}
		}
		for _, id := range chunk {
			for _, r := range a.refunds[id] {
				if !a.opt.Period.Contains(r.CreatedAt) {
					continue
				}
				if l, ok := found[id]; ok {
					a.refundRow(r, l)
				} else {
					a.refundV = append(a.refundV, keyed{r.OutRefundNo, Violation{Check: "lot.refunds", Subject: "refund " + r.OutRefundNo,
						Detail: fmt.Sprintf("refers to missing lot %d", r.LotID)}})
				}
			}
		}
	}
	if a.whole {
		return nil
	}
	var nos []string
	for _, adj := range a.adjs {
		if _, ok := a.adjLots[adj.ID]; adj.Credits > 0 && !ok && a.opt.Period.Contains(adj.CreatedAt) {
			nos = append(nos, adj.ID)
		}
	}
	for chunk := range slices.Chunk(nos, 500) {
		ls, err := src.LotsByPayment(ctx, chunk, nil)
		if err != nil {
			return err
		}
		for _, l := range ls {
			a.adjLots[l.OutTradeNo] = l
		}
	}
	return nil
}

func (a *auditor) spend(s SpendSum) error {
	c := a.acct(s.Account)
	c.usage += s.Usage
	c.settled += s.Settled
	c.late += s.Late
	return nil
}

func (a *auditor) account(acc Account) error {
	c := a.acct(acc.ID)
	delete(a.accts, acc.ID)
	subj := "account " + string(acc.ID)
	if acc.Left != c.left {
		add(&a.accountV, "account.left", subj, "left %d ≠ Σ lot left %d", acc.Left, c.left)
	}
	if acc.Held != c.held {
		add(&a.accountV, "account.held", subj, "held %d ≠ Σ active lot-funded holds %d", acc.Held, c.held)
	}
	if acc.Debt < 0 || acc.Left < 0 || acc.Held < 0 {
		add(&a.accountV, "account.debt", subj, "negative balance: left %d held %d debt %d", acc.Left, acc.Held, acc.Debt)
	}
	if c.live > 1 {
		add(&a.liveV, "grant.live", subj, "%d live grants", c.live)
	}
	if c.usage != c.settled {
		add(&a.usageV, "usage.settled", subj, "usage credits %d ≠ settled holds %d", c.usage, c.settled)
	}
	if spent := c.used + acc.Debt + c.liveUsed; c.settled+c.removed != spent {
		add(&a.usageV, "usage.lots", subj, "settled holds %d + credits removed by adjustments %d ≠ lots used + debt + live grants used %d",
			c.settled, c.removed, spent)
	}
	if origin := c.revokedUsed + c.overflow + c.late + c.adjDebt; acc.Debt > origin {
		add(&a.debtV, "account.debt_origin", subj,
			"debt %d exceeds the %d credits revoked or overflowing grants and late settles account for: credit was spent beyond the available balance",
			acc.Debt, origin)
	}
	return nil
}

func (a *auditor) finish() []Violation {
	for _, g := range a.grants {
		subj := "grant " + g.ID
		want := a.grantHeld[g.ID]
		if g.Status == GrantConfirmed {
			want = 0 // its holds are lot-funded now
		}
		if g.Held != want {
			add(&a.grantV, "grant.held", subj, "held %d ≠ Σ active holds %d", g.Held, want)
		}
		if g.Used < 0 || g.Held < 0 || g.Used+g.Held > g.Cap {
			add(&a.grantV, "grant.cap", subj, "used %d + held %d outside cap %d", g.Used, g.Held, g.Cap)
		}
	}
	for _, adj := range a.adjs {
		if !a.opt.Period.Contains(adj.CreatedAt) {
			continue
		}
		subj := "adjustment " + adj.ID
		switch {
		case adj.Credits > 0:
			l, ok := a.adjLots[adj.ID]
			if !ok || l.ID != adj.LotID || l.Fen != 0 || l.Granted != adj.Credits || l.Account != adj.Account {
				add(&a.adjV, "adjustment.lot", subj, "adds %d credits to %s but its lot (id %d) is %+v", adj.Credits, adj.Account, adj.LotID, l)
			}
			if adj.Debt != 0 {
				add(&a.adjV, "adjustment.lot", subj, "a positive adjustment records debt %d", adj.Debt)
			}
			if adj.DebtPaid < 0 || adj.DebtPaid > adj.Credits || (ok && adj.DebtPaid > l.Used) {
				add(&a.adjV, "adjustment.lot", subj, "adds %d credits and paid %d of the debt, but its lot has used %d", adj.Credits, adj.DebtPaid, l.Used)
			}
		case adj.Credits < 0:
			if adj.Debt < 0 || adj.Debt > -adj.Credits || adj.LotID != 0 || adj.DebtPaid != 0 {
				add(&a.adjV, "adjustment.lot", subj, "removes %d credits with debt %d, debt paid %d and lot %d", -adj.Credits, adj.Debt, adj.DebtPaid, adj.LotID)
			}
		default:
			add(&a.adjV, "adjustment.lot", subj, "adjusts 0 credits")
		}
	}
	if a.granted != a.parts {
		subj := "all lots"
		if !a.whole {
			subj = "lots created in the period"
		}
		add(&a.totalV, "total.conservation", subj, "granted %d ≠ used + left + refunding + refunded %d", a.granted, a.parts)
	}
	// Accounts not in the accounts table but with lots.
	if a.whole {
		var missing []tollgate.AccountID
		for id, c := range a.accts {
			if c.lots {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		for _, id := range missing {
			add(&a.missingV, "account.left", "account "+string(id), "lots of a missing account")
		}
		missing = missing[:0]
		for id, c := range a.accts {
			if c.live > 1 {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		for _, id := range missing {
			add(&a.liveV, "grant.live", "account "+string(id), "%d live grants", a.accts[id].live)
		}
	}
	slices.SortStableFunc(a.refundV, func(x, y keyed) int { return strings.Compare(x.key, y.key) })
	out := []Violation{}
	for _, k := range a.refundV {
		out = append(out, k.v)
	}
	for _, g := range [][]Violation{a.lotV, a.totalV, a.accountV, a.missingV, a.holdV, a.grantV, a.liveV,
		a.usageV, a.debtV, a.adjV, a.adjLotV, a.schemaV} {
		out = append(out, g...)
	}
	return out
}
