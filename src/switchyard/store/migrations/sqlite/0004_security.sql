-- Security: protected environments, user grants, API tokens, change requests, and the
-- history kinds and actions that record them. The same schema as oracle/0004_security.sql,
-- which says why each part is there.

ALTER TABLE pf_environments ADD COLUMN is_protected INTEGER NOT NULL DEFAULT 0
    CHECK (is_protected IN (0, 1));

UPDATE pf_environments SET is_protected = 1 WHERE name = 'production';

ALTER TABLE pf_users ADD COLUMN grants TEXT CHECK (grants IS NULL OR json_valid(grants));

CREATE TABLE pf_api_tokens (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    token_hash TEXT NOT NULL,
    token_hint TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES pf_users (id),
    description TEXT,
    grants TEXT NOT NULL CHECK (json_valid(grants)),
    expires_at TEXT,
    revoked_at TEXT,
    revoked_by TEXT REFERENCES pf_users (id),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    created_by TEXT REFERENCES pf_users (id),
    CONSTRAINT uq_api_tokens_hash UNIQUE (token_hash)
) STRICT;

CREATE INDEX idx_api_tokens_user ON pf_api_tokens (user_id);

CREATE TABLE pf_change_requests (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    status TEXT NOT NULL DEFAULT 'pending',
    change_kind TEXT NOT NULL,
    config_key TEXT NOT NULL,
    environment TEXT,
    method_name TEXT NOT NULL,
    request_body TEXT NOT NULL CHECK (json_valid(request_body)),
    content_digest TEXT NOT NULL,
    base_revision INTEGER NOT NULL,
    proposed_by TEXT NOT NULL REFERENCES pf_users (id),
    proposed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    change_reason TEXT,
    change_ticket TEXT,
    decided_by TEXT REFERENCES pf_users (id),
    decided_at TEXT,
    decision_reason TEXT,
    approval_ticket TEXT,
    applied_revision INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT chk_change_request_status CHECK (status IN ('pending', 'applied', 'rejected'))
) STRICT;

CREATE INDEX idx_change_requests_status ON pf_change_requests (status, proposed_at);

-- SQLite cannot change a CHECK constraint in place: the history table is rebuilt with the
-- new kinds and actions allowed, rows and indexes kept.
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
        ('config', 'flag', 'rate_limit', 'environment', 'template', 'maintenance_window',
         'token', 'user', 'change_request')),
    CONSTRAINT chk_history_action CHECK (action IN
        ('create', 'update', 'delete', 'enable', 'disable', 'rollback',
         'propose', 'approve', 'reject', 'revoke'))
) STRICT;

INSERT INTO pf_config_history_next SELECT * FROM pf_config_history;

DROP TABLE pf_config_history;

ALTER TABLE pf_config_history_next RENAME TO pf_config_history;

CREATE INDEX idx_config_history_time ON pf_config_history (change_timestamp DESC);
CREATE INDEX idx_config_history_key ON pf_config_history (config_key, environment, revision);
CREATE INDEX idx_config_history_user ON pf_config_history (changed_by);
