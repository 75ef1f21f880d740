//go:build tollgate_mutants

package failpoint

import (
	"os"
	"strings"
)

// mutants are the deliberate bugs named by TOLLGATE_MUTANTS (comma
// separated). This file is compiled only with the tollgate_mutants build
// tag, which only the reliability harness uses, to prove it catches them.
var mutants = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("TOLLGATE_MUTANTS"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			m[n] = true
		}
	}
	return m
}()

// Mutant reports whether the deliberate bug name is switched on.
func Mutant(name string) bool { return mutants[name] }
