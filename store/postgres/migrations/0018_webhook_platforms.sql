-- 0018: webhook endpoints of a platform (issue 20), mirroring
-- store/sqlite/migrations/0018_webhook_platforms.sql. An endpoint with a
-- platform_id belongs to that platform (an app selling to its own users)
-- and receives only the events of that platform's accounts; one without
-- (every endpoint made before) is the operator's and receives every
-- account's. An event keeps the platform its account belonged to when it
-- was written, as it keeps external_id, and fan-out matches the two.
ALTER TABLE webhook_endpoints ADD COLUMN platform_id TEXT COLLATE "C" REFERENCES platforms (id);
CREATE INDEX webhook_endpoints_platform ON webhook_endpoints (platform_id, id) WHERE platform_id IS NOT NULL;
ALTER TABLE webhook_events ADD COLUMN platform_id TEXT COLLATE "C";
