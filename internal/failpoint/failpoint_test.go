//go:build !tollgate_failpoints && !tollgate_mutants

package failpoint_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"tollgate/internal/failpoint"
)

// TestOffWithoutTags: a build without the tags (the shipped binary) has
// every point and every mutant off, whatever the environment says.
func TestOffWithoutTags(t *testing.T) {
	for _, name := range []string{failpoint.AfterCreditBeforeOrder, failpoint.AfterCreditBeforeAck, failpoint.AfterBeginRefund} {
		if err := failpoint.Inject(name); err != nil {
			t.Errorf("Inject(%s) = %v without the tag", name, err)
		}
	}
	for _, name := range []string{failpoint.MutantSkipAmount, failpoint.MutantSkipSignature, failpoint.MutantHeldAvailable, failpoint.MutantSplitCredit,
		failpoint.MutantRefundHeld, failpoint.MutantGrantOverCap, failpoint.MutantLateGrantExpiry, failpoint.MutantLateHoldExpiry,
		failpoint.MutantRevokeForgives, failpoint.MutantLateTokenExpiry, failpoint.MutantSkipCloseRevoke, failpoint.MutantRefundUnpaid,
		failpoint.MutantDropRefundEvent, failpoint.MutantDropBatchItem} {
		if failpoint.Mutant(name) {
			t.Errorf("Mutant(%s) is on without the tag", name)
		}
	}
}

// TestWithTags runs this package's tests built with both tags (the
// *_on_test.go files), as the harness's binary is built, so the README's
// test command covers them too.
func TestWithTags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package's tests again with the tags")
	}
	cmd := exec.Command("go", "test", "-count=1", "-tags", failpoint.FailpointsTag+","+failpoint.MutantsTag, ".")
	cmd.Env = append(os.Environ(), "TOLLGATE_FAILPOINTS=", "TOLLGATE_MUTANTS="+failpoint.MutantHeldAvailable)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -tags: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "ok") {
		t.Fatalf("go test -tags: %s", out)
	}
}
