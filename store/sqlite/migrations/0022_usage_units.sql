-- 0023: what a call used beyond text tokens (audio tokens, speech
-- characters, audio seconds, images, web search and fetch calls, the
-- priority tier), now sold where priced (issue 22). One text column holds
-- the compact JSON object of the non-zero counts (ledger.EncodeUnits), ""
-- when none: most calls use none, and a new kind needs no migration.
ALTER TABLE usage_records ADD COLUMN units TEXT NOT NULL DEFAULT '';
