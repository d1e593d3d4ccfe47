-- The audit index's counts, kept per combination of filters and per block of 4096
-- positions, so that every total GET /v1/audit/events answers is read from them: a query
-- filtered on any of action, actor and resource, and on a time window (a range of
-- positions), counts index rows only in the two blocks at the window's edges. See
-- src/store/audit_index.rs.
--
-- The rows are dropped and the index is rebuilt from the log, as after any loss.
DROP TABLE audit_index_counts;
TRUNCATE audit_index;

CREATE TABLE audit_index_counts (
    org      BIGINT NOT NULL,
    facet    BIGINT NOT NULL, -- the fields filtered on: 1 action, 2 actor, 4 resource, summed
    action   BIGINT NOT NULL, -- the term, or 0 where the facet does not filter on it
    actor    BIGINT NOT NULL,
    resource BIGINT NOT NULL,
    block    BIGINT NOT NULL, -- position / 4096, or -1 for the whole history
    count    BIGINT NOT NULL,
    PRIMARY KEY (org, facet, action, actor, resource, block)
);

UPDATE audit_index_head SET position = 0 WHERE id = 1;
