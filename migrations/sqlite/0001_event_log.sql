-- The append-only event log. Positions are assigned by the single writer: gapless, in
-- commit order. Every row carries its predecessor's hash and its own (see domain::chain).
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    event_id        BLOB    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     INTEGER NOT NULL, -- unix microseconds, never decreasing
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    UNIQUE (stream_id, stream_version)
);

-- The head as of the last commit: deleting events from the end of the log leaves it
-- pointing past the last row, which `keyward verify` reports.
CREATE TABLE log_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    position    INTEGER NOT NULL,
    hash        BLOB    NOT NULL,
    recorded_at INTEGER
);
INSERT INTO log_head (id, position, hash, recorded_at) VALUES (1, 0, zeroblob(32), NULL);
