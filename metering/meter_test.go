package metering_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate"
	"tollgate/gateway"
	"tollgate/ledger"
	"tollgate/metering"
	"tollgate/store/sqlite"
	"tollgate/store/storetest"
)

func openSQLite(tb testing.TB) ledger.Store {
	tb.Helper()
	st, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// TestMeterSpendsTheHoldsGrant: the provisional grant reaches the ledger
// in the hold itself (gateway.Hold.GrantID), not through the context: a
// hold naming the grant is funded by it, one without draws on the
// account's credit, which an account that has only a grant lacks.
func TestMeterSpendsTheHoldsGrant(t *testing.T) {
	e := storetest.NewEnv(t, openSQLite)
	storetest.MustAccount(t, e, "alice")
	if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "order-1", Account: "alice", Cap: 1000, TTL: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	m := &metering.Meter{Ledger: e.Svc}

	if _, err := m.Reserve(e.Ctx, gateway.Hold{RequestID: "r0", Account: "alice", Model: "m", Credits: 300}); tollgate.ErrorCode(err) != tollgate.EINSUFFICIENT {
		t.Fatalf("a hold without the grant on an account without credit: %v, want EINSUFFICIENT", err)
	}
	id, err := m.Reserve(e.Ctx, gateway.Hold{RequestID: "r1", Account: "alice", Model: "m", Credits: 300, GrantID: "order-1"})
	if err != nil {
		t.Fatalf("reserve through the grant: %v", err)
	}
	if !strings.HasPrefix(id, "hold_") {
		t.Fatalf("hold id %q", id)
	}
	if h, err := e.Svc.Hold(e.Ctx, id); err != nil || h.GrantID != "order-1" || h.Amount != 300 {
		t.Fatalf("hold %+v, %v", h, err)
	}
	if b := storetest.MustBalance(t, e, "alice"); b.Provisional != 700 {
		t.Fatalf("balance while held %+v, want 700 provisional", b)
	}
	if err := m.Settle(e.Ctx, id, gateway.Usage{RequestID: "r1", Account: "alice", KeyID: "provisional", Model: "m",
		InputTokens: 10, OutputTokens: 5, Credits: 120, Status: "ok"}); err != nil {
		t.Fatalf("settle: %v", err)
	}
	if b := storetest.MustBalance(t, e, "alice"); b.Provisional != 880 || b.Held != 0 {
		t.Fatalf("balance after settling %+v, want 880 provisional, nothing held", b)
	}
}
