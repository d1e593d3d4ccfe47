-- The audit trail's index: one row per event of the log, with what GET /v1/audit/events
-- filters on, so a query reads an org's matching positions from an index instead of a
-- trail kept in memory. On SQLite it lives in a file of its own beside the log's
-- (`<log file>.audit-index`), so its writes never hold the log's write lock. Derived data:
-- deleting the file and restarting rebuilds it from the log. The record itself (details, actor type, client address) is read from the
-- event at the position. See src/store/audit_index.rs.
CREATE TABLE audit_index (
    position    INTEGER PRIMARY KEY, -- the event's global position in the log
    org_id      BLOB NOT NULL, -- events no organization owns are not indexed
    action      TEXT    NOT NULL,
    actor_id    TEXT,
    resource_id TEXT    NOT NULL,
    created_at  INTEGER NOT NULL -- unix microseconds
);
CREATE INDEX audit_index_by_org ON audit_index (org_id, position);
CREATE INDEX audit_index_by_action ON audit_index (org_id, action, position);
CREATE INDEX audit_index_by_actor ON audit_index (org_id, actor_id, position);
CREATE INDEX audit_index_by_resource ON audit_index (org_id, resource_id, position);
CREATE INDEX audit_index_by_time ON audit_index (org_id, created_at);

-- How many rows each organization has of each action: the total of an unfiltered query,
-- or one by action, without counting an organization's whole history.
CREATE TABLE audit_index_counts (
    org_id BLOB NOT NULL,
    action TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (org_id, action)
);

-- How far the index has read the log: every event up to this position is indexed (or has
-- nothing to index).
CREATE TABLE audit_index_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO audit_index_head (id, position) VALUES (1, 0);
