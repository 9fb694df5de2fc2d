-- Switchyard's schema for SQLite: the same tables, columns, keys and indexes as
-- oracle/0001_initial.sql (a test compares the two), in SQLite's types. Tables are
-- STRICT, so a value of the wrong type is refused as Oracle would refuse it. Timestamps
-- are UTC text of one fixed width ('YYYY-MM-DD HH:MM:SS.ffffff'), so that comparing the
-- text compares the moments. See the Oracle file for how the schema departs from the
-- specification's DDL, and why.

CREATE TABLE pf_users (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    username TEXT NOT NULL,
    role_name TEXT NOT NULL,
    display_name TEXT,
    email TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    CONSTRAINT uq_users_username UNIQUE (username)
) STRICT;

CREATE TABLE pf_environments (
    name TEXT NOT NULL PRIMARY KEY,
    parent_name TEXT REFERENCES pf_environments (name),
    description TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')
) STRICT;

CREATE TABLE pf_revision (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
) STRICT;

CREATE TABLE pf_system_config (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    config_key TEXT NOT NULL,
    config_value TEXT,
    config_type TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT,
    display_name TEXT,
    description TEXT,
    help_text TEXT,
    default_value TEXT,
    is_required INTEGER NOT NULL DEFAULT 0 CHECK (is_required IN (0, 1)),
    is_sensitive INTEGER NOT NULL DEFAULT 0 CHECK (is_sensitive IN (0, 1)),
    is_encrypted INTEGER NOT NULL DEFAULT 0 CHECK (is_encrypted IN (0, 1)),
    validation_rule TEXT,
    allowed_values TEXT CHECK (allowed_values IS NULL OR json_valid(allowed_values)),
    min_value REAL,
    max_value REAL,
    regex_pattern TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_editable INTEGER NOT NULL DEFAULT 1 CHECK (is_editable IN (0, 1)),
    is_deletable INTEGER NOT NULL DEFAULT 1 CHECK (is_deletable IN (0, 1)),
    requires_restart INTEGER NOT NULL DEFAULT 0 CHECK (requires_restart IN (0, 1)),
    cache_ttl_seconds INTEGER NOT NULL DEFAULT 300,
    depends_on TEXT CHECK (depends_on IS NULL OR json_valid(depends_on)),
    conflicts_with TEXT CHECK (conflicts_with IS NULL OR json_valid(conflicts_with)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    created_by TEXT REFERENCES pf_users (id),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_by TEXT REFERENCES pf_users (id),
    version INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT uq_system_config_key UNIQUE (config_key),
    CONSTRAINT chk_config_type CHECK (config_type IN
        ('string', 'number', 'boolean', 'json', 'array',
         'date', 'url', 'email', 'duration', 'cron'))
) STRICT;

CREATE TABLE pf_environment_config (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    environment TEXT NOT NULL REFERENCES pf_environments (name),
    config_key TEXT NOT NULL,
    config_value TEXT,
    base_config_id TEXT REFERENCES pf_system_config (id),
    override_reason TEXT,
    override_approved_by TEXT REFERENCES pf_users (id),
    is_temporary INTEGER NOT NULL DEFAULT 0 CHECK (is_temporary IN (0, 1)),
    expires_at TEXT,
    revert_to_value TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    priority INTEGER NOT NULL DEFAULT 100,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    created_by TEXT REFERENCES pf_users (id),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_by TEXT REFERENCES pf_users (id),
    CONSTRAINT uq_environment_config UNIQUE (config_key, environment, priority)
) STRICT;

CREATE TABLE pf_feature_flags (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    feature_key TEXT NOT NULL,
    feature_name TEXT NOT NULL,
    description TEXT,
    is_enabled INTEGER NOT NULL DEFAULT 0 CHECK (is_enabled IN (0, 1)),
    rollout_percentage INTEGER NOT NULL DEFAULT 0,
    rollout_strategy TEXT,
    enabled_for_users TEXT CHECK (enabled_for_users IS NULL OR json_valid(enabled_for_users)),
    enabled_for_roles TEXT CHECK (enabled_for_roles IS NULL OR json_valid(enabled_for_roles)),
    enabled_for_groups TEXT CHECK (enabled_for_groups IS NULL OR json_valid(enabled_for_groups)),
    enabled_environments TEXT
        CHECK (enabled_environments IS NULL OR json_valid(enabled_environments)),
    targeting_rules TEXT CHECK (targeting_rules IS NULL OR json_valid(targeting_rules)),
    start_date TEXT,
    end_date TEXT,
    schedule_cron TEXT,
    prerequisite_features TEXT
        CHECK (prerequisite_features IS NULL OR json_valid(prerequisite_features)),
    conflicts_with TEXT CHECK (conflicts_with IS NULL OR json_valid(conflicts_with)),
    feature_category TEXT,
    feature_type TEXT,
    impact_level TEXT,
    owner_team TEXT,
    owner_email TEXT,
    documentation_url TEXT,
    jira_ticket TEXT,
    metrics_enabled INTEGER NOT NULL DEFAULT 1 CHECK (metrics_enabled IN (0, 1)),
    success_metrics TEXT CHECK (success_metrics IS NULL OR json_valid(success_metrics)),
    failure_threshold REAL,
    auto_disable_on_error INTEGER NOT NULL DEFAULT 0 CHECK (auto_disable_on_error IN (0, 1)),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_permanent INTEGER NOT NULL DEFAULT 0 CHECK (is_permanent IN (0, 1)),
    is_deprecated INTEGER NOT NULL DEFAULT 0 CHECK (is_deprecated IN (0, 1)),
    deprecation_date TEXT,
    cache_ttl_seconds INTEGER NOT NULL DEFAULT 60,
    last_evaluated TEXT,
    evaluation_count INTEGER NOT NULL DEFAULT 0,
    variants TEXT CHECK (variants IS NULL OR json_valid(variants)),
    rollout_rings TEXT CHECK (rollout_rings IS NULL OR json_valid(rollout_rings)),
    gradual_start TEXT,
    gradual_end TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    created_by TEXT REFERENCES pf_users (id),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_by TEXT REFERENCES pf_users (id),
    CONSTRAINT uq_feature_flags_key UNIQUE (feature_key),
    CONSTRAINT chk_rollout CHECK (rollout_percentage BETWEEN 0 AND 100),
    CONSTRAINT chk_rollout_strategy CHECK (rollout_strategy IN
        ('percentage', 'user_list', 'gradual', 'ring')),
    CONSTRAINT chk_feature_category CHECK (feature_category IN
        ('experimental', 'beta', 'stable', 'deprecated', 'sunset')),
    CONSTRAINT chk_feature_type CHECK (feature_type IN
        ('release', 'experiment', 'ops', 'permission')),
    CONSTRAINT chk_impact_level CHECK (impact_level IN ('low', 'medium', 'high', 'critical'))
) STRICT;

CREATE TABLE pf_config_history (
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
        ('config', 'flag', 'rate_limit', 'environment', 'template')),
    CONSTRAINT chk_history_action CHECK (action IN
        ('create', 'update', 'delete', 'enable', 'disable', 'rollback'))
) STRICT;

