package ledger

// Interface history (append-only; breaking changes are dated here):
//   2026-11-27 03:30 UTC  first version.
//   2026-12-07 03:30 UTC  adjustments (issue 19): ReadTx.Adjustments,
//                         AccountAdjustments, AdjustmentTotals,
//                         ActiveHolds, UsageReport; Changes.NewAdjustments;
//                         Dump.Adjustments.
//   2026-12-07 07:00 UTC  webhook events (issue 20): Changes.NewEvents,
//                         appended by Apply in the same transaction.
//   2026-12-07 11:00 UTC  daily usage rollup (issue 21): UsageTotals and
//                         UsageReport sum the rollup's whole rolled days
//                         and the per-call records of the rest (EINVALID
//                         for a period cutting a pruned day); the new
//                         UsageRollupStore (rollup.go) maintains it.
//   2026-12-07 11:00 UTC  streaming audit and reconcile (issue 21):
//                         ReadTx.ScanAccounts, ScanLots, ScanRefunds,
//                         ScanGrants, ScanAdjustments, ScanAuditHolds,
//                         SpendSums, Constraints; type Period.
//   2026-12-07 11:40 UTC  optional ReadAheader (issue 21): a store may read
//                         a metering batch's accounts with its holds.
//   2026-12-07 15:00 UTC  usage retention and the audit (issue 21):
//                         SpendSums counts the rollup's credits for the
//                         days before RollupState.PrunedBefore and the
//                         per-call records from it on; Dump.PrunedBefore
//                         and Dump.PrunedUsage carry the same.

import (
	"context"
	"errors"
	"time"

	"tollgate"
	"tollgate/webhook"
)

// Store persists the ledger. It holds no money rules: the Service loads rows
// in a transaction, computes every change in Go and hands the store the full
// set of row changes to write at once. Implementations: store/sqlite,
// store/postgres; both must pass store/storetest.
//
// Store methods are safe for concurrent use.
type Store interface {
	// Update runs fn in one read-write transaction and commits it if fn
	// returns nil; any error rolls everything back. Rows returned by the
	// Tx's read methods are locked until the transaction ends
	// (PostgreSQL: SELECT … FOR UPDATE, rows locked in ascending key
	// order; SQLite: the single writer holds the database). The Service
	// reads in a fixed order — holds, grants, refunds, accounts, lots —
	// so concurrent transactions cannot deadlock.
	//
	// If the transaction lost a race (a conditional update matched no row,
	// a unique key already existed, a serialization failure or deadlock
	// was detected, the database was busy) the returned error wraps
	// ErrRetry and the Service runs fn again in a new transaction. Update
	// never retries by itself.
	Update(ctx context.Context, fn func(Tx) error) error

	// View runs fn in a read-only transaction that sees one consistent
	// snapshot. Rows are not locked.
	View(ctx context.Context, fn func(ReadTx) error) error

	// Close releases the store's resources.
	Close() error
}

type relaxedKey struct{}

// WithRelaxedCommit marks the Update run with ctx as one the store may
// commit without waiting for the disk: durable against a crash of the
// process at once (the commit is in the operating system's hands), against
// a crash of the machine only with the next strict commit, which flushes
// everything before it. The Service uses it only for metering (holds,
// settles, releases; see Options.StrictMetering): losing the last of those
// to a power cut loses at most some unbilled usage and holds of requests
// that died with the machine, never a payment or a refund.
func WithRelaxedCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, relaxedKey{}, true)
}

// RelaxedCommit reports whether ctx was marked by WithRelaxedCommit.
func RelaxedCommit(ctx context.Context) bool {
	v, _ := ctx.Value(relaxedKey{}).(bool)
	return v
}

// ReadAheader is a Tx that can read ahead, in the round trip of its first
// read, the rows a metering batch asks for next. Before a transaction
// whose needs are only holds, their accounts (with spendable lots) and
// usage records — the shape of every reserve/settle/release batch — the
// Service calls ReadAhead with the accounts and usage request ids it will
// ask for once the holds are read; the accounts of those holds are the
// store's to add. Reading them ahead must keep the lock order Update
// documents (holds, then accounts, then lots). Optional: a store that
// does not implement it is read as usual.
type ReadAheader interface {
	ReadAhead(accounts []tollgate.AccountID, requestIDs []string)
}

