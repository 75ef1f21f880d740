-- 0007: per-key bounds on one request, mirroring
-- store/sqlite/migrations/0007_key_request_limits.sql. NULL when the key
-- has no such bound, so keys made before this migration keep working as
-- before.
ALTER TABLE api_keys
    ADD COLUMN max_credits_per_request BIGINT CHECK (max_credits_per_request > 0),
    ADD COLUMN max_output_tokens       BIGINT CHECK (max_output_tokens > 0);
