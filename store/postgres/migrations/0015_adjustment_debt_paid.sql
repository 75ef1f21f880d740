-- 0015: an adjustment keeps what it paid of the account's debt, mirroring
-- store/sqlite/migrations/0015_adjustment_debt_paid.sql. A positive
-- adjustment pays the debt first, so 0 <= debt_paid <= credits; a negative
-- one pays none. Rows written before this migration, or by an instance not
-- yet upgraded, take 0: what they paid is not known any more
-- (docs/DESIGN.md §2.11). BIGINT like credits (up to 10^12).
ALTER TABLE adjustments ADD COLUMN debt_paid BIGINT NOT NULL DEFAULT 0
    CHECK (debt_paid >= 0 AND (debt_paid = 0 OR debt_paid <= credits));
