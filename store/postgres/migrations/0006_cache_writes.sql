-- 0006: cache writes, mirroring store/sqlite/migrations/0006_cache_writes.sql:
-- prompt tokens a provider wrote to its cache (Anthropic's
-- cache_creation_input_tokens), billed above the input price: for a
-- 5-minute cache and for a 1-hour one. Part of input_tokens, as
-- cached_tokens is; records from before this migration wrote none.
ALTER TABLE usage_records
    ADD COLUMN cache_write_tokens    BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
    ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_1h_tokens >= 0);
