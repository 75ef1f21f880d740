// Package failpoint injects crashes, delays and errors at named points of the
// money paths, and switches on deliberate bugs (mutants), so tests and the
// reliability harness can prove what happens when a process dies in a crash
// window (docs/DESIGN.md §7.2 F9;
// docs/RELIABILITY.md S6) and that the harness catches each bug.
//
// Both exist only in binaries built with a tag, gofail style; the shipped
// binary (no tags) has neither:
//
//   - tollgate_failpoints compiles in Inject's actions and the
//     TOLLGATE_FAILPOINTS variable that arms them (see inject_on.go);
//     without it Inject is an empty function returning nil, and the compiler
//     removes the call and any branch on its result.
//   - tollgate_mutants compiles in Mutant's switch and the planted bugs'
//     bodies (files named *_mutant.go in the packages that have one);
//     without it Mutant is the constant false and a branch it guards is
//     dead code the compiler drops.
//
// Only the names below are in every build: constants, which a binary holds
// only where a tagged call uses them.
package failpoint

// The build tags that compile the hooks in, for the tests and the harness
// that build a tollgate binary of their own (go build -tags).
const (
	FailpointsTag = "tollgate_failpoints"
	MutantsTag    = "tollgate_mutants"
)

// Names of the points compiled into tollgate.
const (
	// AfterCreditBeforeOrder fires after ledger.CreditPayment committed and
	// before the order row is marked SUCCESS.
	AfterCreditBeforeOrder = "after_credit_before_order"
	// AfterCreditBeforeAck fires after a notification was credited and
	// before the acknowledgement is written to WeChat Pay.
	AfterCreditBeforeAck = "after_credit_before_ack"
	// AfterBeginRefund fires after the ledger reserved a refund's credit
	// and before the refund record holds its amounts and the refund API is
	// called.
	AfterBeginRefund = "after_begin_refund"
)

// Names of the deliberate bugs (mutants) the reliability harness injects,
// with the tollgate_mutants build tag and TOLLGATE_MUTANTS, to prove that it
// catches each one.
const (
	// MutantSkipAmount credits a notification whatever its amount.
	MutantSkipAmount = "skip_amount"
	// MutantSkipSignature credits a notification whatever its signature.
	MutantSkipSignature = "skip_signature"
	// MutantHeldAvailable counts held credits as available when reserving.
	MutantHeldAvailable = "held_available"
	// MutantSplitCredit marks the order SUCCESS in its own transaction
	// before the lot is inserted, and lets that status decide whether a
	// repeat is credited: a crash between the two loses the payment.
	MutantSplitCredit = "split_credit"

	// The planted bugs below are caught by unit and integration tests, each
	// named in docs/RELIABILITY.md ("Mutation check") and run by
	// scripts/mutants.sh; the harness takes them too.

	// MutantRefundHeld refunds everything a lot has left, ignoring the
	// account's holds and debt, which have a claim on it first.
	MutantRefundHeld = "refund_held"
	// MutantGrantOverCap lets a hold take more than a provisional grant's
	// room (cap − used − held).
	MutantGrantOverCap = "grant_over_cap"
	// MutantLateGrantExpiry lets a provisional grant fund a hold at the
	// very instant it expires (now.After instead of !now.Before).
	MutantLateGrantExpiry = "late_grant_expiry"
	// MutantLateHoldExpiry leaves a hold active at the very instant it
	// expires: the sweeper frees it one tick late.
	MutantLateHoldExpiry = "late_hold_expiry"
	// MutantRevokeForgives revokes a provisional grant without turning
	// what it used into debt.
	MutantRevokeForgives = "revoke_forgives"
	// MutantLateTokenExpiry accepts a provisional access token at the very
	// instant it expires.
	MutantLateTokenExpiry = "late_token_expiry"
	// MutantSkipCloseRevoke closes an order (failed, closed or expired at
	// WeChat Pay) without revoking its provisional grant.
	MutantSkipCloseRevoke = "skip_close_revoke"
	// MutantRefundUnpaid starts a refund of an order that is not paid.
	MutantRefundUnpaid = "refund_unpaid"
	// MutantDropRefundEvent writes no webhook event for a refund that
	// succeeded: the money change commits, the app never hears of it.
	MutantDropRefundEvent = "drop_refund_event"
	// MutantDropBatchItem leaves the last payment of a group-committed
	// batch of credits unwritten (its lot, its account's new credit) while
	// its caller hears it was credited: WeChat Pay is acknowledged for
	// money the ledger never got.
	MutantDropBatchItem = "drop_batch_item"
)
