-- The append-only event log. Positions are assigned under a transaction-scoped advisory
-- lock, so they are gapless and commit in order even with several keyward processes.
-- Every row carries its predecessor's hash and its own (see domain::chain).
CREATE TABLE events (
    position        BIGINT  PRIMARY KEY,
    event_id        UUID    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  BIGINT  NOT NULL,
    payload         TEXT    NOT NULL, -- text, not jsonb: the hashed bytes must survive
    metadata        TEXT    NOT NULL,
    recorded_at     BIGINT  NOT NULL, -- unix microseconds, never decreasing
    prev_hash       BYTEA   NOT NULL,
    hash            BYTEA   NOT NULL,
    UNIQUE (stream_id, stream_version)
);

-- The head as of the last commit: deleting events from the end of the log leaves it
-- pointing past the last row, which `keyward verify` reports.
CREATE TABLE log_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    position    BIGINT  NOT NULL,
    hash        BYTEA   NOT NULL,
    recorded_at BIGINT
);
INSERT INTO log_head (id, position, hash, recorded_at) VALUES (1, 0, decode(repeat('00', 32), 'hex'), NULL);
