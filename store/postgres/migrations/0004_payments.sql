-- 0004 (0002 and 0003 were taken): the payment package's tables (payment.Store): orders, idempotency
-- keys, refund bookkeeping. Times are BIGINT unix microseconds (UTC), 0
-- meaning "not set". Money is BIGINT (fen, credits). The ledger's lots stay
-- the source of truth for what was credited; these rows are bookkeeping.

CREATE TABLE payment_orders (
    out_trade_no       TEXT    PRIMARY KEY CHECK (length(out_trade_no) BETWEEN 6 AND 32),
    account_id         TEXT    NOT NULL,
    fen                BIGINT NOT NULL CHECK (fen > 0),
    credits            BIGINT NOT NULL CHECK (credits > 0),
    package_id         TEXT    NOT NULL,
    api_version        TEXT    NOT NULL CHECK (api_version IN ('v2', 'v3')),
    sign_type          TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('NOTPAY', 'USERPAYING', 'SUCCESS', 'CLOSED', 'REFUND', 'PAYERROR')),
    code_url           TEXT    NOT NULL,
    transaction_id     TEXT    NOT NULL,
    device_fingerprint TEXT    NOT NULL,
    client_ip          TEXT    NOT NULL,
    token_hash         TEXT    NOT NULL,
    token_expires_at   BIGINT NOT NULL,
    grant_cap          BIGINT NOT NULL CHECK (grant_cap >= 0),
    expires_at         BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    next_poll_at       BIGINT NOT NULL,
    poll_attempts      BIGINT NOT NULL,
    lease_owner        TEXT    NOT NULL,
    lease_until        BIGINT NOT NULL,
    review             TEXT    NOT NULL,
    fee_fen            BIGINT NOT NULL CHECK (fee_fen >= 0)
);
CREATE INDEX payment_orders_account ON payment_orders (account_id, created_at);
CREATE INDEX payment_orders_due ON payment_orders (next_poll_at) WHERE status IN ('NOTPAY', 'USERPAYING');
CREATE UNIQUE INDEX payment_orders_token ON payment_orders (token_hash) WHERE token_hash <> '';
CREATE UNIQUE INDEX payment_orders_transaction ON payment_orders (transaction_id) WHERE transaction_id <> '';

CREATE TABLE payment_idempotency_keys (
    account_id   TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    out_trade_no TEXT    NOT NULL REFERENCES payment_orders (out_trade_no),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX payment_idempotency_keys_expiry ON payment_idempotency_keys (expires_at);

CREATE TABLE payment_refunds (
    out_refund_no TEXT    PRIMARY KEY,
    out_trade_no  TEXT    NOT NULL REFERENCES payment_orders (out_trade_no),
    account_id    TEXT    NOT NULL,
    fen           BIGINT NOT NULL CHECK (fen >= 0),
    credits       BIGINT NOT NULL CHECK (credits >= 0),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    next_poll_at  BIGINT NOT NULL,
    poll_attempts BIGINT NOT NULL,
    lease_owner   TEXT    NOT NULL,
    lease_until   BIGINT NOT NULL
);
CREATE INDEX payment_refunds_order ON payment_refunds (out_trade_no, created_at);
CREATE INDEX payment_refunds_due ON payment_refunds (next_poll_at) WHERE status = 'pending';
