-- Idempotency per stream (issue 20). The hot table keeps only what the write path needs:
-- the position (ordered reads) and the unique (stream, version) (optimistic concurrency,
-- gapless versions). Event ids are no longer unique across the log: a retry is recognised by
-- the events stored where its earlier success would be (after the expected version; for
-- `any`, the stream's last events), as KurrentDB does. An id reused in another stream is
-- written.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_id_key;

-- Appends one batch to one stream; called once per transaction.
-- p_expected: -1 any, -2 no stream, n >= 0 the exact current version.
-- Raises KF001 (detail: the current version, or empty) on a wrong expected version, and
-- KF002 (detail: '<id> <where it is>') when some of the batch is stored where a retry of it
-- would be, but not all of it, or not the same events.
CREATE OR REPLACE FUNCTION kefu_append(
    p_stream text, p_expected bigint,
    p_ids uuid[], p_types text[], p_schema_versions integer[], p_payloads text[],
    p_actor_kinds text[], p_actor_ids text[], p_correlation_ids uuid[], p_causation_ids uuid[],
    p_trace_ids text[]
) RETURNS TABLE (first_version bigint, last_version bigint, first_position bigint, last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_n       integer := cardinality(p_ids);
    v_current bigint;
    v_slot    bigint;
    v_in_place integer;
    v_bad     record;
    v_first   bigint;
    v_base    bigint;
BEGIN
    -- One writer per stream. The lock assigns no transaction id, so this transaction's id
    -- (and its events' positions) is taken only once it holds the stream.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 0));

    SELECT e.version INTO v_current
      FROM events e WHERE e.stream_id = p_stream ORDER BY e.version DESC LIMIT 1;

    -- Where the batch's earlier success would be: right after the expectation, or for `any`
    -- the stream's last v_n events.
    v_slot := CASE WHEN p_expected = -2 THEN 0
                   WHEN p_expected >= 0 THEN p_expected + 1
                   ELSE v_current - v_n + 1 END;
    IF v_current IS NOT NULL AND v_slot >= 0 AND v_slot + v_n - 1 <= v_current THEN
        SELECT count(*) INTO v_in_place
          FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord)
          JOIN events e ON e.stream_id = p_stream AND e.version = v_slot + b.ord - 1
         WHERE e.id = b.id;
        IF v_in_place = v_n THEN
            -- The same ids must carry the same events: a reused id with another type or
            -- payload is not a retry.
            SELECT b.id, e.version, e.event_type INTO v_bad
              FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord)
              JOIN events e ON e.stream_id = p_stream AND e.version = v_slot + b.ord - 1
             WHERE e.event_type <> p_types[b.ord] OR e.payload <> p_payloads[b.ord]::jsonb
             ORDER BY b.ord LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'an event id of the batch is stored with another event'
                    USING ERRCODE = 'KF002',
                          DETAIL = v_bad.id::text || ' stored in ' || p_stream
                                   || ' at version ' || v_bad.version || ' as another event ('
                                   || v_bad.event_type || ', or another payload): a reused id must carry the same event';
            END IF;
            RETURN QUERY
                SELECT min(e.version), max(e.version), min(e.position), max(e.position)
                  FROM events e
                 WHERE e.stream_id = p_stream AND e.version BETWEEN v_slot AND v_slot + v_n - 1;
            RETURN;
        END IF;
        -- Part of the batch where it would be, or for `any` (where no conflict can tell the
        -- client) any of it among the stream's last events: a retry that changed its batch.
        SELECT e.id, e.version INTO v_bad
          FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord)
          JOIN events e ON e.stream_id = p_stream AND e.version = v_slot + b.ord - 1
         WHERE e.id = b.id
         ORDER BY b.ord LIMIT 1;
        IF NOT FOUND AND p_expected = -1 THEN
            SELECT e.id, e.version INTO v_bad
              FROM events e
             WHERE e.stream_id = p_stream AND e.version BETWEEN v_slot AND v_current
               AND e.id = ANY (p_ids)
             ORDER BY e.version LIMIT 1;
        END IF;
        IF FOUND THEN
            RAISE EXCEPTION 'some event ids of the batch are already stored'
                USING ERRCODE = 'KF002',
                      DETAIL = v_bad.id::text || ' stored in ' || p_stream
                               || ' at version ' || v_bad.version
                               || ', but not with the rest of the batch in its place: a retry must resend the same batch';
        END IF;
    END IF;

    IF (p_expected = -2 AND v_current IS NOT NULL)
       OR (p_expected >= 0 AND v_current IS DISTINCT FROM p_expected) THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'KF001',
            DETAIL = coalesce(v_current::text, '');
    END IF;

    v_first := coalesce(v_current + 1, 0);
    v_base := pg_current_xact_id()::text::bigint << 16;
    INSERT INTO events (position, id, stream_id, version, event_type, schema_version, payload,
                        actor_kind, actor_id, correlation_id, causation_id, trace_id)
    SELECT v_base + b.ord - 1, b.id, p_stream, v_first + b.ord - 1, p_types[b.ord],
           p_schema_versions[b.ord], p_payloads[b.ord]::jsonb, p_actor_kinds[b.ord],
           p_actor_ids[b.ord], p_correlation_ids[b.ord], p_causation_ids[b.ord], p_trace_ids[b.ord]
      FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord);

    RETURN QUERY SELECT v_first, v_first + v_n - 1, v_base, v_base + v_n - 1;
END
$$;
