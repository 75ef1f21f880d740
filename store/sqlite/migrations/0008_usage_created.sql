-- 0008: usage by time, for the revenue report's aggregate over a period
-- (ledger.ReadTx.UsageTotals: SUM … WHERE created_at in [from, to) GROUP BY
-- deployment), which would otherwise scan every usage record.
CREATE INDEX usage_created ON usage_records (created_at);
