package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate/ledger"
)

// Apply writes c as multi-row INSERTs from unnest()ed arrays (accounts,
// lots, grants, holds, refunds, usage — grants before holds, which
// reference them), then one conditional UPDATE per table that matches each
// row on its key AND the version that was read, and fails inside the server
// with serialization_failure if it matched fewer rows than it was given.
//
// The statements are queued, not sent: they go out in one pipeline with the
// transaction's next read or with its COMMIT, so a typical ledger
// transaction pays no round trip for its writes. When c inserts lots,
// Apply sends at once, because it must set the ID of every new lot. An
// existing unique key or a stale version makes Apply — or, if it was
// deferred, the next read or Update itself — return an error wrapping
// ledger.ErrRetry, and nothing commits.
func (t *txn) Apply(ctx context.Context, c *ledger.Changes) error {
	if c == nil || c.Empty() {
		return nil
	}
	t.pre = prefetch{} // the writes may change what was read ahead
	if t.pending == nil {
		t.pending = &pgx.Batch{}
	}
	w := &writer{b: t.pending}
	w.insertAccounts(c.NewAccounts)
	w.insertLots(c.NewLots)
	w.insertGrants(c.NewGrants)
	w.insertHolds(c.NewHolds)
	w.insertRefunds(c.NewRefunds)
	w.insertUsage(c.NewUsage)
	w.insertAdjustments(c.NewAdjustments)
	w.updateAccounts(c.Accounts)
	w.updateLots(c.Lots)
	w.updateGrants(c.Grants)
	w.updateHolds(c.Holds)
	w.updateRefunds(c.Refunds)
	if err := t.appendEvents(c.NewEvents); err != nil {
		return err
	}
	if len(c.NewLots) > 0 {
		return t.flush(ctx, "postgres: apply")
	}
	return nil
}

// writer queues the statements of one Apply.
type writer struct {
	b *pgx.Batch
}

// update queues a conditional UPDATE of n rows of table: sql is an UPDATE
// without RETURNING. tollgate_expect_rows (migration 0002) raises
// serialization_failure unless every row matched.
func (w *writer) update(table string, n int, sql string, args ...any) {
	if n == 0 {
		return
	}
	args = append(args, table, n)
	w.b.Queue(fmt.Sprintf("WITH u AS (%s RETURNING 1) SELECT tollgate_expect_rows($%d, count(*), $%d) FROM u",
		sql, len(args)-1, len(args)), args...)
}

func (w *writer) insertAccounts(rows []ledger.Account) {
	if len(rows) == 0 {
		return
	}
	id, left, held, debt, created := make([]string, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)),
		make([]int64, len(rows)), make([]time.Time, len(rows))
	low := make([]*int64, len(rows))
	for i, a := range rows {
		id[i], left[i], held[i], debt[i], created[i] = string(a.ID), int64(a.Left), int64(a.Held), int64(a.Debt), a.CreatedAt.UTC()
		low[i] = lowBalance(a)
	}
	w.b.Queue(`INSERT INTO accounts (id, left_credits, held, debt, created_at, low_balance_credits, version)
SELECT v.*, 1 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], $6::int8[]) AS v`,
		id, left, held, debt, created, low)
}

func (w *writer) updateAccounts(rows []ledger.Account) {
	id, left, held, debt, created, version := make([]string, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)),
		make([]int64, len(rows)), make([]time.Time, len(rows)), make([]int64, len(rows))
	low := make([]*int64, len(rows))
	for i, a := range rows {
		id[i], left[i], held[i], debt[i], created[i], version[i] = string(a.ID), int64(a.Left), int64(a.Held),
			int64(a.Debt), a.CreatedAt.UTC(), a.Version
		low[i] = lowBalance(a)
	}
	w.update("accounts", len(rows), `UPDATE accounts AS t
SET left_credits = v.l, held = v.h, debt = v.d, created_at = v.c, low_balance_credits = v.lb, version = t.version + 1
FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], $6::int8[], $7::int8[]) AS v (id, l, h, d, c, ver, lb)
WHERE t.id = v.id AND t.version = v.ver`, id, left, held, debt, created, version, low)
}

