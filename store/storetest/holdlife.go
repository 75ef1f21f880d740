package storetest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// A hold lives as long as its request (docs/DESIGN.md §2.5): renewed while
// the request is in flight, and charged when it settles however late.

func renew(e *Env, id string, ttl time.Duration) (ledger.Hold, error) {
	return e.Svc.Renew(e.Ctx, id, ttl)
}

// testHoldRenew: a renewed hold outlives its first expiry and is not swept;
// renewing never shortens a hold, a repeat changes nothing, and a hold that
// ended cannot be renewed.
func testHoldRenew(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g1", Account: "alice", Cap: 500, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(e, "lot", "alice", 300); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "grant", Account: "alice", GrantID: "g1", Amount: 200, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(50 * time.Second)
	want := Start.Add(110 * time.Second)
	for _, id := range []string{"lot", "grant"} {
		h, err := renew(e, id, time.Minute)
		if err != nil || h.Status != ledger.HoldActive || !h.ExpiresAt.Equal(want) {
			t.Fatalf("renew %s = %+v, %v; want active until %s", id, h, err, want)
		}
		before := Digest(t, e)
		if h, err := renew(e, id, time.Minute); err != nil || !h.ExpiresAt.Equal(want) {
			t.Fatalf("repeated renew %s = %+v, %v; want the same expiry", id, h, err)
		}
		if h, err := renew(e, id, time.Second); err != nil || !h.ExpiresAt.Equal(want) {
			t.Fatalf("shorter renew %s = %+v, %v; want the expiry kept", id, h, err)
		}
		if Digest(t, e) != before {
			t.Fatalf("a renew that extends nothing changed the money tables")
		}
		if h, err := e.Svc.Hold(e.Ctx, id); err != nil || !h.ExpiresAt.Equal(want) {
			t.Fatalf("Hold(%s) = %+v, %v; want the renewed expiry", id, h, err)
		}
	}
	// Past the first expiry (+60s), before the renewed one (+110s).
	e.Clock.Advance(50 * time.Second)
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != 0 {
		t.Fatalf("ExpireHolds = %d, %v; want the renewed holds kept", n, err)
	}
	WantBalance(t, e, "alice", 700, 500, 0)
	if _, err := settle(e, "lot", 120); err != nil {
		t.Fatalf("settle a renewed hold: %v", err)
	}
	if _, err := e.Svc.Release(e.Ctx, "grant"); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(e, "expired", "alice", 10); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute)
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireHolds = %d, %v; want 1", n, err)
	}
	if _, err := reserve(e, "active", "alice", 10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id string
		ttl      time.Duration
		code     string
	}{
		{"Settled", "lot", time.Minute, tollgate.ECONFLICT},
		{"Released", "grant", time.Minute, tollgate.ECONFLICT},
		{"Expired", "expired", time.Minute, tollgate.ECONFLICT},
		{"Unknown", "nope", time.Minute, tollgate.ENOTFOUND},
		{"NoTTL", "active", 0, tollgate.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Rejected(t, e, tc.code, func() error { _, err := renew(e, tc.id, tc.ttl); return err })
		})
	}
	WantBalance(t, e, "alice", 870, 10, 0)
}

