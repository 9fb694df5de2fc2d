"""The audit trail is complete, measured: replaying the history rebuilds every table.

A long, seeded, random sequence of writes runs against a real SQLite file: keys created,
changed and deleted, values and overrides set at several priorities (some temporary, some
scheduled), overrides deleted, rollbacks, environments, templates saved and applied,
maintenance windows, flags (saved, switched, deleted, rolled back, turned off by their
error rate), rate limits, API tokens (made, revoked, expiring), users' grants, and
change requests for production (proposed, approved by a second person, rejected, refused
when stale). A scheduler on a clock the test moves expires, starts, opens
and closes what is due. Refused writes are part of the sequence: they must leave no
trace.

A second database, migrated and empty (a copy of the first taken before any write, so
that the rows the migrations seed are the same), is then rebuilt from nothing but the
first one's `pf_config_history`, read in (revision, change_index) order: one transaction
per revision, whose revision must be the one recorded. Every table of the two databases
must then hold the same rows, column for column, but:

- `pf_config_history`, the input;
- pf_feature_flags.evaluation_count and .last_evaluated,
  pf_rate_limits.trigger_count and .last_triggered, pf_config_templates.usage_count:
  counters of use, written in batches by the services, not changes (no one changes
  them, and no history row could say who did).

Timestamps are compared like any column. They come from the services' clock (the one
this test moves), and each history row records the rows its change wrote (`rows_after`),
stamps included. `change_timestamp` is not the same moment: the history repository takes
it from the wall clock when it writes the row.

Every kind of history row has a rebuild function in `REBUILDERS`; a kind without one
fails the test rather than being skipped, so that a new kind comes with the proof that
its rows are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import random
import sqlite3
import types
import typing
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.counters.local import LocalCounters
from switchyard.domain.errors import NotFound, SwitchyardError
from switchyard.domain.flags import EvaluationContext, FeatureFlag, flag_from_document
from switchyard.domain.integrity import Report
from switchyard.domain.limits import RateLimit, limit_from_document
from switchyard.domain.models import (
    ApiToken,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    ConfigDefinition,
    ConfigQuery,
    ConfigType,
    Environment,
    Grant,
    HistoryAction,
    HistoryEntry,
    JSONValue,
    MaintenanceWindow,
    Override,
    PageRequest,
    Principal,
    Template,
    User,
    Validation,
)
from switchyard.service.access import AccessService
from switchyard.service.changes import ChangeRequestService, ProposedWrite
from switchyard.service.config import ConfigService
from switchyard.service.context import SCHEDULER, WriteContext
from switchyard.service.flags import AUTO_DISABLE, FlagService
from switchyard.service.integrity import verify
from switchyard.service.limits import RateLimitService
from switchyard.service.ports import Transaction
from switchyard.service.scheduler import Scheduler
from switchyard.store import SqlStore, migrate, open_store

SEED = 20_261_125
STEPS = 450
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

TELEMETRY = {
    "pf_feature_flags": {"evaluation_count", "last_evaluated"},
    "pf_rate_limits": {"trigger_count", "last_triggered"},
    "pf_config_templates": {"usage_count"},
}
NOT_COMPARED = {"pf_config_history"}

ENVIRONMENTS = ["development", "test", "staging", "production", "demo", "local"]
NEW_ENVIRONMENTS = ["qa", "perf", "eu-prod"]
KEYS = {
    "api.timeout": ConfigType.NUMBER,
    "api.retries": ConfigType.NUMBER,
    "api.base-url": ConfigType.URL,
    "ui.banner": ConfigType.STRING,
    "ui.dark-mode": ConfigType.BOOLEAN,
    "jobs.schedule": ConfigType.CRON,
    "db.pool": ConfigType.JSON,
    "features.list": ConfigType.ARRAY,
}
FLAGS = ["checkout", "search-v2", "beta-banner", "fast-path"]
LIMITS = ["api-global", "api-user", "login"]
WINDOWS = ["nightly", "migration"]
TEMPLATES = ["high-traffic", "safe-mode"]
FEATURE_FLAGS: list[dict[str, JSONValue] | None] = [None, {"checkout": True}]
RATE_LIMITS: list[dict[str, JSONValue] | None] = [None, {"api-global": {"max_requests": 10}}]


class Clock:
    """The services' clock: the test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    rng: random.Random
    clock: Clock
    config: ConfigService
    flags: FlagService
    limits: RateLimitService
    scheduler: Scheduler
    access: AccessService
    changes: ChangeRequestService
    approver: Principal | None = None
    """A second person, who approves what the local operator proposes."""

    def as_approver(self) -> WriteContext:
        assert self.approver is not None
        return replace(self.ctx(), actor=replace(self.approver, address="10.0.1.1:50000"))

    def ctx(self) -> WriteContext:
        actor = replace(
            LOCAL_OPERATOR,
            address=f"10.0.0.{self.rng.randint(1, 250)}:5{self.rng.randint(1000, 9999)}",
        )
        return WriteContext(
            actor=actor,
            reason=f"step {self.rng.randint(1, 10**6)}",
            ticket=f"OPS-{self.rng.randint(1, 9999)}",
        )

    def environment(self) -> str:
        return self.rng.choice(ENVIRONMENTS + NEW_ENVIRONMENTS)

    def later(self, low: float, high: float) -> datetime:
        return self.clock.now + timedelta(seconds=self.rng.uniform(low, high))

    async def key(self, *, exists: bool = True) -> str:
        """A key that exists (or not, with `exists` False), mostly: now and then any
        key, so that refused writes are part of the sequence."""
        page, _ = await self.config.list_configs(
            ConfigQuery(include_inactive=True), PageRequest(size=100)
        )
        present = {definition.key for definition in page.items}
        wanted = [key for key in KEYS if (key in present) == exists]
        if wanted and self.rng.random() < 0.9:
            return self.rng.choice(wanted)
        return self.rng.choice(list(KEYS))