// SpendableHinter is a Tx told, before the Service reads accounts, which
// of them it will ask spendable lots of (SpendableLots): a store that
// reads lots ahead with their accounts reads only those. A credit reads
// its account and adds a lot; it must not read (and lock) the thousands of
// lots an account may hold. Optional.
type SpendableHinter interface {
	SpendableAhead(accounts []tollgate.AccountID)
}

// ReadTx is the read side of a transaction. Every method that takes a set
// of keys returns the rows that exist, in ascending key order, and no
// error for missing keys; an empty set returns nothing without a query.
type ReadTx interface {
	// Accounts returns the accounts with the given ids.
	Accounts(ctx context.Context, ids []tollgate.AccountID) ([]Account, error)
	// SpendableLots returns the lots with Left > 0 of the given accounts,
	// ordered by lot ID (the draw-down order).
	SpendableLots(ctx context.Context, accounts []tollgate.AccountID) ([]Lot, error)
	// Lots returns the lots with the given ids.
	Lots(ctx context.Context, ids []int64) ([]Lot, error)
	// LotsByPayment returns every lot whose OutTradeNo is in outTradeNos
	// or whose TransactionID is in transactionIDs, ordered by ID.
	LotsByPayment(ctx context.Context, outTradeNos, transactionIDs []string) ([]Lot, error)
	// LotsByAccount returns all lots of one account, ordered by ID.
	LotsByAccount(ctx context.Context, account tollgate.AccountID) ([]Lot, error)
	// RecentLots returns up to limit lots of one account, newest first
	// (ID descending): a walk of the (account, id) index that stops at
	// limit, for the admin API.
	RecentLots(ctx context.Context, account tollgate.AccountID, limit int) ([]Lot, error)
	// Holds returns the holds with the given ids.
	Holds(ctx context.Context, ids []string) ([]Hold, error)
	// ExpiredHolds returns up to limit active holds with ExpiresAt ≤ now,
	// oldest expiry first, then by id.
	ExpiredHolds(ctx context.Context, now time.Time, limit int) ([]Hold, error)
	// Grants returns the grants with the given ids.
	Grants(ctx context.Context, ids []string) ([]Grant, error)
	// LiveGrants returns the grants with Status live of the given
	// accounts, ordered by id.
	LiveGrants(ctx context.Context, accounts []tollgate.AccountID) ([]Grant, error)
	// ExpiredGrants returns up to limit live grants with ExpiresAt ≤ now,
	// ordered by ExpiresAt then id.
	ExpiredGrants(ctx context.Context, now time.Time, limit int) ([]Grant, error)
	// Refunds returns the refunds with the given out_refund_no values.
	Refunds(ctx context.Context, outRefundNos []string) ([]Refund, error)
	// UsageByRequest returns the usage records with the given request ids.
	UsageByRequest(ctx context.Context, requestIDs []string) ([]Usage, error)
	// ListUsage returns up to limit usage records of one account, newest
	// first (CreatedAt descending, then RequestID descending).
	// Records deleted by the retention (UsageRollupStore.PruneUsage) are
	// not listed.
	ListUsage(ctx context.Context, account tollgate.AccountID, limit int) ([]Usage, error)
	// PaidVolume returns the sum of Fen over lots with from ≤ CreatedAt < to.
	PaidVolume(ctx context.Context, from, to time.Time) (tollgate.Fen, error)
	// UsageTotals sums the usage records with from ≤ CreatedAt < to per
	// Deployment (one aggregate query, GROUP BY deployment), ordered by
	// Deployment; deployments without records in the period are absent.
	// It reads the daily rollup for the whole rolled days of the period
	// and the records for the rest (SplitUsage), so the records deleted by
	// the retention still count. Errors: EINVALID (SplitUsage).
	UsageTotals(ctx context.Context, from, to time.Time) ([]UsageTotal, error)
	// Adjustments returns the adjustments with the given ids.
	Adjustments(ctx context.Context, ids []string) ([]Adjustment, error)
	// AccountAdjustments returns up to limit adjustments of one account,
	// newest first (CreatedAt descending, then ID descending).
	AccountAdjustments(ctx context.Context, account tollgate.AccountID, limit int) ([]Adjustment, error)
	// AdjustmentTotals sums the adjustments with from ≤ CreatedAt < to
	// (one aggregate query).
	AdjustmentTotals(ctx context.Context, from, to time.Time) (AdjustmentTotal, error)
	// UsageReport sums the usage records q selects per day (Beijing
	// time, "2006-01-02") or per model, ordered by that key; at most
	// MaxUsageGroups groups.
	// As UsageTotals, it reads the rollup for whole rolled days.
	UsageReport(ctx context.Context, q UsageQuery) ([]UsageGroup, error)
	// ActiveHolds returns up to limit active holds of one account stored
	// in the store, oldest first (memory holds are not there).
	ActiveHolds(ctx context.Context, account tollgate.AccountID, limit int) ([]Hold, error)
	// Dump returns every row of every ledger table, each slice in
	// ascending key order. It is meant for Audit and tests, not for the
	// request path.
	Dump(ctx context.Context) (*Dump, error)

	// The Scan methods stream rows to fn one at a time, in ascending key
	// order, without holding the result in memory; fn must not call the
	// transaction (a PostgreSQL connection reads one result at a time).
	// An error from fn stops the scan and is returned. A Period selects
	// rows by CreatedAt; the zero Period selects every row. They serve
	// Audit and reconcile, not the request path.

	// ScanAccounts streams every account, by ID.
	ScanAccounts(ctx context.Context, fn func(Account) error) error
	// ScanLots streams the lots created in p, by ID.
	ScanLots(ctx context.Context, p Period, fn func(Lot) error) error
	// ScanRefunds streams the refunds created in p, by OutRefundNo.
	ScanRefunds(ctx context.Context, p Period, fn func(Refund) error) error
	// ScanGrants streams the grants created in p, by ID.
	ScanGrants(ctx context.Context, p Period, fn func(Grant) error) error
	// ScanAdjustments streams the adjustments created in p, by ID.
	ScanAdjustments(ctx context.Context, p Period, fn func(Adjustment) error) error
	// ScanAuditHolds streams, by ID, every active hold (whenever
	// created) and every hold created in p that may break a per-row rule:
	// Amount ≤ 0, Cost < 0, Cost > Amount, Cost ≠ 0 while not settled, or
	// no ResolvedAt. The filter is in SQL, so a sound ledger returns only
	// its few active holds; Audit re-checks each row.
	ScanAuditHolds(ctx context.Context, p Period, fn func(Hold) error) error
	// SpendSums streams, by account, what each account has spent: the
	// credits of its usage, the cost of its settled holds, and the part
	// of that settled at or after the hold's expiry (one aggregate pass
	// over usage_records and holds; accounts with neither are absent).
	// The usage is the usage records created at or after the rollup's
	// PrunedBefore plus, for the days before it (whose records the
	// retention may have deleted, in part or whole), the credits of the
	// daily rollup.
	SpendSums(ctx context.Context, fn func(SpendSum) error) error
	// Constraints returns Dump.Constraints: the unique constraints in
	// force, as "table.column", sorted.
	Constraints(ctx context.Context) ([]string, error)
}

