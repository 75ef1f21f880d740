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
	accounts []ledger.Account            // locked, by id; see ReadAhead
	lockedOf map[tollgate.AccountID]bool // accounts locked and in accounts
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

// lockedAccounts returns the accounts locked ahead (ReadAhead), if every
// one of ids was.
func (p *prefetch) lockedAccounts(ids []tollgate.AccountID) ([]ledger.Account, bool) {
	if p.lockedOf == nil {
		return nil, false
	}
	want := make(map[tollgate.AccountID]bool, len(ids))
	for _, id := range ids {
		if !p.lockedOf[id] {
			return nil, false
		}
		want[id] = true
	}
	out := make([]ledger.Account, 0, len(ids))
	for _, a := range p.accounts {
		if want[a.ID] {
			out = append(out, a)
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

// SpendableAhead implements ledger.SpendableHinter: the next lockAccounts
// reads ahead the spendable lots of these accounts only.
func (t *txn) SpendableAhead(accounts []tollgate.AccountID) {
	t.spendAhead = make(map[string]bool, len(accounts))
	for _, a := range accounts {
		t.spendAhead[string(a)] = true
	}
}

// lockAccounts reads and locks the accounts with the given ids and, in the
// same pipeline, reads ahead (and locks) their spendable lots: of every one,
// or of those SpendableAhead named.
func (t *txn) lockAccounts(ctx context.Context, ids []tollgate.AccountID) ([]ledger.Account, error) {
	keys := accountStrings(ids)
	spend, spendIDs := keys, ids
	if t.spendAhead != nil {
		spend, spendIDs = nil, nil
		for i, k := range keys {
			if t.spendAhead[k] {
				spend, spendIDs = append(spend, k), append(spendIDs, ids[i])
			}
		}
		t.spendAhead = nil
	}
	var accounts []ledger.Account
	var lots []ledger.Lot
	reads := []read{{"SELECT " + accountCols + " FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
		[]any{keys}, func(rows pgx.Rows) error {
			a, err := scanAccount(rows)
			accounts = append(accounts, a)
			return err
		}}}
	if len(spend) > 0 {
		reads = append(reads, read{"SELECT " + lotCols + " FROM lots WHERE account_id = ANY($1) AND left_credits > 0 ORDER BY id FOR NO KEY UPDATE",
			[]any{spend}, func(rows pgx.Rows) error {
				l, err := scanLot(rows)
				lots = append(lots, l)
				return err
			}})
	}
	if err := t.reads(ctx, "postgres: read accounts", reads...); err != nil {
		return nil, err
	}
	t.pre.lotsOf, t.pre.lots = make(map[tollgate.AccountID]bool, len(spendIDs)), lots
	for _, id := range spendIDs {
		t.pre.lotsOf[id] = true
	}
	return accounts, nil
}

// ReadAhead implements ledger.ReadAheader: the next lockHolds also locks,
// in its pipeline and right behind the holds, the given accounts and
// those of the holds, and their spendable lots, and reads the usage
// records of requestIDs. A metering batch then costs two round trips (the
// reads, then the writes with COMMIT) instead of three or four.
func (t *txn) ReadAhead(accounts []tollgate.AccountID, requestIDs []string) {
	if t.lock {
		t.ahead = &readAhead{accounts: accountStrings(accounts), requestIDs: requestIDs}
	}
}

// readAhead is what ReadAhead asked lockHolds to read besides the holds.
type readAhead struct {
	accounts   []string
	requestIDs []string
}

// The accounts lockHolds locks ahead: those asked for and those of the
// holds just locked, unless one of these holds is funded by a grant. The
// Service locks a grant before its account, so an account locked ahead of
// one would invert the lock order; such a batch is read as usual. ($1: the
// hold ids, $2: the accounts asked for.)
const (
	aheadAccounts = "ARRAY(SELECT unnest($2::text[]) UNION SELECT account_id FROM holds WHERE id = ANY($1))"
	aheadNoGrant  = "NOT EXISTS (SELECT 1 FROM holds WHERE id = ANY($1) AND grant_id IS NOT NULL)"
)

// lockHolds reads and locks the holds with the given ids and, in the same
// pipeline, reads ahead the usage records whose request id is a hold id,
// and what ReadAhead asked for.
func (t *txn) lockHolds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	var holds []ledger.Hold
	var usage []ledger.Usage
	var accounts []ledger.Account
	var lots []ledger.Lot
	ahead := t.ahead
	t.ahead = nil
	usageIDs := ids
	if ahead != nil {
		usageIDs = append(append(make([]string, 0, len(ids)+len(ahead.requestIDs)), ids...), ahead.requestIDs...)
	}
	rs := []read{
		{"SELECT " + holdCols + " FROM holds WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
			[]any{ids}, func(rows pgx.Rows) error {
				h, err := scanHold(rows)
				holds = append(holds, h)
				return err
			}},
		{"SELECT " + usageCols + " FROM usage_records WHERE request_id = ANY($1) ORDER BY request_id",
			[]any{usageIDs}, func(rows pgx.Rows) error {
				u, err := scanUsage(rows)
				usage = append(usage, u)
				return err
			}},
	}
	if ahead != nil {
		rs = append(rs,
			read{"SELECT " + accountCols + " FROM accounts WHERE id = ANY(" + aheadAccounts + ") AND " + aheadNoGrant +
				" ORDER BY id FOR NO KEY UPDATE",
				[]any{ids, ahead.accounts}, func(rows pgx.Rows) error {
					a, err := scanAccount(rows)
					accounts = append(accounts, a)
					return err
				}},
			read{"SELECT " + lotCols + " FROM lots WHERE account_id = ANY(" + aheadAccounts + ") AND left_credits > 0 AND " +
				aheadNoGrant + " ORDER BY id FOR NO KEY UPDATE",
				[]any{ids, ahead.accounts}, func(rows pgx.Rows) error {
					l, err := scanLot(rows)
					lots = append(lots, l)
					return err
				}})
	}
	if err := t.reads(ctx, "postgres: read holds", rs...); err != nil {
		return nil, err
	}
	t.pre.usageFor, t.pre.usage = make(map[string]bool, len(usageIDs)), usage
	for _, id := range usageIDs {
		t.pre.usageFor[id] = true
	}
	if ahead != nil {
		t.keepAhead(ahead, holds, accounts, lots)
	}
	return holds, nil
}

// keepAhead keeps the accounts and lots lockHolds read ahead, for
// Accounts and SpendableLots to serve, when they are all that was meant:
// every account asked for and every account of a hold was found, and no
// hold is funded by a grant. Otherwise the Service's own reads go to the
// server, as without ReadAhead (an unknown account is looked up again,
// and so answered as it is now).
func (t *txn) keepAhead(ahead *readAhead, holds []ledger.Hold, accounts []ledger.Account, lots []ledger.Lot) {
	found := make(map[tollgate.AccountID]bool, len(accounts))
	for _, a := range accounts {
		found[a.ID] = true
	}
	for _, id := range ahead.accounts {
		if !found[tollgate.AccountID(id)] {
			return
		}
	}
	for _, h := range holds {
		if h.GrantID != "" || !found[h.Account] {
			return
		}
	}
	t.pre.accounts, t.pre.lockedOf = accounts, found
	t.pre.lotsOf, t.pre.lots = found, lots
}
