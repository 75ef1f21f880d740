package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

func testAccount(t *testing.T, e *Env) {
	a, err := e.Svc.CreateAccount(e.Ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "alice" || a.Left != 0 || !a.CreatedAt.Equal(Start) {
		t.Fatalf("new account = %+v", a)
	}
	got, err := e.Svc.Account(e.Ctx, "alice")
	if err != nil || got != a {
		t.Fatalf("Account = %+v, %v; want %+v", got, err, a)
	}
	Rejected(t, e, tollgate.ECONFLICT, func() error { _, err := e.Svc.CreateAccount(e.Ctx, "alice"); return err })
	Rejected(t, e, tollgate.EINVALID, func() error { _, err := e.Svc.CreateAccount(e.Ctx, ""); return err })
	_, err = e.Svc.Account(e.Ctx, "bob")
	WantCode(t, err, tollgate.ENOTFOUND)
	_, err = e.Svc.Balance(e.Ctx, "bob")
	WantCode(t, err, tollgate.ENOTFOUND)
}

func testCreditPayment(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	pay := ledger.Payment{Account: "alice", OutTradeNo: "o1", TransactionID: "wx1", Fen: 5000, Credits: 1_000_000}
	lot, already, err := e.Svc.CreditPayment(e.Ctx, pay)
	if err != nil || already {
		t.Fatalf("first credit: already=%v err=%v", already, err)
	}
	if lot.ID == 0 || lot.Fen != 5000 || lot.Granted != 1_000_000 || lot.Left != 1_000_000 || lot.Used != 0 {
		t.Fatalf("lot = %+v", lot)
	}
	again, already, err := e.Svc.CreditPayment(e.Ctx, pay)
	if err != nil || !already || again != lot {
		t.Fatalf("repeat credit = %+v already=%v err=%v; want the same lot, already", again, already, err)
	}
	WantBalance(t, e, "alice", 1_000_000, 0, 0)

	for _, tc := range []struct {
		name string
		p    ledger.Payment
		code string
	}{
		{"OtherAmount", ledger.Payment{Account: "alice", OutTradeNo: "o1", TransactionID: "wx1", Fen: 5001, Credits: 1_000_000}, tollgate.ECONFLICT},
		{"OtherCredits", ledger.Payment{Account: "alice", OutTradeNo: "o1", TransactionID: "wx1", Fen: 5000, Credits: 999}, tollgate.ECONFLICT},
		{"OtherTransaction", ledger.Payment{Account: "alice", OutTradeNo: "o1", TransactionID: "wx9", Fen: 5000, Credits: 1_000_000}, tollgate.ECONFLICT},
		{"OtherAccount", ledger.Payment{Account: "bob", OutTradeNo: "o1", TransactionID: "wx1", Fen: 5000, Credits: 1_000_000}, tollgate.ECONFLICT},
		{"TransactionReused", ledger.Payment{Account: "alice", OutTradeNo: "o2", TransactionID: "wx1", Fen: 5000, Credits: 1_000_000}, tollgate.ECONFLICT},
		{"UnknownAccount", ledger.Payment{Account: "carol", OutTradeNo: "o3", TransactionID: "wx3", Fen: 100, Credits: 10}, tollgate.ENOTFOUND},
		{"ZeroFen", ledger.Payment{Account: "alice", OutTradeNo: "o4", TransactionID: "wx4", Fen: 0, Credits: 10}, tollgate.EINVALID},
		{"NegativeCredits", ledger.Payment{Account: "alice", OutTradeNo: "o4", TransactionID: "wx4", Fen: 10, Credits: -1}, tollgate.EINVALID},
		{"NoOrder", ledger.Payment{Account: "alice", TransactionID: "wx4", Fen: 10, Credits: 10}, tollgate.EINVALID},
		{"NoTransaction", ledger.Payment{Account: "alice", OutTradeNo: "o4", Fen: 10, Credits: 10}, tollgate.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Rejected(t, e, tc.code, func() error { _, _, err := e.Svc.CreditPayment(e.Ctx, tc.p); return err })
		})
	}
	got, err := e.Svc.LotByOrder(e.Ctx, "o1")
	if err != nil || got != lot {
		t.Fatalf("LotByOrder = %+v, %v", got, err)
	}
	_, err = e.Svc.LotByOrder(e.Ctx, "nope")
	WantCode(t, err, tollgate.ENOTFOUND)
}