# --- the random values -------------------------------------------------------------------


def _value(rng: random.Random, kind: ConfigType) -> JSONValue:
    match kind:
        case ConfigType.NUMBER:
            return rng.choice([rng.randint(1, 100), round(rng.uniform(1, 100), 3)])
        case ConfigType.URL:
            return f"https://api-{rng.randint(1, 9)}.example.com/v{rng.randint(1, 3)}"
        case ConfigType.STRING:
            return rng.choice(["hello", "maintenance tonight", "", "déjà vu"])
        case ConfigType.BOOLEAN:
            return rng.random() < 0.5
        case ConfigType.CRON:
            return f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * *"
        case ConfigType.JSON:
            return {"size": rng.randint(1, 50), "idle": {"seconds": rng.randint(1, 9)}}
        case ConfigType.ARRAY:
            return rng.sample(["a", "b", "c", "d"], rng.randint(0, 3))
    raise AssertionError(kind)


def _definition(rng: random.Random, key: str) -> ConfigDefinition:
    kind = KEYS[key]
    numeric = kind is ConfigType.NUMBER
    return ConfigDefinition(
        key=key,
        type=kind,
        category=key.split(".", maxsplit=1)[0],
        subcategory=rng.choice([None, "core", "edge"]),
        display_name=key.replace(".", " ").title(),
        description=rng.choice([None, "what it does", "why it exists"]),
        help_text=rng.choice([None, "see the runbook"]),
        value=_value(rng, kind),
        default_value=_value(rng, kind) if rng.random() < 0.5 else None,
        validation=Validation(
            min_value=0 if numeric else None,
            max_value=1000 if numeric and rng.random() < 0.5 else None,
        ),
        is_required=rng.random() < 0.3,
        requires_restart=rng.random() < 0.3,
        cache_ttl_seconds=rng.choice([30, 300, 3600]),
    )


def _flag(rng: random.Random, key: str) -> FeatureFlag:
    guarded = rng.random() < 0.5
    return FeatureFlag(
        key=key,
        name=key.replace("-", " ").title(),
        description=rng.choice([None, "a flag"]),
        is_enabled=rng.random() < 0.7,
        rollout_percentage=rng.choice([0, 10, 50, 100]),
        enabled_for_users=tuple(rng.sample(["alice", "bob", "carol"], rng.randint(0, 2))),
        enabled_environments=tuple(rng.sample(ENVIRONMENTS, rng.randint(0, 2))),
        feature_category=rng.choice([None, "beta", "stable"]),
        owner_team=rng.choice([None, "payments", "search"]),
        failure_threshold=0.1 if guarded else None,
        auto_disable_on_error=guarded,
        is_permanent=rng.random() < 0.1,
        variants=rng.choice([{}, {"on": True, "off": False}, {"on": "#00f", "off": "#f00"}]),
        start_date=START + timedelta(days=rng.randint(-5, 5)) if rng.random() < 0.2 else None,
    )


def _limit(rng: random.Random, key: str) -> RateLimit:
    return RateLimit(
        key=key,
        name=key.replace("-", " ").title(),
        max_requests=rng.choice([10, 100, 1000]),
        time_window_seconds=rng.choice([1, 60, 3600]),
        description=rng.choice([None, "protects the API"]),
        burst_size=rng.choice([None, 20]),
        exempt_roles=tuple(rng.sample(["admin", "ops"], rng.randint(0, 2))),
        priority=rng.choice([50, 100, 200]),
        alert_threshold_percentage=rng.choice([50, 80, 95]),
        environment=rng.choice([None, "production"]),
    )


# --- the operations ------------------------------------------------------------------------

Operation = Callable[[World], Awaitable[object]]


async def create_config(w: World) -> object:
    return await w.config.create_config(_definition(w.rng, await w.key(exists=False)), w.ctx())


