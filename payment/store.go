package payment

import (
	"context"
	"time"

	"tollgate"
)

// Store persists orders, idempotency keys and refund bookkeeping. It holds
// no payment rules: the order and refund state machines are applied by
// this package (UpdateOrder, UpdateRefund), around the store's plain
// locked read-modify-write, so no store can forget them. Implementations: *sqlite.Store and *postgres.Store (store/sqlite,
// store/postgres), both checked by storetest.RunPayments. Safe for
// concurrent use by many goroutines and, for PostgreSQL, many processes.
type Store interface {
	// CreateOrder inserts o (Status NOTPAY) and, when key is not nil, the
	// idempotency key that names it, in one transaction: the recovery point
	// taken before WeChat Pay is called. If key's (account, key) is
	// already recorded and unexpired, nothing is written and the stored
	// key is returned with created = false. Errors: ECONFLICT (the
	// out_trade_no exists), EINVALID.
	CreateOrder(ctx context.Context, o Order, key *IdempotencyKey) (stored IdempotencyKey, created bool, err error)

	// IdempotencyKey returns the unexpired key of an account at now.
	// Errors: ENOTFOUND.
	IdempotencyKey(ctx context.Context, account tollgate.AccountID, key string, now time.Time) (IdempotencyKey, error)

	// DeleteExpiredKeys removes idempotency keys expired at now and
	// returns how many.
	DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error)

	// Order returns an order. Errors: ENOTFOUND.
	Order(ctx context.Context, outTradeNo string) (Order, error)

	// OrdersByNo returns the orders whose out_trade_no is in outTradeNos,
	// by out_trade_no, in one query (IN over the primary key); numbers
	// without an order are left out.
	OrdersByNo(ctx context.Context, outTradeNos []string) ([]Order, error)

	// OrderByTokenHash returns the order whose provisional token hash is
	// tokenHash. Errors: ENOTFOUND.
	OrderByTokenHash(ctx context.Context, tokenHash string) (Order, error)

	// ListOrders returns up to limit orders of an account, newest first.
	ListOrders(ctx context.Context, account tollgate.AccountID, limit int) ([]Order, error)

	// UpdateOrder reads the order with a row lock, lets fn change it and
	// writes it back in the same transaction (every column but
	// out_trade_no), whatever fn did: it knows no rule. fn must not call
	// other services (it runs inside a database transaction). If fn
	// returns an error nothing is written and that error is returned.
	// UpdatedAt is set by the caller. Callers go through the package's
	// UpdateOrder, which refuses a forbidden transition. Errors: ENOTFOUND.
	UpdateOrder(ctx context.Context, outTradeNo string, fn func(*Order) error) (Order, error)

	// WriteOrders writes a batch of order creations and updates in one
	// transaction (group commit), each item in its own savepoint: an item
	// that fails (ECONFLICT for a taken out_trade_no, ENOTFOUND, its Fn's
	// error, a statement's error) leaves nothing of itself and the others
	// still commit. It returns one error per item, nil for the written
	// ones, and fills each item's result fields (OrderWrite.Stored,
	// Created, Order). The transaction commits durably (fsync: SQLite
	// synchronous=FULL, PostgreSQL synchronous_commit on) unless every
	// item is Relaxed. When the transaction as a whole fails (begin or
	// commit), every item gets that error. An item runs exactly what
	// CreateOrder (Create set) or UpdateOrder (Create nil) would run,
	// ClosedEvent included; like UpdateOrder it knows no rule (the
	// package's batcher adds CheckTransition).
	WriteOrders(ctx context.Context, writes []OrderWrite) []error

	// LeaseDueOrders claims up to limit pending orders (NOTPAY or
	// USERPAYING) whose NextPollAt ≤ now and whose lease is free or expired
	// at now, setting LeaseOwner = owner and LeaseUntil = until, and returns
	// them. Two callers never get the same order while a lease lives.
	LeaseDueOrders(ctx context.Context, owner string, now, until time.Time, limit int) ([]Order, error)

	// CreateRefund inserts r if its OutRefundNo is new and returns the
	// stored record either way (idempotent). Errors: ECONFLICT (the number
	// belongs to another order).
	CreateRefund(ctx context.Context, r RefundRecord) (RefundRecord, error)

	// Refund returns a refund record. Errors: ENOTFOUND.
	Refund(ctx context.Context, outRefundNo string) (RefundRecord, error)

	// RefundsByOrder returns the refund records of an order, oldest first.
	RefundsByOrder(ctx context.Context, outTradeNo string) ([]RefundRecord, error)

	// UpdateRefund is UpdateOrder for refund records (the package's
	// UpdateRefund keeps a final status final).
	UpdateRefund(ctx context.Context, outRefundNo string, fn func(*RefundRecord) error) (RefundRecord, error)

	// LeaseDueRefunds is LeaseDueOrders for pending refunds.
	LeaseDueRefunds(ctx context.Context, owner string, now, until time.Time, limit int) ([]RefundRecord, error)

	// OrdersPage returns one page of orders (q.Limit at most), newest
	// first by (CreatedAt, OutTradeNo), after q's cursor, filtered by q:
	// a keyset query that reads no more rows than it walks an index for.
	OrdersPage(ctx context.Context, q OrderQuery) ([]Order, error)

	// RefundsPage is OrdersPage for refund records, by (CreatedAt,
	// OutRefundNo).
	RefundsPage(ctx context.Context, q RefundQuery) ([]RefundRecord, error)

	// PaymentTotals sums, in one aggregate query, the ledger's lots created
	// in [from, to) (ledger.Lot: count, Fen, RefundedFen) joined with
	// their orders by out_trade_no (count, FeeFen). The orders live in the
	// ledger's database: both stores hold both.
	PaymentTotals(ctx context.Context, from, to time.Time) (PaymentTotals, error)
}

