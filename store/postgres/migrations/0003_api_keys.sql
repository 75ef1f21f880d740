-- 0003: API keys, mirroring store/sqlite/migrations/0003_api_keys.sql. Only
-- the SHA-256 of a key is stored (a 32-byte random key needs no slow KDF),
-- with a short prefix for display; keys are found by their unique hash.
CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    key_hash   BYTEA       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    prefix     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX api_keys_account ON api_keys (account_id);
