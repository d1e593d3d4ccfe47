-- The index's rows, narrowed: an organization, an action, an actor and a resource are each
-- stored once as a term (`audit_terms`) and everywhere else by its number, and the time
-- column is gone, since positions follow time (an event's recorded_at never decreases
-- along the log: a time window is a range of positions, found in the log). About a
-- quarter of the bytes the first layout took per event (docs/cost.md, "Disk").
--
-- The old rows are dropped and the index is rebuilt from the log, as after any loss.
DROP TABLE audit_index;
DROP TABLE audit_index_counts;

-- Every organization id, action, actor id and resource id the index names, numbered.
CREATE TABLE audit_terms (
    id   INTEGER PRIMARY KEY,
    term TEXT    NOT NULL UNIQUE
);

CREATE TABLE audit_index (
    position INTEGER PRIMARY KEY, -- the event's global position in the log
    org      INTEGER NOT NULL,    -- events no organization owns are not indexed
    action   INTEGER NOT NULL,
    actor    INTEGER,
    resource INTEGER NOT NULL
);
CREATE INDEX audit_index_by_org ON audit_index (org, position);
CREATE INDEX audit_index_by_action ON audit_index (org, action, position);
CREATE INDEX audit_index_by_actor ON audit_index (org, actor, position);
CREATE INDEX audit_index_by_resource ON audit_index (org, resource, position);

-- How many rows each organization has of each action, actor and resource: the total of an
-- unfiltered query (the sum over its actions), or one filtered on one of them, without
-- counting an organization's whole history. Kept per term, so it follows the state.
CREATE TABLE audit_index_counts (
    org    INTEGER NOT NULL,
    field  INTEGER NOT NULL, -- 1 action, 2 actor, 3 resource
    term   INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (org, field, term)
) WITHOUT ROWID;

UPDATE audit_index_head SET position = 0 WHERE id = 1;