async def update_config(w: World) -> object:
    key = await w.key()
    patch = replace(
        _definition(w.rng, key),
        is_active=w.rng.random() < 0.9,
        is_deletable=w.rng.random() < 0.9,
        is_sensitive=w.rng.random() < 0.2,
    )
    paths = w.rng.sample(
        ["description", "help_text", "is_active", "requires_restart", "subcategory",
         "cache_ttl_seconds", "is_deletable", "is_sensitive", "display_name"],
        w.rng.randint(1, 4),
    )  # fmt: skip
    return await w.config.update_config(patch, paths, None, w.ctx())


async def delete_config(w: World) -> object:
    return await w.config.delete_config(await w.key(), None, w.ctx())


async def set_value(w: World) -> object:
    key = await w.key()
    value = _value(w.rng, KEYS[key])
    if w.rng.random() < 0.3:
        return await w.config.set_value(key, value, None, w.ctx())
    expires = w.later(5, 300) if w.rng.random() < 0.35 else None
    starts = w.later(1, 120) if w.rng.random() < 0.2 else None
    if starts is not None and expires is not None and starts >= expires:
        expires = starts + timedelta(seconds=60)
    return await w.config.set_value(
        key,
        value,
        w.environment(),
        w.ctx(),
        priority=w.rng.choice([None, 50, 200]),
        expires_at=expires,
        starts_at=starts,
    )


async def delete_override(w: World) -> object:
    key, environment, priority = await w.key(), w.environment(), w.rng.choice([None, 50, 100])
    with contextlib.suppress(SwitchyardError):
        _, overrides, _ = await w.config.get_config(key)
        if overrides and w.rng.random() < 0.9:
            chosen = w.rng.choice(overrides)
            environment, priority = chosen.environment, w.rng.choice([chosen.priority, None])
    return await w.config.delete_override(key, environment, priority, None, w.ctx())


async def rollback(w: World) -> object:
    environment = w.environment() if w.rng.random() < 0.6 else None
    key, steps = await w.key(), w.rng.choice([1, 1, 2, 3])
    return await w.config.rollback(key, environment, w.ctx(), steps=steps)


async def upsert_environment(w: World) -> object:
    name = w.rng.choice([*NEW_ENVIRONMENTS, "staging", "demo"])
    parent = {"qa": "staging", "perf": "staging", "eu-prod": "production"}.get(name)
    if name in ("staging", "demo"):
        parent = {"staging": None, "demo": "production"}[name]
    environment = Environment(
        name=name,
        parent=parent,
        description=w.rng.choice([None, f"{name} ({w.rng.randint(1, 99)})"]),
        protected=w.rng.choice([None, None, False, True]),
    )
    return await w.config.upsert_environment(environment, w.ctx())


async def upsert_template(w: World) -> object:
    keys = w.rng.sample(list(KEYS), w.rng.randint(1, 3))
    template = Template(
        name=w.rng.choice(TEMPLATES),
        template_type=w.rng.choice(["scaling", "incident"]),
        config_values={key: _value(w.rng, KEYS[key]) for key in keys},
        description=w.rng.choice([None, "for busy days"]),
        feature_flags=w.rng.choice(FEATURE_FLAGS),
        rate_limits=w.rng.choice(RATE_LIMITS),
        suitable_environments=tuple(w.rng.sample(["staging", "production"], w.rng.randint(0, 2))),
        suitable_scale=w.rng.choice([None, "large"]),
        prerequisites=tuple(w.rng.sample(["redis", "oracle"], w.rng.randint(0, 2))),
        version=w.rng.choice([None, "1.0", "2.1"]),
        is_default=w.rng.random() < 0.2,
        is_active=w.rng.random() < 0.9,
        author=w.rng.choice([None, "alice"]),
        team=w.rng.choice([None, "platform"]),
    )
    return await w.config.upsert_template(template, w.ctx())


async def apply_template(w: World) -> object:
    environment = w.rng.choice(["", "staging", "production"]) or None
    name = w.rng.choice(TEMPLATES)
    return await w.config.apply_template(name, environment, w.ctx(), best_effort=True)


async def upsert_window(w: World) -> object:
    keys = w.rng.sample(list(KEYS), w.rng.randint(1, 2))
    values = {key: _value(w.rng, KEYS[key]) for key in keys}
    if w.rng.random() < 0.5:
        starts = w.later(1, 200)
        schedule: dict[str, Any] = {
            "starts_at": starts,
            "ends_at": starts + timedelta(seconds=w.rng.uniform(30, 300)),
        }
    else:
        schedule = {"schedule_cron": f"*/{w.rng.choice([2, 5])} * * * *", "duration_seconds": 50}
    window = MaintenanceWindow(
        name=w.rng.choice(WINDOWS),
        environment=w.rng.choice(["staging", "production"]),
        config_values=values,
        description=w.rng.choice([None, "planned work"]),
        is_active=w.rng.random() < 0.9,
        **schedule,
    )
    return await w.config.upsert_window(window, w.ctx())


async def delete_window(w: World) -> object:
    return await w.config.delete_window(w.rng.choice(WINDOWS), w.ctx())


