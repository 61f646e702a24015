-- A retry must resend the same events, not only the same ids (issue 16): kefu_append also
-- compares the stored type and payload (as jsonb, so key order does not matter) before it
-- acknowledges a batch whose ids are stored.
-- Appends one batch to one stream; called once per transaction.
-- p_expected: -1 any, -2 no stream, n >= 0 the exact current version.
-- Raises KF001 (detail: the current version, or empty) on a wrong expected version, and
-- KF002 (detail: '<id> <where it is>') when some of the ids are stored but not as this batch.
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
    v_found   integer;
    v_first   bigint;
    v_bad     record;
    v_base    bigint;
BEGIN
    -- One writer per stream. The lock assigns no transaction id, so this transaction's id
    -- (and its events' positions) is taken only once it holds the stream.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 0));

    SELECT e.version INTO v_current
      FROM events e WHERE e.stream_id = p_stream ORDER BY e.version DESC LIMIT 1;

    SELECT count(*) INTO v_found FROM events e WHERE e.id = ANY (p_ids);
    IF v_found > 0 THEN
        -- A retry is acknowledged only if the whole batch is stored, in order, in this stream.
        SELECT e.version INTO v_first FROM events e WHERE e.id = p_ids[1];
        SELECT b.id, b.ord, e.stream_id, e.version INTO v_bad
          FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord)
          LEFT JOIN events e ON e.id = b.id
         WHERE e.id IS NULL OR e.stream_id <> p_stream OR v_first IS NULL
            OR e.version <> v_first + b.ord - 1
         ORDER BY b.ord LIMIT 1;
        IF FOUND THEN
            IF v_bad.stream_id IS NULL THEN
                SELECT b.id, b.ord, e.stream_id, e.version INTO v_bad
                  FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord) JOIN events e ON e.id = b.id
                 ORDER BY b.ord LIMIT 1;
                RAISE EXCEPTION 'some event ids of the batch are already stored'
                    USING ERRCODE = 'KF002',
                          DETAIL = v_bad.id::text || ' stored in ' || v_bad.stream_id
                                   || ' at version ' || v_bad.version
                                   || ', but other events of the batch are not: a retry must resend the same batch';
            END IF;
            RAISE EXCEPTION 'some event ids of the batch are already stored elsewhere'
                USING ERRCODE = 'KF002',
                      DETAIL = v_bad.id::text || ' stored in ' || v_bad.stream_id
                               || ' at version ' || v_bad.version || ', not as event '
                               || (v_bad.ord - 1) || ' of this batch to ' || p_stream;
        END IF;
        -- The same ids must carry the same events: a reused id with another type or payload
        -- is not a retry.
        SELECT b.id, e.stream_id, e.version, e.event_type INTO v_bad
          FROM unnest(p_ids) WITH ORDINALITY AS b(id, ord) JOIN events e ON e.id = b.id
         WHERE e.event_type <> p_types[b.ord] OR e.payload <> p_payloads[b.ord]::jsonb
         ORDER BY b.ord LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'an event id of the batch is stored with another event'
                USING ERRCODE = 'KF002',
                      DETAIL = v_bad.id::text || ' stored in ' || v_bad.stream_id
                               || ' at version ' || v_bad.version || ' as another event ('
                               || v_bad.event_type || ', or another payload): a reused id must carry the same event';
        END IF;
        IF (p_expected = -2 AND v_first <> 0) OR (p_expected >= 0 AND v_first <> p_expected + 1) THEN
            RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'KF001',
                DETAIL = coalesce(v_current::text, '');
        END IF;
        RETURN QUERY
            SELECT min(e.version), max(e.version), min(e.position), max(e.position)
              FROM events e WHERE e.id = ANY (p_ids);
        RETURN;
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
