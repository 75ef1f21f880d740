-- 0011: what an operator needs to run the business (issue 19), mirroring
-- store/sqlite/migrations/0011_operator.sql.
--
-- Accounts an operator can find: a label, the app's own user id
-- (external_id, unique when set), a small JSON object of metadata, and
-- disabled_at (set: every key and provisional token of the account is
-- refused). The ledger never writes these columns; rows it inserts (and
-- rows an instance not yet upgraded inserts) take the defaults.
ALTER TABLE accounts
    ADD COLUMN label       TEXT NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    ADD COLUMN external_id TEXT COLLATE "C" CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 128),
    ADD COLUMN metadata    TEXT NOT NULL DEFAULT '{}' CHECK (length(metadata) <= 4096),
    ADD COLUMN disabled_at TIMESTAMPTZ;
CREATE UNIQUE INDEX accounts_external_id ON accounts (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX accounts_created ON accounts (created_at, id);

-- Adjustments: credit an operator adds or removes by hand (ledger.Adjustment).
-- A positive one is carried by a lot of 0 fen (lot_id); a negative one draws
-- the account's lots like usage, and what exceeded the balance, when the
-- operator asked for it, became debt.
CREATE TABLE adjustments (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account_id      TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    idempotency_key TEXT COLLATE "C" NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    TEXT        NOT NULL,
    credits         BIGINT      NOT NULL CHECK (credits <> 0),
    debt            BIGINT      NOT NULL CHECK (debt >= 0 AND (credits < 0 OR debt = 0) AND debt <= abs(credits)),
    lot_id          BIGINT      REFERENCES lots (id),
    reason          TEXT        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor           TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CHECK ((credits > 0) = (lot_id IS NOT NULL)),
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX adjustments_created ON adjustments (created_at, id);

-- A positive adjustment's lot was paid 0 fen (the audit still refuses 0
-- fen for any lot that is not an adjustment's).
ALTER TABLE lots DROP CONSTRAINT lots_fen_check, ADD CONSTRAINT lots_fen_check CHECK (fen >= 0);

-- Refunds record who asked (admin or the account) and why, and the amount
-- asked for (0: all of the order's unused credit).
ALTER TABLE payment_refunds
    ADD COLUMN requested_by TEXT NOT NULL DEFAULT 'account' CHECK (requested_by IN ('account', 'admin')),
    ADD COLUMN reason       TEXT NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    ADD COLUMN asked_fen    BIGINT NOT NULL DEFAULT 0 CHECK (asked_fen >= 0);
CREATE INDEX payment_refunds_created ON payment_refunds (created_at, out_refund_no);
CREATE INDEX payment_orders_created ON payment_orders (created_at, out_trade_no);
