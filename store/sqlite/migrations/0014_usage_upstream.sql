-- 0014: ids that match (issue 20). A usage record's request_id is the id of
-- the gateway's answer (and its X-Request-Id); upstream_id is the id the
-- provider gave its own answer (an OpenAI chatcmpl-…, an Anthropic msg_…),
-- so a call can be traced to the provider's logs. Records from before this
-- migration, and calls whose upstream sent no id, have ''.
ALTER TABLE usage_records ADD COLUMN upstream_id TEXT NOT NULL DEFAULT '' CHECK (length(upstream_id) <= 256);
