package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// MustFreeze makes each path (a file or a directory) unwritable until the
// test ends, even to root and through descriptors already open: it sets the
// immutable attribute (chattr +i), as a read-only mount would refuse writes.
// chmod would not do: root ignores it, and an open descriptor keeps
// writing. The test is skipped, saying why, where the attribute cannot be
// set (no chattr, no CAP_LINUX_IMMUTABLE, a file system without it).
func MustFreeze(tb testing.TB, paths ...string) {
	tb.Helper()
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		tb.Skipf("skipping: making a file unwritable under an open store needs chattr +i: %v", err)
	}
	for _, p := range paths {
		out, err := exec.Command(chattr, "+i", p).CombinedOutput()
		if err != nil {
			tb.Skipf("skipping: chattr +i %s (needs CAP_LINUX_IMMUTABLE and a file system with the attribute; chmod does not stop root or an open descriptor): %v: %s",
				p, err, strings.TrimSpace(string(out)))
		}
		// Before TempDir's removal, which runs after: cleanups run last first.
		tb.Cleanup(func() {
			if out, err := exec.Command(chattr, "-i", p).CombinedOutput(); err != nil {
				tb.Errorf("chattr -i %s: %v: %s", p, err, out)
			}
		})
	}
}