async def upsert_flag(w: World) -> object:
    return await w.flags.upsert_flag(_flag(w.rng, w.rng.choice(FLAGS)), None, w.ctx())


async def switch_flag(w: World) -> object:
    return await w.flags.set_enabled(w.rng.choice(FLAGS), w.rng.random() < 0.5, w.ctx())


async def delete_flag(w: World) -> object:
    return await w.flags.delete_flag(w.rng.choice(FLAGS), None, w.ctx())


async def rollback_flag(w: World) -> object:
    return await w.flags.rollback_flag(w.rng.choice(FLAGS), w.rng.randint(1, 3), w.ctx())


async def fail_flag(w: World) -> object:
    """Errors behind a guarded flag: past its threshold it turns itself off."""
    return await w.flags.report_outcome(
        w.rng.choice(FLAGS), w.rng.randint(0, 10), w.rng.randint(0, 15)
    )


async def evaluate_flags(w: World) -> object:
    """Use, not change: counted, and the counts written, but no history row."""
    for key in FLAGS:
        w.flags.evaluate(key, EvaluationContext(user_id=w.rng.choice(["alice", "dave"])))
    await w.flags.flush_counts()
    return None


async def upsert_limit(w: World) -> object:
    return await w.limits.upsert_limit(_limit(w.rng, w.rng.choice(LIMITS)), None, w.ctx())


async def delete_limit(w: World) -> object:
    return await w.limits.delete_limit(w.rng.choice(LIMITS), None, w.ctx())


async def rollback_limit(w: World) -> object:
    return await w.limits.rollback_limit(w.rng.choice(LIMITS), w.rng.randint(1, 3), w.ctx())


def _grants(rng: random.Random) -> list[Grant]:
    return [
        Grant(
            rng.choice(["reader", "editor", "admin", "site_admin"]),
            environments=tuple(rng.sample(ENVIRONMENTS, rng.randint(0, 2))),
            prefixes=tuple(rng.sample(["app.", "api.", "cache."], rng.randint(0, 1))),
        )
        for _ in range(rng.randint(1, 2))
    ]


async def create_token(w: World) -> object:
    expires = w.later(30, 600) if w.rng.random() < 0.5 else None
    return await w.access.create_token(
        f"person-{w.rng.randint(1, 5)}",
        _grants(w.rng),
        w.ctx(),
        expires_at=expires,
        description=w.rng.choice([None, "ci", "dashboard"]),
    )


async def revoke_token(w: World) -> object:
    live = [t.id for t in await w.access.list_tokens() if t.revoked_at is None]
    if live and w.rng.random() < 0.85:
        return await w.access.revoke_token(w.rng.choice(live), w.ctx())
    gone = [t.id for t in await w.access.list_tokens() if t.revoked_at is not None]
    return await w.access.revoke_token(w.rng.choice(gone or ["no-such-token"]), w.ctx())


async def grant_user(w: World) -> object:
    grants = _grants(w.rng) if w.rng.random() < 0.8 else []
    return await w.access.set_user_grants(f"cert-{w.rng.randint(1, 3)}", grants, w.ctx())


async def propose_change(w: World) -> object:
    """The local operator proposes a production value; some are bad values, refused
    when approved."""
    key = await w.key()
    value = _value(w.rng, KEYS[key]) if w.rng.random() < 0.85 else {"not": "a value"}
    environment = w.rng.choice(["production", "production", "staging"])
    write = ProposedWrite(
        method="/switchyard.v1.ConfigService/SetValue",
        request={"key": key, "environment": environment, "value": value},
        kind=ChangeKind.CONFIG,
        key=key,
        environment=environment,
    )
    pending = await w.changes.list(ChangeRequestStatus.PENDING, 50)
    amend = pending[0].id if pending and w.rng.random() < 0.2 else None
    return await w.changes.propose(write, w.ctx(), amend=amend)


async def approve_change(w: World) -> object:
    """A second person approves a pending request: the write applies with the approval,
    in one transaction, unless its target changed since (stale) or the value is bad."""
    pending = await w.changes.list(ChangeRequestStatus.PENDING, 50)
    if not pending:
        raise NotFound("nothing to approve")
    stored, approval = await w.changes.approval(
        w.rng.choice(pending).id, w.rng.choice(pending).content_digest, w.as_approver()
    )
    body = stored.request
    proposer = replace(LOCAL_OPERATOR, address="10.0.2.2:50000")
    ctx = WriteContext(proposer, stored.reason, stored.ticket, approval=approval)
    return await w.config.set_value(str(body["key"]), body["value"], str(body["environment"]), ctx)


async def reject_change(w: World) -> object:
    pending = await w.changes.list(ChangeRequestStatus.PENDING, 50)
    if not pending:
        raise NotFound("nothing to reject")
    return await w.changes.reject(w.rng.choice(pending).id, w.as_approver())


