//go:build tollgate_mutants

package failpoint_test

import (
	"os"
	"testing"

	"tollgate/internal/failpoint"
)

// TestMutantFromEnvironment: TOLLGATE_MUTANTS (read once, at start-up)
// switches on the mutants it names and only those.
func TestMutantFromEnvironment(t *testing.T) {
	if os.Getenv("TOLLGATE_MUTANTS") != failpoint.MutantHeldAvailable {
		t.Skip("run by TestWithTags with TOLLGATE_MUTANTS=" + failpoint.MutantHeldAvailable)
	}
	if !failpoint.Mutant(failpoint.MutantHeldAvailable) {
		t.Error("the mutant named by TOLLGATE_MUTANTS is off")
	}
	if failpoint.Mutant(failpoint.MutantSkipAmount) {
		t.Error("a mutant TOLLGATE_MUTANTS does not name is on")
	}
}