func testCreditPaymentConcurrent(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	const n = 50
	pay := ledger.Payment{Account: "alice", OutTradeNo: "o1", TransactionID: "wx1", Fen: 5000, Credits: 1_000_000}
	var wg sync.WaitGroup
	lots := make([]ledger.Lot, n)
	fresh := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			var already bool
			lots[i], already, errs[i] = e.Svc.CreditPayment(e.Ctx, pay)
			fresh[i] = !already
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("credit %d: %v", i, errs[i])
		}
		if lots[i].ID != lots[0].ID {
			t.Fatalf("credit %d returned lot %d, credit 0 lot %d", i, lots[i].ID, lots[0].ID)
		}
		if fresh[i] {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d calls report creating the lot, want 1", created)
	}
	all, err := e.Svc.Lots(e.Ctx, "alice")
	if err != nil || len(all) != 1 {
		t.Fatalf("lots = %d (%v), want 1", len(all), err)
	}
	WantBalance(t, e, "alice", 1_000_000, 0, 0)
}

// testCreditPaymentBatched: payments credited at the same moment share
// group-committed batches (CreditPayment is durable, one strict commit per
// batch), and each is credited exactly as if alone. Bad payments among
// them (no such account, zero fen, a transaction id credited to another
// order) are refused without failing the others. Rounds repeat until the
// committer has carried more operations than batches (a batch held more
// than one), at most 20.
func testCreditPaymentBatched(t *testing.T, e *Env) {
	accts := []tollgate.AccountID{"ann", "ben", "cai", "dee"}
	for _, a := range accts {
		MustAccount(t, e, a)
	}
	const n = 48
	MustCredit(t, e, "ann", "pre", 1, 1) // its transaction id, wx-pre, is taken
	want := map[tollgate.AccountID]tollgate.Credits{"ann": 1}
	for round := 0; round < 20; round++ {
		before := e.Svc.Stats()
		type res struct {
			lot ledger.Lot
			err error
		}
		out := make([]res, n)
		pays := make([]ledger.Payment, n)
		for i := range n {
			no := fmt.Sprintf("b%d-%d", round, i)
			pays[i] = ledger.Payment{Account: accts[i%len(accts)], OutTradeNo: no, TransactionID: "wx-" + no,
				Fen: tollgate.Fen(100 + i), Credits: tollgate.Credits(1000 + i)}
			switch i % 16 {
			case 5:
				pays[i].Account = "nobody"
			case 9:
				pays[i].Fen = 0
			case 13:
				pays[i].TransactionID = "wx-pre" // order pre's
			}
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				l, _, err := e.Svc.CreditPayment(e.Ctx, pays[i])
				out[i] = res{l, err}
			})
		}
		close(start)
		wg.Wait()
		for i, p := range pays {
			bad := i%16 == 5 || i%16 == 9 || i%16 == 13
			if bad {
				if out[i].err == nil {
					t.Fatalf("round %d: bad payment %d (%+v) was credited", round, i, p)
				}
				if _, err := e.Svc.LotByOrder(e.Ctx, p.OutTradeNo); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
					t.Fatalf("round %d: refused payment %s has a lot (err %v)", round, p.OutTradeNo, err)
				}
				continue
			}
			if out[i].err != nil {
				t.Fatalf("round %d: payment %d: %v", round, i, out[i].err)
			}
			l, err := e.Svc.LotByOrder(e.Ctx, p.OutTradeNo)
			if err != nil {
				t.Fatalf("round %d: payment %s was answered as credited (lot %d) but has no lot: %v", round, p.OutTradeNo, out[i].lot.ID, err)
			}
			if l.ID != out[i].lot.ID || l.Granted != p.Credits || l.Fen != p.Fen {
				t.Fatalf("round %d: lot of %s = %+v, answered %+v", round, p.OutTradeNo, l, out[i].lot)
			}
			want[p.Account] += p.Credits
		}
		for _, a := range accts {
			WantBalance(t, e, a, want[a], 0, 0)
		}
		after := e.Svc.Stats()
		if after.BatchedOps-before.BatchedOps > after.Batches-before.Batches {
			return
		}
	}
	t.Log("no batch carried two operations in 20 rounds: batching itself went unchecked")
}

