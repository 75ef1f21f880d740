-- 0016: balance.low webhook events (issue 20). An account's
-- low_balance_credits is the threshold below which its balance (credits
-- left less debt) sends one balance.low event per downward crossing; NULL
-- (every account before this migration) sends none.
ALTER TABLE accounts ADD COLUMN low_balance_credits INTEGER CHECK (low_balance_credits >= 0);