async def time_passes(w: World) -> object:
    """What the scheduler does by itself: overrides expire and start, windows open and
    close, as the clock says."""
    w.clock.advance(w.rng.choice([1, 5, 20, 60, 150]))
    return await w.scheduler.run_once()


OPERATIONS: dict[Operation, int] = {
    create_config: 8,
    update_config: 5,
    delete_config: 2,
    set_value: 25,
    delete_override: 6,
    rollback: 8,
    upsert_environment: 3,
    upsert_template: 2,
    apply_template: 3,
    upsert_window: 3,
    delete_window: 2,
    upsert_flag: 6,
    switch_flag: 4,
    delete_flag: 1,
    rollback_flag: 3,
    fail_flag: 3,
    evaluate_flags: 2,
    upsert_limit: 4,
    delete_limit: 1,
    rollback_limit: 2,
    time_passes: 15,
    create_token: 3,
    revoke_token: 2,
    grant_user: 2,
    propose_change: 6,
    approve_change: 5,
    reject_change: 1,
}


async def run_workload(world: World) -> Counter[str]:
    """Runs STEPS random operations; returns how many of each went through and how many
    were refused."""
    done: Counter[str] = Counter()
    operations, weights = list(OPERATIONS), list(OPERATIONS.values())
    for key in list(KEYS)[:5]:
        await world.config.create_config(_definition(world.rng, key), world.ctx())
    await world.config.upsert_environment(Environment("qa", parent="staging"), world.ctx())
    approver, _ = await world.access.set_user_grants("approver", [Grant("site_admin")], world.ctx())
    world.approver = Principal(approver.id, approver.username, "site_admin")
    for _ in range(STEPS):
        operation = world.rng.choices(operations, weights)[0]
        world.clock.advance(world.rng.uniform(0, 3))
        try:
            await operation(world)
        except SwitchyardError:
            done["refused"] += 1
        else:
            done[operation.__name__] += 1
    # Leave overrides still to expire and to start: the rebuild must hold those too.
    key = await world.key()
    value = _value(world.rng, KEYS[key])
    later = world.later(3600, 7200)
    await world.config.set_value(key, value, "staging", world.ctx(), priority=300, expires_at=later)
    await world.config.set_value(key, value, "staging", world.ctx(), priority=301, starts_at=later)
    return done


# --- the rebuild ---------------------------------------------------------------------------

Rebuild = Callable[[Transaction, HistoryEntry], Awaitable[None]]
WriteRow = Callable[[Transaction, HistoryEntry, "dict[str, JSONValue] | None"], Awaitable[None]]