// testHoldSettleLate: a hold the sweeper expired while its call ran is
// still charged when the call settles — from what the account can spare,
// the rest as debt — exactly once.
func testHoldSettleLate(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	if _, err := reserve(e, "late", "alice", 300); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute)
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireHolds = %d, %v; want 1", n, err)
	}
	WantBalance(t, e, "alice", 1000, 0, 0)
	h, err := settle(e, "late", 120)
	if err != nil || h.Status != ledger.HoldSettled || h.Cost != 120 {
		t.Fatalf("late settle = %+v, %v; want settled at 120", h, err)
	}
	WantBalance(t, e, "alice", 880, 0, 0)
	before := Digest(t, e)
	if h, err := settle(e, "late", 120); err != nil || h.Status != ledger.HoldSettled || h.Cost != 120 {
		t.Fatalf("repeated late settle = %+v, %v; want the settled hold", h, err)
	}
	if Digest(t, e) != before {
		t.Fatal("a repeated late settle changed the money tables")
	}
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := settle(e, "late", 100); return err })
	if got, err := e.Svc.Hold(e.Ctx, "late"); err != nil || got.Status != ledger.HoldSettled || got.Cost != 120 {
		t.Fatalf("Hold(late) = %+v, %v", got, err)
	}

	// The balance went elsewhere while the call ran: 80 can be spared,
	// the other 170 become debt, and the active hold stays covered.
	if _, err := reserve(e, "gone", "alice", 300); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Minute)
	if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireHolds = %d, %v; want 1", n, err)
	}
	if _, err := reserve(e, "other", "alice", 800); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(e, "gone", 250); err != nil {
		t.Fatalf("late settle beyond the balance: %v", err)
	}
	WantBalance(t, e, "alice", -170, 800, 170)
	Rejected(t, e, tollgate.EINSUFFICIENT, func() error { _, err := reserve(e, "blocked", "alice", 1); return err })
	if _, err := settle(e, "other", 800); err != nil {
		t.Fatalf("the covered hold settles from the lots: %v", err)
	}
	WantBalance(t, e, "alice", -170, 0, 170)
	MustCredit(t, e, "alice", "o2", 100, 500)
	WantBalance(t, e, "alice", 330, 0, 0)

	// Past its expiry but not yet swept, a hold settles as usual.
	if _, err := reserve(e, "due", "alice", 100); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(2 * time.Minute)
	if _, err := settle(e, "due", 60); err != nil {
		t.Fatalf("settle of a due hold: %v", err)
	}
	WantBalance(t, e, "alice", 270, 0, 0)
	usage, err := e.Svc.ListUsage(e.Ctx, "alice", 10)
	if err != nil {
		t.Fatal(err)
	}
	var sum tollgate.Credits
	for _, u := range usage {
		sum += u.Credits
	}
	if len(usage) != 4 || sum != 120+250+800+60 {
		t.Fatalf("%d usage records for %d credits; want 4 for %d", len(usage), sum, 120+250+800+60)
	}
}

