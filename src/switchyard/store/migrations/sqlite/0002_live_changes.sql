-- Live changes: scheduled overrides, maintenance windows, and the user that automatic
-- changes are recorded under. The same schema as oracle/0002_live_changes.sql.

ALTER TABLE pf_environment_config ADD COLUMN starts_at TEXT;

-- SQLite cannot change a CHECK constraint in place: the history table is rebuilt with the
-- new kind allowed, rows and indexes kept.
CREATE TABLE pf_config_history_next (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    revision INTEGER NOT NULL,
    change_index INTEGER NOT NULL,
    change_kind TEXT NOT NULL,
    change_timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    table_name TEXT NOT NULL,
    record_id TEXT NOT NULL,
    config_key TEXT NOT NULL,
    action TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    value_diff TEXT CHECK (value_diff IS NULL OR json_valid(value_diff)),
    change_reason TEXT,
    change_ticket TEXT,
    environment TEXT,
    override_priority INTEGER,
    config_version INTEGER,
    deployment_id TEXT,
    release_version TEXT,
    changed_by TEXT NOT NULL REFERENCES pf_users (id),
    changed_by_role TEXT,
    client_address TEXT,
    approved_by TEXT REFERENCES pf_users (id),
    approval_ticket TEXT,
    affected_services TEXT CHECK (affected_services IS NULL OR json_valid(affected_services)),
    affected_users_count INTEGER,
    risk_level TEXT,
    rollback_available INTEGER NOT NULL DEFAULT 1 CHECK (rollback_available IN (0, 1)),
    CONSTRAINT uq_config_history_revision UNIQUE (revision, change_index),
    CONSTRAINT chk_history_kind CHECK (change_kind IN
        ('config', 'flag', 'rate_limit', 'environment', 'template', 'maintenance_window')),
    CONSTRAINT chk_history_action CHECK (action IN
        ('create', 'update', 'delete', 'enable', 'disable', 'rollback'))
) STRICT;

INSERT INTO pf_config_history_next SELECT * FROM pf_config_history;

DROP TABLE pf_config_history;

ALTER TABLE pf_config_history_next RENAME TO pf_config_history;

CREATE INDEX idx_config_history_time ON pf_config_history (change_timestamp DESC);
CREATE INDEX idx_config_history_key ON pf_config_history (config_key, environment, revision);
CREATE INDEX idx_config_history_user ON pf_config_history (changed_by);

CREATE INDEX idx_env_config_starts ON pf_environment_config (starts_at);

CREATE TABLE pf_maintenance_windows (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    window_name TEXT NOT NULL,
    description TEXT,
    environment TEXT NOT NULL REFERENCES pf_environments (name),
    config_values TEXT NOT NULL CHECK (json_valid(config_values)),
    starts_at TEXT,
    ends_at TEXT,
    schedule_cron TEXT,
    duration_seconds INTEGER,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    window_state TEXT NOT NULL DEFAULT 'closed',
    window_start TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    created_by TEXT REFERENCES pf_users (id),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_by TEXT REFERENCES pf_users (id),
    CONSTRAINT uq_maintenance_windows_name UNIQUE (window_name),
    CONSTRAINT chk_window_state CHECK (window_state IN ('open', 'closed'))
) STRICT;

INSERT INTO pf_users (id, username, role_name, display_name, is_active)
VALUES ('00000000-0000-0000-0000-000000000002', 'switchyard-scheduler', 'system',
        'Changes Switchyard makes by itself: expiries, scheduled overrides, windows', 1);