// lowBalance is the account's low_balance_credits as a column value.
func lowBalance(a ledger.Account) *int64 {
	if a.LowBalance == nil {
		return nil
	}
	v := int64(*a.LowBalance)
	return &v
}

// lotArrays are the column arrays of a set of lots.
type lotArrays struct {
	id, fen, granted, used, left, refunding, refunded, refundedFen, version []int64
	account, tradeNo, txnID                                                 []string
	created                                                                 []time.Time
}

func newLotArrays(n int) *lotArrays {
	return &lotArrays{
		id: make([]int64, n), fen: make([]int64, n), granted: make([]int64, n), used: make([]int64, n),
		left: make([]int64, n), refunding: make([]int64, n), refunded: make([]int64, n), refundedFen: make([]int64, n),
		version: make([]int64, n), account: make([]string, n), tradeNo: make([]string, n), txnID: make([]string, n),
		created: make([]time.Time, n),
	}
}

func (a *lotArrays) set(i int, l *ledger.Lot) {
	a.id[i], a.account[i], a.tradeNo[i], a.txnID[i] = l.ID, string(l.Account), l.OutTradeNo, l.TransactionID
	a.fen[i], a.granted[i], a.used[i], a.left[i] = int64(l.Fen), int64(l.Granted), int64(l.Used), int64(l.Left)
	a.refunding[i], a.refunded[i], a.refundedFen[i] = int64(l.Refunding), int64(l.Refunded), int64(l.RefundedFen)
	a.created[i], a.version[i] = l.CreatedAt.UTC(), l.Version
}

func (w *writer) insertLots(rows []*ledger.Lot) {
	if len(rows) == 0 {
		return
	}
	a := newLotArrays(len(rows))
	for i, l := range rows {
		a.set(i, l)
	}
	byTradeNo := make(map[string]*ledger.Lot, len(rows))
	for _, l := range rows {
		byTradeNo[l.OutTradeNo] = l
	}
	w.b.Queue(`INSERT INTO lots (account_id, out_trade_no, transaction_id, fen, granted, used, left_credits,
	refunding, refunded, refunded_fen, created_at, version)
SELECT v.*, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
	$8::int8[], $9::int8[], $10::int8[], $11::timestamptz[]) AS v
RETURNING id, out_trade_no`,
		a.account, a.tradeNo, a.txnID, a.fen, a.granted, a.used, a.left, a.refunding, a.refunded, a.refundedFen, a.created,
	).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var id int64
			var tradeNo string
			if err := rs.Scan(&id, &tradeNo); err != nil {
				return err
			}
			if l := byTradeNo[tradeNo]; l != nil {
				l.ID = id
			}
		}
		return rs.Err()
	})
}

func (w *writer) updateLots(rows []ledger.Lot) {
	a := newLotArrays(len(rows))
	for i := range rows {
		a.set(i, &rows[i])
	}
	w.update("lots", len(rows), `UPDATE lots AS t
SET account_id = v.account_id, out_trade_no = v.out_trade_no, transaction_id = v.transaction_id, fen = v.fen,
	granted = v.granted, used = v.used, left_credits = v.left_credits, refunding = v.refunding,
	refunded = v.refunded, refunded_fen = v.refunded_fen, created_at = v.created_at, version = t.version + 1
FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[],
	$9::int8[], $10::int8[], $11::int8[], $12::timestamptz[], $13::int8[])
	AS v (id, account_id, out_trade_no, transaction_id, fen, granted, used, left_credits, refunding, refunded,
	refunded_fen, created_at, ver)
WHERE t.id = v.id AND t.version = v.ver`,
		a.id, a.account, a.tradeNo, a.txnID, a.fen, a.granted, a.used, a.left, a.refunding, a.refunded, a.refundedFen,
		a.created, a.version)
}

// grantArrays are the column arrays of a set of grants.
type grantArrays struct {
	id, account, status           []string
	capacity, used, held, version []int64
	lot                           []*int64
	created, expires              []time.Time
	resolved                      []*time.Time
}