// OrderWrite is one item of Store.WriteOrders: the creation of an order
// (Create, with its idempotency key Key when not nil, as Store.CreateOrder)
// or the read-modify-write of one (OutTradeNo and Fn, as
// Store.UpdateOrder).
type OrderWrite struct {
	Create *Order
	Key    *IdempotencyKey

	OutTradeNo string
	Fn         func(*Order) error

	// Relaxed lets the batch commit without waiting for the disk (fsync)
	// when every item of it is relaxed: a power cut may then lose the
	// item, a crash of the process not (SQLite: WAL written, not synced).
	Relaxed bool

	// Results, set by WriteOrders when the item's error is nil: for a
	// creation Stored and Created as CreateOrder returns them; for an
	// update Order is the order as written, and Before as it was read.
	Stored  IdempotencyKey
	Created bool
	Order   Order
	Before  Order
}

// StrictBatch reports whether a batch of writes must commit durably: when
// any of them is not Relaxed.
func StrictBatch(writes []OrderWrite) bool {
	for _, w := range writes {
		if !w.Relaxed {
			return true
		}
	}
	return false
}

// OrderQuery selects a page of orders for the admin API.
type OrderQuery struct {
	Status  Status             // "" for any
	Account tollgate.AccountID // "" for any
	// From ≤ CreatedAt < To; a zero bound is open.
	From, To time.Time
	// AfterCreated and AfterNo are the last order of the page before
	// (AfterNo "" for the first page).
	AfterCreated time.Time
	AfterNo      string
	Limit        int
}

// RefundQuery selects a page of refund records for the admin API.
type RefundQuery struct {
	Status     RefundStatus       // "" for any
	Account    tollgate.AccountID // "" for any
	OutTradeNo string             // "" for any
	// AfterCreated and AfterNo are the last refund of the page before.
	AfterCreated time.Time
	AfterNo      string
	Limit        int
}

