-- Switchyard's schema for Oracle Database 19c and later: the specification's tables,
-- corrected where its DDL does not run on Oracle or would lose data.
--
-- What changed from the specification, and why:
-- * No index duplicates a UNIQUE constraint (idx_config_key, idx_feature_key and
--   idx_rate_limits_key would fail with ORA-01408: the constraint already indexes them).
-- * idx_env_config_expires is a plain index: Oracle has no partial indexes, and a B-tree
--   index leaves out rows whose keys are all NULL anyway, so it holds only the rows with
--   an expires_at, as the partial index meant to.
-- * Booleans are NUMBER(1) NOT NULL with a CHECK (0, 1): 19c has no BOOLEAN.
-- * Text columns use character length semantics (VARCHAR2(n CHAR)): the service counts
--   characters, and the byte default would refuse accented text that fits.
-- * Environments are a table (pf_environments, with the parent each inherits from)
--   instead of a CHECK list, so that inheritance and new environments are data.
-- * Overrides are unique per (key, environment, priority): a temporary override at a
--   higher priority sits above the standing one in the same environment.
-- * min_value and max_value are NUMBER without precision: NUMBER(20,5) would round a
--   bound of 0.000001 to 0 and refuse bounds above 10^15.
-- * override_reason holds 1000 characters, as change_reason does, since it is the
--   reason of the same write.
-- * pf_config_history is append-only: the rollback_performed/_at/_by/_reason/_command
--   columns, which the specification's sketch updated in place, are gone; a rollback is
--   a history row of its own (action 'rollback'). Rows carry the global revision (one
--   per transaction, numbered by pf_revision), their position in the transaction, the
--   kind of object changed, the caller's address, the key's version after the change
--   and the priority of the override changed.
-- * Timestamps are UTC (SYS_EXTRACT_UTC(SYSTIMESTAMP)), not the session time zone.
-- * Rows that the service creates carry ids it generates (UUIDs); SYS_GUID() remains
--   the default for rows inserted by hand.

CREATE TABLE pf_users (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    username VARCHAR2(100 CHAR) NOT NULL,
    role_name VARCHAR2(50 CHAR) NOT NULL,
    display_name VARCHAR2(255 CHAR),
    email VARCHAR2(255 CHAR),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_username UNIQUE (username)
);

CREATE TABLE pf_environments (
    name VARCHAR2(20 CHAR) NOT NULL,
    parent_name VARCHAR2(20 CHAR),
    description VARCHAR2(500 CHAR),
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_environments PRIMARY KEY (name),
    CONSTRAINT fk_environments_parent FOREIGN KEY (parent_name)
        REFERENCES pf_environments (name)
);

CREATE TABLE pf_revision (
    id NUMBER(1) NOT NULL CHECK (id = 1),
    revision NUMBER(19) NOT NULL,
    CONSTRAINT pk_revision PRIMARY KEY (id)
);

CREATE TABLE pf_system_config (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    config_key VARCHAR2(100 CHAR) NOT NULL,
    config_value CLOB,
    config_type VARCHAR2(20 CHAR) NOT NULL,
    category VARCHAR2(50 CHAR) NOT NULL,
    subcategory VARCHAR2(50 CHAR),
    display_name VARCHAR2(255 CHAR),
    description VARCHAR2(1000 CHAR),
    help_text CLOB,
    default_value CLOB,
    is_required NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_required IN (0, 1)),
    is_sensitive NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_sensitive IN (0, 1)),
    is_encrypted NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_encrypted IN (0, 1)),
    validation_rule VARCHAR2(500 CHAR),
    allowed_values CLOB CHECK (allowed_values IS JSON),
    min_value NUMBER,
    max_value NUMBER,
    regex_pattern VARCHAR2(500 CHAR),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    is_editable NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_editable IN (0, 1)),
    is_deletable NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_deletable IN (0, 1)),
    requires_restart NUMBER(1) DEFAULT 0 NOT NULL CHECK (requires_restart IN (0, 1)),
    cache_ttl_seconds NUMBER(10) DEFAULT 300 NOT NULL,
    depends_on CLOB CHECK (depends_on IS JSON),
    conflicts_with CLOB CHECK (conflicts_with IS JSON),
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    created_by VARCHAR2(36 CHAR),
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_by VARCHAR2(36 CHAR),
    version NUMBER(10) DEFAULT 1 NOT NULL,
    CONSTRAINT pk_system_config PRIMARY KEY (id),
    CONSTRAINT uq_system_config_key UNIQUE (config_key),
    CONSTRAINT fk_system_config_created_by FOREIGN KEY (created_by) REFERENCES pf_users (id),
    CONSTRAINT fk_system_config_updated_by FOREIGN KEY (updated_by) REFERENCES pf_users (id),
    CONSTRAINT chk_config_type CHECK (config_type IN
        ('string', 'number', 'boolean', 'json', 'array',
         'date', 'url', 'email', 'duration', 'cron'))
);