func newGrantArrays(rows []ledger.Grant) *grantArrays {
	n := len(rows)
	a := &grantArrays{
		id: make([]string, n), account: make([]string, n), status: make([]string, n), capacity: make([]int64, n),
		used: make([]int64, n), held: make([]int64, n), version: make([]int64, n), lot: make([]*int64, n),
		created: make([]time.Time, n), expires: make([]time.Time, n), resolved: make([]*time.Time, n),
	}
	for i, g := range rows {
		a.id[i], a.account[i], a.status[i] = g.ID, string(g.Account), string(g.Status)
		a.capacity[i], a.used[i], a.held[i], a.version[i] = int64(g.Cap), int64(g.Used), int64(g.Held), g.Version
		a.lot[i], a.created[i], a.expires[i], a.resolved[i] = nullID(g.LotID), g.CreatedAt.UTC(), g.ExpiresAt.UTC(), nullTime(g.ResolvedAt)
	}
	return a
}

func (w *writer) insertGrants(rows []ledger.Grant) {
	if len(rows) == 0 {
		return
	}
	a := newGrantArrays(rows)
	w.b.Queue(`INSERT INTO grants (id, account_id, cap, used, held, status, lot_id, created_at, expires_at,
	resolved_at, version)
SELECT v.*, 1 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int8[],
	$8::timestamptz[], $9::timestamptz[], $10::timestamptz[]) AS v`,
		a.id, a.account, a.capacity, a.used, a.held, a.status, a.lot, a.created, a.expires, a.resolved)
}

func (w *writer) updateGrants(rows []ledger.Grant) {
	a := newGrantArrays(rows)
	w.update("grants", len(rows), `UPDATE grants AS t
SET account_id = v.account_id, cap = v.cap, used = v.used, held = v.held, status = v.status, lot_id = v.lot_id,
	created_at = v.created_at, expires_at = v.expires_at, resolved_at = v.resolved_at, version = t.version + 1
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int8[],
	$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::int8[])
	AS v (id, account_id, cap, used, held, status, lot_id, created_at, expires_at, resolved_at, ver)
WHERE t.id = v.id AND t.version = v.ver`,
		a.id, a.account, a.capacity, a.used, a.held, a.status, a.lot, a.created, a.expires, a.resolved, a.version)
}

// holdArrays are the column arrays of a set of holds.
type holdArrays struct {
	id, account, status   []string
	grant                 []*string
	amount, cost, version []int64
	created, expires      []time.Time
	resolved              []*time.Time
}

func newHoldArrays(rows []ledger.Hold) *holdArrays {
	n := len(rows)
	a := &holdArrays{
		id: make([]string, n), account: make([]string, n), status: make([]string, n), grant: make([]*string, n),
		amount: make([]int64, n), cost: make([]int64, n), version: make([]int64, n),
		created: make([]time.Time, n), expires: make([]time.Time, n), resolved: make([]*time.Time, n),
	}
	for i, h := range rows {
		a.id[i], a.account[i], a.status[i], a.grant[i] = h.ID, string(h.Account), string(h.Status), nullString(h.GrantID)
		a.amount[i], a.cost[i], a.version[i] = int64(h.Amount), int64(h.Cost), h.Version
		a.created[i], a.expires[i], a.resolved[i] = h.CreatedAt.UTC(), h.ExpiresAt.UTC(), nullTime(h.ResolvedAt)
	}
	return a
}

func (w *writer) insertHolds(rows []ledger.Hold) {
	if len(rows) == 0 {
		return
	}
	a := newHoldArrays(rows)
	w.b.Queue(`INSERT INTO holds (id, account_id, grant_id, amount, cost, status, created_at, expires_at,
	resolved_at, version)
SELECT v.*, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::timestamptz[]) AS v`,
		a.id, a.account, a.grant, a.amount, a.cost, a.status, a.created, a.expires, a.resolved)
}