def from_document(cls: type[Any], document: JSONValue) -> Any:
    """The inverse of `service.audit.row_document`: a domain object from its fields."""
    assert isinstance(document, dict), document
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(
        **{name: _decode(hints[name], value) for name, value in document.items() if name in fields}
    )


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        choices = [a for a in args if a is not type(None)]
        if datetime in choices:
            return datetime.fromisoformat(value)
        return _decode(choices[0], value) if len(choices) == 1 else value
    if hint is datetime:
        return datetime.fromisoformat(value)
    if origin is tuple:
        return tuple(_decode(args[0], item) for item in value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_document(hint, value)
    return value


async def _config_row(
    tx: Transaction, entry: HistoryEntry, row: dict[str, JSONValue] | None
) -> None:
    if row is None:
        await tx.configs.delete_config(entry.key)
        return
    definition: ConfigDefinition = from_document(ConfigDefinition, row)
    current = await tx.configs.find_config(definition.key)
    if current is None:
        await tx.configs.create_config(definition)
    else:
        await tx.configs.update_config(definition, expected_version=current.version)


async def _override_row(
    tx: Transaction, entry: HistoryEntry, row: dict[str, JSONValue] | None
) -> None:
    if row is None:
        await tx.overrides.delete_override(entry.record_id)
    else:
        await tx.overrides.upsert_override(from_document(Override, row))


async def _environment_row(
    tx: Transaction, entry: HistoryEntry, row: dict[str, JSONValue] | None
) -> None:
    assert row is not None, "environments are never deleted"
    updated_at = datetime.fromisoformat(str(row["updated_at"]))
    if "created_at" in row:
        assert row["created_at"] == row["updated_at"]
    await tx.environments.upsert_environment(from_document(Environment, row), now=updated_at)


async def _template_row(
    tx: Transaction, entry: HistoryEntry, row: dict[str, JSONValue] | None
) -> None:
    assert row is not None, "templates are never deleted"
    await tx.templates.upsert_template(from_document(Template, row))


async def _window_row(
    tx: Transaction, entry: HistoryEntry, row: dict[str, JSONValue] | None
) -> None:
    if row is None:
        await tx.windows.delete_window(entry.key)
    else:
        await tx.windows.upsert_window(from_document(MaintenanceWindow, row))


TABLE_WRITERS: dict[str, WriteRow] = {
    "pf_system_config": _config_row,
    "pf_environment_config": _override_row,
    "pf_environments": _environment_row,
    "pf_config_templates": _template_row,
    "pf_maintenance_windows": _window_row,
}


async def rows_after(tx: Transaction, entry: HistoryEntry) -> None:
    """Kinds whose values are not whole rows: the rows the change wrote, as recorded."""
    if entry.rows_after is None:
        pytest.fail(
            f"revision {entry.revision}.{entry.change_index} ({entry.kind}) records no rows_after"
        )
    for table, row in entry.rows_after.items():
        writer = TABLE_WRITERS.get(table)
        if writer is None:
            pytest.fail(f"no writer for rows of {table} (revision {entry.revision})")
        assert row is None or isinstance(row, dict)
        await writer(tx, entry, row)


async def flag(tx: Transaction, entry: HistoryEntry) -> None:
    """A flag's history row holds its whole definition."""
    before = await tx.flags.find_flag(entry.key)
    if not isinstance(entry.new_value, dict):
        await tx.flags.delete_flag(entry.key)
    elif before is None:
        await tx.flags.create_flag(flag_from_document(entry.new_value))
    else:
        await tx.flags.update_flag(
            flag_from_document(entry.new_value), expected_version=before.version
        )


async def rate_limit(tx: Transaction, entry: HistoryEntry) -> None:
    """A limit's history row holds its whole definition."""
    before = await tx.limits.find_limit(entry.key)
    if not isinstance(entry.new_value, dict):
        await tx.limits.delete_limit(entry.key)
    elif before is None:
        await tx.limits.create_limit(limit_from_document(entry.new_value))
    else:
        await tx.limits.update_limit(
            limit_from_document(entry.new_value), expected_version=before.version
        )


async def token(tx: Transaction, entry: HistoryEntry) -> None:
    """A token's row holds the whole token (its hash, never the token)."""
    made: ApiToken = from_document(ApiToken, entry.new_value)
    if entry.action is HistoryAction.CREATE:
        await tx.tokens.insert_token(made)
    else:
        assert entry.action is HistoryAction.REVOKE
        assert await tx.tokens.revoke_token(made)


async def user(tx: Transaction, entry: HistoryEntry) -> None:
    await tx.users.upsert_user(from_document(User, entry.new_value))


async def change_request(tx: Transaction, entry: HistoryEntry) -> None:
    """A change request's row holds the whole request after the change."""
    after: ChangeRequest = from_document(ChangeRequest, entry.new_value)
    before = await tx.change_requests.find_request(after.id)
    if before is None:
        await tx.change_requests.insert_request(after)
    else:
        assert await tx.change_requests.update_request(after, expected=before)


REBUILDERS: dict[ChangeKind, Rebuild] = {
    ChangeKind.TOKEN: token,
    ChangeKind.USER: user,
    ChangeKind.CHANGE_REQUEST: change_request,
    ChangeKind.CONFIG: rows_after,
    ChangeKind.ENVIRONMENT: rows_after,
    ChangeKind.TEMPLATE: rows_after,
    ChangeKind.MAINTENANCE_WINDOW: rows_after,
    ChangeKind.FLAG: flag,
    ChangeKind.RATE_LIMIT: rate_limit,
}


async def rebuild(store: SqlStore, history: list[HistoryEntry]) -> None:
    """Applies the history to `store`, one transaction per revision, as it was made."""
    revisions: dict[int, list[HistoryEntry]] = {}
    for entry in history:
        revisions.setdefault(entry.revision, []).append(entry)
    for revision, entries in revisions.items():
        async with store.transaction() as tx:
            assert await tx.allocate_revision() == revision, "a revision is missing"
            for entry in entries:
                rebuilder = REBUILDERS.get(entry.kind)
                if rebuilder is None:
                    pytest.fail(
                        f"no rebuild for history rows of kind {entry.kind.value!r}: "
                        "add one to REBUILDERS"
                    )
                await rebuilder(tx, entry)


# --- comparing two databases ------------------------------------------------------------


def table_rows(path: Path) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every table but those not compared: its rows by primary key, without the columns
    not compared."""
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        names = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for name in names:
            if name in NOT_COMPARED:
                continue
            info = db.execute(f"PRAGMA table_info({name})").fetchall()
            key = [column["name"] for column in sorted(info, key=lambda c: c["pk"]) if column["pk"]]
            skipped = TELEMETRY.get(name, set())
            rows = {}
            for row in db.execute(f"SELECT * FROM {name}"):
                values = {k: row[k] for k in row.keys() if k not in skipped}  # noqa: SIM118
                rows[tuple(row[k] for k in key)] = values
            tables[name] = rows
    return tables


def differences(source: Path, rebuilt: Path) -> list[str]:
    want, got = table_rows(source), table_rows(rebuilt)
    found = [f"table {t} only in the source" for t in want.keys() - got.keys()]
    found += [f"table {t} only in the rebuilt database" for t in got.keys() - want.keys()]
    for table in sorted(want.keys() & got.keys()):
        mine, theirs = want[table], got[table]
        for key in sorted(mine.keys() - theirs.keys(), key=repr):
            found.append(f"{table} {key}: missing from the rebuilt database")
        for key in sorted(theirs.keys() - mine.keys(), key=repr):
            found.append(f"{table} {key}: in the rebuilt database only")
        for key in sorted(mine.keys() & theirs.keys(), key=repr):
            for column, value in mine[key].items():
                if theirs[key][column] != value:
                    found.append(
                        f"{table} {key}.{column}: {value!r} != rebuilt {theirs[key][column]!r}"
                    )
    return found


# --- the tests -------------------------------------------------------------------------------


@dataclass
class Replayed:
    source: Path
    rebuilt: Path
    history: list[HistoryEntry]
    done: Counter[str]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    """Run once for the tests below (it takes a few seconds), on a loop of its own."""
    return asyncio.run(replay(tmp_path_factory.mktemp("replay")))


async def replay(directory: Path) -> Replayed:
    source, rebuilt = directory / "source.db", directory / "rebuilt.db"
    store = await open_store(f"sqlite:///{source}")
    await migrate(store)
    await store.close()
    with (
        contextlib.closing(sqlite3.connect(source)) as a,
        contextlib.closing(sqlite3.connect(rebuilt)) as b,
    ):
        a.backup(b)  # migrated, seeded, and no change made yet

    clock = Clock()
    store = await open_store(f"sqlite:///{source}")
    config = ConfigService(store, clock=clock)
    await config.start()
    flags = FlagService(store, clock=clock, flush_seconds=3600)
    await flags.start()
    limits = RateLimitService(store, local=LocalCounters(), clock=clock, flush_seconds=3600)
    await limits.start()
    access = AccessService(store, clock=clock)
    await access.start()
    changes = ChangeRequestService(store, clock=clock)
    world = World(
        random.Random(SEED),
        clock,
        config,
        flags,
        limits,
        Scheduler(config, clock=clock),
        access,
        changes,
    )
    try:
        done = await run_workload(world)
        async with store.read() as reader:
            history = await reader.history.history_after(0, 1_000_000)
    finally:
        await access.close()
        await flags.close()
        await limits.close()
        await config.close()
        await store.close()

    target = await open_store(f"sqlite:///{rebuilt}")
    try:
        await rebuild(target, history)
    finally:
        await target.close()
    return Replayed(source, rebuilt, history, done)


def test_the_workload_is_long_and_varied(replayed: Replayed) -> None:
    """The sequence exercises what the replay must rebuild, refusals included."""
    done = replayed.done
    assert set(OPERATIONS) and all(done[op.__name__] > 0 for op in OPERATIONS), done
    assert done["refused"] > 0
    assert len({e.revision for e in replayed.history}) > 250
    actions = Counter((e.kind, e.action) for e in replayed.history)
    for needed in [
        (ChangeKind.CONFIG, HistoryAction.ROLLBACK),
        (ChangeKind.CONFIG, HistoryAction.ENABLE),  # a scheduled override started
        (ChangeKind.FLAG, HistoryAction.ROLLBACK),
        (ChangeKind.RATE_LIMIT, HistoryAction.ROLLBACK),
        (ChangeKind.MAINTENANCE_WINDOW, HistoryAction.ENABLE),
        (ChangeKind.MAINTENANCE_WINDOW, HistoryAction.DISABLE),
        (ChangeKind.TOKEN, HistoryAction.CREATE),
        (ChangeKind.TOKEN, HistoryAction.REVOKE),
        (ChangeKind.USER, HistoryAction.UPDATE),
        (ChangeKind.CHANGE_REQUEST, HistoryAction.PROPOSE),
        (ChangeKind.CHANGE_REQUEST, HistoryAction.UPDATE),
        (ChangeKind.CHANGE_REQUEST, HistoryAction.APPROVE),
        (ChangeKind.CHANGE_REQUEST, HistoryAction.REJECT),
    ]:
        assert actions[needed] > 0, needed


def test_replaying_the_history_rebuilds_every_table(replayed: Replayed) -> None:
    found = differences(replayed.source, replayed.rebuilt)
    assert found == [], f"{len(found)} differences:\n" + "\n".join(found[:40])


def test_the_rebuilt_tables_are_not_empty(replayed: Replayed) -> None:
    """The comparison compares something: the tables the workload writes hold rows, and
    the overrides include some the scheduler has yet to act on."""
    tables = table_rows(replayed.rebuilt)
    for table in (
        "pf_system_config",
        "pf_environment_config",
        "pf_feature_flags",
        "pf_rate_limits",
        "pf_config_templates",
        "pf_maintenance_windows",
        "pf_api_tokens",
        "pf_change_requests",
    ):
        assert tables[table], table
    statuses = Counter(row["status"] for row in tables["pf_change_requests"].values())
    assert statuses["applied"] and statuses["rejected"] and statuses["pending"], statuses
    approved = [e for e in replayed.history if e.approved_by is not None]
    assert approved and all(e.kind is ChangeKind.CONFIG for e in approved)
    overrides = tables["pf_environment_config"].values()
    assert any(row["expires_at"] for row in overrides), "no temporary override left to expire"
    assert any(not row["is_active"] for row in overrides), "no scheduled override left to start"


def test_every_row_says_who_where_why_and_when(replayed: Replayed) -> None:
    """Who (user and role), from where, why, under which ticket, at which revision: on
    every row. Automatic changes name the scheduler and say what happened; the others
    carry the reason and ticket of the write."""
    for entry in replayed.history:
        where = f"revision {entry.revision}.{entry.change_index} {entry.kind} {entry.action}"
        assert entry.changed_by and entry.changed_by_role and entry.client_address, where
        assert entry.reason, where
        assert entry.revision > 0 and entry.changed_at is not None, where
        if entry.changed_by == SCHEDULER.user_id:
            assert entry.changed_by_role == "system", where
            assert entry.client_address in (SCHEDULER.address, AUTO_DISABLE.address), where
        else:
            assert entry.reason.startswith("step ") and entry.ticket, where


def test_every_automatic_change_has_its_row(replayed: Replayed) -> None:
    """Overrides expiring and starting, windows opening and closing, flags turning
    themselves off: each is a recorded change, by the scheduler, with its reason."""
    automatic = [e for e in replayed.history if e.changed_by == SCHEDULER.user_id]
    reasons = Counter(e.reason.split(":")[0] for e in automatic if e.reason)
    assert reasons["temporary override expired"] > 0, reasons
    assert reasons["scheduled override started"] > 0, reasons
    assert any(r.startswith("maintenance window") and r.endswith("opened") for r in reasons), (
        reasons
    )
    assert any(r.startswith("maintenance window") and r.endswith("closed") for r in reasons), (
        reasons
    )
    disabled = [e for e in automatic if e.client_address == AUTO_DISABLE.address]
    assert disabled and all(e.reason and e.reason.startswith("auto-disabled") for e in disabled)
    assert all(e.action is HistoryAction.DISABLE and e.kind is ChangeKind.FLAG for e in disabled)


def test_the_comparison_finds_a_changed_column(replayed: Replayed, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    with (
        contextlib.closing(sqlite3.connect(replayed.rebuilt)) as a,
        contextlib.closing(sqlite3.connect(copy)) as b,
    ):
        a.backup(b)
        b.execute("UPDATE pf_environment_config SET updated_at = '2000-01-01 00:00:00.000000'")
        b.commit()
    found = differences(replayed.source, copy)
    assert found and all(".updated_at:" in line for line in found)


async def test_a_kind_without_a_rebuild_fails_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(REBUILDERS, ChangeKind.TOKEN)
    store = await open_store(f"sqlite:///{tmp_path / 'unknown.db'}")
    await migrate(store)
    entry = HistoryEntry(
        id="x", revision=1, change_index=0, kind=ChangeKind.TOKEN, table_name="pf_api_tokens",
        record_id="t", key="t", environment=None, action=HistoryAction.CREATE, old_value=None,
        new_value={}, value_diff=[], reason=None, ticket=None, changed_by=SCHEDULER.user_id,
        changed_by_role="system", client_address=None, changed_at=START,
    )  # fmt: skip
    try:
        with pytest.raises(pytest.fail.Exception, match="no rebuild for history rows"):
            await rebuild(store, [entry])
    finally:
        await store.close()


# --- `switchyard verify` checks the same chain ---------------------------------------------


async def _verified(path: Path) -> Report:
    store = await open_store(f"sqlite:///{path}")
    try:
        return await verify(store)
    finally:
        await store.close()


async def test_verify_finds_every_invariant_held_by_the_workload(replayed: Replayed) -> None:
    """The long random workload leaves a database whose history agrees with every table:
    the fold `switchyard verify` makes of it finds no difference."""
    report = await _verified(replayed.source)
    assert report.violations == (), "\n".join(v.line() for v in report.violations[:20])
    assert report.notes == ()
    assert report.checked["history_rows"] == len(replayed.history)
    assert report.checked["table_rows"] > 50


async def test_verify_names_a_column_changed_past_the_history(
    replayed: Replayed, tmp_path: Path
) -> None:
    copy = tmp_path / "tampered.db"
    with (
        contextlib.closing(sqlite3.connect(replayed.source)) as a,
        contextlib.closing(sqlite3.connect(copy)) as b,
    ):
        a.backup(b)
        (row_id,) = b.execute("SELECT id FROM pf_environment_config LIMIT 1").fetchone()
        b.execute(
            "UPDATE pf_environment_config SET override_reason = 'edited by hand' WHERE id = ?",
            (row_id,),
        )
        b.commit()

    report = await _verified(copy)

    assert [(v.check, v.table, v.row) for v in report.violations] == [
        ("chain", "pf_environment_config", row_id)
    ]
    assert "reason differ" in report.violations[0].message
    assert report.violations[0].revision is not None
