-- The archive's registry: one row per batch moved out of `events`, written in the transaction
-- that deletes the batch's events (archive.rs), so the hot store knows exactly what left it.
-- `seq` grows in commit order: registrations take an EXCLUSIVE lock on the table first.
-- IF NOT EXISTS: running this twice changes nothing.
CREATE TABLE IF NOT EXISTS kefu_archive_batches (
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    event_count    bigint      NOT NULL,
    sha256         text        NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now()
);
