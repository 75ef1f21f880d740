-- 0010: how an order is paid (payment.Order.Method: native QR code, h5 in a
-- mobile browser, jsapi inside WeChat), the payer's openid (jsapi), and what
-- WeChat Pay gave for h5 and jsapi orders besides code_url (h5_issued_at:
-- when h5_url, valid 5 minutes, was issued; UTC unix microseconds), mirroring
-- store/sqlite/migrations/0010_payment_methods.sql. Orders made before (and
-- rows an instance not yet upgraded writes) are native.
ALTER TABLE payment_orders
    ADD COLUMN method    TEXT NOT NULL DEFAULT 'native' CHECK (method IN ('native', 'h5', 'jsapi')),
    ADD COLUMN openid    TEXT NOT NULL DEFAULT '',
    ADD COLUMN h5_url    TEXT NOT NULL DEFAULT '',
    ADD COLUMN prepay_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN h5_issued_at BIGINT NOT NULL DEFAULT 0;
