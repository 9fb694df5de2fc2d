-- Whether a row's values are sealed is said by the row, never by their text. The same
-- schema as oracle/0007_sealed_with.sql, which says why each part is there.
--
-- SQLite runs a migration in one transaction: the history's guard against updates is
-- dropped, the new column of the existing history rows filled, and the guard created
-- again as 0006 made it, all or nothing. No other connection sees the history unguarded.

ALTER TABLE pf_system_config ADD COLUMN sealed_with TEXT REFERENCES pf_value_keys (key_ref);

ALTER TABLE pf_environment_config ADD COLUMN sealed_with TEXT
    REFERENCES pf_value_keys (key_ref);

ALTER TABLE pf_change_requests ADD COLUMN sealed_with TEXT REFERENCES pf_value_keys (key_ref);

ALTER TABLE pf_config_history ADD COLUMN sealed_with TEXT REFERENCES pf_value_keys (key_ref);

UPDATE pf_system_config SET sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = pf_system_config.config_key
    AND (config_value IS NULL
         OR substr(config_value, 1, length(k.key_ref) + 8) = 'enc:v1:' || k.key_ref || ':')
    AND (default_value IS NULL
         OR substr(default_value, 1, length(k.key_ref) + 8) = 'enc:v1:' || k.key_ref || ':'))
WHERE sealed_with IS NULL
AND (substr(config_value, 1, 7) = 'enc:v1:' OR substr(default_value, 1, 7) = 'enc:v1:'
     OR (is_encrypted = 1 AND config_value IS NULL AND default_value IS NULL));

UPDATE pf_environment_config SET sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = pf_environment_config.config_key
    AND (config_value IS NULL
         OR substr(config_value, 1, length(k.key_ref) + 8) = 'enc:v1:' || k.key_ref || ':')
    AND (revert_to_value IS NULL
         OR substr(revert_to_value, 1, length(k.key_ref) + 8)
            = 'enc:v1:' || k.key_ref || ':'))
WHERE sealed_with IS NULL
AND (substr(config_value, 1, 7) = 'enc:v1:' OR substr(revert_to_value, 1, 7) = 'enc:v1:');

UPDATE pf_change_requests SET sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = pf_change_requests.config_key
    AND substr(request_body, 1, length(k.key_ref) + 19)
        = '{"sealed":"enc:v1:' || k.key_ref || ':')
WHERE sealed_with IS NULL AND change_kind = 'config'
AND substr(request_body, 1, 18) = '{"sealed":"enc:v1:';

DROP TRIGGER trg_history_no_update;

UPDATE pf_config_history SET sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE (pf_config_history.change_kind = 'change_request'
           OR k.config_key = pf_config_history.config_key)
    AND (old_value IS NULL
         OR substr(old_value, 1, length(k.key_ref) + 8) = 'enc:v1:' || k.key_ref || ':')
    AND (new_value IS NULL
         OR substr(new_value, 1, length(k.key_ref) + 8) = 'enc:v1:' || k.key_ref || ':')
    AND (value_diff IS NULL
         OR substr(value_diff, 1, length(k.key_ref) + 19)
            = '{"sealed":"enc:v1:' || k.key_ref || ':')
    AND (rows_after IS NULL
         OR substr(rows_after, 1, length(k.key_ref) + 19)
            = '{"sealed":"enc:v1:' || k.key_ref || ':'))
WHERE sealed_with IS NULL AND change_kind IN ('config', 'change_request')
AND (substr(old_value, 1, 7) = 'enc:v1:' OR substr(new_value, 1, 7) = 'enc:v1:'
     OR substr(value_diff, 1, 18) = '{"sealed":"enc:v1:'
     OR substr(rows_after, 1, 18) = '{"sealed":"enc:v1:');

CREATE TRIGGER trg_history_no_update BEFORE UPDATE ON pf_config_history
BEGIN
    SELECT RAISE(ABORT, 'pf_config_history is append-only: record a change as a new row');
END;
/