// UpdateOrder changes an order through st.UpdateOrder, refusing, with
// nothing written, a change of status the state machine forbids
// (CheckTransition: ECONFLICT, or EINVALID for an unknown state). It is the
// one way the Service changes an order, so the stores stay plain.
func UpdateOrder(ctx context.Context, st Store, outTradeNo string, fn func(*Order) error) (Order, error) {
	return st.UpdateOrder(ctx, outTradeNo, func(o *Order) error {
		from := o.Status
		if err := fn(o); err != nil {
			return err
		}
		return CheckTransition(from, o.Status)
	})
}

// UpdateRefund is UpdateOrder for refund records: a final status
// (succeeded, failed) never changes again (CheckRefundTransition:
// ECONFLICT).
func UpdateRefund(ctx context.Context, st Store, outRefundNo string, fn func(*RefundRecord) error) (RefundRecord, error) {
	return st.UpdateRefund(ctx, outRefundNo, func(r *RefundRecord) error {
		from := r.Status
		if err := fn(r); err != nil {
			return err
		}
		return CheckRefundTransition(from, r.Status)
	})
}

// machineStore is the Store the Service uses: the one it was given, with
// every order and refund change checked by UpdateOrder and UpdateRefund,
// and eventsCommitted (if set) called after an order change that wrote
// payment.closed.
type machineStore struct {
	Store
	eventsCommitted func()
}

func (m machineStore) UpdateOrder(ctx context.Context, outTradeNo string, fn func(*Order) error) (Order, error) {
	if m.eventsCommitted == nil {
		return UpdateOrder(ctx, m.Store, outTradeNo, fn)
	}
	var before Order
	o, err := UpdateOrder(ctx, m.Store, outTradeNo, func(x *Order) error {
		before = *x
		return fn(x)
	})
	if err == nil {
		if _, closed, _ := ClosedEvent(before, o); closed {
			m.eventsCommitted()
		}
	}
	return o, err
}

func (m machineStore) UpdateRefund(ctx context.Context, outRefundNo string, fn func(*RefundRecord) error) (RefundRecord, error) {
	return UpdateRefund(ctx, m.Store, outRefundNo, fn)
}

// CheckRefundTransition returns nil if a refund record may move from one
// status to another, ECONFLICT otherwise: pending may become anything; a
// final status stays.
func CheckRefundTransition(from, to RefundStatus) error {
	if from == to || from == RefundPending {
		return nil
	}
	return &tollgate.Error{Code: tollgate.ECONFLICT, Op: "payment.CheckRefundTransition",
		Message: "refund " + string(from) + " cannot become " + string(to)}
}

// MaxHourlySpan bounds HourlyOrders' period: a week of hours.
const MaxHourlySpan = 7 * 24 * time.Hour

// OrderHour is one hour of orders by when they were placed: all placed,
// paid (SUCCESS, or REFUND: paid then refunded), failed (CLOSED or
// PAYERROR) and, among the failed, refused (closed without WeChat Pay
// ever accepting them: no code_url, h5_url or prepay_id).
type OrderHour struct {
	Hour                          time.Time // the hour's start, UTC
	Placed, Paid, Failed, Refused int64
}

// HourlyReporter counts orders per hour in one aggregate query over the
// created_at index (never the rows into memory), for the operator's
// overview. Only hours with orders are returned, oldest first; a period
// longer than MaxHourlySpan or not starting on an hour is EINVALID.
// Implementations: store/sqlite, store/postgres.
type HourlyReporter interface {
	HourlyOrders(ctx context.Context, from, to time.Time) ([]OrderHour, error)
}

// CheckHourly validates an HourlyOrders period.
func CheckHourly(from, to time.Time) error {
	if !to.After(from) || to.Sub(from) > MaxHourlySpan || !from.Equal(from.Truncate(time.Hour)) {
		return &tollgate.Error{Code: tollgate.EINVALID, Op: "payment.HourlyOrders",
			Message: "the period must start on an hour and last at most 7 days"}
	}
	return nil
}
