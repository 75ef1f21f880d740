package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"tollgate"
	"tollgate/ledger"
)

const usageCols = "request_id, account_id, key_id, model, provider, deployment, input_tokens, cached_tokens, " +
	"cache_write_tokens, cache_write_1h_tokens, output_tokens, credits, latency_us, status, created_at, upstream_id"

func scanUsage(rows pgx.Rows) (ledger.Usage, error) {
	var u ledger.Usage
	var account string
	var credits, latency int64
	err := rows.Scan(&u.RequestID, &account, &u.KeyID, &u.Model, &u.Provider, &u.Deployment, &u.InputTokens,
		&u.CachedTokens, &u.CacheWriteTokens, &u.CacheWrite1hTokens, &u.OutputTokens, &credits, &latency, &u.Status, &u.CreatedAt, &u.UpstreamID)
	u.Account, u.Credits, u.Latency = tollgate.AccountID(account), tollgate.Credits(credits), time.Duration(latency)*time.Microsecond
	u.CreatedAt = u.CreatedAt.UTC()
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

// UsageTotals sums the usage records of [from, to) per deployment.
func (t *txn) UsageTotals(ctx context.Context, from, to time.Time) ([]ledger.UsageTotal, error) {
	var out []ledger.UsageTotal
	err := t.query(ctx, "postgres: usage totals",
		"SELECT deployment, COUNT(*), SUM(credits)::BIGINT, SUM(input_tokens)::BIGINT, SUM(cached_tokens)::BIGINT, "+
			"SUM(cache_write_tokens)::BIGINT, SUM(cache_write_1h_tokens)::BIGINT, SUM(output_tokens)::BIGINT "+
			"FROM usage_records WHERE created_at >= $1 AND created_at < $2 GROUP BY deployment ORDER BY deployment",
		[]any{from.UTC(), to.UTC()}, func(rows pgx.Rows) error {
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
