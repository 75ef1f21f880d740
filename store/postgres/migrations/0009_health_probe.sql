-- 0009: the row /readyz writes to prove the store can write (Store.ProbeWrite),
-- mirroring store/sqlite/migrations/0009_health_probe.sql: a read-only
-- database, a revoked privilege or a full disk fails that write, as it would
-- fail every payment and settle. One row, updated in place; no money.
CREATE TABLE health_probe (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	writes BIGINT NOT NULL
);
