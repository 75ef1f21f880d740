package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"tollgate"
	"tollgate/ledger"
)

// querier runs statements in one transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// txn implements ledger.Tx over one database/sql transaction. Key sets are
// passed as one JSON array parameter and expanded with json_each, so each
// read is a single statement whatever the set's size.
type txn struct{ q querier }

// stmtCache prepares each statement text once per database handle; parsing
// SQL was a third of the hot path's CPU before it. A statement is prepared
// outside any transaction (the writer has one connection, which the
// transaction holds): the first use runs it unprepared and queues it, and
// prepareQueued prepares the queue once the transaction has ended.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	queued map[string]bool
}

func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if c.queued == nil {
		c.queued = map[string]bool{}
	}
	c.queued[query] = true
	return nil
}

func (c *stmtCache) prepareQueued(ctx context.Context) {
	c.mu.Lock()
	var todo []string
	for q := range c.queued {
		todo = append(todo, q)
	}
	clear(c.queued)
	c.mu.Unlock()
	// Preparing waits for a connection, which a transaction may hold
	// while it needs mu: so mu is not held here.
	for _, q := range todo {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared and is queued again
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		if _, dup := c.m[q]; dup {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// cachedTx runs statements of one *sql.Tx through a stmtCache.
type cachedTx struct {
	tx    *sql.Tx
	cache *stmtCache
}

// QueryContext runs a query, prepared if the cache has it.
func (c cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.cache.get(query); st != nil {
		return c.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return c.tx.QueryContext(ctx, query, args...)
}

// cachedDB runs one-row reads of the reader pool through a stmtCache,
// preparing a statement the first time it is seen (no transaction holds a
// reader connection here): the hottest reads of the payment path (an
// order by its number, an Idempotency-Key) are parsed once, not per call.
type cachedDB struct {
	db    *sql.DB
	cache *stmtCache
}

// QueryRowContext runs a query for one row, prepared once.
func (c cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.cache.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	c.cache.prepareQueued(ctx)
	if st := c.cache.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// QueryRowContext runs a query for one row, prepared if the cache has it.
func (c cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.cache.get(query); st != nil {
		return c.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, query, args...)
}

// ExecContext runs a statement, prepared if the cache has it.
func (c cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.cache.get(query); st != nil {
		return c.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return c.tx.ExecContext(ctx, query, args...)
}

const (
	accountCols = `id, left_credits, held, debt, created_at, version, low_balance_credits`
	lotCols     = `id, account_id, out_trade_no, transaction_id, fen, granted, used, left_credits, refunding, refunded, refunded_fen, created_at, version`
	holdCols    = `id, account_id, grant_id, amount, cost, status, created_at, expires_at, resolved_at, version`
	grantCols   = `id, account_id, cap, used, held, status, lot_id, created_at, expires_at, resolved_at, version`
	refundCols  = `out_refund_no, lot_id, account_id, credits, fen, status, created_at, resolved_at, version`
	usageCols   = `request_id, account_id, key_id, model, provider, deployment, input_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, credits, latency_us, status, created_at, upstream_id, units`
)

func jsonSet[T any](keys []T) string {
	b, err := json.Marshal(keys)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return string(b)
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNull(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

func queryRows[T any](ctx context.Context, q querier, what string, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, mapErr("read "+what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("read "+what, err)
	}
	return out, nil
}

func scanAccount(r *sql.Rows) (ledger.Account, error) {
	var a ledger.Account
	var created int64
	var low sql.NullInt64
	err := r.Scan(&a.ID, &a.Left, &a.Held, &a.Debt, &created, &a.Version, &low)
	a.CreatedAt = fromMicros(created)
	if low.Valid {
		v := tollgate.Credits(low.Int64)
		a.LowBalance = &v
	}
	return a, err
}

func scanLot(r *sql.Rows) (ledger.Lot, error) {
	var l ledger.Lot
	var created int64
	err := r.Scan(&l.ID, &l.Account, &l.OutTradeNo, &l.TransactionID, &l.Fen, &l.Granted, &l.Used,
		&l.Left, &l.Refunding, &l.Refunded, &l.RefundedFen, &created, &l.Version)
	l.CreatedAt = fromMicros(created)
	return l, err
}

func scanHold(r *sql.Rows) (ledger.Hold, error) {
	var h ledger.Hold
	var grant sql.NullString
	var created, expires int64
	var resolved sql.NullInt64
	err := r.Scan(&h.ID, &h.Account, &grant, &h.Amount, &h.Cost, &h.Status, &created, &expires, &resolved, &h.Version)
	h.GrantID, h.CreatedAt, h.ExpiresAt, h.ResolvedAt = grant.String, fromMicros(created), fromMicros(expires), fromNull(resolved)
	return h, err
}

func scanGrant(r *sql.Rows) (ledger.Grant, error) {
	var g ledger.Grant
	var lot sql.NullInt64
	var created, expires int64
	var resolved sql.NullInt64
	err := r.Scan(&g.ID, &g.Account, &g.Cap, &g.Used, &g.Held, &g.Status, &lot, &created, &expires, &resolved, &g.Version)
	g.LotID, g.CreatedAt, g.ExpiresAt, g.ResolvedAt = lot.Int64, fromMicros(created), fromMicros(expires), fromNull(resolved)
	return g, err
}

func scanRefund(r *sql.Rows) (ledger.Refund, error) {
	var f ledger.Refund
	var created int64
	var resolved sql.NullInt64
	err := r.Scan(&f.OutRefundNo, &f.LotID, &f.Account, &f.Credits, &f.Fen, &f.Status, &created, &resolved, &f.Version)
	f.CreatedAt, f.ResolvedAt = fromMicros(created), fromNull(resolved)
	return f, err
}

func scanUsage(r *sql.Rows) (ledger.Usage, error) {
	var u ledger.Usage
	var latency, created int64
	var units string
	err := r.Scan(&u.RequestID, &u.Account, &u.KeyID, &u.Model, &u.Provider, &u.Deployment,
		&u.InputTokens, &u.CachedTokens, &u.CacheWriteTokens, &u.CacheWrite1hTokens, &u.OutputTokens, &u.Credits, &latency, &u.Status, &created, &u.UpstreamID, &units)
	u.Latency, u.CreatedAt = time.Duration(latency)*time.Microsecond, fromMicros(created)
	if err == nil {
		u.Units, err = ledger.DecodeUnits(units)
	}
	return u, err
}

// Accounts implements ledger.ReadTx.
func (t *txn) Accounts(ctx context.Context, ids []tollgate.AccountID) ([]ledger.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "accounts", scanAccount,
		`SELECT `+accountCols+` FROM accounts WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonSet(ids))
}

// SpendableLots implements ledger.ReadTx.
func (t *txn) SpendableLots(ctx context.Context, accounts []tollgate.AccountID) ([]ledger.Lot, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "spendable lots", scanLot,
		`SELECT `+lotCols+` FROM lots WHERE account_id IN (SELECT value FROM json_each(?)) AND left_credits > 0 ORDER BY id`, jsonSet(accounts))
}

// Lots implements ledger.ReadTx.
func (t *txn) Lots(ctx context.Context, ids []int64) ([]ledger.Lot, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "lots", scanLot,
		`SELECT `+lotCols+` FROM lots WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonSet(ids))
}

// LotsByPayment implements ledger.ReadTx.
func (t *txn) LotsByPayment(ctx context.Context, outTradeNos, transactionIDs []string) ([]ledger.Lot, error) {
	if len(outTradeNos)+len(transactionIDs) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "lots by payment", scanLot,
		`SELECT `+lotCols+` FROM lots WHERE out_trade_no IN (SELECT value FROM json_each(?))
		 UNION SELECT `+lotCols+` FROM lots WHERE transaction_id IN (SELECT value FROM json_each(?)) ORDER BY id`,
		jsonSet(nonNil(outTradeNos)), jsonSet(nonNil(transactionIDs)))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// LotsByAccount implements ledger.ReadTx.
func (t *txn) LotsByAccount(ctx context.Context, account tollgate.AccountID) ([]ledger.Lot, error) {
	return queryRows(ctx, t.q, "lots of account", scanLot,
		`SELECT `+lotCols+` FROM lots WHERE account_id = ? ORDER BY id`, account)
}

// RecentLots implements ledger.ReadTx: the lots_account index walked
// backwards, LIMIT rows read.
func (t *txn) RecentLots(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Lot, error) {
	return queryRows(ctx, t.q, "recent lots of account", scanLot,
		`SELECT `+lotCols+` FROM lots WHERE account_id = ? ORDER BY id DESC LIMIT ?`, account, limit)
}

// Holds implements ledger.ReadTx.
func (t *txn) Holds(ctx context.Context, ids []string) ([]ledger.Hold, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "holds", scanHold,
		`SELECT `+holdCols+` FROM holds WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonSet(ids))
}

// ExpiredHolds implements ledger.ReadTx.
func (t *txn) ExpiredHolds(ctx context.Context, now time.Time, limit int) ([]ledger.Hold, error) {
	return queryRows(ctx, t.q, "expired holds", scanHold,
		`SELECT `+holdCols+` FROM holds WHERE status = 'active' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`,
		micros(now), limit)
}

// Grants implements ledger.ReadTx.
func (t *txn) Grants(ctx context.Context, ids []string) ([]ledger.Grant, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "grants", scanGrant,
		`SELECT `+grantCols+` FROM grants WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonSet(ids))
}

// LiveGrants implements ledger.ReadTx.
func (t *txn) LiveGrants(ctx context.Context, accounts []tollgate.AccountID) ([]ledger.Grant, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "live grants", scanGrant,
		`SELECT `+grantCols+` FROM grants WHERE account_id IN (SELECT value FROM json_each(?)) AND status = 'live' ORDER BY id`, jsonSet(accounts))
}

// ExpiredGrants implements ledger.ReadTx.
func (t *txn) ExpiredGrants(ctx context.Context, now time.Time, limit int) ([]ledger.Grant, error) {
	return queryRows(ctx, t.q, "expired grants", scanGrant,
		`SELECT `+grantCols+` FROM grants WHERE status = 'live' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`,
		micros(now), limit)
}

// Refunds implements ledger.ReadTx.
func (t *txn) Refunds(ctx context.Context, outRefundNos []string) ([]ledger.Refund, error) {
	if len(outRefundNos) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "refunds", scanRefund,
		`SELECT `+refundCols+` FROM refunds WHERE out_refund_no IN (SELECT value FROM json_each(?)) ORDER BY out_refund_no`, jsonSet(outRefundNos))
}

// UsageByRequest implements ledger.ReadTx.
func (t *txn) UsageByRequest(ctx context.Context, requestIDs []string) ([]ledger.Usage, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	return queryRows(ctx, t.q, "usage", scanUsage,
		`SELECT `+usageCols+` FROM usage_records WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY request_id`, jsonSet(requestIDs))
}

// ListUsage implements ledger.ReadTx.
func (t *txn) ListUsage(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Usage, error) {
	return queryRows(ctx, t.q, "usage of account", scanUsage,
		`SELECT `+usageCols+` FROM usage_records WHERE account_id = ? ORDER BY created_at DESC, request_id DESC LIMIT ?`, account, limit)
}

// PaidVolume implements ledger.ReadTx.
func (t *txn) PaidVolume(ctx context.Context, from, to time.Time) (tollgate.Fen, error) {
	v, err := queryRows(ctx, t.q, "paid volume", func(r *sql.Rows) (tollgate.Fen, error) {
		var f tollgate.Fen
		return f, r.Scan(&f)
	}, `SELECT coalesce(sum(fen), 0) FROM lots WHERE created_at >= ? AND created_at < ?`, micros(from), micros(to))
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// UsageTotals implements ledger.ReadTx: the rollup's whole days in the
// period and the per-call records of the rest (ledger.SplitUsage), summed
// in one query.
func (t *txn) UsageTotals(ctx context.Context, from, to time.Time) ([]ledger.UsageTotal, error) {
	sp, err := t.usageSplit(ctx, from, to)
	if err != nil {
		return nil, err
	}
	union, args := usageUnion(sp, `deployment`, `deployment`, ``, nil)
	return queryRows(ctx, t.q, "usage totals", func(r *sql.Rows) (ledger.UsageTotal, error) {
		var u ledger.UsageTotal
		err := r.Scan(&u.Deployment, &u.Requests, &u.Credits, &u.InputTokens, &u.CachedTokens, &u.CacheWriteTokens,
			&u.CacheWrite1hTokens, &u.OutputTokens)
		return u, err
	}, `SELECT k, sum(requests), sum(credits), sum(input_tokens), sum(cached_tokens), sum(cache_write_tokens),
		sum(cache_write_1h_tokens), sum(output_tokens)
		FROM `+union+` GROUP BY k ORDER BY k`, args...)
}

// Dump implements ledger.ReadTx.
func (t *txn) Dump(ctx context.Context) (*ledger.Dump, error) {
	d := &ledger.Dump{}
	var err error
	if d.Accounts, err = queryRows(ctx, t.q, "accounts", scanAccount, `SELECT `+accountCols+` FROM accounts ORDER BY id`); err != nil {
		return nil, err
	}
	if d.Lots, err = queryRows(ctx, t.q, "lots", scanLot, `SELECT `+lotCols+` FROM lots ORDER BY id`); err != nil {
		return nil, err
	}
	if d.Holds, err = queryRows(ctx, t.q, "holds", scanHold, `SELECT `+holdCols+` FROM holds ORDER BY id`); err != nil {
		return nil, err
	}
	if d.Grants, err = queryRows(ctx, t.q, "grants", scanGrant, `SELECT `+grantCols+` FROM grants ORDER BY id`); err != nil {
		return nil, err
	}
	if d.Refunds, err = queryRows(ctx, t.q, "refunds", scanRefund, `SELECT `+refundCols+` FROM refunds ORDER BY out_refund_no`); err != nil {
		return nil, err
	}
	if d.Usage, err = queryRows(ctx, t.q, "usage", scanUsage, `SELECT `+usageCols+` FROM usage_records ORDER BY request_id`); err != nil {
		return nil, err
	}
	if d.Adjustments, err = queryRows(ctx, t.q, "adjustments", scanAdjustment, `SELECT `+adjustCols+` FROM adjustments ORDER BY id`); err != nil {
		return nil, err
	}
	if d.Constraints, err = t.uniqueConstraints(ctx); err != nil {
		return nil, err
	}
	st, err := t.rollupState(ctx)
	if err != nil {
		return nil, err
	}
	if st.PrunedBefore.After(time.Unix(0, 0)) { // past the initial 1970-01-01 Beijing: pruned
		d.PrunedBefore = st.PrunedBefore
		if d.PrunedUsage, err = t.prunedUsage(ctx, st); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// uniqueConstraints lists the single-column, non-partial unique indexes
// (primary keys included) of the ledger's tables as "table.column".
func (t *txn) uniqueConstraints(ctx context.Context) ([]string, error) {
	return queryRows(ctx, t.q, "unique constraints", func(r *sql.Rows) (string, error) {
		var s string
		return s, r.Scan(&s)
	}, `SELECT m.name || '.' || ii.name
		FROM sqlite_schema AS m
		JOIN pragma_index_list(m.name) AS il
		JOIN pragma_index_info(il.name) AS ii
		WHERE m.type = 'table' AND il."unique" = 1 AND il.partial = 0
		  AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1
		UNION
		SELECT m.name || '.' || ti.name
		FROM sqlite_schema AS m JOIN pragma_table_info(m.name) AS ti
		WHERE m.type = 'table' AND ti.pk = 1 AND ti.type = 'INTEGER'
		ORDER BY 1`)
}

// DebtOutstanding implements ledger.DebtReporter.
func (s *Store) DebtOutstanding(ctx context.Context) (ledger.DebtTotal, error) {
	var d ledger.DebtTotal
	if err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(SUM(debt), 0), count(*) FROM accounts WHERE debt > 0`).Scan(&d.Credits, &d.Accounts); err != nil {
		return ledger.DebtTotal{}, fmt.Errorf("sqlite: debt outstanding: %w", err)
	}
	return d, nil
}
