-- 0012: a refund records who asked by name, mirroring
-- store/sqlite/migrations/0012_refund_actor.sql. requested_by says which
-- side asked (account or admin); actor names them: "account:<account id>"
-- for a user's own refund, the admin API's actor (X-Tollgate-Actor,
-- "admin" without it, "console:<session>" from the console) for the
-- operator's. Rows written before this migration, or by an instance not
-- yet upgraded, take ''.
ALTER TABLE payment_refunds ADD COLUMN actor TEXT NOT NULL DEFAULT '' CHECK (length(actor) <= 64);
