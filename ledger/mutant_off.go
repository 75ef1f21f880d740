//go:build !tollgate_mutants

package ledger

// The deliberate bugs (internal/failpoint's mutants) planted in the
// ledger's money rules. Without the tollgate_mutants tag (the shipped
// binary) each switch is the constant false and the compiler drops the
// branch it guards; see mutant_on.go.
const (
	mutantHeldAvailable   = false // failpoint.MutantHeldAvailable
	mutantRefundHeld      = false // failpoint.MutantRefundHeld
	mutantGrantOverCap    = false // failpoint.MutantGrantOverCap
	mutantLateGrantExpiry = false // failpoint.MutantLateGrantExpiry
	mutantLateHoldExpiry  = false // failpoint.MutantLateHoldExpiry
	mutantRevokeForgives  = false // failpoint.MutantRevokeForgives
	mutantDropRefundEvent = false // failpoint.MutantDropRefundEvent
	mutantDropBatchItem   = false // failpoint.MutantDropBatchItem
)
