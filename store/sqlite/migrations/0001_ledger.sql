-- 0001: the ledger's tables. Column names are shared with store/postgres
-- (storetest's corruption test writes portable SQL against them). Times are
-- INTEGER unix microseconds (UTC); NULL means "not yet". Money is INTEGER
-- (fen, credits). Tables keyed by text are WITHOUT ROWID: one B-tree per
-- table instead of a table plus its primary-key index, which halves the
-- pages a hold or usage insert writes. CHECK constraints restate the per-row invariants so that a
-- bug in the ledger fails loudly instead of writing an impossible row.

CREATE TABLE accounts (
    id           TEXT    PRIMARY KEY,
    left_credits INTEGER NOT NULL CHECK (left_credits >= 0),
    held         INTEGER NOT NULL CHECK (held >= 0),
    debt         INTEGER NOT NULL CHECK (debt >= 0),
    created_at   INTEGER NOT NULL,
    version      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE lots (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     TEXT    NOT NULL REFERENCES accounts (id),
    out_trade_no   TEXT    NOT NULL UNIQUE,
    transaction_id TEXT    NOT NULL UNIQUE,
    fen            INTEGER NOT NULL CHECK (fen > 0),
    granted        INTEGER NOT NULL CHECK (granted > 0),
    used           INTEGER NOT NULL CHECK (used >= 0),
    left_credits   INTEGER NOT NULL CHECK (left_credits >= 0),
    refunding      INTEGER NOT NULL CHECK (refunding >= 0),
    refunded       INTEGER NOT NULL CHECK (refunded >= 0),
    refunded_fen   INTEGER NOT NULL CHECK (refunded_fen >= 0 AND refunded_fen <= fen),
    created_at     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    CHECK (granted = used + left_credits + refunding + refunded)
) STRICT;
CREATE INDEX lots_spendable ON lots (account_id, id) WHERE left_credits > 0;
CREATE INDEX lots_account ON lots (account_id, id);
CREATE INDEX lots_created ON lots (created_at);

CREATE TABLE grants (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    cap         INTEGER NOT NULL CHECK (cap > 0),
    used        INTEGER NOT NULL CHECK (used >= 0),
    held        INTEGER NOT NULL CHECK (held >= 0),
    status      TEXT    NOT NULL CHECK (status IN ('live', 'confirmed', 'revoked')),
    lot_id      INTEGER REFERENCES lots (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    version     INTEGER NOT NULL,
    CHECK (used + held <= cap)
) STRICT, WITHOUT ROWID;
-- At most one live grant per account.
CREATE UNIQUE INDEX grants_one_live ON grants (account_id) WHERE status = 'live';
CREATE INDEX grants_live_expiry ON grants (expires_at, id) WHERE status = 'live';

CREATE TABLE holds (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    grant_id    TEXT    REFERENCES grants (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    cost        INTEGER NOT NULL CHECK (cost >= 0 AND cost <= amount),
    status      TEXT    NOT NULL CHECK (status IN ('active', 'settled', 'released', 'expired')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    version     INTEGER NOT NULL,
    CHECK (status = 'settled' OR cost = 0)
) STRICT, WITHOUT ROWID;
CREATE INDEX holds_active_expiry ON holds (expires_at, id) WHERE status = 'active';

CREATE TABLE refunds (
    out_refund_no TEXT    PRIMARY KEY,
    lot_id        INTEGER NOT NULL REFERENCES lots (id),
    account_id    TEXT    NOT NULL REFERENCES accounts (id),
    credits       INTEGER NOT NULL CHECK (credits > 0),
    fen           INTEGER NOT NULL CHECK (fen >= 0),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    created_at    INTEGER NOT NULL,
    resolved_at   INTEGER,
    version       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX refunds_lot ON refunds (lot_id);

CREATE TABLE usage_records (
    request_id    TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL REFERENCES accounts (id),
    key_id        TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    deployment    TEXT    NOT NULL,
    input_tokens  INTEGER NOT NULL CHECK (input_tokens >= 0),
    cached_tokens INTEGER NOT NULL CHECK (cached_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    credits       INTEGER NOT NULL CHECK (credits >= 0),
    latency_us    INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_account ON usage_records (account_id, created_at DESC, request_id DESC);
