-- 0007: per-key bounds on one request (issue 16, point 1), beside the
-- limits of 0005. NULL when the key has no such bound, so keys made
-- before this migration keep working as before. max_credits_per_request
-- refuses a request whose hold would cost more; max_output_tokens caps
-- each request's output tokens.
ALTER TABLE api_keys ADD COLUMN max_credits_per_request INTEGER CHECK (max_credits_per_request IS NULL OR max_credits_per_request > 0);
ALTER TABLE api_keys ADD COLUMN max_output_tokens INTEGER CHECK (max_output_tokens IS NULL OR max_output_tokens > 0);