func testPaidVolume(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	// Start is 2026-03-31 15:00 UTC (23:00 in Shanghai).
	MustCredit(t, e, "alice", "march", 1000, 10)
	e.Clock.Advance(2 * time.Hour) // 17:00 UTC: still March in UTC, April 1st in Shanghai
	MustCredit(t, e, "alice", "boundary", 2000, 20)
	e.Clock.Advance(8 * time.Hour) // April everywhere
	MustCredit(t, e, "alice", "april", 3000, 30)
	e.Clock.Advance(31 * 24 * time.Hour) // May
	MustCredit(t, e, "alice", "may", 4000, 40)
	for _, tc := range []struct {
		loc   *time.Location
		month time.Month
		want  tollgate.Fen
	}{
		{time.UTC, time.March, 3000},
		{time.UTC, time.April, 3000},
		{time.UTC, time.May, 4000},
		{time.UTC, time.June, 0},
		{tollgate.Beijing, time.March, 1000},
		{tollgate.Beijing, time.April, 5000},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.month, tc.loc), func(t *testing.T) {
			got, err := e.Svc.PaidVolume(e.Ctx, 2026, tc.month, tc.loc)
			if err != nil || got != tc.want {
				t.Fatalf("PaidVolume = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func testUsage(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	h, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "h1", Account: "alice", Amount: 100, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Second)
	_, err = e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: h.ID, Cost: 42, Usage: ledger.Usage{
		RequestID: "req-1", KeyID: "k1", Model: "gpt-x", Provider: "openai", Deployment: "eu", UpstreamID: "chatcmpl-up1",
		InputTokens: 30, CachedTokens: 5, CacheWriteTokens: 7, CacheWrite1hTokens: 3, OutputTokens: 12,
		Latency: 1500 * time.Millisecond, Status: "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Second)
	batch := []ledger.Usage{
		{RequestID: "req-2", Account: "alice", Model: "gpt-x", Status: "upstream_error"},
		{RequestID: "req-3", Account: "alice", Model: "gpt-x", Status: "rate_limited"},
	}
	if n, err := e.Svc.RecordUsage(e.Ctx, batch); err != nil || n != 2 {
		t.Fatalf("RecordUsage = %d, %v", n, err)
	}
	if n, err := e.Svc.RecordUsage(e.Ctx, batch); err != nil || n != 0 {
		t.Fatalf("repeated RecordUsage = %d, %v; want 0 inserted", n, err)
	}
	for _, tc := range []struct {
		name string
		us   []ledger.Usage
		code string
	}{
		{"Costed", []ledger.Usage{{RequestID: "r9", Account: "alice", Credits: 5}}, tollgate.EINVALID},
		{"NoID", []ledger.Usage{{Account: "alice"}}, tollgate.EINVALID},
		{"Twice", []ledger.Usage{{RequestID: "r9", Account: "alice"}, {RequestID: "r9", Account: "alice"}}, tollgate.EINVALID},
		{"NegativeTokens", []ledger.Usage{{RequestID: "r9", Account: "alice", OutputTokens: -1}}, tollgate.EINVALID},
		{"NegativeCacheWrites", []ledger.Usage{{RequestID: "r9", Account: "alice", CacheWrite1hTokens: -1}}, tollgate.EINVALID},
		{"UnknownAccount", []ledger.Usage{{RequestID: "r9", Account: "zed"}}, tollgate.ENOTFOUND},
		{"LongUpstreamID", []ledger.Usage{{RequestID: "r9", Account: "alice", UpstreamID: strings.Repeat("x", ledger.MaxUpstreamID+1)}}, tollgate.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Rejected(t, e, tc.code, func() error { _, err := e.Svc.RecordUsage(e.Ctx, tc.us); return err })
		})
	}
	list, err := e.Svc.ListUsage(e.Ctx, "alice", 10)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListUsage = %d records, %v", len(list), err)
	}
	first := list[2]
	want := ledger.Usage{RequestID: "req-1", Account: "alice", KeyID: "k1", Model: "gpt-x", Provider: "openai",
		Deployment: "eu", UpstreamID: "chatcmpl-up1", InputTokens: 30, CachedTokens: 5, CacheWriteTokens: 7, CacheWrite1hTokens: 3,
		OutputTokens: 12, Credits: 42, Latency: 1500 * time.Millisecond, Status: "ok", CreatedAt: Start.Add(time.Second)}
	if first != want {
		t.Fatalf("oldest usage = %+v\nwant %+v", first, want)
	}
	// One record by its id, for its own account only: another account's
	// id is as unknown as one that never existed.
	if got, err := e.Svc.UsageOf(e.Ctx, "alice", "req-1"); err != nil || got != want {
		t.Fatalf("UsageOf = %+v, %v\nwant %+v", got, err, want)
	}
	MustAccount(t, e, "bob")
	for _, tc := range []struct {
		account tollgate.AccountID
		id      string
	}{{"bob", "req-1"}, {"alice", "req-404"}, {"alice", ""}, {"", "req-1"}} {
		Rejected(t, e, tollgate.ENOTFOUND, func() error { _, err := e.Svc.UsageOf(e.Ctx, tc.account, tc.id); return err })
	}
	// A settle with an upstream id no store keeps is refused, nothing changed.
	h2, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: "h2", Account: "alice", Amount: 10, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	Rejected(t, e, tollgate.EINVALID, func() error {
		_, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: h2.ID, Cost: 1, Usage: ledger.Usage{
			RequestID: "req-long", UpstreamID: strings.Repeat("x", ledger.MaxUpstreamID+1)}})
		return err
	})
	if _, err := e.Svc.Release(e.Ctx, h2.ID); err != nil {
		t.Fatal(err)
	}
	if list[0].RequestID != "req-3" || list[1].RequestID != "req-2" {
		t.Fatalf("usage order = %s, %s, %s; want newest first", list[0].RequestID, list[1].RequestID, list[2].RequestID)
	}
}