// Period is a span of creation times, From ≤ CreatedAt < To. A zero From
// is the beginning of time, a zero To the end of it; the zero Period is
// all time.
type Period struct{ From, To time.Time }

// All reports whether p is all time.
func (p Period) All() bool { return p.From.IsZero() && p.To.IsZero() }

// Contains reports whether t is in p.
func (p Period) Contains(t time.Time) bool {
	return (p.From.IsZero() || !t.Before(p.From)) && (p.To.IsZero() || t.Before(p.To))
}

// Bounds returns p with its open ends made concrete, for a query's
// "created_at >= from AND created_at < to": year 1 and year 9999.
func (p Period) Bounds() (from, to time.Time) {
	from, to = p.From, p.To
	if from.IsZero() {
		from = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if to.IsZero() {
		to = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return from, to
}

// SpendSum is one account's spending, as SpendSums returns it.
type SpendSum struct {
	Account tollgate.AccountID
	// Usage is Σ usage record credits.
	Usage tollgate.Credits
	// Settled is Σ cost of settled holds; Late the part of it settled at
	// or after the hold's expiry (ResolvedAt ≥ ExpiresAt).
	Settled, Late tollgate.Credits
}

// AccountCredits is an amount of credits of one account.
type AccountCredits struct {
	Account tollgate.AccountID
	Credits tollgate.Credits
}

// Tx is a read-write transaction.
type Tx interface {
	ReadTx
	// Apply writes c: first the inserts (accounts, lots, holds, grants,
	// refunds, usage, in that order), then the updates. Inserted rows are
	// written with Version 1. An update writes every column of the row
	// and increments Version, on the condition that the stored Version
	// equals the Version in c (the version that was read); if that
	// matches no row, Apply returns an error wrapping ErrRetry. A unique
	// key that already exists also wraps ErrRetry. On success Apply sets
	// the ID of every inserted lot (c.NewLots) to the key the store gave
	// it. Apply may be called more than once per transaction. Last,
	// Apply appends c.NewEvents to the webhook outbox in the same
	// transaction (each gets its account's next seq), so an event
	// commits, or rolls back, with the money change it describes.
	Apply(ctx context.Context, c *Changes) error
}

// Changes is the full set of row changes of one transaction. Update slices
// carry the Version that was read.
type Changes struct {
	NewAccounts []Account
	NewLots     []*Lot
	NewHolds    []Hold
	NewGrants   []Grant
	NewRefunds  []Refund
	NewUsage    []Usage
	// NewAdjustments are inserted after NewLots; a positive one's lot_id
	// is the lot whose out_trade_no is its ID.
	NewAdjustments []Adjustment
	// NewEvents are the webhook events describing this change, appended
	// to the outbox after every row above is written (an event's account
	// may be one inserted here).
	NewEvents []webhook.Event

	Accounts []Account
	Lots     []Lot
	Holds    []Hold
	Grants   []Grant
	Refunds  []Refund
}

// Empty reports whether c changes nothing.
func (c *Changes) Empty() bool {
	return len(c.NewAccounts)+len(c.NewLots)+len(c.NewHolds)+len(c.NewGrants)+
		len(c.NewRefunds)+len(c.NewUsage)+len(c.NewAdjustments)+len(c.NewEvents)+len(c.Accounts)+len(c.Lots)+
		len(c.Holds)+len(c.Grants)+len(c.Refunds) == 0
}

// Dump is every row of the ledger's tables.
type Dump struct {
	Accounts []Account // by ID
	Lots     []Lot     // by ID
	Holds    []Hold    // by ID
	Grants   []Grant   // by ID
	Refunds  []Refund  // by OutRefundNo
	Usage    []Usage   // by RequestID
	// Adjustments by ID.
	Adjustments []Adjustment
	// PrunedBefore is the usage rollup's RollupState.PrunedBefore (zero:
	// nothing pruned): the usage records before it may have been deleted
	// by the retention, and the audit counts PrunedUsage for those days
	// instead of whatever records are left of them.
	PrunedBefore time.Time
	// PrunedUsage is, by account, the daily rollup's credits of the days
	// before PrunedBefore (accounts with none are absent).
	PrunedUsage []AccountCredits
	// Constraints names the ledger's unique constraints the store has in
	// force, each as "table.column" (e.g. "lots.transaction_id"), so
	// Audit can check that the database itself backs exactly-once
	// crediting. Required: see RequiredConstraints.
	Constraints []string
}

// RequiredConstraints are the unique constraints every store must have.
var RequiredConstraints = []string{
	"accounts.id",
	"lots.out_trade_no",
	"lots.transaction_id",
	"holds.id",
	"grants.id",
	"refunds.out_refund_no",
	"usage_records.request_id",
}

// AdjustmentTotal sums adjustments over a period.
type AdjustmentTotal struct {
	Count   int64
	Added   tollgate.Credits // Σ credits of positive adjustments
	Removed tollgate.Credits // Σ −credits of negative ones
}

// ErrRetry is wrapped by store errors that mean the transaction lost a race
// and may succeed if run again: a conditional update matched no row, a
// unique key already existed, a serialization failure, a deadlock, a busy
// database.
var ErrRetry = errors.New("ledger: transaction conflict, retry")

// RawExecer is an optional capability of a Store: run one SQL statement
// outside the ledger's rules. Only tests use it, to corrupt a row on purpose
// and show that Audit notices. The SQL is portable across stores because
// table and column names are shared (see store/sqlite/migrations).
type RawExecer interface {
	ExecRaw(ctx context.Context, query string, args ...any) error
}
