-- Encrypted values (envelope encryption).
--
-- * pf_value_keys: one data key (AES-256) per config key that is or was is_encrypted.
--   Every value of that key at rest (pf_system_config.config_value and default_value,
--   pf_environment_config.config_value and revert_to_value, pf_config_history.old_value,
--   new_value and value_diff) is sealed with it and names it by key_ref. The data key is
--   kept only wrapped (AES-GCM) by a master key, key_id, which comes from the keyring and
--   never reaches the database.
-- * Rotation (`switchyard keys rotate`) rewraps the data keys under the current master
--   key: the rows that hold values, the append-only history among them, never change.
-- * No foreign key to pf_system_config: a deleted key's history is still sealed with its
--   data key, so the data key outlives the key (a key created again under the same name
--   uses it again).

CREATE TABLE pf_value_keys (
    key_ref VARCHAR2(36 CHAR) NOT NULL,
    config_key VARCHAR2(100 CHAR) NOT NULL,
    key_id VARCHAR2(64 CHAR) NOT NULL,
    wrapped_key VARCHAR2(200 CHAR) NOT NULL,
    created_at TIMESTAMP DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL,
    rotated_at TIMESTAMP,
    CONSTRAINT pk_value_keys PRIMARY KEY (key_ref),
    CONSTRAINT uq_value_keys_config_key UNIQUE (config_key)
);

CREATE INDEX idx_value_keys_key_id ON pf_value_keys (key_id);