// testUsageUnits: what a call used beyond text tokens is kept with its
// usage record and read back by every listing; a negative count (an
// upstream's mistake) is kept as zero, and a record without units reads
// back with none.
func testUsageUnits(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustCredit(t, e, "alice", "o1", 100, 1000)
	units := tollgate.Tokens{AudioInput: 40, AudioOutput: 9, WebSearches: 2, WebFetches: -3, Images: 1, ImageSize: "1024x1024/hd", Priority: true}
	for i, u := range []tollgate.Tokens{units, {}} {
		h, err := e.Svc.Reserve(e.Ctx, ledger.ReserveRequest{HoldID: fmt.Sprintf("h%d", i), Account: "alice", Amount: 10, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Second)
		if _, err := e.Svc.Settle(e.Ctx, ledger.SettleRequest{HoldID: h.ID, Cost: 7, Usage: ledger.Usage{
			RequestID: fmt.Sprintf("req-%d", i), Model: "gpt-x", InputTokens: 50, OutputTokens: 9, Units: u, Status: "ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	want := units
	want.WebFetches = 0
	got, err := e.Svc.UsageOf(e.Ctx, "alice", "req-0")
	if err != nil || got.Units != want {
		t.Fatalf("UsageOf units = %+v, %v; want %+v", got.Units, err, want)
	}
	list, err := e.Svc.ListUsage(e.Ctx, "alice", 10)
	if err != nil || len(list) != 2 || list[1].Units != want || list[0].Units != (tollgate.Tokens{}) {
		t.Fatalf("ListUsage = %+v, %v; want units %+v then none", list, err, want)
	}
	if n, err := e.Svc.RecordUsage(e.Ctx, []ledger.Usage{{RequestID: "req-9", Account: "alice", Units: tollgate.Tokens{WebSearches: 1}, Status: "upstream_error"}}); err != nil || n != 1 {
		t.Fatalf("RecordUsage = %d, %v", n, err)
	}
	if got, err := e.Svc.UsageOf(e.Ctx, "alice", "req-9"); err != nil || got.Units.WebSearches != 1 {
		t.Fatalf("recorded units = %+v, %v", got.Units, err)
	}
}
