//go:build !tollgate_mutants

package payment

import (
	"context"

	"tollgate/ledger"
)

// The deliberate bugs (internal/failpoint's mutants) the reliability harness
// plants to prove it catches them. Without the tollgate_mutants tag (the
// shipped binary) each switch is the constant false, the compiler drops the
// branch it guards, and the bugs' bodies (mutant_on.go) are not compiled.
const (
	mutantSkipAmount      = false // failpoint.MutantSkipAmount
	mutantSkipSignature   = false // failpoint.MutantSkipSignature
	mutantSplitCredit     = false // failpoint.MutantSplitCredit
	mutantLateTokenExpiry = false // failpoint.MutantLateTokenExpiry
	mutantSkipCloseRevoke = false // failpoint.MutantSkipCloseRevoke
	mutantRefundUnpaid    = false // failpoint.MutantRefundUnpaid
)

// splitCredit is never called without the tag: see mutant_on.go. (A
// function, not a method: a method's name would stay in the binary with its
// type even once the compiler dropped every call.)
func splitCredit(context.Context, *Service, Order, ledger.Payment) (bool, error) { return false, nil }

// resignV2 is never called without the tag: see mutant_on.go.
func resignV2(map[string]string, string, string) []byte { return nil }
