// Package ledger is tollgate's money domain: accounts, lots (one per
// payment), holds (two-phase reservations around upstream calls),
// provisional grants, debt, usage records and refunds. Every money rule lives
// here once; storage is the Store interface, implemented by adapters
// (store/sqlite, store/postgres). It knows nothing of HTTP or WeChat Pay.
package ledger

import (
	"context"
	"time"

	"tollgate"
)

// Account is one customer's materialised balance. Left, Held and Debt are
// kept equal to the fold of the account's lots, holds and grants by every
// Service operation; Audit checks that they are.
type Account struct {
	ID tollgate.AccountID
	// Left is the sum of Left over the account's lots.
	Left tollgate.Credits
	// Held is the sum of Amount over the account's active lot-funded holds
	// (holds without a grant, or whose grant has been confirmed).
	Held tollgate.Credits
	// Debt is provisional usage that no payment has covered yet. Debt
	// blocks spending and is paid first by the next credited payment.
	Debt      tollgate.Credits
	CreatedAt time.Time
	// LowBalance is the account's low_balance_credits: when a change
	// takes Left − Debt from at least it to below it, the change's
	// transaction appends a balance.low webhook event (once per crossing;
	// rising back to it re-arms). nil: no such events. Set by
	// Service.SetLowBalance.
	LowBalance *tollgate.Credits
	// Version is incremented by the store on every update; updates are
	// conditional on it, so a lost update is impossible.
	Version int64
}

// Available is the credit the account may still reserve: lots left minus
// active holds minus debt. It is negative only when debt is recorded.
func (a Account) Available() tollgate.Credits { return a.Left - a.Held - a.Debt }

// Lot is the credit bought by one successful payment. Usage draws lots down
// 0-fen (adjustment) lots first, then paid lots, each in ID order (see
// drawLots). Per lot, always:
// Granted = Used + Left + Refunding + Refunded, every term ≥ 0.
type Lot struct {
	// ID is assigned by the store on insert; ascending IDs are the
	// draw-down order.
	ID            int64
	Account       tollgate.AccountID
	OutTradeNo    string // merchant order number, unique
	TransactionID string // WeChat Pay transaction id, unique
	Fen           tollgate.Fen
	Granted       tollgate.Credits
	Used          tollgate.Credits
	Left          tollgate.Credits
	// Refunding is credit reserved by a refund in progress: neither
	// spendable nor refundable again until the refund completes or fails.
	Refunding   tollgate.Credits
	Refunded    tollgate.Credits
	RefundedFen tollgate.Fen
	CreatedAt   time.Time
	Version     int64
}

// HoldStatus is the state of a hold. A hold is active until it resolves,
// exactly once, to settled, released or expired.
type HoldStatus string

// Hold states.
const (
	HoldActive   HoldStatus = "active"
	HoldSettled  HoldStatus = "settled"
	HoldReleased HoldStatus = "released"
	HoldExpired  HoldStatus = "expired"
)

// Hold reserves the worst-case cost of one upstream call. Settling records
// the real cost (≤ Amount) and frees the rest; releasing or expiring frees
// everything.
type Hold struct {
	ID      string // chosen by the caller (usually the request id), unique
	Account tollgate.AccountID
	// GrantID is the provisional grant that funds the hold, or "".
	GrantID    string
	Amount     tollgate.Credits
	Cost       tollgate.Credits // the settled cost; 0 unless settled
	Status     HoldStatus
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ResolvedAt time.Time // zero while active
	Version    int64
}

// GrantStatus is the state of a provisional grant.
type GrantStatus string

// Grant states. A grant is live until it is confirmed (its payment was
// credited) or revoked (the payment failed, was closed or expired).
const (
	GrantLive      GrantStatus = "live"
	GrantConfirmed GrantStatus = "confirmed"
	GrantRevoked   GrantStatus = "revoked"
)

// Grant is a capped provisional allowance tied to a pending order, so the
// first request need not wait for the payment. Used + Held ≤ Cap.
type Grant struct {
	ID      string // the pending order's out_trade_no, unique
	Account tollgate.AccountID
	Cap     tollgate.Credits
	Used    tollgate.Credits // settled through the grant
	Held    tollgate.Credits // active holds funded by the grant
	Status  GrantStatus
	// LotID is the lot whose payment confirmed the grant, or 0.
	LotID      int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ResolvedAt time.Time
	Version    int64
}

// RefundStatus is the state of a refund.
type RefundStatus string

// Refund states: pending after BeginRefund, then succeeded or failed once.
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// Refund returns the unused part of a lot. Fen = floor(lot.Fen * Credits /
// lot.Granted), computed in integer math.
type Refund struct {
	OutRefundNo string // unique; retries use the same number
	LotID       int64
	Account     tollgate.AccountID
	Credits     tollgate.Credits
	Fen         tollgate.Fen
	Status      RefundStatus
	CreatedAt   time.Time
	ResolvedAt  time.Time
	Version     int64
}

// Usage is the record of one metered request. Records that cost credits are
// written by Settle in the same transaction as the hold's settlement, so the
// sum of usage credits per account equals the sum of settled holds.
type Usage struct {
	RequestID  string // unique
	Account    tollgate.AccountID
	KeyID      string
	Model      string
	Provider   string
	Deployment string
	// UpstreamID is the id the provider gave its answer (an OpenAI
	// chatcmpl-…, an Anthropic msg_…), at most MaxUpstreamID bytes; ""
	// when it sent none. RequestID is tollgate's own id of the call.
	UpstreamID string
	// InputTokens counts every prompt token: CachedTokens (read from the
	// provider's cache) and the cache writes included.
	InputTokens  int64
	CachedTokens int64
	// CacheWriteTokens and CacheWrite1hTokens are prompt tokens the
	// provider wrote to its cache for 5 minutes and for an hour.
	CacheWriteTokens   int64
	CacheWrite1hTokens int64
	OutputTokens       int64
	// Units are what the call used beyond text tokens (tollgate.Tokens'
	// unit fields; its token fields are zero): audio tokens (also counted
	// in InputTokens and OutputTokens), characters, audio seconds, images,
	// web calls, the priority tier. Stored as EncodeUnits writes them.
	Units     tollgate.Tokens
	Credits   tollgate.Credits
	Latency   time.Duration
	Status    string
	CreatedAt time.Time
}

// MaxUpstreamID bounds Usage.UpstreamID.
const MaxUpstreamID = 256

// DebtTotal is the debt outstanding across all accounts: the credits
// owed and how many accounts owe them.
type DebtTotal struct {
	Credits  tollgate.Credits `json:"credits"`
	Accounts int64            `json:"accounts"`
}

// DebtReporter sums debt across accounts in one aggregate query (never
// the rows into memory), for the operator's overview. The figure is the
// committed one. Implementations: store/sqlite, store/postgres.
type DebtReporter interface {
	DebtOutstanding(ctx context.Context) (DebtTotal, error)
}
