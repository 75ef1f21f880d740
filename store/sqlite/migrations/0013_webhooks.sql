-- 0013: webhooks (issue 20): endpoints the operator registers, the outbox
-- of events written in the money transaction they describe, and one
-- delivery per event and subscribed endpoint.
--
-- Endpoints. events is a JSON array of event types; the secret signs
-- (Standard Webhooks), previous_secret too until previous_until (a
-- rotation's overlap). disabled_at is set when the dispatcher gave up
-- (every attempt failing for days) until the admin enables it again;
-- consecutive_failures and failing_since are that streak.
CREATE TABLE webhook_endpoints (
    id                   TEXT    PRIMARY KEY,
    url                  TEXT    NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events               TEXT    NOT NULL CHECK (length(events) <= 1024),
    description          TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    secret               TEXT    NOT NULL,
    previous_secret      TEXT,
    previous_until       INTEGER,
    created_at           INTEGER NOT NULL,
    disabled_at          INTEGER,
    disabled_reason      TEXT    NOT NULL DEFAULT '' CHECK (length(disabled_reason) <= 500),
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    failing_since        INTEGER,
    last_success_at      INTEGER
) STRICT;

-- The per-account sequence: last_seq is the seq of the account's latest
-- event, bumped by the transaction that appends the next.
CREATE TABLE webhook_account_seqs (
    account_id TEXT    PRIMARY KEY,
    last_seq   INTEGER NOT NULL CHECK (last_seq > 0)
) STRICT;

-- The outbox. external_id is the account's when the event was written.
-- fanned_out is 0 until the dispatcher made the event's deliveries.
CREATE TABLE webhook_events (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    external_id TEXT,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL CHECK (length(data) <= 16384),
    created_at  INTEGER NOT NULL,
    fanned_out  INTEGER NOT NULL DEFAULT 0 CHECK (fanned_out IN (0, 1)),
    UNIQUE (account_id, seq)
) STRICT;
CREATE INDEX webhook_events_fan_out ON webhook_events (created_at, id) WHERE fanned_out = 0;

-- Deliveries: one per (event, endpoint). A claim sets lease_owner and
-- lease_until and counts an attempt; its outcome clears the lease.
CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    event_id        TEXT    NOT NULL REFERENCES webhook_events (id),
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '' CHECK (length(last_error) <= 500),
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (event_id, endpoint_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
