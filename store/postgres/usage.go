package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const usageCols = "request_id, account_id, key_id, model, provider, deployment, input_tokens, cached_tokens, " +
	"cache_write_tokens, cache_write_1h_tokens, output_tokens, credits, latency_us, status, created_at, upstream_id, units"

func scanUsage(rows pgx.Rows) (ledger.Usage, error) {
	var u ledger.Usage
	var account string
	var credits, latency int64
	var units string
	err := rows.Scan(&u.RequestID, &account, &u.KeyID, &u.Model, &u.Provider, &u.Deployment, &u.InputTokens,
		&u.CachedTokens, &u.CacheWriteTokens, &u.CacheWrite1hTokens, &u.OutputTokens, &credits, &latency, &u.Status, &u.CreatedAt, &u.UpstreamID, &units)
	u.Account, u.Credits, u.Latency = tollgate.AccountID(account), tollgate.Credits(credits), time.Duration(latency)*time.Microsecond
	u.CreatedAt = u.CreatedAt.UTC()
	if err == nil {
		u.Units, err = ledger.DecodeUnits(units)
	}
	return u, err
}

func (t *txn) usage(ctx context.Context, op, sql string, args ...any) ([]ledger.Usage, error) {
	var out []ledger.Usage
	err := t.query(ctx, op, sql, args, func(rows pgx.Rows) error {
		u, err := scanUsage(rows)
		out = append(out, u)
		return err
	})
	return out, err
}

// UsageByRequest returns the usage records with the given request ids.
// Usage records are never updated, so they are not locked.
func (t *txn) UsageByRequest(ctx context.Context, requestIDs []string) ([]ledger.Usage, error) {
	if len(requestIDs) == 0 {
		return nil, nil
	}
	if usage, ok := t.pre.usageOf(requestIDs); ok {
		return usage, nil
	}
	return t.usage(ctx, "postgres: read usage",
		"SELECT "+usageCols+" FROM usage_records WHERE request_id = ANY($1) ORDER BY request_id", requestIDs)
}

// ListUsage returns up to limit usage records of one account, newest first.
func (t *txn) ListUsage(ctx context.Context, account tollgate.AccountID, limit int) ([]ledger.Usage, error) {
	if limit <= 0 {
		return nil, nil
	}
	return t.usage(ctx, "postgres: list usage",
		"SELECT "+usageCols+" FROM usage_records WHERE account_id = $1 "+
			"ORDER BY created_at DESC, request_id DESC LIMIT $2", string(account), limit)
}

// UsageTotals sums the usage of [from, to) per deployment: the rollup's
// whole days in the period and the per-call records of the rest
// (ledger.SplitUsage), in one query.
func (t *txn) UsageTotals(ctx context.Context, from, to time.Time) ([]ledger.UsageTotal, error) {
	sp, err := t.usageSplit(ctx, from, to)
	if err != nil {
		return nil, err
	}
	union, args := usageUnion(sp, "deployment", "deployment", func(int) string { return "" }, nil)
	var out []ledger.UsageTotal
	err = t.query(ctx, "postgres: usage totals",
		"SELECT k, sum(requests)::BIGINT, sum(credits)::BIGINT, sum(input_tokens)::BIGINT, sum(cached_tokens)::BIGINT, "+
			"sum(cache_write_tokens)::BIGINT, sum(cache_write_1h_tokens)::BIGINT, sum(output_tokens)::BIGINT "+
			"FROM "+union+" GROUP BY k ORDER BY k",
		args, func(rows pgx.Rows) error {
			var u ledger.UsageTotal
			var credits int64
			err := rows.Scan(&u.Deployment, &u.Requests, &credits, &u.InputTokens, &u.CachedTokens,
				&u.CacheWriteTokens, &u.CacheWrite1hTokens, &u.OutputTokens)
			u.Credits = tollgate.Credits(credits)
			out = append(out, u)
			return err
		})
	return out, err
}
