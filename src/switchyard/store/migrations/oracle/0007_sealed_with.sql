-- Whether a row's values are sealed is said by the row, never by their text.
--
-- * sealed_with: the key_ref of the data key (pf_value_keys) that sealed the row's value
--   columns, NULL when they are stored plain. Only the sealing writer sets it, and
--   readers open only the columns each table declares for values (store/sealing.py
--   SEALABLE), only in rows where it is set. Before it, any column of any row whose text
--   began with 'enc:v1:' was taken for ciphertext, so a reason or a description a
--   caller typed could make a history row unreadable for good.
-- * The backfill marks a row only where every value column that holds something holds
--   exactly what the sealer writes, naming the data key of the row's own config key
--   (for a change request's history rows, whose key is the request's, a data key
--   pf_value_keys holds); and the row of a key marked is_encrypted that holds no value
--   yet, as the sealer marks it (`switchyard verify` expects every such row marked). Value columns hold JSON text when plain, which never begins
--   with 'e'; the JSON document columns hold a list, an object keyed by table names or
--   a request's fields when plain, never the sealer's one-member object. No text a
--   caller typed can match. `switchyard verify` then opens every marked column with the
--   configured keys.
-- * The history is append-only, and its update guard (0006) is disabled around the one
--   UPDATE that fills the new column, then enabled again. Oracle commits each DDL on its
--   own, so this is not atomic: a migration cut off between the two leaves the guard
--   disabled until `switchyard migrate` runs again, which it must before a server will
--   start (a server refuses a schema with a migration pending), and the rerun enables it
--   (every statement here may run twice). Altering a trigger needs the schema owner,
--   who runs migrations; the service's own user cannot. Making the guard accept an
--   update of this column instead would leave a way to rewrite history rows open for
--   good; disabling it for the length of a migration does not.

ALTER TABLE pf_system_config ADD (sealed_with VARCHAR2(36 CHAR)
    CONSTRAINT fk_system_config_sealed_with REFERENCES pf_value_keys (key_ref));

ALTER TABLE pf_environment_config ADD (sealed_with VARCHAR2(36 CHAR)
    CONSTRAINT fk_env_config_sealed_with REFERENCES pf_value_keys (key_ref));

ALTER TABLE pf_change_requests ADD (sealed_with VARCHAR2(36 CHAR)
    CONSTRAINT fk_change_requests_sealed_with REFERENCES pf_value_keys (key_ref));

ALTER TABLE pf_config_history ADD (sealed_with VARCHAR2(36 CHAR)
    CONSTRAINT fk_history_sealed_with REFERENCES pf_value_keys (key_ref));

UPDATE pf_system_config c SET c.sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = c.config_key
    AND (c.config_value IS NULL
         OR DBMS_LOB.SUBSTR(c.config_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':')
    AND (c.default_value IS NULL
         OR DBMS_LOB.SUBSTR(c.default_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':'))
WHERE c.sealed_with IS NULL
AND (DBMS_LOB.SUBSTR(c.config_value, 7, 1) = 'enc:v1:'
     OR DBMS_LOB.SUBSTR(c.default_value, 7, 1) = 'enc:v1:'
     OR (c.is_encrypted = 1 AND c.config_value IS NULL AND c.default_value IS NULL));

UPDATE pf_environment_config o SET o.sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = o.config_key
    AND (o.config_value IS NULL
         OR DBMS_LOB.SUBSTR(o.config_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':')
    AND (o.revert_to_value IS NULL
         OR DBMS_LOB.SUBSTR(o.revert_to_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':'))
WHERE o.sealed_with IS NULL
AND (DBMS_LOB.SUBSTR(o.config_value, 7, 1) = 'enc:v1:'
     OR DBMS_LOB.SUBSTR(o.revert_to_value, 7, 1) = 'enc:v1:');

UPDATE pf_change_requests r SET r.sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE k.config_key = r.config_key
    AND DBMS_LOB.SUBSTR(r.request_body, LENGTH(k.key_ref) + 19, 1)
        = '{"sealed":"enc:v1:' || k.key_ref || ':')
WHERE r.sealed_with IS NULL AND r.change_kind = 'config'
AND DBMS_LOB.SUBSTR(r.request_body, 18, 1) = '{"sealed":"enc:v1:';

ALTER TRIGGER trg_history_no_update DISABLE;

UPDATE pf_config_history h SET h.sealed_with = (
    SELECT k.key_ref FROM pf_value_keys k
    WHERE (h.change_kind = 'change_request' OR k.config_key = h.config_key)
    AND (h.old_value IS NULL
         OR DBMS_LOB.SUBSTR(h.old_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':')
    AND (h.new_value IS NULL
         OR DBMS_LOB.SUBSTR(h.new_value, LENGTH(k.key_ref) + 8, 1)
            = 'enc:v1:' || k.key_ref || ':')
    AND (h.value_diff IS NULL
         OR DBMS_LOB.SUBSTR(h.value_diff, LENGTH(k.key_ref) + 19, 1)
            = '{"sealed":"enc:v1:' || k.key_ref || ':')
    AND (h.rows_after IS NULL
         OR DBMS_LOB.SUBSTR(h.rows_after, LENGTH(k.key_ref) + 19, 1)
            = '{"sealed":"enc:v1:' || k.key_ref || ':'))
WHERE h.sealed_with IS NULL AND h.change_kind IN ('config', 'change_request')
AND (DBMS_LOB.SUBSTR(h.old_value, 7, 1) = 'enc:v1:'
     OR DBMS_LOB.SUBSTR(h.new_value, 7, 1) = 'enc:v1:'
     OR DBMS_LOB.SUBSTR(h.value_diff, 18, 1) = '{"sealed":"enc:v1:'
     OR DBMS_LOB.SUBSTR(h.rows_after, 18, 1) = '{"sealed":"enc:v1:');

ALTER TRIGGER trg_history_no_update ENABLE;
