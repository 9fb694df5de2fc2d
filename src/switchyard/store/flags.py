"""`pf_feature_flags`: flag definitions, and the evaluation counters kept beside them.

Lists are JSON arrays of strings (NULL when empty), `variants` a JSON object (NULL when
empty), `rollout_rings` a JSON array of `{"name", "groups", "opens_at"}` with `opens_at`
in ISO 8601 UTC: the rings are read by people and by tools as much as by this code, so
they are kept in the plainest form JSON allows rather than in our bind format.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from switchyard.domain.errors import AlreadyExists, Conflict, NotFound
from switchyard.domain.flags import FeatureFlag, FlagQuery, Ring, RolloutStrategy
from switchyard.domain.models import JSONValue, Page, PageRequest
from switchyard.store.rows import (
    document,
    from_json,
    json_list,
    key_cursor,
    optional_float,
    strings,
)
from switchyard.store.rows import flag as boolean
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_COLUMNS = """id, feature_key, feature_name, description, is_enabled, rollout_percentage,
    rollout_strategy, enabled_for_users, enabled_for_roles, enabled_for_groups,
    enabled_environments, targeting_rules, start_date, end_date, schedule_cron,
    prerequisite_features, conflicts_with, feature_category, feature_type, impact_level,
    owner_team, owner_email, documentation_url, jira_ticket, metrics_enabled,
    success_metrics, failure_threshold, auto_disable_on_error, is_active, is_permanent,
    is_deprecated, deprecation_date, cache_ttl_seconds, last_evaluated, evaluation_count,
    variants, rollout_rings, gradual_start, gradual_end, bucketing_version, version,
    created_at, created_by, updated_at, updated_by"""

FIND_FLAG = Sql(
    "find_flag", f"SELECT {_COLUMNS} FROM pf_feature_flags WHERE feature_key = :feature_key"
)
ALL_FLAGS = Sql("all_flags", f"SELECT {_COLUMNS} FROM pf_feature_flags ORDER BY feature_key")
LIST_FLAGS = Sql(
    "list_flags",
    f"""SELECT {_COLUMNS} FROM pf_feature_flags
    WHERE (:category IS NULL OR feature_category = :category)
    AND (:feature_type IS NULL OR feature_type = :feature_type)
    AND (:owner_team IS NULL OR owner_team = :owner_team)
    AND (:deprecated_only = 0 OR is_deprecated = 1)
    AND (:include_inactive = 1 OR is_active = 1)
    AND (:after_key IS NULL OR feature_key > :after_key)
    ORDER BY feature_key
    {{row_limit}}""",
)
INSERT_FLAG = Sql(
    "insert_flag",
    f"""INSERT INTO pf_feature_flags ({_COLUMNS})
    VALUES (:id, :feature_key, :feature_name, :description, :is_enabled,
    :rollout_percentage, :rollout_strategy, :enabled_for_users, :enabled_for_roles,
    :enabled_for_groups, :enabled_environments, :targeting_rules, :start_date, :end_date,
    :schedule_cron, :prerequisite_features, :conflicts_with, :feature_category,
    :feature_type, :impact_level, :owner_team, :owner_email, :documentation_url,
    :jira_ticket, :metrics_enabled, :success_metrics, :failure_threshold,
    :auto_disable_on_error, :is_active, :is_permanent, :is_deprecated, :deprecation_date,
    :cache_ttl_seconds, :last_evaluated, :evaluation_count, :variants, :rollout_rings,
    :gradual_start, :gradual_end, :bucketing_version, :version, :created_at, :created_by,
    :updated_at, :updated_by)""",
)
# Every definition column; not id, created_*, nor the evaluation counters, which
# `record_evaluations` owns so that counting never races a definition change.
UPDATE_FLAG = Sql(
    "update_flag",
    """UPDATE pf_feature_flags SET feature_name = :feature_name, description = :description,
    is_enabled = :is_enabled, rollout_percentage = :rollout_percentage,
    rollout_strategy = :rollout_strategy, enabled_for_users = :enabled_for_users,
    enabled_for_roles = :enabled_for_roles, enabled_for_groups = :enabled_for_groups,
    enabled_environments = :enabled_environments, targeting_rules = :targeting_rules,
    start_date = :start_date, end_date = :end_date, schedule_cron = :schedule_cron,
    prerequisite_features = :prerequisite_features, conflicts_with = :conflicts_with,
    feature_category = :feature_category, feature_type = :feature_type,
    impact_level = :impact_level, owner_team = :owner_team, owner_email = :owner_email,
    documentation_url = :documentation_url, jira_ticket = :jira_ticket,
    metrics_enabled = :metrics_enabled, success_metrics = :success_metrics,
    failure_threshold = :failure_threshold, auto_disable_on_error = :auto_disable_on_error,
    is_active = :is_active, is_permanent = :is_permanent, is_deprecated = :is_deprecated,
    deprecation_date = :deprecation_date, cache_ttl_seconds = :cache_ttl_seconds,
    variants = :variants, rollout_rings = :rollout_rings, gradual_start = :gradual_start,
    gradual_end = :gradual_end, bucketing_version = :bucketing_version,
    version = :version, updated_at = :updated_at,
    updated_by = :updated_by
    WHERE feature_key = :feature_key AND version = :expected_version""",
)
DELETE_FLAG = Sql("delete_flag", "DELETE FROM pf_feature_flags WHERE feature_key = :feature_key")
# Replicas flush their counts independently and out of order: the count adds up whatever
# the order, and the CASE keeps the latest moment rather than the last one written.
RECORD_EVALUATIONS = Sql(
    "record_evaluations",
    """UPDATE pf_feature_flags
    SET evaluation_count = evaluation_count + :evaluations,
    last_evaluated = CASE WHEN last_evaluated IS NULL OR last_evaluated < :evaluated_at
        THEN :evaluated_at ELSE last_evaluated END
    WHERE feature_key = :feature_key""",
)


class SqlFlagRepository:
    """Implements `service.ports.FlagRepository`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def find_flag(self, key: str) -> FeatureFlag | None:
        row = await self._session.fetch_one(FIND_FLAG, {"feature_key": key})
        return None if row is None else self._flag(row)

    async def get_flag(self, key: str) -> FeatureFlag:
        found = await self.find_flag(key)
        if found is None:
            raise NotFound(f"feature flag {key!r} not found")
        return found

    async def all_flags(self) -> list[FeatureFlag]:
        return [self._flag(row) for row in await self._session.fetch_all(ALL_FLAGS)]

    async def list_flags(self, query: FlagQuery, page: PageRequest) -> Page[FeatureFlag]:
        rows = await self._session.fetch_all(
            LIST_FLAGS,
            {
                "category": query.category,
                "feature_type": query.feature_type,
                "owner_team": query.owner_team,
                "deprecated_only": query.deprecated_only,
                "include_inactive": query.include_inactive,
                "after_key": key_cursor(page.cursor),
                "row_limit": page.size + 1,
            },
        )
        items = [self._flag(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        return Page(items=items, next_cursor=items[-1].key if more and items else None)

    async def create_flag(self, flag: FeatureFlag) -> None:
        try:
            await self._session.execute(INSERT_FLAG, _binds(flag))
        except AlreadyExists as error:
            # The driver's message names a constraint; the caller wants the flag.
            raise AlreadyExists(f"feature flag {flag.key!r} exists already") from error

    async def update_flag(self, flag: FeatureFlag, *, expected_version: int) -> None:
        touched = await self._session.execute(
            UPDATE_FLAG, {**_binds(flag), "expected_version": expected_version}
        )
        if touched:
            return
        current = await self.get_flag(flag.key)
        raise Conflict(
            f"feature flag {flag.key!r} is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )

    async def delete_flag(self, key: str) -> None:
        if not await self._session.execute(DELETE_FLAG, {"feature_key": key}):
            raise NotFound(f"feature flag {key!r} not found")

    async def record_evaluations(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        """One UPDATE per flag, in key order: concurrent flushes then lock rows in the same
        order and cannot deadlock one another on Oracle."""
        for key in sorted(counts):
            evaluations, evaluated_at = counts[key]
            await self._session.execute(
                RECORD_EVALUATIONS,
                {"feature_key": key, "evaluations": evaluations, "evaluated_at": evaluated_at},
            )

    def _flag(self, row: Row) -> FeatureFlag:
        read_time = self._session.dialect.read_time
        strategy = row["rollout_strategy"]
        return FeatureFlag(
            id=row["id"],
            key=row["feature_key"],
            name=row["feature_name"],
            description=row["description"],
            is_enabled=boolean(row["is_enabled"]),
            rollout_percentage=int(row["rollout_percentage"]),
            rollout_strategy=None if strategy is None else RolloutStrategy(strategy),
            enabled_for_users=strings(row["enabled_for_users"]),
            enabled_for_roles=strings(row["enabled_for_roles"]),
            enabled_for_groups=strings(row["enabled_for_groups"]),
            enabled_environments=strings(row["enabled_environments"]),
            targeting_rules=_array(from_json(row["targeting_rules"])),
            start_date=read_time(row["start_date"]),
            end_date=read_time(row["end_date"]),
            schedule_cron=row["schedule_cron"],
            prerequisite_features=strings(row["prerequisite_features"]),
            conflicts_with=strings(row["conflicts_with"]),
            feature_category=row["feature_category"],
            feature_type=row["feature_type"],
            impact_level=row["impact_level"],
            owner_team=row["owner_team"],
            owner_email=row["owner_email"],
            documentation_url=row["documentation_url"],
            jira_ticket=row["jira_ticket"],
            metrics_enabled=boolean(row["metrics_enabled"]),
            success_metrics=_optional_object(from_json(row["success_metrics"])),
            failure_threshold=optional_float(row["failure_threshold"]),
            auto_disable_on_error=boolean(row["auto_disable_on_error"]),
            is_active=boolean(row["is_active"]),
            is_permanent=boolean(row["is_permanent"]),
            is_deprecated=boolean(row["is_deprecated"]),
            deprecation_date=read_time(row["deprecation_date"]),
            cache_ttl_seconds=int(row["cache_ttl_seconds"]),
            variants=_optional_object(from_json(row["variants"])) or {},
            rings=_rings(from_json(row["rollout_rings"])),
            gradual_start=read_time(row["gradual_start"]),
            gradual_end=read_time(row["gradual_end"]),
            bucketing_version=int(row["bucketing_version"]),
            version=int(row["version"]),
            evaluation_count=int(row["evaluation_count"]),
            last_evaluated=read_time(row["last_evaluated"]),
            created_at=read_time(row["created_at"]),
            created_by=row["created_by"],
            updated_at=read_time(row["updated_at"]),
            updated_by=row["updated_by"],
        )


def _binds(flag: FeatureFlag) -> dict[str, object]:
    # created_at and updated_at are NOT NULL with a default of "now", which an explicit
    # NULL bind would defeat: a flag not stamped by its caller is stamped here instead.
    now = datetime.now(UTC)
    return {
        "id": flag.id,
        "feature_key": flag.key,
        "feature_name": flag.name,
        "description": flag.description,
        "is_enabled": flag.is_enabled,
        "rollout_percentage": flag.rollout_percentage,
        "rollout_strategy": None if flag.rollout_strategy is None else flag.rollout_strategy.value,
        "enabled_for_users": json_list(flag.enabled_for_users),
        "enabled_for_roles": json_list(flag.enabled_for_roles),
        "enabled_for_groups": json_list(flag.enabled_for_groups),
        "enabled_environments": json_list(flag.enabled_environments),
        "targeting_rules": json_list(flag.targeting_rules),
        "start_date": flag.start_date,
        "end_date": flag.end_date,
        "schedule_cron": flag.schedule_cron,
        "prerequisite_features": json_list(flag.prerequisite_features),
        "conflicts_with": json_list(flag.conflicts_with),
        "feature_category": flag.feature_category,
        "feature_type": flag.feature_type,
        "impact_level": flag.impact_level,
        "owner_team": flag.owner_team,
        "owner_email": flag.owner_email,
        "documentation_url": flag.documentation_url,
        "jira_ticket": flag.jira_ticket,
        "metrics_enabled": flag.metrics_enabled,
        "success_metrics": document(flag.success_metrics),
        "failure_threshold": flag.failure_threshold,
        "auto_disable_on_error": flag.auto_disable_on_error,
        "is_active": flag.is_active,
        "is_permanent": flag.is_permanent,
        "is_deprecated": flag.is_deprecated,
        "deprecation_date": flag.deprecation_date,
        "cache_ttl_seconds": flag.cache_ttl_seconds,
        "last_evaluated": flag.last_evaluated,
        "evaluation_count": flag.evaluation_count,
        "variants": document(flag.variants) if flag.variants else None,
        "bucketing_version": flag.bucketing_version,
        "rollout_rings": document([_ring_document(ring) for ring in flag.rings])
        if flag.rings
        else None,
        "gradual_start": flag.gradual_start,
        "gradual_end": flag.gradual_end,
        "version": flag.version,
        "created_at": flag.created_at or now,
        "created_by": flag.created_by,
        "updated_at": flag.updated_at or now,
        "updated_by": flag.updated_by,
    }


def _array(value: JSONValue) -> tuple[JSONValue, ...]:
    return tuple(value) if isinstance(value, list) else ()


def _optional_object(value: JSONValue) -> dict[str, JSONValue] | None:
    return value if isinstance(value, dict) else None


def _ring_document(ring: Ring) -> dict[str, JSONValue]:
    return {
        "name": ring.name,
        "groups": list(ring.groups),
        "opens_at": None if ring.opens_at is None else _iso_utc(ring.opens_at),
    }


def _rings(value: JSONValue) -> tuple[Ring, ...]:
    if not isinstance(value, list):
        return ()
    rings = []
    for item in value:
        if not isinstance(item, dict):
            continue
        groups = item.get("groups")
        opens_at = item.get("opens_at")
        rings.append(
            Ring(
                name=str(item.get("name", "")),
                groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
                opens_at=_from_iso(opens_at) if isinstance(opens_at, str) else None,
            )
        )
    return tuple(rings)


def _iso_utc(moment: datetime) -> str:
    """`2026-11-25T09:30:15.123456Z`: microseconds always, so the text sorts as the
    moments do and reads back to the same datetime."""
    moment = moment.astimezone(UTC)  # the year padded: strftime's %Y is not before 1000
    return f"{moment.year:04d}{moment.strftime('-%m-%dT%H:%M:%S.%fZ')}"


def _from_iso(text: str) -> datetime:
    """Any ISO 8601 form a person may have written into the column; no offset means UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


__all__ = ["SqlFlagRepository"]
