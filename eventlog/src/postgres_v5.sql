-- The correlation index off the hot table (issue 20). An append maintains only the position
-- and the unique (stream, version); which events carry a correlation id is indexed afterwards,
-- off the write path, by whoever next asks (`kefu_index_correlations`, called before a
-- correlation read): the settled prefix of the log is copied into `kefu_correlations`, and
-- `kefu_correlations_through` says how far. A read takes the indexed part from there and scans
-- only the hot table's tail above `through` (by position, the primary key), so it still sees
-- its own request's events committed a moment ago.
CREATE TABLE IF NOT EXISTS kefu_correlations (
    correlation_id uuid   NOT NULL,
    position       bigint NOT NULL,
    PRIMARY KEY (correlation_id, position)
);

-- One row: every event below `through` is in kefu_correlations (or was archived).
CREATE TABLE IF NOT EXISTS kefu_correlations_through (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    through bigint  NOT NULL
);
INSERT INTO kefu_correlations_through (through) VALUES (0) ON CONFLICT (one) DO NOTHING;

-- Indexes the settled events above `through`; returns the new `through`. Indexers take turns
-- (the row lock); one that finds another at work returns at once, since a reader scans the
-- unindexed tail anyway. Positions below the settled head (pg_snapshot_xmin << 16) belong to
-- ended transactions, so nothing can later commit below the new `through`.
CREATE OR REPLACE FUNCTION kefu_index_correlations() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_settled bigint := pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16;
    v_from    bigint;
BEGIN
    -- Nothing settled since: no lock taken, nothing written.
    SELECT through INTO v_from FROM kefu_correlations_through;
    IF v_settled <= v_from THEN
        RETURN v_from;
    END IF;
    SELECT through INTO v_from FROM kefu_correlations_through FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_settled <= v_from THEN
        RETURN v_from;
    END IF;
    INSERT INTO kefu_correlations (correlation_id, position)
        SELECT correlation_id, position FROM events
         WHERE position >= v_from AND position < v_settled
        ON CONFLICT DO NOTHING;
    UPDATE kefu_correlations_through SET through = v_settled;
    RETURN v_settled;
END $$;

-- The existing events are indexed now, once, as part of the upgrade; then the hot table's
-- own index goes. A binary from before this migration still reads correlations correctly,
-- by a scan of the table, until it is upgraded.
SELECT kefu_index_correlations();
DROP INDEX IF EXISTS events_by_correlation;
