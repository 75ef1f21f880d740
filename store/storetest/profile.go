package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
)

// testProfiles: an account's profile starts empty, keeps what is written,
// refuses an external id another account has (nothing changed), and an
// unknown account is ENOTFOUND.
func testProfiles(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "acct-a")
	mustAccount(t, svc, "acct-b")
	p, err := s.AccountProfile(ctx, "acct-a")
	if err != nil {
		t.Fatal(err)
	}
	if p.Label != "" || p.ExternalID != "" || string(p.Metadata) != "{}" || p.Disabled() || p.CreatedAt.IsZero() {
		t.Fatalf("new profile = %+v, want empty", p)
	}
	at := keyEpoch.Add(time.Hour)
	got, err := s.UpdateAccountProfile(ctx, "acct-a", func(p *auth.Profile) error {
		p.Label, p.ExternalID, p.Metadata, p.DisabledAt = "Ada 艾达", "user-1", json.RawMessage(`{"plan":"pro"}`), at
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	read, err := s.AccountProfile(ctx, "acct-a")
	if err != nil {
		t.Fatal(err)
	}
	if read.Label != "Ada 艾达" || read.ExternalID != "user-1" || string(read.Metadata) != `{"plan":"pro"}` ||
		!read.DisabledAt.Equal(at) || !got.DisabledAt.Equal(at) {
		t.Fatalf("read %+v after writing %+v", read, got)
	}
	_, err = s.UpdateAccountProfile(ctx, "acct-b", func(p *auth.Profile) error {
		p.Label, p.ExternalID = "Bob", "user-1"
		return nil
	})
	if tollgate.ErrorCode(err) != tollgate.ECONFLICT {
		t.Fatalf("taking another account's external id: %v, want conflict", err)
	}
	if b, _ := s.AccountProfile(ctx, "acct-b"); b.Label != "" || b.ExternalID != "" {
		t.Fatalf("a refused update changed %+v", b)
	}
	// Clearing: no external id, enabled again; two accounts may both have none.
	if _, err := s.UpdateAccountProfile(ctx, "acct-a", func(p *auth.Profile) error {
		p.ExternalID, p.DisabledAt = "", time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountProfile(ctx, "acct-a"); a.ExternalID != "" || a.Disabled() || a.Label != "Ada 艾达" {
		t.Fatalf("after clearing: %+v", a)
	}
	if _, err := s.AccountProfile(ctx, "nobody"); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := s.UpdateAccountProfile(ctx, "nobody", func(*auth.Profile) error { return nil }); tollgate.ErrorCode(err) != tollgate.ENOTFOUND {
		t.Fatalf("update unknown account: %v", err)
	}
	// Ledger changes keep the profile, and profile changes keep the ledger.
	if _, _, err := svc.CreditPayment(ctx, ledger.Payment{Account: "acct-a", OutTradeNo: "TN-prof-1", TransactionID: "TX-prof-1", Fen: 100, Credits: 1000}); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountProfile(ctx, "acct-a"); a.Label != "Ada 艾达" || a.Left != 1000 {
		t.Fatalf("after a credit: %+v", a)
	}
	// The profile shows the ledger's low_balance_credits (null: none), and
	// a profile change keeps it.
	if a, _ := s.AccountProfile(ctx, "acct-a"); a.LowBalance != nil {
		t.Fatalf("low_balance_credits before it was set: %v", *a.LowBalance)
	}
	low := tollgate.Credits(250)
	if _, err := svc.SetLowBalance(ctx, "acct-a", &low); err != nil {
		t.Fatal(err)
	}
	label := "Ada"
	if _, err := s.UpdateAccountProfile(ctx, "acct-a", func(p *auth.Profile) error { p.Label = label; return nil }); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountProfile(ctx, "acct-a"); a.LowBalance == nil || *a.LowBalance != 250 || a.Label != label {
		t.Fatalf("after setting low_balance_credits: %+v", a)
	}
	ps, err := s.ListAccounts(ctx, auth.AccountQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if want := p.Account == "acct-a"; (p.LowBalance != nil) != want || want && *p.LowBalance != 250 {
			t.Fatalf("listed %s with low_balance_credits %v", p.Account, p.LowBalance)
		}
	}
}

// testProfilePages: pages by id follow each other without gaps or
// repeats; q finds by id, external id and label.
func testProfilePages(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	for i := range 7 {
		id := tollgate.AccountID(fmt.Sprintf("acct-%02d", i))
		mustAccount(t, svc, id)
		if _, err := s.UpdateAccountProfile(ctx, id, func(p *auth.Profile) error {
			p.Label, p.ExternalID = fmt.Sprintf("Team %c", 'A'+i%2), fmt.Sprintf("ext-%d", i)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []tollgate.AccountID
	after := tollgate.AccountID("")
	for {
		page, err := s.ListAccounts(ctx, auth.AccountQuery{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			seen = append(seen, p.Account)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Account
	}
	if fmt.Sprint(seen) != "[acct-00 acct-01 acct-02 acct-03 acct-04 acct-05 acct-06]" {
		t.Fatalf("pages gave %v", seen)
	}
	for q, want := range map[auth.AccountQuery]string{
		{Q: "acct-03", Exact: true}: "[acct-03]", {Q: "ext-5", Exact: true}: "[acct-05]", {Q: "team", Exact: true}: "[]",
		{Q: "team b"}: "[acct-01 acct-03 acct-05]", {Q: "nothing"}: "[]",
	} {
		q.Limit = 10
		page, err := s.ListAccounts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []tollgate.AccountID
		for _, p := range page {
			got = append(got, p.Account)
		}
		if g := fmt.Sprint(got); g != want && !(want == "[]" && got == nil) {
			t.Errorf("%+v: %v, want %s", q, got, want)
		}
	}
}

// testDisabledKeys: a key's lookup tells whether its account is disabled.
func testDisabledKeys(t *testing.T, s APIKeyStore, svc *ledger.Service) {
	ctx := context.Background()
	mustAccount(t, svc, "acct-d")
	k := testKey("key_d1", "acct-d")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, err := s.APIKeyByHash(ctx, k.Hash); err != nil || got.AccountDisabled {
		t.Fatalf("enabled account's key: %+v, %v", got, err)
	}
	if _, err := s.UpdateAccountProfile(ctx, "acct-d", func(p *auth.Profile) error { p.DisabledAt = keyEpoch; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.APIKeyByHash(ctx, k.Hash); err != nil || !got.AccountDisabled {
		t.Fatalf("disabled account's key: %+v, %v", got, err)
	}
}
