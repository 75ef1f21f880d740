//go:build tollgate_mutants

package ledger

import "tollgate/internal/failpoint"

// mutantHeldAvailable switches on the deliberate bug that counts held
// credits as available when reserving (failpoint.MutantHeldAvailable). This
// file is compiled only with the tollgate_mutants tag, which only the
// reliability harness uses, to prove it catches the bug.
var mutantHeldAvailable = failpoint.Mutant(failpoint.MutantHeldAvailable)
