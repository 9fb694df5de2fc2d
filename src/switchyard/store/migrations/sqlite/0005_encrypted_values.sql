-- Encrypted values: the data keys that seal the values of is_encrypted keys, each kept
-- wrapped by a master key that never reaches the database. The same schema as
-- oracle/0005_encrypted_values.sql, which says why each part is there.

CREATE TABLE pf_value_keys (
    key_ref TEXT NOT NULL PRIMARY KEY,
    config_key TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    rotated_at TEXT,
    CONSTRAINT uq_value_keys_config_key UNIQUE (config_key)
) STRICT;

CREATE INDEX idx_value_keys_key_id ON pf_value_keys (key_id);
