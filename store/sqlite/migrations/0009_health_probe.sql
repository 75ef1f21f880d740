-- 0009: the row /readyz writes to prove the store can write (Store.ProbeWrite):
-- a read-only file, a full disk or a failing device fails that write, as it
-- would fail every payment and settle. One row, updated in place; no money.
CREATE TABLE health_probe (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	writes INTEGER NOT NULL
) STRICT;
