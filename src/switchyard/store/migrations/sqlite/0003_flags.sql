-- Feature flags: the bucketing version each flag's partial rollouts use. The same schema
-- as oracle/0003_flags.sql.

ALTER TABLE pf_feature_flags ADD COLUMN bucketing_version INTEGER NOT NULL DEFAULT 2
    CHECK (bucketing_version IN (1, 2));