CREATE TABLE pf_environment_config (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    environment VARCHAR2(20 CHAR) NOT NULL,
    config_key VARCHAR2(100 CHAR) NOT NULL,
    config_value CLOB,
    base_config_id VARCHAR2(36 CHAR),
    override_reason VARCHAR2(1000 CHAR),
    override_approved_by VARCHAR2(36 CHAR),
    is_temporary NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_temporary IN (0, 1)),
    expires_at TIMESTAMP,
    revert_to_value CLOB,
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    priority NUMBER(5) DEFAULT 100 NOT NULL,
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    created_by VARCHAR2(36 CHAR),
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_by VARCHAR2(36 CHAR),
    CONSTRAINT pk_environment_config PRIMARY KEY (id),
    CONSTRAINT uq_environment_config UNIQUE (config_key, environment, priority),
    CONSTRAINT fk_env_config_environment FOREIGN KEY (environment)
        REFERENCES pf_environments (name),
    CONSTRAINT fk_env_config_base FOREIGN KEY (base_config_id)
        REFERENCES pf_system_config (id),
    CONSTRAINT fk_env_config_approved_by FOREIGN KEY (override_approved_by)
        REFERENCES pf_users (id),
    CONSTRAINT fk_env_config_created_by FOREIGN KEY (created_by) REFERENCES pf_users (id),
    CONSTRAINT fk_env_config_updated_by FOREIGN KEY (updated_by) REFERENCES pf_users (id)
);

