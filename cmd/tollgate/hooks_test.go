package main

import (
	"bytes"
	"os"
	"testing"

	"tollgate/internal/failpoint"
)

// hookStrings are what a test hook leaves in a binary: the variables that
// arm failpoints and mutants, their names, and the names of the planted
// bugs' switches and bodies.
var hookStrings = []string{
	"TOLLGATE_FAILPOINTS", "TOLLGATE_MUTANTS", "failpoint: injected error",
	failpoint.AfterCreditBeforeOrder, failpoint.AfterCreditBeforeAck, failpoint.AfterBeginRefund,
	failpoint.MutantSkipAmount, failpoint.MutantSkipSignature, failpoint.MutantHeldAvailable, failpoint.MutantSplitCredit,
	failpoint.MutantRefundHeld, failpoint.MutantGrantOverCap, failpoint.MutantLateGrantExpiry, failpoint.MutantLateHoldExpiry,
	failpoint.MutantRevokeForgives, failpoint.MutantLateTokenExpiry, failpoint.MutantSkipCloseRevoke, failpoint.MutantRefundUnpaid,
	failpoint.MutantDropRefundEvent, failpoint.MutantDropBatchItem,
	"mutantSkipAmount", "mutantSkipSignature", "mutantHeldAvailable", "mutantSplitCredit",
	"mutantRefundHeld", "mutantGrantOverCap", "mutantLateGrantExpiry", "mutantLateHoldExpiry",
	"mutantRevokeForgives", "mutantLateTokenExpiry", "mutantSkipCloseRevoke", "mutantRefundUnpaid",
	"mutantDropRefundEvent", "mutantDropBatchItem", "splitCredit", "resignV2", "tollgate/internal/failpoint",
}

// TestShippedBinaryHasNoTestHooks: `go build ./cmd/tollgate` without tags
// makes a binary with no failpoint and no deliberate bug in it: none of
// hookStrings, nor the names of the Mutant constants or of the test-only
// ledger model, is anywhere in its bytes. The binary built with the hooks'
// tags holds every one of hookStrings, so the scan sees what it looks for.
func TestShippedBinaryHasNoTestHooks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	shipped := readBinary(t, mustBuild(t))
	absent := append([]string{"MutantSkipAmount", "MutantSkipSignature", "MutantHeldAvailable", "MutantSplitCredit",
		"MutantRefundHeld", "MutantGrantOverCap", "MutantLateGrantExpiry", "MutantLateHoldExpiry",
		"MutantRevokeForgives", "MutantLateTokenExpiry", "MutantSkipCloseRevoke", "MutantRefundUnpaid",
		"MutantDropRefundEvent", "MutantDropBatchItem", "ledgertest", "NewModel"}, hookStrings...)
	for _, s := range absent {
		if bytes.Contains(shipped, []byte(s)) {
			t.Errorf("the binary built without tags contains %q", s)
		}
	}
	hooked := readBinary(t, mustBuild(t, hookTags...))
	for _, s := range hookStrings {
		if !bytes.Contains(hooked, []byte(s)) {
			t.Errorf("the binary built with -tags %v lacks %q: the scan cannot see it", hookTags, s)
		}
	}
}

func readBinary(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