// testHoldSettleLateGrant: a late settle of a hold funded by a provisional
// grant charges the grant while it is live (within its cap; beyond, debt),
// is debt once the grant was revoked, and draws the lots once the grant was
// confirmed (its holds are lot-funded then).
func testHoldSettleLateGrant(t *testing.T, e *Env) {
	grant := func(id string, acct tollgate.AccountID, capacity tollgate.Credits) {
		t.Helper()
		if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: id, Account: acct, Cap: capacity, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(id string, acct tollgate.AccountID, g string, amount tollgate.Credits, ttl time.Duration) {
		t.Helper()
		if _, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: id, Account: acct, GrantID: g, Amount: amount, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	sweep := func(want int) {
		t.Helper()
		e.Clock.Advance(time.Minute)
		if n, err := e.Svc.ExpireHolds(e.Ctx, e.Clock.Now()); err != nil || n != want {
			t.Fatalf("ExpireHolds = %d, %v; want %d", n, err, want)
		}
	}
	late := func(id string, cost tollgate.Credits) {
		t.Helper()
		if h, err := settle(e, id, cost); err != nil || h.Status != ledger.HoldSettled || h.Cost != cost {
			t.Fatalf("late settle %s = %+v, %v", id, h, err)
		}
	}
	for _, a := range []tollgate.AccountID{"bob", "carol", "dave"} {
		MustAccount(t, e, a)
	}
	// Live: the grant pays the room it has left, the rest is debt.
	grant("gb", "bob", 1000)
	hold("b1", "bob", "gb", 300, time.Minute)
	sweep(1)
	hold("b2", "bob", "gb", 900, 10*time.Minute)
	late("b1", 250)
	if g, err := e.Svc.Grant(e.Ctx, "gb"); err != nil || g.Used != 100 || g.Held != 900 {
		t.Fatalf("grant gb = %+v, %v; want 100 used (its room), 900 held", g, err)
	}
	WantBalance(t, e, "bob", -150, 900, 150)
	if _, err := settle(e, "b2", 900); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: "bob", OutTradeNo: "gb", TransactionID: "wx-gb",
		Fen: 100, Credits: 2000, GrantID: "gb"}); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "bob", 850, 0, 0) // 2000 - 150 debt - 1000 the grant used

	// Revoked: all debt, as the revoked grant's use is.
	MustCredit(t, e, "carol", "oc", 100, 1000)
	grant("gc", "carol", 500)
	hold("c1", "carol", "gc", 200, time.Minute)
	if _, err := e.Svc.RevokeGrant(e.Ctx, "gc"); err != nil {
		t.Fatal(err)
	}
	sweep(1)
	late("c1", 150)
	WantBalance(t, e, "carol", 850, 0, 150)

	// Confirmed: the hold became lot-funded; the lots pay.
	grant("gd", "dave", 500)
	hold("d1", "dave", "gd", 200, time.Minute)
	if _, _, err := e.Svc.CreditPayment(e.Ctx, ledger.Payment{Account: "dave", OutTradeNo: "gd", TransactionID: "wx-gd",
		Fen: 100, Credits: 1000, GrantID: "gd"}); err != nil {
		t.Fatal(err)
	}
	WantBalance(t, e, "dave", 800, 200, 0)
	sweep(1)
	late("d1", 150)
	WantBalance(t, e, "dave", 850, 0, 0)
}

