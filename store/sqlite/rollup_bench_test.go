package sqlite_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"tollgate"
	"tollgate/ledger"
	"tollgate/store/sqlite"
)

// BenchmarkUsageTotalsMonth: the revenue report's usage aggregate over a
// month of TOLLGATE_BENCH_USAGE_ROWS usage records (default 300,000; the
// issue's figure is 10,000,000) spread over 60 days, 50 accounts, 3
// models, with every closed day rolled up ("rolled") and with none
// ("per-call"). Run: go test -run XXX -bench UsageTotalsMonth -benchtime 5x
// ./store/sqlite/ (a quiet machine for figures).
func BenchmarkUsageTotalsMonth(b *testing.B) {
	rows := 300_000
	if v, err := strconv.Atoi(os.Getenv("TOLLGATE_BENCH_USAGE_ROWS")); err == nil && v > 0 {
		rows = v
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/"+sqlite.FileName)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := ledger.New(st, ledger.Options{})
	defer svc.Close()
	for i := range 50 {
		if _, err := svc.CreateAccount(ctx, tollgate.AccountID("acct"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	end := ledger.BeijingMidnight(time.Now())
	start := end.AddDate(0, 0, -60)
	step := end.Sub(start).Microseconds() / int64(rows)
	if err := st.ExecRaw(ctx, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
		INSERT INTO usage_records (request_id, account_id, key_id, model, provider, deployment, input_tokens, cached_tokens,
			cache_write_tokens, cache_write_1h_tokens, output_tokens, credits, latency_us, status, created_at, upstream_id)
		SELECT 'r' || i, 'acct' || (i % 50), 'k', 'm' || (i % 3), 'p', 'p/m' || (i % 3), 100 + i % 7, i % 5, 0, 0, 50, 10 + i % 3,
			1000, 'ok', ? + i * ?, '' FROM n`, rows, start.UnixMicro(), step); err != nil {
		b.Fatal(err)
	}
	from, to := end.AddDate(0, 0, -30), end.Add(12*time.Hour) // a month and half of today
	run := func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.UsageTotals(ctx, from, to); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("per-call", run)
	for {
		_, moved, err := st.RollUsage(ctx, end)
		if err != nil {
			b.Fatal(err)
		}
		if !moved {
			break
		}
	}
	b.Run("rolled", run)
}
