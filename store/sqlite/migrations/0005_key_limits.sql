-- 0005: per-key limits (issue 5, item 4). Every column is NULL when the key
-- has no such limit, so keys made before this migration keep working as
-- before. allowed_models is a JSON array of public model names; the rates
-- are per minute; expires_at is Unix microseconds like created_at.
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT CHECK (allowed_models IS NULL OR json_type(allowed_models) = 'array');
ALTER TABLE api_keys ADD COLUMN rpm INTEGER CHECK (rpm IS NULL OR rpm > 0);
ALTER TABLE api_keys ADD COLUMN tpm INTEGER CHECK (tpm IS NULL OR tpm > 0);
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
