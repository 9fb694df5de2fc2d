-- Feature flags.
--
-- * pf_feature_flags.bucketing_version: which published bucketing (docs/bucketing.md) a
--   flag's partial rollouts use. Recorded per flag so that a new version never moves the
--   users of a running rollout.
-- * pf_feature_flags.failure_threshold: an error rate between 0 and 1. NUMBER(10, 2)
--   rounded 0.005 to 0.01 and 0.001 to 0, which would turn a flag off at its first error;
--   six decimals keep what SQLite keeps. The integer digits stay eight, so existing
--   values fit.

ALTER TABLE pf_feature_flags ADD (bucketing_version NUMBER(1) DEFAULT 2 NOT NULL
    CONSTRAINT chk_bucketing_version CHECK (bucketing_version IN (1, 2)));

ALTER TABLE pf_feature_flags MODIFY (failure_threshold NUMBER(14, 6));