CREATE TABLE pf_feature_flags (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    feature_key VARCHAR2(100 CHAR) NOT NULL,
    feature_name VARCHAR2(255 CHAR) NOT NULL,
    description VARCHAR2(1000 CHAR),
    is_enabled NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_enabled IN (0, 1)),
    rollout_percentage NUMBER(3) DEFAULT 0 NOT NULL,
    rollout_strategy VARCHAR2(50 CHAR),
    enabled_for_users CLOB CHECK (enabled_for_users IS JSON),
    enabled_for_roles CLOB CHECK (enabled_for_roles IS JSON),
    enabled_for_groups CLOB CHECK (enabled_for_groups IS JSON),
    enabled_environments CLOB CHECK (enabled_environments IS JSON),
    targeting_rules CLOB CHECK (targeting_rules IS JSON),
    start_date TIMESTAMP,
    end_date TIMESTAMP,
    schedule_cron VARCHAR2(100 CHAR),
    prerequisite_features CLOB CHECK (prerequisite_features IS JSON),
    conflicts_with CLOB CHECK (conflicts_with IS JSON),
    feature_category VARCHAR2(50 CHAR),
    feature_type VARCHAR2(50 CHAR),
    impact_level VARCHAR2(20 CHAR),
    owner_team VARCHAR2(100 CHAR),
    owner_email VARCHAR2(255 CHAR),
    documentation_url VARCHAR2(500 CHAR),
    jira_ticket VARCHAR2(50 CHAR),
    metrics_enabled NUMBER(1) DEFAULT 1 NOT NULL CHECK (metrics_enabled IN (0, 1)),
    success_metrics CLOB CHECK (success_metrics IS JSON),
    failure_threshold NUMBER(10, 2),
    auto_disable_on_error NUMBER(1) DEFAULT 0 NOT NULL CHECK (auto_disable_on_error IN (0, 1)),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    is_permanent NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_permanent IN (0, 1)),
    is_deprecated NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_deprecated IN (0, 1)),
    deprecation_date TIMESTAMP,
    cache_ttl_seconds NUMBER(10) DEFAULT 60 NOT NULL,
    last_evaluated TIMESTAMP,
    evaluation_count NUMBER(20) DEFAULT 0 NOT NULL,
    variants CLOB CHECK (variants IS JSON),
    rollout_rings CLOB CHECK (rollout_rings IS JSON),
    gradual_start TIMESTAMP,
    gradual_end TIMESTAMP,
    version NUMBER(10) DEFAULT 1 NOT NULL,
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    created_by VARCHAR2(36 CHAR),
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_by VARCHAR2(36 CHAR),
    CONSTRAINT pk_feature_flags PRIMARY KEY (id),
    CONSTRAINT uq_feature_flags_key UNIQUE (feature_key),
    CONSTRAINT fk_feature_flags_created_by FOREIGN KEY (created_by) REFERENCES pf_users (id),
    CONSTRAINT fk_feature_flags_updated_by FOREIGN KEY (updated_by) REFERENCES pf_users (id),
    CONSTRAINT chk_rollout CHECK (rollout_percentage BETWEEN 0 AND 100),
    CONSTRAINT chk_rollout_strategy CHECK (rollout_strategy IN
        ('percentage', 'user_list', 'gradual', 'ring')),
    CONSTRAINT chk_feature_category CHECK (feature_category IN
        ('experimental', 'beta', 'stable', 'deprecated', 'sunset')),
    CONSTRAINT chk_feature_type CHECK (feature_type IN
        ('release', 'experiment', 'ops', 'permission')),
    CONSTRAINT chk_impact_level CHECK (impact_level IN ('low', 'medium', 'high', 'critical'))
);

CREATE TABLE pf_config_history (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    revision NUMBER(19) NOT NULL,
    change_index NUMBER(5) NOT NULL,
    change_kind VARCHAR2(20 CHAR) NOT NULL,
    change_timestamp TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    table_name VARCHAR2(50 CHAR) NOT NULL,
    record_id VARCHAR2(36 CHAR) NOT NULL,
    config_key VARCHAR2(100 CHAR) NOT NULL,
    action VARCHAR2(20 CHAR) NOT NULL,
    old_value CLOB,
    new_value CLOB,
    value_diff CLOB CHECK (value_diff IS JSON),
    change_reason VARCHAR2(1000 CHAR),
    change_ticket VARCHAR2(100 CHAR),
    environment VARCHAR2(20 CHAR),
    override_priority NUMBER(5),
    config_version NUMBER(10),
    deployment_id VARCHAR2(36 CHAR),
    release_version VARCHAR2(50 CHAR),
    changed_by VARCHAR2(36 CHAR) NOT NULL,
    changed_by_role VARCHAR2(50 CHAR),
    client_address VARCHAR2(255 CHAR),
    approved_by VARCHAR2(36 CHAR),
    approval_ticket VARCHAR2(100 CHAR),
    affected_services CLOB CHECK (affected_services IS JSON),
    affected_users_count NUMBER(10),
    risk_level VARCHAR2(20 CHAR),
    rollback_available NUMBER(1) DEFAULT 1 NOT NULL CHECK (rollback_available IN (0, 1)),
    CONSTRAINT pk_config_history PRIMARY KEY (id),
    CONSTRAINT uq_config_history_revision UNIQUE (revision, change_index),
    CONSTRAINT fk_history_changed_by FOREIGN KEY (changed_by) REFERENCES pf_users (id),
    CONSTRAINT fk_history_approved_by FOREIGN KEY (approved_by) REFERENCES pf_users (id),
    CONSTRAINT chk_history_kind CHECK (change_kind IN
        ('config', 'flag', 'rate_limit', 'environment', 'template')),
    CONSTRAINT chk_history_action CHECK (action IN
        ('create', 'update', 'delete', 'enable', 'disable', 'rollback'))
);

