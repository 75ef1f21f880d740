-- 0013: webhooks (issue 20), mirroring store/sqlite/migrations/0013_webhooks.sql:
-- endpoints, the outbox of events written in the money transaction they
-- describe, and one delivery per event and subscribed endpoint.
CREATE TABLE webhook_endpoints (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    url                  TEXT        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events               TEXT[]      NOT NULL CHECK (cardinality(events) <= 64),
    description          TEXT        NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    secret               TEXT        NOT NULL,
    previous_secret      TEXT,
    previous_until       TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    disabled_at          TIMESTAMPTZ,
    disabled_reason      TEXT        NOT NULL DEFAULT '' CHECK (length(disabled_reason) <= 500),
    consecutive_failures BIGINT      NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    failing_since        TIMESTAMPTZ,
    last_success_at      TIMESTAMPTZ
);

-- The per-account sequence: the transaction appending an event bumps
-- last_seq with INSERT … ON CONFLICT DO UPDATE … RETURNING, which locks
-- the row until it commits, so two transactions never take one seq.
CREATE TABLE webhook_account_seqs (
    account_id TEXT COLLATE "C" PRIMARY KEY,
    last_seq   BIGINT NOT NULL CHECK (last_seq > 0)
);

CREATE TABLE webhook_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL,
    external_id TEXT,
    seq         BIGINT      NOT NULL CHECK (seq > 0),
    type        TEXT        NOT NULL,
    data        TEXT        NOT NULL CHECK (octet_length(data) <= 16384),
    created_at  TIMESTAMPTZ NOT NULL,
    fanned_out  BOOLEAN     NOT NULL DEFAULT false,
    UNIQUE (account_id, seq)
);
CREATE INDEX webhook_events_fan_out ON webhook_events (created_at, id) WHERE NOT fanned_out;

CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL REFERENCES webhook_events (id),
    endpoint_id     TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT      NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    last_status     INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT        NOT NULL DEFAULT '' CHECK (length(last_error) <= 500),
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
