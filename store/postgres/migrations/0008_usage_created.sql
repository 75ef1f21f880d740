-- 0008: usage by time, mirroring store/sqlite/migrations/0008_usage_created.sql:
-- the revenue report's aggregate over a period (ledger.ReadTx.UsageTotals:
-- SUM … WHERE created_at in [from, to) GROUP BY deployment) would otherwise
-- scan every usage record.
CREATE INDEX usage_created ON usage_records (created_at);
