"""The two schemas are one schema: the SQLite database a migration makes has the tables,
columns, keys, indexes and foreign keys the Oracle DDL declares. And it keeps every
column of the specification's tables, but those it drops on purpose."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from switchyard.store import migrate, open_store
from switchyard.store.migrations import bootstrap, migrations

# The specification's tables and columns, as its DDL names them.
SPEC_COLUMNS = {
    "pf_system_config": """id config_key config_value config_type category subcategory
        display_name description help_text default_value is_required is_sensitive
        is_encrypted validation_rule allowed_values min_value max_value regex_pattern
        is_active is_editable is_deletable requires_restart cache_ttl_seconds depends_on
        conflicts_with created_at created_by updated_at updated_by version""",
    "pf_environment_config": """id environment config_key config_value base_config_id
        override_reason override_approved_by is_temporary expires_at revert_to_value
        is_active priority created_at created_by updated_at updated_by""",
    "pf_feature_flags": """id feature_key feature_name description is_enabled
        rollout_percentage rollout_strategy enabled_for_users enabled_for_roles
        enabled_for_groups enabled_environments targeting_rules start_date end_date
        schedule_cron prerequisite_features conflicts_with feature_category feature_type
        impact_level owner_team owner_email documentation_url jira_ticket metrics_enabled
        success_metrics failure_threshold auto_disable_on_error is_active is_permanent
        is_deprecated deprecation_date cache_ttl_seconds last_evaluated evaluation_count
        created_at created_by updated_at updated_by""",
    "pf_config_history": """id change_timestamp table_name record_id config_key action
        old_value new_value value_diff change_reason change_ticket environment
        deployment_id release_version changed_by changed_by_role approved_by
        approval_ticket affected_services affected_users_count risk_level
        rollback_available rollback_command rollback_performed rollback_at rollback_by
        rollback_reason""",
    "pf_rate_limits": """id limit_key limit_name description max_requests
        time_window_seconds burst_size queue_size scope_type scope_pattern applies_to
        http_methods action_on_limit block_duration_seconds retry_after_header
        custom_error_message redirect_url exempt_roles exempt_users exempt_ips
        exempt_api_keys sliding_window distributed inherit_from is_active priority
        environment track_metrics alert_threshold_percentage last_triggered trigger_count
        created_at updated_at""",
    "pf_config_templates": """id template_name template_type description config_values
        feature_flags rate_limits suitable_environments suitable_scale prerequisites
        version is_default is_active usage_count author team created_at updated_at""",
}
# The history is append-only: a rollback is a row of its own, not an update of these.
DROPPED = {
    "pf_config_history": {
        "rollback_command",
        "rollback_performed",
        "rollback_at",
        "rollback_by",
        "rollback_reason",
    }
}


@dataclass
class Table:
    columns: list[str] = field(default_factory=list)
    not_null: set[str] = field(default_factory=set)
    keys: set[tuple[str, ...]] = field(default_factory=set)
    foreign_keys: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Schema:
    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


def _names(node: exp.Expression) -> tuple[str, ...]:
    return tuple(i.name.lower() for i in node.find_all(exp.Identifier))


def oracle_schema() -> Schema:
    statements = [*bootstrap("oracle"), *(s for m in migrations("oracle") for s in m.statements)]
    schema = Schema()
    for sql in statements:
        if sql.upper().startswith("CREATE OR REPLACE TRIGGER"):
            continue  # PL/SQL, which sqlglot does not parse; test_append_only checks them
        tree = sqlglot.parse_one(sql, read="oracle")
        if isinstance(tree, exp.Alter):
            altered = schema.tables[tree.this.name.lower()]
            for column in tree.find_all(exp.ColumnDef):
                altered.columns.append(column.name.lower())
                if any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in column.constraints):
                    altered.not_null.add(column.name.lower())
                for constraint in column.constraints:
                    if isinstance(constraint.kind, exp.Reference):
                        reference = constraint.kind.find(exp.Table)
                        assert reference is not None
                        altered.foreign_keys.add((column.name.lower(), reference.name.lower()))
            continue
        if not isinstance(tree, exp.Create):
            continue
        if tree.kind == "INDEX":
            index = tree.this
            columns = tuple(c.name.lower() for c in index.find_all(exp.Column))
            schema.indexes[index.name.lower()] = (index.args["table"].name.lower(), columns)
            continue
        table = schema.tables.setdefault(tree.this.this.name.lower(), Table())
        for column in tree.find_all(exp.ColumnDef):
            name = column.name.lower()
            table.columns.append(name)
            kinds = [c.kind for c in column.constraints]
            if any(isinstance(k, exp.NotNullColumnConstraint) for k in kinds):
                table.not_null.add(name)
        for constraint in tree.find_all(exp.Constraint):
            for inner in constraint.expressions:
                if isinstance(inner, exp.PrimaryKey):
                    table.keys.add(tuple(e.name.lower() for e in inner.expressions))
                elif isinstance(inner, exp.UniqueColumnConstraint) and inner.this is not None:
                    table.keys.add(_names(inner.this))
                elif isinstance(inner, exp.ForeignKey):
                    reference = inner.args["reference"].find(exp.Table)
                    for column_name in (e.name.lower() for e in inner.expressions):
                        table.foreign_keys.add((column_name, reference.name.lower()))
    return schema


def sqlite_schema(path: Path) -> Schema:
    schema = Schema()
    with sqlite3.connect(path) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for name in names:
            table = schema.tables.setdefault(name, Table())
            for _, column, _, notnull, _, pk in db.execute(f"PRAGMA table_info({name})"):
                table.columns.append(column)
                if notnull:
                    table.not_null.add(column)
                if pk:
                    table.keys.add((column,))
            for _, index, unique, origin, _ in db.execute(f"PRAGMA index_list({name})"):
                columns = tuple(row[2] for row in db.execute(f"PRAGMA index_info({index})"))
                if origin == "c":
                    schema.indexes[index] = (name, columns)
                elif unique:
                    table.keys.add(columns)
            for row in db.execute(f"PRAGMA foreign_key_list({name})"):
                table.foreign_keys.add((row[3], row[2]))
    return schema


async def test_sqlite_and_oracle_schemas_match(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'schema.db'}")
    await migrate(store)
    await store.close()

    oracle, sqlite = oracle_schema(), sqlite_schema(tmp_path / "schema.db")

    assert sorted(sqlite.tables) == sorted(oracle.tables)
    for name, table in oracle.tables.items():
        mine = sqlite.tables[name]
        assert mine.columns == table.columns, name
        assert mine.not_null == table.not_null, name
        assert mine.keys == table.keys, name
        assert mine.foreign_keys == table.foreign_keys, name
    assert sqlite.indexes == oracle.indexes


def test_every_column_of_the_specification_is_kept_but_those_dropped_on_purpose() -> None:
    tables = oracle_schema().tables
    for name, listed in SPEC_COLUMNS.items():
        spec = set(listed.split())
        missing = spec - set(tables[name].columns)
        assert missing == DROPPED.get(name, set()), name


def test_the_history_carries_a_revision_and_pf_users_exists() -> None:
    tables = oracle_schema().tables

    assert {"revision", "change_index"} <= tables["pf_config_history"].not_null
    assert ("revision", "change_index") in tables["pf_config_history"].keys
    assert ("changed_by", "pf_users") in tables["pf_config_history"].foreign_keys
    assert {"id", "username", "role_name"} <= set(tables["pf_users"].columns)
