-- The events that create, change or end a vault, an agent or a policy: a point-in-time
-- access review folds just these (projections::AccessModels::SHAPING_EVENTS, whose list
-- and order the condition repeats, for the statement that reads them names the same set).
-- A partial index, so the secret reads that make up most of the log cost it nothing.
CREATE INDEX events_shaping_access ON events (position)
WHERE event_type IN ('vault.created', 'vault.deleted', 'policy.created', 'policy.updated', 'policy.deleted', 'agent.registered', 'agent.updated', 'agent.raw_signing_enabled', 'agent.key_rotated', 'agent.deactivated');