CREATE TABLE pf_rate_limits (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    limit_key VARCHAR2(100 CHAR) NOT NULL,
    limit_name VARCHAR2(255 CHAR) NOT NULL,
    description VARCHAR2(500 CHAR),
    max_requests NUMBER(10) NOT NULL,
    time_window_seconds NUMBER(10) NOT NULL,
    burst_size NUMBER(10),
    queue_size NUMBER(10) DEFAULT 0 NOT NULL,
    scope_type VARCHAR2(50 CHAR) NOT NULL,
    scope_pattern VARCHAR2(255 CHAR),
    applies_to VARCHAR2(500 CHAR),
    http_methods VARCHAR2(100 CHAR),
    action_on_limit VARCHAR2(50 CHAR) DEFAULT 'block' NOT NULL,
    block_duration_seconds NUMBER(10) DEFAULT 60 NOT NULL,
    retry_after_header NUMBER(1) DEFAULT 1 NOT NULL CHECK (retry_after_header IN (0, 1)),
    custom_error_message VARCHAR2(500 CHAR),
    redirect_url VARCHAR2(500 CHAR),
    exempt_roles CLOB CHECK (exempt_roles IS JSON),
    exempt_users CLOB CHECK (exempt_users IS JSON),
    exempt_ips CLOB CHECK (exempt_ips IS JSON),
    exempt_api_keys CLOB CHECK (exempt_api_keys IS JSON),
    sliding_window NUMBER(1) DEFAULT 1 NOT NULL CHECK (sliding_window IN (0, 1)),
    distributed NUMBER(1) DEFAULT 1 NOT NULL CHECK (distributed IN (0, 1)),
    fail_closed NUMBER(1) DEFAULT 0 NOT NULL CHECK (fail_closed IN (0, 1)),
    inherit_from VARCHAR2(100 CHAR),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    priority NUMBER(5) DEFAULT 100 NOT NULL,
    environment VARCHAR2(20 CHAR),
    track_metrics NUMBER(1) DEFAULT 1 NOT NULL CHECK (track_metrics IN (0, 1)),
    alert_threshold_percentage NUMBER(3) DEFAULT 80 NOT NULL,
    last_triggered TIMESTAMP,
    trigger_count NUMBER(20) DEFAULT 0 NOT NULL,
    version NUMBER(10) DEFAULT 1 NOT NULL,
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_rate_limits PRIMARY KEY (id),
    CONSTRAINT uq_rate_limits_key UNIQUE (limit_key),
    CONSTRAINT fk_rate_limits_environment FOREIGN KEY (environment)
        REFERENCES pf_environments (name),
    CONSTRAINT chk_scope_type CHECK (scope_type IN
        ('global', 'user', 'role', 'ip', 'api_key', 'endpoint', 'service')),
    CONSTRAINT chk_action_on_limit CHECK (action_on_limit IN
        ('block', 'throttle', 'queue', 'log', 'captcha'))
);

CREATE TABLE pf_config_templates (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    template_name VARCHAR2(100 CHAR) NOT NULL,
    template_type VARCHAR2(50 CHAR) NOT NULL,
    description VARCHAR2(1000 CHAR),
    config_values CLOB NOT NULL CHECK (config_values IS JSON),
    feature_flags CLOB CHECK (feature_flags IS JSON),
    rate_limits CLOB CHECK (rate_limits IS JSON),
    suitable_environments CLOB CHECK (suitable_environments IS JSON),
    suitable_scale VARCHAR2(50 CHAR),
    prerequisites CLOB CHECK (prerequisites IS JSON),
    version VARCHAR2(20 CHAR),
    is_default NUMBER(1) DEFAULT 0 NOT NULL CHECK (is_default IN (0, 1)),
    is_active NUMBER(1) DEFAULT 1 NOT NULL CHECK (is_active IN (0, 1)),
    usage_count NUMBER(10) DEFAULT 0 NOT NULL,
    author VARCHAR2(100 CHAR),
    team VARCHAR2(100 CHAR),
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    updated_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    CONSTRAINT pk_config_templates PRIMARY KEY (id),
    CONSTRAINT uq_config_templates_name UNIQUE (template_name)
);

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
