-- 0010: how an order is paid (payment.Order.Method: native QR code, h5 in a
-- mobile browser, jsapi inside WeChat), the payer's openid (jsapi), and what
-- WeChat Pay gave for h5 and jsapi orders besides code_url, so a retry with
-- the same Idempotency-Key and GET of the order answer again without placing
-- it anew; h5_issued_at (UTC unix microseconds, 0 for none) is when h5_url
-- was issued, since it is valid 5 minutes and is renewed by placing the
-- order again. Orders made before are native.
ALTER TABLE payment_orders ADD COLUMN method TEXT NOT NULL DEFAULT 'native'
    CHECK (method IN ('native', 'h5', 'jsapi'));
ALTER TABLE payment_orders ADD COLUMN openid TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_orders ADD COLUMN h5_url TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_orders ADD COLUMN prepay_id TEXT NOT NULL DEFAULT '';
ALTER TABLE payment_orders ADD COLUMN h5_issued_at INTEGER NOT NULL DEFAULT 0;
