package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tollgate"
	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/payment"
)

// PageRows is how many accounts and orders BenchmarkPages lists.
const PageRows = 100_000

// PageStore keeps accounts with profiles and orders, and runs raw SQL (to
// fill itself fast).
type PageStore interface {
	PaymentStore
	auth.Store
	auth.ProfileStore
	ledger.RawExecer
}

// BenchmarkPages measures one admin page (50 rows, the API's default) of
// accounts and of orders in a store holding PageRows of each, filled by
// the seed statements: the first page, a page deep in the table (from a
// cursor near the end), a search and a filter. Every page is a keyset
// query, so its time and memory (B/op, reported) do not grow with the
// table: a deep page costs what the first does.
//
//	func BenchmarkPages(b *testing.B) { storetest.BenchmarkPages(b, open(b), seedSQL) }
func BenchmarkPages(b *testing.B, s PageStore, seed []string) {
	ctx := context.Background()
	for _, q := range seed {
		if err := s.ExecRaw(ctx, q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	const page = 50
	as := &auth.Service{Store: s}
	deepAccount := tollgate.AccountID(fmt.Sprintf("acct_%08d", PageRows-100))
	deepOrder := fmt.Sprintf("tgbench%08d", PageRows-100)
	for _, bc := range []struct {
		name string
		run  func() (int, error)
	}{
		{"accounts/first", func() (int, error) {
			ps, err := s.ListAccounts(ctx, auth.AccountQuery{Limit: page})
			return len(ps), err
		}},
		{"accounts/deep", func() (int, error) {
			ps, err := s.ListAccounts(ctx, auth.AccountQuery{After: deepAccount, Limit: page})
			return len(ps), err
		}},
		{"accounts/external_id", func() (int, error) {
			ps, err := s.ListAccounts(ctx, auth.AccountQuery{Q: fmt.Sprintf("ext-%d", PageRows/2), Exact: true, Limit: page})
			return len(ps) * page, err // one match
		}},
		{"accounts/label", func() (int, error) {
			ps, err := s.ListAccounts(ctx, auth.AccountQuery{Q: "user 9", Limit: page})
			return len(ps), err
		}},
		{"accounts/search", func() (int, error) { // GET /admin/accounts?q=: exact part, then labels
			ps, _, err := as.ListAccounts(ctx, auth.AccountQuery{Q: "user 9", Limit: page})
			return len(ps), err
		}},
		{"accounts/search_none", func() (int, error) { // no label matches: the whole id index walked
			ps, _, err := as.ListAccounts(ctx, auth.AccountQuery{Q: "no such label", Limit: page})
			return len(ps) + page, err
		}},
		{"orders/first", func() (int, error) {
			os, err := s.OrdersPage(ctx, payment.OrderQuery{Limit: page})
			return len(os), err
		}},
		{"orders/deep", func() (int, error) {
			os, err := s.OrdersPage(ctx, payment.OrderQuery{AfterCreated: time.UnixMicro(100 * 1_000_000).UTC(), AfterNo: fmt.Sprintf("tgbench%08d", 100), Limit: page})
			return len(os), err
		}},
		{"orders/status", func() (int, error) {
			os, err := s.OrdersPage(ctx, payment.OrderQuery{Status: payment.StatusSuccess, AfterCreated: time.UnixMicro(int64(PageRows-100) * 1_000_000).UTC(), AfterNo: deepOrder, Limit: page})
			return len(os), err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := bc.run()
				if err != nil || n != page {
					b.Fatalf("page of %d rows, %v; want %d", n, err, page)
				}
			}
		})
	}
}