func (w *writer) updateHolds(rows []ledger.Hold) {
	a := newHoldArrays(rows)
	w.update("holds", len(rows), `UPDATE holds AS t
SET account_id = v.account_id, grant_id = v.grant_id, amount = v.amount, cost = v.cost, status = v.status,
	created_at = v.created_at, expires_at = v.expires_at, resolved_at = v.resolved_at, version = t.version + 1
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::int8[])
	AS v (id, account_id, grant_id, amount, cost, status, created_at, expires_at, resolved_at, ver)
WHERE t.id = v.id AND t.version = v.ver`,
		a.id, a.account, a.grant, a.amount, a.cost, a.status, a.created, a.expires, a.resolved, a.version)
}

// refundArrays are the column arrays of a set of refunds.
type refundArrays struct {
	no, account, status        []string
	lot, credits, fen, version []int64
	created                    []time.Time
	resolved                   []*time.Time
}

func newRefundArrays(rows []ledger.Refund) *refundArrays {
	n := len(rows)
	a := &refundArrays{
		no: make([]string, n), account: make([]string, n), status: make([]string, n), lot: make([]int64, n),
		credits: make([]int64, n), fen: make([]int64, n), version: make([]int64, n),
		created: make([]time.Time, n), resolved: make([]*time.Time, n),
	}
	for i, r := range rows {
		a.no[i], a.account[i], a.status[i], a.lot[i] = r.OutRefundNo, string(r.Account), string(r.Status), r.LotID
		a.credits[i], a.fen[i], a.version[i] = int64(r.Credits), int64(r.Fen), r.Version
		a.created[i], a.resolved[i] = r.CreatedAt.UTC(), nullTime(r.ResolvedAt)
	}
	return a
}

func (w *writer) insertRefunds(rows []ledger.Refund) {
	if len(rows) == 0 {
		return
	}
	a := newRefundArrays(rows)
	w.b.Queue(`INSERT INTO refunds (out_refund_no, lot_id, account_id, credits, fen, status, created_at,
	resolved_at, version)
SELECT v.*, 1 FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[],
	$7::timestamptz[], $8::timestamptz[]) AS v`,
		a.no, a.lot, a.account, a.credits, a.fen, a.status, a.created, a.resolved)
}

func (w *writer) updateRefunds(rows []ledger.Refund) {
	a := newRefundArrays(rows)
	w.update("refunds", len(rows), `UPDATE refunds AS t
SET lot_id = v.lot_id, account_id = v.account_id, credits = v.credits, fen = v.fen, status = v.status,
	created_at = v.created_at, resolved_at = v.resolved_at, version = t.version + 1
FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::int8[])
	AS v (out_refund_no, lot_id, account_id, credits, fen, status, created_at, resolved_at, ver)
WHERE t.out_refund_no = v.out_refund_no AND t.version = v.ver`,
		a.no, a.lot, a.account, a.credits, a.fen, a.status, a.created, a.resolved, a.version)
}

func (w *writer) insertUsage(rows []ledger.Usage) {
	n := len(rows)
	if n == 0 {
		return
	}
	id, account, key, model, provider, deployment, status := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	upstream, units := make([]string, n), make([]string, n)
	in, cached, written, written1h := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	out, credits, latency := make([]int64, n), make([]int64, n), make([]int64, n)
	created := make([]time.Time, n)
	for i, u := range rows {
		id[i], account[i], key[i], model[i], provider[i], deployment[i], status[i] = u.RequestID, string(u.Account),
			u.KeyID, u.Model, u.Provider, u.Deployment, u.Status
		in[i], cached[i], written[i], written1h[i] = u.InputTokens, u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens
		out[i], credits[i], latency[i] = u.OutputTokens, int64(u.Credits), u.Latency.Microseconds()
		created[i], upstream[i], units[i] = u.CreatedAt.UTC(), u.UpstreamID, ledger.EncodeUnits(u.Units)
	}
	w.b.Queue(`INSERT INTO usage_records (`+usageCols+`)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
	$8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::text[], $15::timestamptz[], $16::text[], $17::text[])`,
		id, account, key, model, provider, deployment, in, cached, written, written1h, out, credits, latency, status, created, upstream, units)
}