CREATE TABLE pf_rate_limits (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    limit_key TEXT NOT NULL,
    limit_name TEXT NOT NULL,
    description TEXT,
    max_requests INTEGER NOT NULL,
    time_window_seconds INTEGER NOT NULL,
    burst_size INTEGER,
    queue_size INTEGER NOT NULL DEFAULT 0,
    scope_type TEXT NOT NULL,
    scope_pattern TEXT,
    applies_to TEXT,
    http_methods TEXT,
    action_on_limit TEXT NOT NULL DEFAULT 'block',
    block_duration_seconds INTEGER NOT NULL DEFAULT 60,
    retry_after_header INTEGER NOT NULL DEFAULT 1 CHECK (retry_after_header IN (0, 1)),
    custom_error_message TEXT,
    redirect_url TEXT,
    exempt_roles TEXT CHECK (exempt_roles IS NULL OR json_valid(exempt_roles)),
    exempt_users TEXT CHECK (exempt_users IS NULL OR json_valid(exempt_users)),
    exempt_ips TEXT CHECK (exempt_ips IS NULL OR json_valid(exempt_ips)),
    exempt_api_keys TEXT CHECK (exempt_api_keys IS NULL OR json_valid(exempt_api_keys)),
    sliding_window INTEGER NOT NULL DEFAULT 1 CHECK (sliding_window IN (0, 1)),
    distributed INTEGER NOT NULL DEFAULT 1 CHECK (distributed IN (0, 1)),
    fail_closed INTEGER NOT NULL DEFAULT 0 CHECK (fail_closed IN (0, 1)),
    inherit_from TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    priority INTEGER NOT NULL DEFAULT 100,
    environment TEXT REFERENCES pf_environments (name),
    track_metrics INTEGER NOT NULL DEFAULT 1 CHECK (track_metrics IN (0, 1)),
    alert_threshold_percentage INTEGER NOT NULL DEFAULT 80,
    last_triggered TEXT,
    trigger_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    CONSTRAINT uq_rate_limits_key UNIQUE (limit_key),
    CONSTRAINT chk_scope_type CHECK (scope_type IN
        ('global', 'user', 'role', 'ip', 'api_key', 'endpoint', 'service')),
    CONSTRAINT chk_action_on_limit CHECK (action_on_limit IN
        ('block', 'throttle', 'queue', 'log', 'captcha'))
) STRICT;

