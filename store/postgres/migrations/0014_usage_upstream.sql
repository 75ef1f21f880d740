-- 0014: ids that match, mirroring store/sqlite/migrations/0014_usage_upstream.sql.
-- A usage record's request_id is the id of the gateway's answer (and its
-- X-Request-Id); upstream_id is the id the provider gave its own answer
-- (an OpenAI chatcmpl-…, an Anthropic msg_…). Records from before this
-- migration, and calls whose upstream sent no id, have ''.
ALTER TABLE usage_records
    ADD COLUMN upstream_id TEXT NOT NULL DEFAULT '' CHECK (length(upstream_id) <= 256);
