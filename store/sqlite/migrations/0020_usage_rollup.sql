-- 0020: the daily rollup of usage (issue 21). The revenue report and the
-- usage charts sum usage_daily for the Beijing days already rolled up and
-- the per-call usage_records only for the rest (today), so their cost
-- follows the days and groups asked for, not the rows of the ledger.
--
-- usage_daily holds, per Beijing day ('YYYY-MM-DD'), account, model and
-- deployment, the sums of the usage records of that day.
CREATE TABLE usage_daily (
    day                   TEXT    NOT NULL,
    account_id            TEXT    NOT NULL,
    model                 TEXT    NOT NULL,
    deployment            TEXT    NOT NULL,
    requests              INTEGER NOT NULL CHECK (requests >= 0),
    credits               INTEGER NOT NULL CHECK (credits >= 0),
    input_tokens          INTEGER NOT NULL CHECK (input_tokens >= 0),
    cached_tokens         INTEGER NOT NULL CHECK (cached_tokens >= 0),
    cache_write_tokens    INTEGER NOT NULL CHECK (cache_write_tokens >= 0),
    cache_write_1h_tokens INTEGER NOT NULL CHECK (cache_write_1h_tokens >= 0),
    output_tokens         INTEGER NOT NULL CHECK (output_tokens >= 0),
    PRIMARY KEY (day, account_id, model, deployment)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_daily_account ON usage_daily (account_id, day);

-- The one row of the rollup's state, each a Beijing midnight in Unix
-- microseconds (the first is 1970-01-01 Beijing: nothing rolled):
--   rolled_before  every day before it is in usage_daily (reports read it);
--   route_before   a record inserted with created_at before it is added to
--                  usage_daily by the trigger below, in its own transaction
--                  (route_before ≥ rolled_before: the roller moves it first);
--   pruned_before  per-call records before it may have been deleted by the
--                  retention (pruned_before ≤ rolled_before).
CREATE TABLE usage_rollup_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_before INTEGER NOT NULL,
    route_before  INTEGER NOT NULL,
    pruned_before INTEGER NOT NULL,
    CHECK (pruned_before <= rolled_before AND rolled_before <= route_before)
) STRICT;
INSERT INTO usage_rollup_state VALUES (1, -28800000000, -28800000000, -28800000000);

-- Records routed by the trigger whose day the roller has not finished:
-- it leaves them out of its sums (they are in usage_daily already) and
-- deletes them when it moves rolled_before past them.
CREATE TABLE usage_late (
    request_id TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A late record (its day closed already) goes into usage_daily with the
-- insert itself, so no late settle is lost from a report. A record of
-- today costs the one look at usage_rollup_state.
CREATE TRIGGER usage_rollup_late AFTER INSERT ON usage_records
WHEN NEW.created_at < (SELECT route_before FROM usage_rollup_state WHERE id = 1)
BEGIN
    INSERT INTO usage_late (request_id, created_at) VALUES (NEW.request_id, NEW.created_at);
    INSERT INTO usage_daily (day, account_id, model, deployment, requests, credits, input_tokens, cached_tokens,
        cache_write_tokens, cache_write_1h_tokens, output_tokens)
    VALUES (strftime('%Y-%m-%d', NEW.created_at / 1000000 + 28800, 'unixepoch'), NEW.account_id, NEW.model,
        NEW.deployment, 1, NEW.credits, NEW.input_tokens, NEW.cached_tokens, NEW.cache_write_tokens,
        NEW.cache_write_1h_tokens, NEW.output_tokens)
    ON CONFLICT (day, account_id, model, deployment) DO UPDATE SET
        requests = requests + excluded.requests, credits = credits + excluded.credits,
        input_tokens = input_tokens + excluded.input_tokens, cached_tokens = cached_tokens + excluded.cached_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
        output_tokens = output_tokens + excluded.output_tokens;
END;
