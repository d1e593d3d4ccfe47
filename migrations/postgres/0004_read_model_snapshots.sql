-- Read-model snapshots: the models as they stood at a position of the log, so that a
-- start-up folds only the tail written since (src/store/snapshot/mod.rs describes the
-- bytes in `body`, which check themselves and name the log's hash at `position`).
-- Derived data: deleting every row makes the next start-up fold the whole log.
CREATE TABLE read_model_snapshots (
    position   BIGINT PRIMARY KEY,
    body       BYTEA NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
