//go:build !tollgate_mutants

package ledger

// mutantHeldAvailable is failpoint.MutantHeldAvailable, the deliberate bug
// that counts held credits as available when reserving. Without the
// tollgate_mutants tag (the shipped binary) it is the constant false and
// the compiler drops the branch it guards; see mutant_on.go.
const mutantHeldAvailable = false
