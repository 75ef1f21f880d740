-- 0021: the poller's claim (LeaseDueOrders) reads pending orders by
-- (next_poll_at, out_trade_no). The index on next_poll_at alone made it
-- sort every pending order sharing the first due time (orders created in
-- one second share an expiry, and reschedules to expiry share it too): a
-- 100,000-order backlog cost tens of milliseconds per claim, on the one
-- writer. With out_trade_no in the index the claim reads its 32 rows and
-- stops.
DROP INDEX payment_orders_due;
CREATE INDEX payment_orders_due ON payment_orders (next_poll_at, out_trade_no) WHERE status IN ('NOTPAY', 'USERPAYING');
