-- 0016: balance.low webhook events, mirroring
-- store/sqlite/migrations/0016_low_balance.sql. An account's
-- low_balance_credits is the threshold below which its balance (credits
-- left less debt) sends one balance.low event per downward crossing; NULL
-- (every account before this migration) sends none.
ALTER TABLE accounts ADD COLUMN low_balance_credits BIGINT CHECK (low_balance_credits >= 0);
