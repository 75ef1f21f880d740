-- 0002: tollgate_expect_rows lets a conditional UPDATE fail inside the
-- server when it matched fewer rows than it was given (a row's version
-- changed since it was read). Raising serialization_failure (40001) aborts
-- the transaction, so the store can pipeline COMMIT right behind its writes:
-- a stale write can never be committed, whatever the client does next.
CREATE FUNCTION tollgate_expect_rows(tbl TEXT, got BIGINT, want BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
BEGIN
    IF got <> want THEN
        RAISE EXCEPTION 'tollgate: % of % % rows changed since they were read', want - got, want, tbl
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN got;
END
$$;
