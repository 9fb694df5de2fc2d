-- The history is append-only, and the database refuses anything else, whatever sends it.
--
-- * Triggers refuse every UPDATE of pf_config_history, and every DELETE but the
--   explicit retention below. No code path of the service updates or deletes a history
--   row (a test reads every statement it can send); these refuse a hand-written one, a
--   tool's or a future bug's.
-- * Retention is an explicit, recorded operation: an operator first inserts a row into
--   pf_history_retention (from which revision on the history is kept, who, why), and
--   only then may rows below that revision be deleted. The ledger itself is
--   append-only too. Watchers that ask for a revision older than the oldest kept one are
--   told so (OUT_OF_RANGE, COMPACTED) and read the current state again.
-- * TRUNCATE is DDL and fires no DML trigger; it needs the table's owner (or DROP ANY
--   TABLE). Run the service as a user that is granted SELECT and INSERT on the history,
--   not as the schema owner, and no statement it can send empties it.
-- * pf_config_history.rows_after: the rows a change wrote, as it left them, by table
--   name (null for a row it removed): what old_value and new_value do not hold when they
--   are a value rather than a whole definition (an override's expiry and schedule, the
--   stamps of every row). With it, replaying the history rebuilds every table exactly.
--   Rows recorded before this migration have none.
-- * Each trigger guards one event, with the name the SQLite schema gives it (SQLite
--   triggers have one event each).

CREATE TABLE pf_history_retention (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    keep_from_revision NUMBER(19) NOT NULL,
    performed_by VARCHAR2(100 CHAR) NOT NULL,
    reason VARCHAR2(1000 CHAR) NOT NULL,
    performed_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_history_retention PRIMARY KEY (id)
);

ALTER TABLE pf_config_history ADD (rows_after CLOB
    CONSTRAINT chk_history_rows_after CHECK (rows_after IS JSON));

CREATE OR REPLACE TRIGGER trg_history_no_update
BEFORE UPDATE ON pf_config_history
BEGIN
    RAISE_APPLICATION_ERROR(-20001,
        'pf_config_history is append-only: record a change as a new row');
END;
/

CREATE OR REPLACE TRIGGER trg_history_no_delete
BEFORE DELETE ON pf_config_history
FOR EACH ROW
DECLARE
    kept NUMBER(19);
BEGIN
    SELECT COALESCE(MAX(keep_from_revision), 0) INTO kept FROM pf_history_retention;
    IF :OLD.revision >= kept THEN
        RAISE_APPLICATION_ERROR(-20002,
            'pf_config_history is append-only: record a retention in pf_history_retention first');
    END IF;
END;
/

CREATE OR REPLACE TRIGGER trg_retention_no_update
BEFORE UPDATE ON pf_history_retention
BEGIN
    RAISE_APPLICATION_ERROR(-20001, 'pf_history_retention is append-only');
END;
/

CREATE OR REPLACE TRIGGER trg_retention_no_delete
BEFORE DELETE ON pf_history_retention
BEGIN
    RAISE_APPLICATION_ERROR(-20002, 'pf_history_retention is append-only');
END;
/
