//go:build tollgate_mutants

package ledger

import "tollgate/internal/failpoint"

// The deliberate bugs (internal/failpoint's mutants) planted in the ledger's
// money rules, switched on by TOLLGATE_MUTANTS, to prove the tests and the
// reliability harness catch each one. This file is compiled only with the
// tollgate_mutants tag; without it the switches are constants false
// (mutant_off.go).
var (
	// mutantHeldAvailable counts held credits as available when reserving.
	mutantHeldAvailable = failpoint.Mutant(failpoint.MutantHeldAvailable)
	// mutantRefundHeld refunds a lot's left credit whatever holds and
	// debt claim.
	mutantRefundHeld = failpoint.Mutant(failpoint.MutantRefundHeld)
	// mutantGrantOverCap lets a hold outgrow its grant's room.
	mutantGrantOverCap = failpoint.Mutant(failpoint.MutantGrantOverCap)
	// mutantLateGrantExpiry lets a grant fund a hold at its expiry.
	mutantLateGrantExpiry = failpoint.Mutant(failpoint.MutantLateGrantExpiry)
	// mutantLateHoldExpiry keeps a hold active at its expiry.
	mutantLateHoldExpiry = failpoint.Mutant(failpoint.MutantLateHoldExpiry)
	// mutantRevokeForgives revokes a grant without its debt.
	mutantRevokeForgives = failpoint.Mutant(failpoint.MutantRevokeForgives)
	// mutantDropRefundEvent writes no event for a succeeded refund.
	mutantDropRefundEvent = failpoint.Mutant(failpoint.MutantDropRefundEvent)
	// mutantDropBatchItem leaves the last lot of a batch of credits
	// unwritten while its caller hears it was credited.
	mutantDropBatchItem = failpoint.Mutant(failpoint.MutantDropBatchItem)
)
