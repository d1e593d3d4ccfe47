-- Events packed (docs/cost.md, "Disk"). From this release on, an event's payload and
-- metadata are stored together in `payload`, compressed with zstd against a dictionary
-- made of the log's own recent events, and `metadata` holds an empty blob. A row whose
-- `payload` is text is an event stored before: it reads as it always did. Nothing is
-- copied: the hash chain covers the JSON either way, and reads unpack it.
--
-- A dictionary is written once, before the first event packed with it, and never changed
-- or deleted while an event names it.
CREATE TABLE event_dictionaries (
    id       INTEGER PRIMARY KEY,
    content  BLOB    NOT NULL
);
