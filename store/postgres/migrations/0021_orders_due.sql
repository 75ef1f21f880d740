-- 0021: the poller's claim (LeaseDueOrders) reads pending orders by
-- (next_poll_at, out_trade_no). The index on next_poll_at alone left the
-- tie-break to a sort of every pending order sharing the first due time
-- (orders created in one second share an expiry, and reschedules to
-- expiry share it too). With out_trade_no in the index the claim reads
-- its rows in order and stops.
DROP INDEX payment_orders_due;
CREATE INDEX payment_orders_due ON payment_orders (next_poll_at, out_trade_no) WHERE status IN ('NOTPAY', 'USERPAYING');
