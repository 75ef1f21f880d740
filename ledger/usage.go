package ledger

import (
	"context"
	"time"

	"tollgate"
)

type recordUsageOp struct{ us []Usage }

func (o recordUsageOp) need(n *needs) {
	for _, u := range o.us {
		n.usageIDs[u.RequestID] = true
		n.accounts[u.Account] = true
	}
}

func (o recordUsageOp) apply(s *state) (any, error) {
	const name = "ledger.RecordUsage"
	seen := map[string]bool{}
	for _, u := range o.us {
		switch {
		case u.RequestID == "" || u.Account == "":
			return nil, fail(tollgate.EINVALID, name, "request id and account are required")
		case u.Credits != 0:
			return nil, fail(tollgate.EINVALID, name, "usage that costs credits is recorded by Settle")
		case u.negativeCount():
			return nil, fail(tollgate.EINVALID, name, "token counts must not be negative")
		case len(u.UpstreamID) > MaxUpstreamID:
			return nil, fail(tollgate.EINVALID, name, "an upstream id is at most %d bytes", MaxUpstreamID)
		case seen[u.RequestID]:
			return nil, fail(tollgate.EINVALID, name, "request id %s appears twice", u.RequestID)
		}
		seen[u.RequestID] = true
		if _, ok := s.accounts[u.Account]; !ok {
			return nil, fail(tollgate.ENOTFOUND, name, "account %s not found", u.Account)
		}
	}
	n := 0
	for _, u := range o.us {
		if s.usage[u.RequestID] {
			continue
		}
		if u.CreatedAt.IsZero() {
			u.CreatedAt = s.now
		}
		u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
		s.addUsage(u)
		n++
	}
	return n, nil
}

// RecordUsage inserts, in one transaction, usage records of requests that
// cost nothing (failed or refused calls); costed usage is written by Settle.
// Records whose request id is already stored are skipped, so a retried
// batch is harmless; it returns how many it inserted. Errors: EINVALID
// (missing ids, Credits ≠ 0, negative tokens, an id twice in the batch),
// ENOTFOUND (account).
func (s *Service) RecordUsage(ctx context.Context, us []Usage) (int, error) {
	if len(us) == 0 {
		return 0, nil
	}
	v, err := s.do(ctx, recordUsageOp{us})
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

// ListUsage returns up to limit usage records of an account, newest first.
func (s *Service) ListUsage(ctx context.Context, account tollgate.AccountID, limit int) ([]Usage, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Usage
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.ListUsage(ctx, account, limit)
		return err
	})
	return out, err
}

// UsageOf returns the usage record of one request of account. Errors:
// ENOTFOUND when there is none, or when it is another account's: the
// answer does not tell whether the id exists elsewhere.
func (s *Service) UsageOf(ctx context.Context, account tollgate.AccountID, requestID string) (Usage, error) {
	const name = "ledger.UsageOf"
	var found []Usage
	if requestID != "" && account != "" {
		err := s.View(ctx, func(tx ReadTx) (err error) {
			found, err = tx.UsageByRequest(ctx, []string{requestID})
			return err
		})
		if err != nil {
			return Usage{}, err
		}
	}
	for _, u := range found {
		if u.RequestID == requestID && u.Account == account {
			return u, nil
		}
	}
	return Usage{}, fail(tollgate.ENOTFOUND, name, "no usage record %q for this account", requestID)
}

// UsageTotal is the sum of the usage records of one deployment over a
// period: how many requests, the credits they cost and their tokens of each
// kind, for the revenue report.
type UsageTotal struct {
	Deployment string
	Requests   int64
	Credits    tollgate.Credits
	// The token counts sum those of Usage, with the same meaning.
	InputTokens        int64
	CachedTokens       int64
	CacheWriteTokens   int64
	CacheWrite1hTokens int64
	OutputTokens       int64
}

// Tokens is t's counts by the price of each, as Usage.Tokens: prices are
// linear, so pricing the total prices every record of it.
func (t UsageTotal) Tokens() tollgate.Tokens {
	return Usage{InputTokens: t.InputTokens, CachedTokens: t.CachedTokens, CacheWriteTokens: t.CacheWriteTokens,
		CacheWrite1hTokens: t.CacheWrite1hTokens, OutputTokens: t.OutputTokens}.Tokens()
}

// UsageTotals returns the usage of [from, to) summed per deployment, in one
// aggregate query (ReadTx.UsageTotals): for reports, without reading every
// record.
func (s *Service) UsageTotals(ctx context.Context, from, to time.Time) ([]UsageTotal, error) {
	var out []UsageTotal
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.UsageTotals(ctx, from.UTC(), to.UTC())
		return err
	})
	return out, err
}

// negativeCount reports whether one of u's token counts is below zero,
// which no store keeps.
func (u Usage) negativeCount() bool {
	return min(u.InputTokens, u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens, u.OutputTokens) < 0
}

// Tokens is u's counts by the price of each: the prompt tokens neither
// read from nor written to a cache are InputTokens less the others.
func (u Usage) Tokens() tollgate.Tokens {
	return tollgate.Tokens{
		Input: u.InputTokens - u.CachedTokens - u.CacheWriteTokens - u.CacheWrite1hTokens, CachedInput: u.CachedTokens,
		CacheWrite: u.CacheWriteTokens, CacheWrite1h: u.CacheWrite1hTokens, Output: u.OutputTokens,
	}
}

// UsageQuery selects usage records to sum for the admin API.
type UsageQuery struct {
	Account tollgate.AccountID // "" for all
	Model   string             // "" for all
	// From ≤ CreatedAt < To.
	From, To time.Time
	// GroupBy is UsageByDay or UsageByModel.
	GroupBy string
}

// Usage report groupings.
const (
	UsageByDay   = "day"
	UsageByModel = "model"
)

// MaxUsageGroups bounds a usage report.
const MaxUsageGroups = 1000

// UsageGroup is the sum of the usage records of one day or model.
type UsageGroup struct {
	Key          string // "2006-01-02" (Beijing) or the model
	Requests     int64
	Credits      tollgate.Credits
	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
}

// UsageReport sums usage per day or model (see UsageQuery). Errors:
// EINVALID (GroupBy, or To not after From).
func (s *Service) UsageReport(ctx context.Context, q UsageQuery) ([]UsageGroup, error) {
	if q.GroupBy != UsageByDay && q.GroupBy != UsageByModel {
		return nil, fail(tollgate.EINVALID, "ledger.UsageReport", "group_by must be day or model")
	}
	if !q.To.After(q.From) {
		return nil, fail(tollgate.EINVALID, "ledger.UsageReport", "to must be after from")
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	var out []UsageGroup
	err := s.View(ctx, func(tx ReadTx) (err error) {
		out, err = tx.UsageReport(ctx, q)
		return err
	})
	if out == nil && err == nil {
		out = []UsageGroup{}
	}
	return out, err
}
