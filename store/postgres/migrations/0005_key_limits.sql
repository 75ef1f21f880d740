-- 0005: per-key limits, mirroring store/sqlite/migrations/0005_key_limits.sql.
-- Every column is NULL when the key has no such limit, so keys made before
-- this migration keep working as before.
ALTER TABLE api_keys
    ADD COLUMN allowed_models TEXT[],
    ADD COLUMN rpm            INTEGER CHECK (rpm > 0),
    ADD COLUMN tpm            BIGINT  CHECK (tpm > 0),
    ADD COLUMN expires_at     TIMESTAMPTZ;
