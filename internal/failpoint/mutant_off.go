//go:build !tollgate_mutants

package failpoint

// Mutant reports whether a deliberate bug is switched on: never, in every
// build without the tollgate_mutants tag (the shipped binary). The
// reliability harness builds with the tag to prove it catches each bug.
func Mutant(string) bool { return false }
