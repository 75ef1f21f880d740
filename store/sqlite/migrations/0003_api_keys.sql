-- 0003: API keys. Only the SHA-256 of a key is stored (a 32-byte random key
-- needs no slow KDF), with a short prefix for display. Keys are found by
-- their hash, so key_hash is unique and indexed.
CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    account_id TEXT    NOT NULL REFERENCES accounts (id),
    key_hash   BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_account ON api_keys (account_id);