// gateStore holds the next transaction at its start until the test opens
// the gate: the committer is then busy, and what is queued behind it stays
// queued, for as long as the test needs.
type gateStore struct {
	ledger.Store
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

// arm makes the next Update wait; entered receives when it does, open lets
// it go.
func (g *gateStore) arm() (entered <-chan struct{}, open func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.entered = make(chan struct{}), make(chan struct{}, 1)
	gate := g.gate
	return g.entered, func() { close(gate) }
}

func (g *gateStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	g.mu.Lock()
	gate, entered := g.gate, g.entered
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return g.Store.Update(ctx, fn)
}

// gatedService is a second Service over e's store, behind a gateStore,
// made like e.Svc.
func gatedService(t *testing.T, e *Env) (*ledger.Service, *gateStore) {
	t.Helper()
	gs := &gateStore{Store: e.Store}
	svc := ledger.New(gs, e.Opt)
	t.Cleanup(func() { svc.Close() })
	return svc, gs
}

// waitQueued waits until n operations wait in svc's queue. It spins
// rather than sleeps; the limit only catches a hung test.
func waitQueued(t *testing.T, svc *ledger.Service, n int) {
	t.Helper()
	limit := time.Now().Add(10 * time.Second)
	for svc.Stats().Queued < n {
		if time.Now().After(limit) {
			t.Fatalf("%d operations queued, want %d", svc.Stats().Queued, n)
		}
		runtime.Gosched()
	}
}

// testAbandonedReserve: a caller that stops waiting for its reserve (a
// client that went away) leaves no hold behind, whether the reserve was
// still queued for the group commit (it is withdrawn) or already in a
// transaction (it is released right after that commits).
func testAbandonedReserve(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	if _, err := e.Svc.IssueGrant(e.Ctx, ledger.GrantRequest{ID: "g", Account: "alice", Cap: 1000, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	svc, gs := gatedService(t, e)
	ctx := context.Background()
	funds := []string{"grant"}
	if !e.Opt.MemoryHolds { // with memory holds, lot-funded ones never queue
		funds = append(funds, "lots")
	}
	for _, fund := range funds {
		for _, stage := range []string{"Queued", "Taken"} {
			t.Run(fund+"/"+stage, func(t *testing.T) {
				req := ledger.ReserveRequest{HoldID: fund + stage, Account: "alice", Amount: 300, TTL: time.Minute}
				if fund == "grant" {
					req.GrantID = "g"
				}
				entered, open := gs.arm()
				blocker := make(chan error, 1)
				if stage == "Queued" {
					go func() {
						_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "blocker" + fund, Account: "alice", GrantID: "g", Amount: 1, TTL: time.Minute})
						blocker <- err
					}()
					<-entered // the committer is busy with the blocker
				} else {
					blocker <- nil
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { _, err := svc.Reserve(rctx, req); done <- err }()
				if stage == "Queued" {
					waitQueued(t, svc, 1)
				} else {
					<-entered // the committer took the reserve into a transaction
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("abandoned reserve: %v, want context.Canceled", err)
				}
				open()
				if err := <-blocker; err != nil {
					t.Fatalf("blocker: %v", err)
				}
				if err := svc.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				h, err := svc.Hold(ctx, req.HoldID)
				switch {
				case stage == "Queued" && tollgate.ErrorCode(err) != tollgate.ENOTFOUND:
					t.Fatalf("withdrawn reserve left hold %+v, %v; want none", h, err)
				case stage == "Taken" && (err != nil || h.Status != ledger.HoldReleased):
					t.Fatalf("abandoned reserve left hold %+v, %v; want it released", h, err)
				}
				if stage == "Queued" {
					if _, err := svc.Release(ctx, "blocker"+fund); err != nil {
						t.Fatal(err)
					}
				}
				b, err := svc.Balance(ctx, "alice")
				if err != nil || b.Credits != 1000 || b.Held != 0 || b.Provisional != 1000 {
					t.Fatalf("balance %+v, %v; want it whole: 1000 credits, 1000 provisional, nothing held", b, err)
				}
			})
		}
	}
}

// testSettleOutlivesCaller: a settle or release whose caller stopped
// waiting (or had already) still commits: a settle is revenue, a release
// gives credit back.
func testSettleOutlivesCaller(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	svc, gs := gatedService(t, e)
	ctx := context.Background()
	for _, id := range []string{"s1", "s2", "r1", "r2"} {
		if _, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: id, Account: "alice", Amount: 100, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	// A caller already gone: the answer may be its error, the commit happens.
	_, _ = svc.Settle(canceled, ledger.SettleRequest{HoldID: "s1", Cost: 40})
	_, _ = svc.Release(canceled, "r1")
	// A caller gone while its settle is queued behind a busy committer.
	if _, err := svc.IssueGrant(ctx, ledger.GrantRequest{ID: "g", Account: "alice", Cap: 10, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	entered, open := gs.arm()
	blocker := make(chan error, 1)
	go func() {
		_, err := svc.Reserve(ctx, ledger.ReserveRequest{HoldID: "blocker", Account: "alice", GrantID: "g", Amount: 1, TTL: time.Minute})
		blocker <- err
	}()
	<-entered
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { _, err := svc.Settle(sctx, ledger.SettleRequest{HoldID: "s2", Cost: 60}); done <- err }()
	waitQueued(t, svc, 1)
	scancel()
	<-done
	open()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Release(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Release(ctx, "blocker"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]ledger.HoldStatus{"s1": ledger.HoldSettled, "s2": ledger.HoldSettled, "r1": ledger.HoldReleased} {
		if h, err := svc.Hold(ctx, id); err != nil || h.Status != want {
			t.Errorf("hold %s = %+v, %v; want %s", id, h, err, want)
		}
	}
	b, err := svc.Balance(ctx, "alice")
	if err != nil || b.Credits != 900 || b.Held != 0 {
		t.Fatalf("balance %+v, %v; want 900 credits (40 + 60 charged), nothing held", b, err)
	}
}
