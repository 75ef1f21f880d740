package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

// prefetch holds rows an Update read ahead, in the same pipeline as an
// earlier read, because the ledger's Service asks for them next: the
// spendable lots of the accounts it just locked, and the usage records of
// the holds it just locked (a request id defaults to its hold id). Serving
// them from here saves two round trips per group-committed batch. A later
// read is served only if the prefetch covers every key it asks for; any
// Apply discards the prefetch.
//
// Reading ahead keeps the lock order: lots are locked right after their
// accounts, as the Service would lock them. Usage records are never
// updated, and a duplicate one is still refused by its unique key, so a
// usage record committed between the read-ahead and the Service's read
// costs at most a retry.
type prefetch struct {
	lotsOf   map[tollgate.AccountID]bool // accounts whose spendable lots are in lots
	lots     []ledger.Lot                // by id
	usageFor map[string]bool             // request ids whose usage is in usage
	usage    []ledger.Usage              // by request id
}

// spendable returns the prefetched spendable lots of accounts, if every
// account's were read ahead.
func (p *prefetch) spendable(accounts []tollgate.AccountID) ([]ledger.Lot, bool) {
	if p.lotsOf == nil {
		return nil, false
	}
	want := make(map[tollgate.AccountID]bool, len(accounts))
	for _, a := range accounts {
		if !p.lotsOf[a] {
			return nil, false
		}
		want[a] = true
	}
	var out []ledger.Lot
	for _, l := range p.lots {
		if want[l.Account] {
			out = append(out, l)
		}
	}
	return out, true
}

// usageOf returns the prefetched usage records of requestIDs, if every one
// was read ahead.
func (p *prefetch) usageOf(requestIDs []string) ([]ledger.Usage, bool) {
	if p.usageFor == nil {
		return nil, false
	}
	want := make(map[string]bool, len(requestIDs))
	for _, id := range requestIDs {
		if !p.usageFor[id] {
			return nil, false
		}
		want[id] = true
	}
	var out []ledger.Usage
	for _, u := range p.usage {
		if want[u.RequestID] {
			out = append(out, u)
		}
	}
	return out, true
}

// lockAccounts reads and locks the accounts with the given ids and, in the
// same pipeline, reads ahead (and locks) their spendable lots.
func (t *txn) lockAccounts(ctx context.Context, ids []tollgate.AccountID) ([]ledger.Account, error) {
	keys := accountStrings(ids)
	var accounts []ledger.Account
	var lots []ledger.Lot
	err := t.reads(ctx, "postgres: read accounts",
		read{"SELECT " + accountCols + " FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
			[]any{keys}, func(rows pgx.Rows) error {
				a, err := scanAccount(rows)
				accounts = append(accounts, a)
				return err
			}},
		read{"SELECT " + lotCols + " FROM lots WHERE account_id = ANY($1) AND left_credits > 0 ORDER BY id FOR NO KEY UPDATE",
			[]any{keys}, func(rows pgx.Rows) error {
				l, err := scanLot(rows)
				lots = append(lots, l)
				return err
			}})
	if err != nil {
		return nil, err
	}
	t.pre.lotsOf, t.pre.lots = make(map[tollgate.AccountID]bool, len(ids)), lots
	for _, id := range ids {
		t.pre.lotsOf[id] = true
	}
	return accounts, nil
}

// lockHolds reads and locks the holds with the given ids and, in the same
// pipeline, reads ahead the usage records whose request id is a hold id.
func (t *txn) lockHolds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	var holds []ledger.Hold
	var usage []ledger.Usage
	err := t.reads(ctx, "postgres: read holds",
		read{"SELECT " + holdCols + " FROM holds WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
			[]any{ids}, func(rows pgx.Rows) error {
				h, err := scanHold(rows)
				holds = append(holds, h)
				return err
			}},
		read{"SELECT " + usageCols + " FROM usage_records WHERE request_id = ANY($1) ORDER BY request_id",
			[]any{ids}, func(rows pgx.Rows) error {
				u, err := scanUsage(rows)
				usage = append(usage, u)
				return err
			}})
	if err != nil {
		return nil, err
	}
	t.pre.usageFor, t.pre.usage = make(map[string]bool, len(ids)), usage
	for _, id := range ids {
		t.pre.usageFor[id] = true
	}
	return holds, nil
}