CREATE TABLE pf_config_templates (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    template_name TEXT NOT NULL,
    template_type TEXT NOT NULL,
    description TEXT,
    config_values TEXT NOT NULL CHECK (json_valid(config_values)),
    feature_flags TEXT CHECK (feature_flags IS NULL OR json_valid(feature_flags)),
    rate_limits TEXT CHECK (rate_limits IS NULL OR json_valid(rate_limits)),
    suitable_environments TEXT
        CHECK (suitable_environments IS NULL OR json_valid(suitable_environments)),
    suitable_scale TEXT,
    prerequisites TEXT CHECK (prerequisites IS NULL OR json_valid(prerequisites)),
    version TEXT,
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    usage_count INTEGER NOT NULL DEFAULT 0,
    author TEXT,
    team TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    CONSTRAINT uq_config_templates_name UNIQUE (template_name)
) STRICT;

CREATE INDEX idx_config_category ON pf_system_config (category, subcategory);
CREATE INDEX idx_config_active ON pf_system_config (is_active);

CREATE INDEX idx_env_config_env ON pf_environment_config (environment, config_key);
CREATE INDEX idx_env_config_active ON pf_environment_config (is_active, environment);
CREATE INDEX idx_env_config_expires ON pf_environment_config (expires_at);
CREATE INDEX idx_env_config_base ON pf_environment_config (base_config_id);

CREATE INDEX idx_feature_enabled ON pf_feature_flags (is_enabled, is_active);
CREATE INDEX idx_feature_dates ON pf_feature_flags (start_date, end_date);
CREATE INDEX idx_feature_category ON pf_feature_flags (feature_category);

CREATE INDEX idx_config_history_time ON pf_config_history (change_timestamp DESC);
CREATE INDEX idx_config_history_key ON pf_config_history (config_key, environment, revision);
CREATE INDEX idx_config_history_user ON pf_config_history (changed_by);

CREATE INDEX idx_rate_limits_active ON pf_rate_limits (is_active, priority DESC);
CREATE INDEX idx_rate_limits_scope ON pf_rate_limits (scope_type, scope_pattern);

INSERT INTO pf_revision (id, revision) VALUES (1, 0);

INSERT INTO pf_users (id, username, role_name, display_name, is_active)
VALUES ('00000000-0000-0000-0000-000000000001', 'local-operator', 'site_admin',
        'Local operator (embedded default, no authentication)', 1);

INSERT INTO pf_environments (name, parent_name, description)
VALUES ('development', NULL, 'Developers'' shared environment');
INSERT INTO pf_environments (name, parent_name, description)
VALUES ('test', NULL, 'Automated tests');
INSERT INTO pf_environments (name, parent_name, description)
VALUES ('staging', NULL, 'Pre-production');
INSERT INTO pf_environments (name, parent_name, description)
VALUES ('production', NULL, 'Production');
INSERT INTO pf_environments (name, parent_name, description)
VALUES ('demo', 'production', 'Demonstrations: production''s values unless overridden');
INSERT INTO pf_environments (name, parent_name, description)
VALUES ('local', 'development', 'A developer''s machine: development''s values unless overridden');
