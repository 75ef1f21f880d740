-- 0011: what an operator needs to run the business (issue 19).
--
-- Accounts an operator can find: a label, the app's own user id
-- (external_id, unique when set), a small JSON object of metadata, and
-- disabled_at (set: every key and provisional token of the account is
-- refused). The ledger never writes these columns; rows it inserts take
-- the defaults.
ALTER TABLE accounts ADD COLUMN label TEXT NOT NULL DEFAULT '' CHECK (length(label) <= 200);
ALTER TABLE accounts ADD COLUMN external_id TEXT CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 128);
ALTER TABLE accounts ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}' CHECK (length(metadata) <= 4096);
ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;
CREATE UNIQUE INDEX accounts_external_id ON accounts (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX accounts_created ON accounts (created_at, id);

-- Adjustments: credit an operator adds or removes by hand, each a ledger
-- entry of its own (ledger.Adjustment), never an edit of a lot. A positive
-- adjustment is carried by a lot of 0 fen (lot_id); a negative one draws
-- the account's lots like usage, and what exceeded the balance, when the
-- operator asked for it, became debt (debt). Idempotent per account by the
-- Idempotency-Key the admin API was given.
CREATE TABLE adjustments (
    id              TEXT    PRIMARY KEY,
    account_id      TEXT    NOT NULL REFERENCES accounts (id),
    idempotency_key TEXT    NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    TEXT    NOT NULL,
    credits         INTEGER NOT NULL CHECK (credits <> 0),
    debt            INTEGER NOT NULL CHECK (debt >= 0 AND (credits < 0 OR debt = 0) AND debt <= abs(credits)),
    lot_id          INTEGER REFERENCES lots (id),
    reason          TEXT    NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor           TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    CHECK ((credits > 0) = (lot_id IS NOT NULL)),
    UNIQUE (account_id, idempotency_key)
) STRICT;
CREATE INDEX adjustments_created ON adjustments (created_at, id);

-- A positive adjustment's lot was paid 0 fen: loosen lots' fen > 0 to
-- fen >= 0 (the ledger's audit still refuses 0 fen for any lot that is not
-- an adjustment's). SQLite cannot alter a CHECK; loosening one by editing
-- the stored schema is the procedure its documentation gives (ALTER TABLE,
-- "making other kinds of table schema changes"); the migration runner
-- bumps schema_version after a migration that does this.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (fen > 0)', 'CHECK (fen >= 0)')
    WHERE type = 'table' AND name = 'lots';
PRAGMA writable_schema = OFF;

-- Refunds record who asked (admin or the account) and why, and the amount
-- asked for (0: all of the order's unused credit).
ALTER TABLE payment_refunds ADD COLUMN requested_by TEXT NOT NULL DEFAULT 'account'
    CHECK (requested_by IN ('account', 'admin'));
ALTER TABLE payment_refunds ADD COLUMN reason TEXT NOT NULL DEFAULT '' CHECK (length(reason) <= 500);
ALTER TABLE payment_refunds ADD COLUMN asked_fen INTEGER NOT NULL DEFAULT 0 CHECK (asked_fen >= 0);
CREATE INDEX payment_refunds_created ON payment_refunds (created_at, out_refund_no);
CREATE INDEX payment_orders_created ON payment_orders (created_at, out_trade_no);
