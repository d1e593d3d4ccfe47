-- Streams stored as numbers (docs/cost.md, "Disk"). A stream id such as
-- `secret-<64 hex digits>` was stored with every event and again in the stream index:
-- about 140 bytes of every audited read. It is now stored once, in `streams`, and the log
-- names it by number. The hash chain is unchanged: events still hash their stream id, read
-- back through `streams`.
--
-- The event id's unique index goes with the old table: ids are random (UUID v7), covered
-- by the hash, and never looked up, so the index only cost 30 bytes an event.
--
-- This copies the log once, at the first start of the release that brings it.
CREATE TABLE streams (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);
INSERT INTO streams (name) SELECT stream_id FROM events GROUP BY stream_id ORDER BY MIN(position);

CREATE TABLE events_by_stream_number (
    position        INTEGER PRIMARY KEY,
    event_id        BLOB    NOT NULL,
    stream          INTEGER NOT NULL, -- streams.id
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     INTEGER NOT NULL, -- unix microseconds, never decreasing
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    UNIQUE (stream, stream_version)
);
INSERT INTO events_by_stream_number
SELECT e.position, e.event_id, s.id, e.stream_version, e.event_type, e.schema_version,
       e.payload, e.metadata, e.recorded_at, e.prev_hash, e.hash
FROM events e JOIN streams s ON s.name = e.stream_id
ORDER BY e.position;
DROP TABLE events;
ALTER TABLE events_by_stream_number RENAME TO events;

-- As in 0003, whose index went with the old table.
CREATE INDEX events_shaping_access ON events (position)
WHERE event_type IN ('vault.created', 'vault.deleted', 'policy.created', 'policy.updated', 'policy.deleted', 'agent.registered', 'agent.updated', 'agent.raw_signing_enabled', 'agent.key_rotated', 'agent.deactivated');
