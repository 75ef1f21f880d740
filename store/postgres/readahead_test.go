package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// TestReadAhead: accounts locked ahead behind the holds serve the
// Service's read of them only when every one asked for was found and no
// hold is funded by a grant; otherwise the read goes to the server and
// answers as it would have without ReadAhead.
func TestReadAhead(t *testing.T) {
	s := mustOpenFastDeadlocks(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := s.Update(ctx, func(tx ledger.Tx) error {
		return tx.Apply(ctx, &ledger.Changes{
			NewAccounts: []ledger.Account{{ID: "ra-a", CreatedAt: now}, {ID: "ra-b", CreatedAt: now}},
			NewHolds: []ledger.Hold{{ID: "ra-h", Account: "ra-b", Amount: 1, Status: ledger.HoldActive,
				CreatedAt: now, ExpiresAt: now.Add(time.Hour)}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		ahead []tollgate.AccountID
		holds []string
		ask   []tollgate.AccountID
		want  []tollgate.AccountID
	}{
		{"asked and the hold's account", []tollgate.AccountID{"ra-a"}, []string{"ra-h", "ra-new"}, []tollgate.AccountID{"ra-a", "ra-b"}, []tollgate.AccountID{"ra-a", "ra-b"}},
		{"an unknown account", []tollgate.AccountID{"ra-a", "ra-none"}, []string{"ra-new"}, []tollgate.AccountID{"ra-a", "ra-none"}, []tollgate.AccountID{"ra-a"}},
		{"more than read ahead", []tollgate.AccountID{"ra-a"}, []string{"ra-new"}, []tollgate.AccountID{"ra-a", "ra-b"}, []tollgate.AccountID{"ra-a", "ra-b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []tollgate.AccountID
			err := s.Update(ctx, func(tx ledger.Tx) error {
				tx.(ledger.ReadAheader).ReadAhead(c.ahead, []string{"ra-req"})
				if _, err := tx.Holds(ctx, c.holds); err != nil {
					return err
				}
				as, err := tx.Accounts(ctx, c.ask)
				for _, a := range as {
					got = append(got, a.ID)
				}
				if err != nil {
					return err
				}
				_, err = tx.UsageByRequest(ctx, []string{"ra-req"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Accounts(%v) = %v, want %v", c.ask, got, c.want)
			}
		})
	}
}
