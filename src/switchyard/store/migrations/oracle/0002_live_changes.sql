-- Live changes: scheduled overrides, maintenance windows, and the user that automatic
-- changes (an override expiring, a window opening) are recorded under.
--
-- * pf_environment_config.starts_at: an override written ahead of time stays inactive
--   until then; the scheduler activates it (a recorded change, with its event).
-- * pf_maintenance_windows: values of several keys in one environment that apply
--   together at the window's start and revert together at its end, once (starts_at ..
--   ends_at) or on a cron schedule for duration_seconds. window_state and window_start
--   say whether the values are applied and for which window, so that every change
--   happens once across replicas and a restart inside a window resumes it.
-- * History rows of kind 'maintenance_window' record changes to the windows themselves.

ALTER TABLE pf_environment_config ADD (starts_at TIMESTAMP);

ALTER TABLE pf_config_history DROP CONSTRAINT chk_history_kind;

ALTER TABLE pf_config_history ADD CONSTRAINT chk_history_kind CHECK (change_kind IN
    ('config', 'flag', 'rate_limit', 'environment', 'template', 'maintenance_window'));

CREATE INDEX idx_env_config_starts ON pf_environment_config (starts_at);

CREATE TABLE pf_maintenance_windows (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    window_name VARCHAR2(100 CHAR) NOT NULL,
    description VARCHAR2(1000 CHAR),
    environment VARCHAR2(20 CHAR) NOT NULL,
    config_values CLOB NOT NULL CHECK (config_values IS JSON),
    starts_at TIMESTAMP,
    ends_at TIMESTAMP,
    schedule_cron VARCHAR2(100 CHAR),
    duration_seconds NUMBER(10),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    window_state VARCHAR2(20 CHAR) DEFAULT 'closed' NOT NULL,
    window_start TIMESTAMP,
    version NUMBER(10) DEFAULT 1 NOT NULL,
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    created_by VARCHAR2(36 CHAR),
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_by VARCHAR2(36 CHAR),
    CONSTRAINT pk_maintenance_windows PRIMARY KEY (id),
    CONSTRAINT uq_maintenance_windows_name UNIQUE (window_name),
    CONSTRAINT fk_maint_windows_environment FOREIGN KEY (environment)
        REFERENCES pf_environments (name),
    CONSTRAINT fk_maint_windows_created_by FOREIGN KEY (created_by) REFERENCES pf_users (id),
    CONSTRAINT fk_maint_windows_updated_by FOREIGN KEY (updated_by) REFERENCES pf_users (id),
    CONSTRAINT chk_window_state CHECK (window_state IN ('open', 'closed'))
);

INSERT INTO pf_users (id, username, role_name, display_name, is_active)
VALUES ('00000000-0000-0000-0000-000000000002', 'switchyard-scheduler', 'system',
        'Changes Switchyard makes by itself: expiries, scheduled overrides, windows', 1);
