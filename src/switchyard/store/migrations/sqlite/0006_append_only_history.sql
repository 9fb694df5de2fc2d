-- The history is append-only, and the database refuses anything else, whatever sends
-- it. The same schema as oracle/0006_append_only_history.sql, which says why each part
-- is there.
--
-- SQLite drops a table's triggers with the table: a later migration that rebuilds
-- pf_config_history (copy, drop, rename) must create these triggers again. A test
-- checks that a migrated database refuses an UPDATE, a DELETE and a REPLACE.

CREATE TABLE pf_history_retention (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    keep_from_revision INTEGER NOT NULL,
    performed_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    performed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')
) STRICT;

ALTER TABLE pf_config_history ADD COLUMN rows_after TEXT
    CHECK (rows_after IS NULL OR json_valid(rows_after));

CREATE TRIGGER trg_history_no_update BEFORE UPDATE ON pf_config_history
BEGIN
    SELECT RAISE(ABORT, 'pf_config_history is append-only: record a change as a new row');
END;
/

CREATE TRIGGER trg_history_no_delete BEFORE DELETE ON pf_config_history
WHEN OLD.revision >= (SELECT COALESCE(MAX(keep_from_revision), 0) FROM pf_history_retention)
BEGIN
    SELECT RAISE(ABORT,
        'pf_config_history is append-only: record a retention in pf_history_retention first');
END;
/

-- INSERT OR REPLACE deletes the row it collides with, and SQLite fires no delete
-- trigger for that (recursive triggers are off): refuse the collision itself.
CREATE TRIGGER trg_history_no_replace BEFORE INSERT ON pf_config_history
WHEN EXISTS (SELECT 1 FROM pf_config_history
             WHERE id = NEW.id OR (revision = NEW.revision AND change_index = NEW.change_index))
BEGIN
    SELECT RAISE(ABORT, 'pf_config_history is append-only: that row exists already');
END;
/

CREATE TRIGGER trg_retention_no_update BEFORE UPDATE ON pf_history_retention
BEGIN
    SELECT RAISE(ABORT, 'pf_history_retention is append-only');
END;
/

CREATE TRIGGER trg_retention_no_delete BEFORE DELETE ON pf_history_retention
BEGIN
    SELECT RAISE(ABORT, 'pf_history_retention is append-only');
END;
/
