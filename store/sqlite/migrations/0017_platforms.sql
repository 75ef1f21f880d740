-- 0017: checkout for an app's own users (issue 20 point 5).
--
-- A platform is an app that sells to its own users through tollgate. Its
-- key (a credential of its own, not an account's API key) is stored as
-- the SHA-256 of the key, with a short prefix for display, like an API
-- key. return_url_hosts is a JSON array of the hosts a checkout may send
-- the user back to ("[]": any https host).
CREATE TABLE platforms (
    id               TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash         BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix           TEXT    NOT NULL,
    return_url_hosts TEXT    NOT NULL DEFAULT '[]' CHECK (length(return_url_hosts) <= 4096),
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER
) STRICT;

-- An account made for a platform's user belongs to that platform; one the
-- admin made has none. The app's user id is unique per platform (accounts
-- without a platform count as one more platform), so two apps may both
-- have a user "42" and a platform finds its user with one index lookup.
-- The plain index on external_id keeps the admin's search by it.
ALTER TABLE accounts ADD COLUMN platform_id TEXT REFERENCES platforms (id);
DROP INDEX accounts_external_id;
CREATE UNIQUE INDEX accounts_platform_external_id ON accounts (coalesce(platform_id, ''), external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX accounts_external_id ON accounts (external_id) WHERE external_id IS NOT NULL;

-- An order made through an app's checkout carries the app's metadata (a
-- small JSON object, compacted) into the order and its events.
ALTER TABLE payment_orders ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}' CHECK (length(metadata) <= 4096);
