-- 0019: pruning the webhook outbox (webhook.Store.PruneEvents). The pruner
-- walks fanned-out events oldest first, so it needs them by time; the
-- deliveries of an event are found through UNIQUE (event_id, endpoint_id).
CREATE INDEX webhook_events_prune ON webhook_events (created_at, id) WHERE fanned_out;
