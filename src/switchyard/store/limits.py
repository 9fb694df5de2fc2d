"""`pf_rate_limits`: rate-limit definitions, and the trigger counters kept beside them.

`http_methods` is a comma-separated list (`GET,POST`), as the column (VARCHAR2(100)) and
the people who read it expect; the exemption lists are JSON arrays of strings. Both are
NULL when empty, so that "none" has one spelling, and Oracle's '' is NULL anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from switchyard.domain.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from switchyard.domain.limits import LimitAction, RateLimit, RateLimitQuery, ScopeType
from switchyard.domain.models import Page, PageRequest
from switchyard.store.rows import flag as boolean
from switchyard.store.rows import json_list, key_cursor, strings
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_COLUMNS = """id, limit_key, limit_name, description, max_requests, time_window_seconds,
    burst_size, queue_size, scope_type, scope_pattern, applies_to, http_methods,
    action_on_limit, block_duration_seconds, retry_after_header, custom_error_message,
    redirect_url, exempt_roles, exempt_users, exempt_ips, exempt_api_keys, sliding_window,
    distributed, fail_closed, inherit_from, is_active, priority, environment, track_metrics,
    alert_threshold_percentage, last_triggered, trigger_count, version, created_at,
    updated_at"""

FIND_LIMIT = Sql(
    "find_limit", f"SELECT {_COLUMNS} FROM pf_rate_limits WHERE limit_key = :limit_key"
)
ALL_LIMITS = Sql("all_limits", f"SELECT {_COLUMNS} FROM pf_rate_limits ORDER BY limit_key")
LIST_LIMITS = Sql(
    "list_limits",
    f"""SELECT {_COLUMNS} FROM pf_rate_limits
    WHERE (:scope_type IS NULL OR scope_type = :scope_type)
    AND (:environment IS NULL OR environment = :environment)
    AND (:include_inactive = 1 OR is_active = 1)
    AND (:after_key IS NULL OR limit_key > :after_key)
    ORDER BY limit_key
    {{row_limit}}""",
)
INSERT_LIMIT = Sql(
    "insert_limit",
    f"""INSERT INTO pf_rate_limits ({_COLUMNS})
    VALUES (:id, :limit_key, :limit_name, :description, :max_requests,
    :time_window_seconds, :burst_size, :queue_size, :scope_type, :scope_pattern,
    :applies_to, :http_methods, :action_on_limit, :block_duration_seconds,
    :retry_after_header, :custom_error_message, :redirect_url, :exempt_roles,
    :exempt_users, :exempt_ips, :exempt_api_keys, :sliding_window, :distributed,
    :fail_closed, :inherit_from, :is_active, :priority, :environment, :track_metrics,
    :alert_threshold_percentage, :last_triggered, :trigger_count, :version, :created_at,
    :updated_at)""",
)
# Every definition column; not id, created_at, nor the trigger counters, which
# `record_triggers` owns so that counting never races a definition change.
UPDATE_LIMIT = Sql(
    "update_limit",
    """UPDATE pf_rate_limits SET limit_name = :limit_name, description = :description,
    max_requests = :max_requests, time_window_seconds = :time_window_seconds,
    burst_size = :burst_size, queue_size = :queue_size, scope_type = :scope_type,
    scope_pattern = :scope_pattern, applies_to = :applies_to, http_methods = :http_methods,
    action_on_limit = :action_on_limit, block_duration_seconds = :block_duration_seconds,
    retry_after_header = :retry_after_header, custom_error_message = :custom_error_message,
    redirect_url = :redirect_url, exempt_roles = :exempt_roles, exempt_users = :exempt_users,
    exempt_ips = :exempt_ips, exempt_api_keys = :exempt_api_keys,
    sliding_window = :sliding_window, distributed = :distributed, fail_closed = :fail_closed,
    inherit_from = :inherit_from, is_active = :is_active, priority = :priority,
    environment = :environment, track_metrics = :track_metrics,
    alert_threshold_percentage = :alert_threshold_percentage,
    version = :version, updated_at = :updated_at
    WHERE limit_key = :limit_key AND version = :expected_version""",
)
DELETE_LIMIT = Sql("delete_limit", "DELETE FROM pf_rate_limits WHERE limit_key = :limit_key")
# Replicas flush their counts independently and out of order: the count adds up whatever
# the order, and the CASE keeps the latest moment rather than the last one written.
RECORD_TRIGGERS = Sql(
    "record_triggers",
    """UPDATE pf_rate_limits
    SET trigger_count = trigger_count + :triggers,
    last_triggered = CASE WHEN last_triggered IS NULL OR last_triggered < :triggered_at
        THEN :triggered_at ELSE last_triggered END
    WHERE limit_key = :limit_key""",
)


class SqlRateLimitRepository:
    """Implements `service.ports.RateLimitRepository`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def find_limit(self, key: str) -> RateLimit | None:
        row = await self._session.fetch_one(FIND_LIMIT, {"limit_key": key})
        return None if row is None else self._limit(row)

    async def get_limit(self, key: str) -> RateLimit:
        found = await self.find_limit(key)
        if found is None:
            raise NotFound(f"rate limit {key!r} not found")
        return found

    async def all_limits(self) -> list[RateLimit]:
        return [self._limit(row) for row in await self._session.fetch_all(ALL_LIMITS)]

    async def list_limits(self, query: RateLimitQuery, page: PageRequest) -> Page[RateLimit]:
        rows = await self._session.fetch_all(
            LIST_LIMITS,
            {
                "scope_type": None if query.scope_type is None else query.scope_type.value,
                "environment": query.environment,
                "include_inactive": query.include_inactive,
                "after_key": key_cursor(page.cursor),
                "row_limit": page.size + 1,
            },
        )
        items = [self._limit(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        return Page(items=items, next_cursor=items[-1].key if more and items else None)

    async def create_limit(self, limit: RateLimit) -> None:
        try:
            await self._session.execute(INSERT_LIMIT, _binds(limit))
        except AlreadyExists as error:
            # The driver's message names a constraint; the caller wants the limit.
            raise AlreadyExists(f"rate limit {limit.key!r} exists already") from error
        except NotFound as error:
            raise _no_such_environment(limit) from error

    async def update_limit(self, limit: RateLimit, *, expected_version: int) -> None:
        try:
            touched = await self._session.execute(
                UPDATE_LIMIT, {**_binds(limit), "expected_version": expected_version}
            )
        except NotFound as error:
            raise _no_such_environment(limit) from error
        if touched:
            return
        current = await self.get_limit(limit.key)
        raise Conflict(
            f"rate limit {limit.key!r} is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )

    async def delete_limit(self, key: str) -> None:
        if not await self._session.execute(DELETE_LIMIT, {"limit_key": key}):
            raise NotFound(f"rate limit {key!r} not found")

    async def record_triggers(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        """One UPDATE per limit, in key order: concurrent flushes then lock rows in the
        same order and cannot deadlock one another on Oracle."""
        for key in sorted(counts):
            triggers, triggered_at = counts[key]
            await self._session.execute(
                RECORD_TRIGGERS,
                {"limit_key": key, "triggers": triggers, "triggered_at": triggered_at},
            )

    def _limit(self, row: Row) -> RateLimit:
        read_time = self._session.dialect.read_time
        burst = row["burst_size"]
        return RateLimit(
            id=row["id"],
            key=row["limit_key"],
            name=row["limit_name"],
            description=row["description"],
            max_requests=int(row["max_requests"]),
            time_window_seconds=int(row["time_window_seconds"]),
            burst_size=None if burst is None else int(burst),
            queue_size=int(row["queue_size"]),
            scope_type=ScopeType(row["scope_type"]),
            scope_pattern=row["scope_pattern"],
            applies_to=row["applies_to"],
            http_methods=_methods(row["http_methods"]),
            action_on_limit=LimitAction(row["action_on_limit"]),
            block_duration_seconds=int(row["block_duration_seconds"]),
            retry_after_header=boolean(row["retry_after_header"]),
            custom_error_message=row["custom_error_message"],
            redirect_url=row["redirect_url"],
            exempt_roles=strings(row["exempt_roles"]),
            exempt_users=strings(row["exempt_users"]),
            exempt_ips=strings(row["exempt_ips"]),
            exempt_api_keys=strings(row["exempt_api_keys"]),
            sliding_window=boolean(row["sliding_window"]),
            distributed=boolean(row["distributed"]),
            fail_closed=boolean(row["fail_closed"]),
            inherit_from=row["inherit_from"],
            is_active=boolean(row["is_active"]),
            priority=int(row["priority"]),
            environment=row["environment"],
            track_metrics=boolean(row["track_metrics"]),
            alert_threshold_percentage=int(row["alert_threshold_percentage"]),
            version=int(row["version"]),
            trigger_count=int(row["trigger_count"]),
            last_triggered=read_time(row["last_triggered"]),
            created_at=read_time(row["created_at"]),
            updated_at=read_time(row["updated_at"]),
        )


def _binds(limit: RateLimit) -> dict[str, object]:
    # created_at and updated_at are NOT NULL with a default of "now", which an explicit
    # NULL bind would defeat: a limit not stamped by its caller is stamped here instead.
    now = datetime.now(UTC)
    return {
        "id": limit.id,
        "limit_key": limit.key,
        "limit_name": limit.name,
        "description": limit.description,
        "max_requests": limit.max_requests,
        "time_window_seconds": limit.time_window_seconds,
        "burst_size": limit.burst_size,
        "queue_size": limit.queue_size,
        "scope_type": limit.scope_type.value,
        "scope_pattern": limit.scope_pattern,
        "applies_to": limit.applies_to,
        "http_methods": ",".join(limit.http_methods) or None,
        "action_on_limit": limit.action_on_limit.value,
        "block_duration_seconds": limit.block_duration_seconds,
        "retry_after_header": limit.retry_after_header,
        "custom_error_message": limit.custom_error_message,
        "redirect_url": limit.redirect_url,
        "exempt_roles": json_list(limit.exempt_roles),
        "exempt_users": json_list(limit.exempt_users),
        "exempt_ips": json_list(limit.exempt_ips),
        "exempt_api_keys": json_list(limit.exempt_api_keys),
        "sliding_window": limit.sliding_window,
        "distributed": limit.distributed,
        "fail_closed": limit.fail_closed,
        "inherit_from": limit.inherit_from,
        "is_active": limit.is_active,
        "priority": limit.priority,
        "environment": limit.environment,
        "track_metrics": limit.track_metrics,
        "alert_threshold_percentage": limit.alert_threshold_percentage,
        "last_triggered": limit.last_triggered,
        "trigger_count": limit.trigger_count,
        "version": limit.version,
        "created_at": limit.created_at or now,
        "updated_at": limit.updated_at or now,
    }


def _no_such_environment(limit: RateLimit) -> InvalidArgument:
    """Both dialects report a foreign key violation as NotFound with no name in it. The
    environment is the only foreign key of `pf_rate_limits`, so it is the one refused."""
    return InvalidArgument.field(
        "rate_limit.environment", f"environment {limit.environment!r} does not exist"
    )


def _methods(value: Any) -> tuple[str, ...]:
    """`GET,POST` as written by this code, or with spaces as a person may have typed it."""
    if not value:
        return ()
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


__all__ = ["SqlRateLimitRepository"]
