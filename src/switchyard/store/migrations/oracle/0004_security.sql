-- Security: who may change what, and four-eyes approval.
--
-- * pf_environments.is_protected: a write that reaches a protected environment needs a
--   second person's approval (production is protected from the start).
-- * pf_users.grants: the roles of a user who signs in with a client certificate, each
--   narrowed to environments and key prefixes or not (JSON; NULL means role_name,
--   everywhere).
-- * pf_api_tokens: API tokens. Only a SHA-256 hash of each token is kept: a token is 256
--   random bits, so a slow password hash would add nothing but latency to every call.
--   token_hint is the token's first characters, so that a person can tell tokens apart.
-- * pf_change_requests: writes to protected environments waiting for approval. The
--   request is kept as the write RPC's own message (JSON), content_digest binds an
--   approval to exactly that content, and base_revision is the target's latest revision
--   when it was proposed: a request whose target changed since then is stale.
-- * History rows of kinds 'token', 'user' and 'change_request', and the actions
--   'propose', 'approve', 'reject' and 'revoke', record the changes to all of these.

ALTER TABLE pf_environments ADD (is_protected NUMBER(1) DEFAULT 0 NOT NULL
    CONSTRAINT chk_environments_protected CHECK (is_protected IN (0, 1)));

UPDATE pf_environments SET is_protected = 1 WHERE name = 'production';

ALTER TABLE pf_users ADD (grants CLOB CONSTRAINT chk_users_grants CHECK (grants IS JSON));

CREATE TABLE pf_api_tokens (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    token_hash VARCHAR2(64 CHAR) NOT NULL,
    token_hint VARCHAR2(20 CHAR) NOT NULL,
    user_id VARCHAR2(36 CHAR) NOT NULL,
    description VARCHAR2(500 CHAR),
    grants CLOB NOT NULL CHECK (grants IS JSON),
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by VARCHAR2(36 CHAR),
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    created_by VARCHAR2(36 CHAR),
    CONSTRAINT pk_api_tokens PRIMARY KEY (id),
    CONSTRAINT uq_api_tokens_hash UNIQUE (token_hash),
    CONSTRAINT fk_api_tokens_user FOREIGN KEY (user_id) REFERENCES pf_users (id),
    CONSTRAINT fk_api_tokens_revoked_by FOREIGN KEY (revoked_by) REFERENCES pf_users (id),
    CONSTRAINT fk_api_tokens_created_by FOREIGN KEY (created_by) REFERENCES pf_users (id)
);

CREATE INDEX idx_api_tokens_user ON pf_api_tokens (user_id);

CREATE TABLE pf_change_requests (
    id VARCHAR2(36 CHAR) DEFAULT SYS_GUID() NOT NULL,
    status VARCHAR2(20 CHAR) DEFAULT 'pending' NOT NULL,
    change_kind VARCHAR2(20 CHAR) NOT NULL,
    config_key VARCHAR2(100 CHAR) NOT NULL,
    environment VARCHAR2(20 CHAR),
    method_name VARCHAR2(100 CHAR) NOT NULL,
    request_body CLOB NOT NULL CHECK (request_body IS JSON),
    content_digest VARCHAR2(64 CHAR) NOT NULL,
    base_revision NUMBER(19) NOT NULL,
    proposed_by VARCHAR2(36 CHAR) NOT NULL,
    proposed_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    change_reason VARCHAR2(1000 CHAR),
    change_ticket VARCHAR2(100 CHAR),
    decided_by VARCHAR2(36 CHAR),
    decided_at TIMESTAMP,
    decision_reason VARCHAR2(1000 CHAR),
    approval_ticket VARCHAR2(100 CHAR),
    applied_revision NUMBER(19),
    version NUMBER(10) DEFAULT 1 NOT NULL,
    CONSTRAINT pk_change_requests PRIMARY KEY (id),
    CONSTRAINT fk_change_requests_proposed_by FOREIGN KEY (proposed_by)
        REFERENCES pf_users (id),
    CONSTRAINT fk_change_requests_decided_by FOREIGN KEY (decided_by)
        REFERENCES pf_users (id),
    CONSTRAINT chk_change_request_status CHECK (status IN ('pending', 'applied', 'rejected'))
);

CREATE INDEX idx_change_requests_status ON pf_change_requests (status, proposed_at);

ALTER TABLE pf_config_history DROP CONSTRAINT chk_history_kind;

ALTER TABLE pf_config_history ADD CONSTRAINT chk_history_kind CHECK (change_kind IN
    ('config', 'flag', 'rate_limit', 'environment', 'template', 'maintenance_window',
     'token', 'user', 'change_request'));

ALTER TABLE pf_config_history DROP CONSTRAINT chk_history_action;

ALTER TABLE pf_config_history ADD CONSTRAINT chk_history_action CHECK (action IN
    ('create', 'update', 'delete', 'enable', 'disable', 'rollback',
     'propose', 'approve', 'reject', 'revoke'));
