-- The table that records which migrations a database has. Run before every migration;
-- ORA-00955 (it exists already) is expected and ignored.
CREATE TABLE pf_schema_migrations (
    version NUMBER(10) NOT NULL,
    name VARCHAR2(100 CHAR) NOT NULL,
    applied_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_schema_migrations PRIMARY KEY (version)
);
