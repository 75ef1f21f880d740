package storetest

import (
	"context"
	"fmt"
	"testing"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
)

// testRecentLots: an account's lots newest first, at most limit, and no
// other account's.
func testRecentLots(t *testing.T, e *Env) {
	MustAccount(t, e, "alice")
	MustAccount(t, e, "bob")
	var ids []int64
	for i := range 4 {
		ids = append(ids, MustCredit(t, e, "alice", fmt.Sprintf("tgRL%04d", i), 100, 1000).ID)
		MustCredit(t, e, "bob", fmt.Sprintf("tgRLB%03d", i), 100, 1000)
	}
	for limit, want := range map[int][]int64{1: {ids[3]}, 3: {ids[3], ids[2], ids[1]}, 10: {ids[3], ids[2], ids[1], ids[0]}} {
		lots, err := e.Svc.RecentLots(e.Ctx, "alice", limit)
		var got []int64
		for _, l := range lots {
			if l.Account != "alice" {
				t.Fatalf("RecentLots(alice) gave %+v", l)
			}
			got = append(got, l.ID)
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("RecentLots(alice, %d) = %v, %v; want %v", limit, got, err, want)
		}
	}
	if lots, err := e.Svc.RecentLots(e.Ctx, "nobody", 5); err != nil || len(lots) != 0 {
		t.Fatalf("RecentLots(nobody) = %v, %v", lots, err)
	}
}

// testAccountSearch: a search's pages, through auth.Service, at every
// page size: the exact matches (by id, by external id) first, then the
// label matches that are not exact ones, each by id — never a row twice
// or skipped, no empty page but a lone first one, and the last page says
// so.
func testAccountSearch(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	set := func(id tollgate.AccountID, label, ext string) {
		t.Helper()
		mustAccount(t, svc, id)
		if _, err := s.UpdateAccountProfile(ctx, id, func(p *auth.Profile) error {
			p.Label, p.ExternalID = label, ext
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		id := tollgate.AccountID(fmt.Sprintf("a-%02d", i))
		switch i {
		case 7: // q is its external id, and in its label too
			set(id, "vip seven", "vip")
		case 1, 2, 4, 5, 8, 10, 11:
			set(id, fmt.Sprintf("Big VIP %d", i), fmt.Sprintf("x-vip-%d", i))
		default:
			set(id, fmt.Sprintf("plain %d", i), "")
		}
	}
	set("vip", "the vip account", "") // q is its id
	as := &auth.Service{Store: s}
	want := "[a-07 vip a-01 a-02 a-04 a-05 a-08 a-10 a-11]"
	for _, q := range []string{"vip", "VIP"} {
		if q == "VIP" {
			// Exact matches are exact: "VIP" is no id or external id,
			// so only labels (ASCII folded) match.
			want = "[a-01 a-02 a-04 a-05 a-07 a-08 a-10 a-11 vip]"
		}
		for limit := 1; limit <= 10; limit++ {
			var seen []tollgate.AccountID
			aq := auth.AccountQuery{Q: q, Limit: limit}
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatalf("q=%s limit %d: pages never end: %v", q, limit, seen)
				}
				ps, next, err := as.ListAccounts(ctx, aq)
				if err != nil {
					t.Fatal(err)
				}
				if len(ps) > limit || len(ps) == 0 && pages > 0 {
					t.Fatalf("q=%s limit %d: page %d has %d rows", q, limit, pages, len(ps))
				}
				for _, p := range ps {
					seen = append(seen, p.Account)
				}
				if next == nil {
					break
				}
				if len(ps) < limit {
					t.Fatalf("q=%s limit %d: a short page %d with a next", q, limit, pages)
				}
				aq = *next
			}
			if fmt.Sprint(seen) != want {
				t.Errorf("q=%s limit %d: pages gave %v, want %s", q, limit, seen, want)
			}
		}
	}
	// Without q, the plain list pages by id to the end.
	var n int
	for aq := (auth.AccountQuery{Limit: 5}); ; {
		ps, next, err := as.ListAccounts(ctx, aq)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ps)
		if next == nil {
			break
		}
		aq = *next
	}
	if n != 13 {
		t.Fatalf("plain list: %d accounts, want 13", n)
	}
}
