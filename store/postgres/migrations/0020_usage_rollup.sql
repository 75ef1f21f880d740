-- 0020: the daily rollup of usage (issue 21), mirroring
-- store/sqlite/migrations/0020_usage_rollup.sql: the revenue report and the
-- usage charts sum usage_daily for the Beijing days already rolled up and
-- the per-call usage_records only for the rest (today).
CREATE TABLE usage_daily (
    day                   DATE   NOT NULL, -- Beijing
    account_id            TEXT COLLATE "C" NOT NULL,
    model                 TEXT COLLATE "C" NOT NULL,
    deployment            TEXT COLLATE "C" NOT NULL,
    requests              BIGINT NOT NULL CHECK (requests >= 0),
    credits               BIGINT NOT NULL CHECK (credits >= 0),
    input_tokens          BIGINT NOT NULL CHECK (input_tokens >= 0),
    cached_tokens         BIGINT NOT NULL CHECK (cached_tokens >= 0),
    cache_write_tokens    BIGINT NOT NULL CHECK (cache_write_tokens >= 0),
    cache_write_1h_tokens BIGINT NOT NULL CHECK (cache_write_1h_tokens >= 0),
    output_tokens         BIGINT NOT NULL CHECK (output_tokens >= 0),
    PRIMARY KEY (day, account_id, model, deployment)
);
CREATE INDEX usage_daily_account ON usage_daily (account_id, day);

-- The one row of the rollup's state, each a Beijing midnight (the first,
-- 1970-01-01 Beijing: nothing rolled):
--   rolled_before  every day before it is in usage_daily (reports read it);
--   route_before   a record inserted with created_at before it is added to
--                  usage_daily by the trigger below, in its own transaction
--                  (the roller moves it first, waits for every transaction
--                  that may have read the old value, then rolls up to it);
--   pruned_before  per-call records before it may have been deleted by the
--                  retention (pruned_before ≤ rolled_before).
CREATE TABLE usage_rollup_state (
    id            INT         PRIMARY KEY CHECK (id = 1),
    rolled_before TIMESTAMPTZ NOT NULL,
    route_before  TIMESTAMPTZ NOT NULL,
    pruned_before TIMESTAMPTZ NOT NULL,
    CHECK (pruned_before <= rolled_before AND rolled_before <= route_before)
);
INSERT INTO usage_rollup_state VALUES (1, '1970-01-01 00:00:00+08', '1970-01-01 00:00:00+08', '1970-01-01 00:00:00+08');

-- Records routed by the trigger whose day the roller has not finished: it
-- leaves them out of its sums (they are in usage_daily already) and
-- deletes them when it moves rolled_before past them.
CREATE TABLE usage_late (
    request_id TEXT COLLATE "C" PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

-- Late records (their day closed already) go into usage_daily with the
-- insert itself, so no late settle is lost from a report. One call per
-- INSERT statement (the store inserts a batch of usage in one), which for
-- records of today is one look at usage_rollup_state. The ledger writes in
-- READ COMMITTED, so the look sees the state committed before it.
CREATE FUNCTION usage_rollup_late() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    route TIMESTAMPTZ;
BEGIN
    SELECT route_before INTO route FROM usage_rollup_state WHERE id = 1;
    IF NOT EXISTS (SELECT 1 FROM new_usage WHERE created_at < route) THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_late (request_id, created_at)
        SELECT request_id, created_at FROM new_usage WHERE created_at < route;
    INSERT INTO usage_daily AS d (day, account_id, model, deployment, requests, credits, input_tokens, cached_tokens,
        cache_write_tokens, cache_write_1h_tokens, output_tokens)
    SELECT ((created_at AT TIME ZONE 'UTC') + interval '8 hours')::date, account_id, model, deployment, count(*),
        sum(credits), sum(input_tokens), sum(cached_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens),
        sum(output_tokens)
    FROM new_usage WHERE created_at < route GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, account_id, model, deployment) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests, credits = d.credits + EXCLUDED.credits,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens, cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens,
        cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
        cache_write_1h_tokens = d.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens;
    RETURN NULL;
END
$$;
CREATE TRIGGER usage_rollup_late AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS new_usage FOR EACH STATEMENT EXECUTE FUNCTION usage_rollup_late();
