"""ConfigService use cases: typed values, overrides, history, rollback, templates.

Read path: L1 cache, then one consistent snapshot of the store. Write path: validate, one
transaction that writes the rows and their history under a new revision, commit, then
invalidate the cache and tell the commit listeners. A failed write changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog

from switchyard.cache.local import LocalCache
from switchyard.cache.shared import SharedCache
from switchyard.domain.diff import json_diff
from switchyard.domain.environments import ancestry, check_environment
from switchyard.domain.errors import (
    Conflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    SwitchyardError,
    Unavailable,
)
from switchyard.domain.keys import (
    check_environment_name,
    check_key,
    check_key_prefix,
    check_template_name,
    check_window_name,
)
from switchyard.domain.models import (
    DEFAULT_PRIORITY,
    Change,
    ChangeKind,
    ConfigDefinition,
    ConfigQuery,
    ConfigType,
    Environment,
    HistoryAction,
    HistoryEntry,
    HistoryQuery,
    JSONValue,
    MaintenanceWindow,
    Override,
    Page,
    PageRequest,
    ResolvedValue,
    Template,
    Validation,
    ValueSource,
    WindowState,
)
from switchyard.domain.resolution import next_expiry, resolve
from switchyard.domain.templates import check_template
from switchyard.domain.values import (
    check_definition,
    check_relations,
    check_value,
    encode_value,
    is_truthy,
)
from switchyard.domain.windows import check_window, next_transition, occurrence_at
from switchyard.metrics import READS_COALESCED, SCHEDULED_CHANGES, STALE_ANSWERS
from switchyard.service import secret_guard
from switchyard.service.audit import environment_row, row_document
from switchyard.service.context import SCHEDULER, Clock, WriteContext, utc_now
from switchyard.service.ports import Reader, Store, Transaction
from switchyard.service.recorded import record_history

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_BATCH_KEYS = 1000
MAX_PRIORITY = 99_999
MAX_ROLLBACK_STEPS = 1000
_WRITE_ATTEMPTS = 3
"""A write without `expected_version` that loses a version race is retried this often."""

SYSTEM_TABLE = "pf_system_config"
OVERRIDE_TABLE = "pf_environment_config"
ENVIRONMENT_TABLE = "pf_environments"
TEMPLATE_TABLE = "pf_config_templates"
WINDOW_TABLE = "pf_maintenance_windows"
WINDOW_PRIORITY = 50_000
"""Maintenance windows apply their values as overrides at this priority: above what
people set (100 by default), so that closing the window brings those back."""

# Fields of a definition that UpdateConfig may change, by update_mask path.
_MUTABLE_FIELDS = (
    "type",
    "category",
    "subcategory",
    "display_name",
    "description",
    "help_text",
    "default_value",
    "is_required",
    "is_sensitive",
    "is_encrypted",
    "is_active",
    "is_editable",
    "is_deletable",
    "requires_restart",
    "cache_ttl_seconds",
)
_VALIDATION_FIELDS = tuple(f.name for f in dataclasses.fields(Validation))


class CommitListener(Protocol):
    """Told about every committed change, after the commit (the change bus hooks in here)."""

    def __call__(self, revision: int, entries: Sequence[HistoryEntry]) -> None: ...


@dataclass(frozen=True, slots=True)
class Read:
    """A read's answer together with the revision it reflects. `stale` when the database
    could not be reached and the answer came from the cache."""

    value: ResolvedValue
    revision: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Reads:
    """A batch read: the keys found, those missing, the revision they reflect."""

    values: list[ResolvedValue]
    missing: list[str]
    revision: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class SetValueResult:
    key: str
    value: JSONValue
    environment: str | None
    version: int
    revision: int
    requires_restart: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class RollbackResult:
    key: str
    environment: str | None
    old_value: JSONValue
    new_value: JSONValue
    diff: list[dict[str, JSONValue]]
    restored_from_revision: int
    dry_run: bool
    version: int
    revision: int


class TemplateOutcome:
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class TemplateItem:
    key: str
    outcome: str
    old_value: JSONValue = None
    new_value: JSONValue = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    items: list[TemplateItem]
    dry_run: bool
    applied: bool
    revision: int


@dataclass(frozen=True, slots=True)
class _PlannedWrite:
    """One layer of one key to change, decided and validated, not yet written."""

    definition: ConfigDefinition
    environment: str | None
    old_value: JSONValue
    new_value: JSONValue
    override: Override | None  # the row to upsert for an override layer
    existing: Override | None  # the row it replaces, if any
    delete: bool = False  # remove `existing` instead of upserting


def _same(a: JSONValue, b: JSONValue) -> bool:
    # Python says True == 1; JSON does not.
    return encode_value(a) == encode_value(b)


def definition_document(definition: ConfigDefinition) -> dict[str, JSONValue]:
    """The definition as recorded in the history: what a person needs to see what changed."""
    validation = definition.validation
    return {
        "key": definition.key,
        "type": definition.type.value,
        "category": definition.category,
        "subcategory": definition.subcategory,
        "display_name": definition.display_name,
        "description": definition.description,
        "help_text": definition.help_text,
        "value": definition.value,
        "default_value": definition.default_value,
        "validation": {
            "min_value": validation.min_value,
            "max_value": validation.max_value,
            "regex_pattern": validation.regex_pattern,
            "allowed_values": list(validation.allowed_values),
            "depends_on": list(validation.depends_on),
            "conflicts_with": list(validation.conflicts_with),
            "validation_rule": validation.validation_rule,
        },
        "is_required": definition.is_required,
        "is_sensitive": definition.is_sensitive,
        "is_encrypted": definition.is_encrypted,
        "is_active": definition.is_active,
        "is_editable": definition.is_editable,
        "is_deletable": definition.is_deletable,
        "requires_restart": definition.requires_restart,
        "cache_ttl_seconds": definition.cache_ttl_seconds,
    }


def merge_definition(
    current: ConfigDefinition, patch: ConfigDefinition, paths: Sequence[str]
) -> ConfigDefinition:
    """`current` with the fields named by `paths` taken from `patch`; every mutable field
    when `paths` is empty. Raises InvalidArgument for a path that cannot be updated."""
    if not paths:
        paths = [*_MUTABLE_FIELDS, "validation"]
    changes: dict[str, object] = {}
    validation_changes: dict[str, object] = {}
    violations = []
    for path in paths:
        if path in _MUTABLE_FIELDS:
            changes[path] = getattr(patch, path)
        elif path == "validation":
            changes["validation"] = patch.validation
        elif path.startswith("validation.") and path.removeprefix("validation.") in (
            _VALIDATION_FIELDS
        ):
            name = path.removeprefix("validation.")
            validation_changes[name] = getattr(patch.validation, name)
        elif path == "value":
            violations.append(
                FieldViolation("update_mask", "the base value is changed with SetValue")
            )
        elif path == "key":
            violations.append(FieldViolation("update_mask", "a key cannot be renamed"))
        else:
            violations.append(FieldViolation("update_mask", f"unknown or read-only path {path!r}"))
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)
    merged = replace(current, **changes)  # type: ignore[arg-type]
    if validation_changes:
        merged = replace(merged, validation=replace(merged.validation, **validation_changes))  # type: ignore[arg-type]
    return merged


class ConfigService:
    """The configuration use cases, over a `Store` and an L1 cache of resolved values."""

    def __init__(
        self,
        store: Store,
        *,
        cache: LocalCache[ResolvedValue] | None = None,
        shared: SharedCache | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._cache: LocalCache[ResolvedValue] = cache if cache is not None else LocalCache()
        self._shared = shared
        self._clock = clock
        self._revision = 0
        # The revision the caches are current to: every change up to it has been applied
        # to them, in order. What a cached answer reports: the newest revision seen (a
        # database read may see one the follower has not applied yet) would claim a
        # freshness the cache may not have.
        self._current = 0
        self._listeners: list[CommitListener] = []
        # What this process knows of changes, for refusing shared (L2) entries read before
        # a change it has heard of: the revision of each key's last change, of the last
        # change that touches every key (an environment's parent), and the revision the
        # process started at (it heard of nothing before).
        self._changed: dict[str, int] = {}
        self._all_changed = 0
        self._floor = 0
        # Reads of one (key, environment) in flight, shared by those that ask meanwhile
        # (after a change, every watcher of a key asks at once), with the key's
        # invalidation mark when they started: a read that a change overtook is not shared.
        self._inflight: dict[tuple[str, str], tuple[int, asyncio.Future[Read]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def revision(self) -> int:
        """The newest revision this process has seen committed."""
        return self._revision

    @property
    def cache(self) -> LocalCache[ResolvedValue]:
        return self._cache

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> int:
        """Learns the current revision, so reads from cache can report it; returns it.
        Shared cache entries read before it are refused: this process did not hear of
        the changes before it started."""
        async with self._store.read() as reader:
            revision = await reader.current_revision()
        self._observe(revision)
        self._floor = revision
        self._current = revision
        return revision

    def _observe(self, revision: int) -> None:
        self._revision = max(self._revision, revision)

    # --- reads ---------------------------------------------------------------------

    async def get_value(self, key: str, environment: str | None) -> Read:
        """Raises NotFound for an unknown or inactive key, InvalidArgument for an
        unknown environment, Unavailable when the database cannot be reached and the
        cache holds no answer."""
        scope = environment or ""
        cached = self._cache.get(key, scope)
        if cached is not None:
            return Read(cached, self._current)
        check_key(key)
        if environment:
            check_environment_name(environment)
        return await self._flight(key, environment, scope)

    async def _flight(self, key: str, environment: str | None, scope: str) -> Read:
        """One `_load` of (key, environment) at a time: a read that finds one in flight,
        started after the key's last change, waits for its answer."""
        mark = self._cache.invalidation_mark(key)
        flight = self._inflight.get((key, scope))
        if flight is not None and flight[0] == mark and not flight[1].cancelled():
            READS_COALESCED.inc()
            return await asyncio.shield(flight[1])
        future: asyncio.Future[Read] = asyncio.get_running_loop().create_future()
        self._inflight[(key, scope)] = (mark, future)
        try:
            read = await self._load(key, environment, scope)
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved here, whether or not anyone else waits
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            if self._inflight.get((key, scope), (0, None))[1] is future:
                del self._inflight[(key, scope)]
        future.set_result(read)
        return read

    async def _load(self, key: str, environment: str | None, scope: str) -> Read:
        """The read behind an L1 miss: the shared cache, else the database (else, when
        the database cannot be reached, what L1 last held)."""
        if self._shared is not None:
            entry = await self._shared.get(key, scope)
            if entry is not None and entry.revision >= self._fresh_from(key):
                resolved = decode_resolved(entry.payload)
                self._cache.put(
                    key, scope, resolved, ttl=entry.expires - time.time(), revision=entry.revision
                )
                return Read(resolved, max(self._current, entry.revision))
        try:
            async with self._store.read() as reader:
                revision = await reader.current_revision()
                definition = await reader.configs.find_config(key)
                if definition is None or not definition.is_active:
                    raise NotFound(f"config key {key!r} not found")
                chain = await self._chain(reader, environment)
                overrides = await reader.overrides.list_overrides(key, chain) if chain else []
        except Unavailable:
            stale = self._cache.peek(key, scope)
            if stale is None:
                raise
            STALE_ANSWERS.inc()
            return Read(stale, self._current, stale=True)
        self._observe(revision)
        now = self._clock()
        resolved = resolve(definition, overrides, chain, now)
        ttl = float(definition.cache_ttl_seconds)
        expiry = next_expiry(overrides, chain, now)
        if expiry is not None:
            ttl = min(ttl, (expiry - now).total_seconds())
        self._cache.put(key, scope, resolved, ttl=ttl, revision=revision)
        # The plain text of an encrypted key's value stays in this process's memory: it
        # never goes to Redis.
        if (
            self._shared is not None
            and revision >= self._fresh_from(key)
            and not definition.is_encrypted
        ):
            await self._shared.put(
                key, scope, encode_resolved(resolved), revision=revision, ttl=ttl
            )
        return Read(resolved, revision)

    async def get_values(self, keys: Sequence[str], environment: str | None) -> Reads:
        """Resolves `keys` in one snapshot (L1, when it holds them all: its entries are
        all current at this process's revision). Unknown or inactive keys are returned
        as missing rather than failing the batch."""
        if not keys:
            raise InvalidArgument.field("keys", "at least one key is required")
        if len(keys) > MAX_BATCH_KEYS:
            raise InvalidArgument.field("keys", f"at most {MAX_BATCH_KEYS} keys per call")
        violations = []
        for index, key in enumerate(keys):
            try:
                check_key(key, f"keys[{index}]")
            except InvalidArgument as error:
                violations.extend(error.violations)
        if violations:
            raise InvalidArgument("; ".join(v.description for v in violations), violations)
        if environment:
            check_environment_name(environment)
        unique = list(dict.fromkeys(keys))
        scope = environment or ""
        cached = [self._cache.get(key, scope) for key in unique]
        if all(value is not None for value in cached):
            return Reads([v for v in cached if v is not None], [], self._current)
        try:
            async with self._store.read() as reader:
                revision = await reader.current_revision()
                chain = await self._chain(reader, environment)
                definitions = await reader.configs.get_configs(unique)
                active = [k for k in unique if k in definitions and definitions[k].is_active]
                overrides = (
                    await reader.overrides.list_overrides_for_keys(active, chain)
                    if chain and active
                    else []
                )
        except Unavailable:
            stale = [self._cache.peek(key, scope) for key in unique]
            if any(value is None for value in stale):
                raise
            STALE_ANSWERS.inc()
            return Reads([v for v in stale if v is not None], [], self._current, stale=True)
        self._observe(revision)
        now = self._clock()
        by_key: dict[str, list[Override]] = {}
        for override in overrides:
            by_key.setdefault(override.key, []).append(override)
        values = [resolve(definitions[k], by_key.get(k, []), chain, now) for k in active]
        missing = [k for k in unique if k not in active]
        return Reads(values, missing, revision)

    async def history_after(
        self, after_revision: int, limit: int, after_index: int | None = None
    ) -> list[HistoryEntry]:
        """The history after a revision (and, with `after_index`, after that row of it),
        oldest first: what the follower reads."""
        async with self._store.read() as reader:
            return await reader.history.history_after(
                after_revision, limit, after_index=after_index
            )

    async def _snapshot(self, read: Callable[[Reader], Awaitable[T]]) -> tuple[T, int]:
        """What `read` answers from one snapshot, with the revision that snapshot is at."""
        async with self._store.read() as reader:
            revision = await reader.current_revision()
            result = await read(reader)
        self._observe(revision)
        return result, revision

    async def get_config(self, key: str) -> tuple[ConfigDefinition, list[Override], int]:
        check_key(key)

        async def read(reader: Reader) -> tuple[ConfigDefinition, list[Override]]:
            return (
                await reader.configs.get_config(key),
                await reader.overrides.list_overrides(key),
            )

        (definition, overrides), revision = await self._snapshot(read)
        return definition, overrides, revision

    async def sensitive_keys(self, keys: Iterable[str]) -> frozenset[str]:
        """Which of `keys` are marked sensitive or encrypted: their values are masked for
        callers who may not reveal them (keys that do not exist are not)."""
        wanted = sorted(set(keys))
        if not wanted:
            return frozenset()
        async with self._store.read() as reader:
            found = await reader.configs.get_configs(wanted)
        return frozenset(
            key
            for key, definition in found.items()
            if definition.is_sensitive or definition.is_encrypted
        )

    async def list_configs(
        self, query: ConfigQuery, page: PageRequest
    ) -> tuple[Page[ConfigDefinition], int]:
        """Raises InvalidArgument for a key prefix longer than any key."""
        if query.key_prefix:
            check_key_prefix(query.key_prefix)
        return await self._snapshot(lambda reader: reader.configs.list_configs(query, page))

    async def get_history(
        self, query: HistoryQuery, page: PageRequest
    ) -> tuple[Page[HistoryEntry], int]:
        if query.key:
            check_key(query.key)
        if query.environment and query.environment != "-":
            check_environment_name(query.environment)
        return await self._snapshot(lambda reader: reader.history.list_history(query, page))

    async def list_environments(self) -> tuple[list[Environment], int]:
        return await self._snapshot(lambda reader: reader.environments.list_environments())

    async def list_templates(
        self, include_inactive: bool, page: PageRequest
    ) -> tuple[Page[Template], int]:
        return await self._snapshot(
            lambda reader: reader.templates.list_templates(include_inactive, page)
        )

    # --- writes: definitions -------------------------------------------------------

    async def create_config(
        self, definition: ConfigDefinition, ctx: WriteContext
    ) -> tuple[ConfigDefinition, int]:
        """Raises InvalidArgument for a bad definition, AlreadyExists for a taken key."""
        ctx.check()
        definition = check_definition(definition)
        secret_guard.check_definition(definition, None)
        now = self._clock()
        definition = replace(
            definition,
            id=str(uuid.uuid4()),
            version=1,
            created_at=now,
            created_by=ctx.actor.user_id,
            updated_at=now,
            updated_by=ctx.actor.user_id,
        )
        async with self._store.transaction() as tx:
            await tx.configs.create_config(definition)
            revision = await self._record(
                tx,
                ctx,
                [
                    self._definition_change(
                        ctx, definition, HistoryAction.CREATE, None, definition_document(definition)
                    )
                ],
            )
        return definition, revision

    async def update_config(
        self,
        patch: ConfigDefinition,
        paths: Sequence[str],
        expected_version: int | None,
        ctx: WriteContext,
    ) -> tuple[ConfigDefinition, int]:
        ctx.check()
        check_key(patch.key, "config.key")
        for _ in range(_WRITE_ATTEMPTS):
            try:
                async with self._store.transaction() as tx:
                    current = await tx.configs.get_config(patch.key)
                    self._check_version(current, expected_version)
                    merged = check_definition(merge_definition(current, patch, paths))
                    secret_guard.check_definition(merged, current)
                    await self._check_overrides_fit(tx, merged)
                    if definition_document(merged) == definition_document(current):
                        return current, await tx.current_revision()
                    updated = replace(
                        merged,
                        version=current.version + 1,
                        updated_at=self._clock(),
                        updated_by=ctx.actor.user_id,
                    )
                    await tx.configs.update_config(updated, expected_version=current.version)
                    await secret_guard.encryption_changed(tx, current, updated)
                    action = HistoryAction.UPDATE
                    if current.is_active != updated.is_active:
                        action = (
                            HistoryAction.ENABLE if updated.is_active else HistoryAction.DISABLE
                        )
                    revision = await self._record(
                        tx,
                        ctx,
                        [
                            self._definition_change(
                                ctx,
                                updated,
                                action,
                                definition_document(current),
                                definition_document(updated),
                            )
                        ],
                    )
            except Conflict:
                if expected_version is not None:
                    raise
                continue
            return updated, revision
        raise Conflict(f"config key {patch.key!r} kept changing; try again")

    async def delete_config(self, key: str, expected_version: int | None, ctx: WriteContext) -> int:
        ctx.check()
        check_key(key)
        async with self._store.transaction() as tx:
            current = await tx.configs.get_config(key)
            self._check_version(current, expected_version)
            if not current.is_deletable:
                raise FailedPrecondition(
                    f"config key {key!r} is not deletable; "
                    "make it deletable with UpdateConfig first"
                )
            overrides = await tx.overrides.list_overrides(key)
            await tx.configs.delete_config(key)
            # Its overrides go with it: each is recorded as DeleteOverride records it, so
            # that no row leaves the database without a history row of its own.
            changes = [
                self._value_change(
                    ctx,
                    _PlannedWrite(current, o.environment, o.value, None, None, o, delete=True),
                    HistoryAction.DELETE,
                    current,
                )
                for o in overrides
            ]
            changes.append(
                self._definition_change(
                    ctx, current, HistoryAction.DELETE, definition_document(current), None
                )
            )
            revision = await self._record(tx, ctx, changes)
        return revision

    # --- writes: values --------------------------------------------------------------

    async def set_value(
        self,
        key: str,
        value: JSONValue,
        environment: str | None,
        ctx: WriteContext,
        *,
        expected_version: int | None = None,
        priority: int | None = None,
        expires_at: datetime | None = None,
        starts_at: datetime | None = None,
    ) -> SetValueResult:
        """Sets the base value (no environment) or an override, which may be temporary
        (`expires_at`) or scheduled (`starts_at`: written now, applied from then on).
        Raises NotFound, InvalidArgument (type, constraints, relations), FailedPrecondition
        (read-only or inactive key) and Conflict (stale `expected_version`)."""
        ctx.check()
        check_key(key)
        violations = []
        if environment:
            check_environment_name(environment)
            if value is None:
                violations.append(
                    FieldViolation(
                        "value", "an override cannot be null; remove it with DeleteOverride"
                    )
                )
            if priority is not None and not 0 <= priority <= MAX_PRIORITY:
                violations.append(
                    FieldViolation("priority", f"must be between 0 and {MAX_PRIORITY}")
                )
            if expires_at is not None and expires_at <= self._clock():
                violations.append(FieldViolation("expires_at", "must be in the future"))
            if starts_at is not None and expires_at is not None and starts_at >= expires_at:
                violations.append(FieldViolation("starts_at", "must be before expires_at"))
        else:
            if priority is not None:
                violations.append(
                    FieldViolation("priority", "applies to overrides only: name an environment")
                )
            for name, moment in (("expires_at", expires_at), ("starts_at", starts_at)):
                if moment is not None:
                    violations.append(
                        FieldViolation(name, "applies to overrides only: name an environment")
                    )
        if violations:
            raise InvalidArgument("; ".join(v.description for v in violations), violations)

        for _ in range(_WRITE_ATTEMPTS):
            try:
                async with self._store.transaction() as tx:
                    definition = await self._editable(tx, key)
                    self._check_version(definition, expected_version)
                    chain = await self._chain(tx, environment)
                    planned = await self._plan(
                        tx,
                        definition,
                        environment,
                        chain,
                        value,
                        priority if priority is not None else DEFAULT_PRIORITY,
                        expires_at,
                        ctx,
                        pending={},
                        starts_at=starts_at,
                    )
                    if planned is None:
                        return SetValueResult(
                            key=key,
                            value=check_value(definition, value),
                            environment=environment,
                            version=definition.version,
                            revision=await tx.current_revision(),
                            requires_restart=definition.requires_restart,
                            changed=False,
                        )
                    written = await self._write(tx, planned, ctx)
                    version = written.version
                    revision = await self._record(
                        tx, ctx, [self._value_change(ctx, planned, HistoryAction.UPDATE, written)]
                    )
            except Conflict:
                if expected_version is not None:
                    raise
                continue
            return SetValueResult(
                key=key,
                value=planned.new_value,
                environment=environment,
                version=version,
                revision=revision,
                requires_restart=definition.requires_restart,
                changed=True,
            )
        raise Conflict(f"config key {key!r} kept changing; try again")

    async def delete_override(
        self,
        key: str,
        environment: str,
        priority: int | None,
        expected_version: int | None,
        ctx: WriteContext,
    ) -> tuple[int, int, int]:
        """Removes one override (or all of the environment's). Returns (deleted, version,
        revision). Raises NotFound when there is nothing to remove."""
        ctx.check()
        check_key(key)
        if not environment:
            raise InvalidArgument.field("environment", "is required")
        check_environment_name(environment)
        async with self._store.transaction() as tx:
            definition = await self._editable(tx, key)
            self._check_version(definition, expected_version)
            await self._chain(tx, environment)
            existing = [
                o
                for o in await tx.overrides.list_overrides(key, [environment])
                if priority is None or o.priority == priority
            ]
            if not existing:
                where = f" at priority {priority}" if priority is not None else ""
                raise NotFound(f"config key {key!r} has no override in {environment!r}{where}")
            plans = [
                _PlannedWrite(definition, environment, o.value, None, None, o, delete=True)
                for o in existing
            ]
            version = definition.version
            changes = []
            for plan in plans:
                written = await self._write(
                    tx, replace(plan, definition=replace(definition, version=version)), ctx
                )
                version = written.version
                changes.append(self._value_change(ctx, plan, HistoryAction.DELETE, written))
            revision = await self._record(tx, ctx, changes)
        return len(plans), version, revision

    async def rollback(
        self,
        key: str,
        environment: str | None,
        ctx: WriteContext,
        *,
        steps: int | None = None,
        to_version: int | None = None,
        dry_run: bool = False,
    ) -> RollbackResult:
        """Undoes the last `steps` value changes of one layer (or every change made after
        the key was at `to_version`), itself recorded as a change. With `dry_run`, reports
        what it would do and changes nothing.

        Raises FailedPrecondition when the history does not reach back that far or a
        restored value no longer fits the key's current definition."""
        ctx.check()
        check_key(key)
        if environment:
            check_environment_name(environment)
        if steps is not None and to_version is not None:
            raise InvalidArgument.field("steps", "give either steps or to_version, not both")
        if to_version is None:
            steps = 1 if steps is None else steps
            if not 1 <= steps <= MAX_ROLLBACK_STEPS:
                raise InvalidArgument.field("steps", f"must be between 1 and {MAX_ROLLBACK_STEPS}")
        elif to_version < 1:
            raise InvalidArgument.field("to_version", "must be a version of the key (1 or more)")

        if dry_run:
            async with self._store.read() as reader:
                definition, plans, undone = await self._plan_rollback(
                    reader, key, environment, steps, to_version, ctx
                )
                revision = await reader.current_revision()
            old, new = self._layer_values(definition, environment, plans)
            return RollbackResult(
                key=key,
                environment=environment,
                old_value=old,
                new_value=new,
                diff=json_diff(old, new),
                restored_from_revision=min(e.revision for e in undone),
                dry_run=True,
                version=definition.version,
                revision=revision,
            )

        async with self._store.transaction() as tx:
            definition = await self._editable(tx, key)
            definition, plans, undone = await self._plan_rollback(
                tx, key, environment, steps, to_version, ctx
            )
            old, new = self._layer_values(definition, environment, plans)
            version = definition.version
            changes = []
            for plan in plans:
                written = await self._write(
                    tx, replace(plan, definition=replace(plan.definition, version=version)), ctx
                )
                version = written.version
                changes.append(self._value_change(ctx, plan, HistoryAction.ROLLBACK, written))
            if not changes:
                raise FailedPrecondition(
                    f"rolling back {key!r} would change nothing: the layer already holds the value"
                )
            revision = await self._record(tx, ctx, changes)
        return RollbackResult(
            key=key,
            environment=environment,
            old_value=old,
            new_value=new,
            diff=json_diff(old, new),
            restored_from_revision=min(e.revision for e in undone),
            dry_run=False,
            version=version,
            revision=revision,
        )

    # --- writes: environments and templates -------------------------------------------

    async def upsert_environment(
        self, environment: Environment, ctx: WriteContext
    ) -> tuple[Environment, int]:
        ctx.check()
        async with self._store.transaction() as tx:
            environments = await tx.environments.list_environments()
            check_environment(environments, environment)
            before = next((e for e in environments if e.name == environment.name), None)
            if environment.protected is None:
                # Protection is kept unless named: an upsert that edits a description
                # must not quietly unprotect production.
                kept = before.protected if before is not None else False
                environment = replace(environment, protected=bool(kept))
            if before == environment:
                return environment, await tx.current_revision()
            now = self._clock()
            await tx.environments.upsert_environment(environment, now=now)
            document: dict[str, JSONValue] = {
                "name": environment.name,
                "parent": environment.parent,
                "description": environment.description,
                "protected": environment.protected,
            }
            old: dict[str, JSONValue] | None = (
                None
                if before is None
                else {
                    "name": before.name,
                    "parent": before.parent,
                    "description": before.description,
                    "protected": before.protected,
                }
            )
            revision = await self._record(
                tx,
                ctx,
                [
                    ctx.change(
                        kind=ChangeKind.ENVIRONMENT,
                        table_name=ENVIRONMENT_TABLE,
                        record_id=environment.name,
                        key=environment.name,
                        environment=environment.name,
                        action=HistoryAction.CREATE if before is None else HistoryAction.UPDATE,
                        old=old,
                        new=document,
                        rollback_available=False,
                        rows_after={
                            ENVIRONMENT_TABLE: environment_row(
                                environment, updated_at=now, created=before is None
                            )
                        },
                    )
                ],
            )
        return environment, revision

    async def upsert_template(self, template: Template, ctx: WriteContext) -> tuple[Template, int]:
        """Creates or replaces a template; one that is the same records nothing."""
        ctx.check()
        check_template(template)
        now = self._clock()
        async with self._store.transaction() as tx:
            await secret_guard.check_stored_values(
                tx, template.config_values, "template.config_values"
            )
            try:
                before: Template | None = await tx.templates.get_template(template.name)
            except NotFound:
                before = None
            stored = replace(
                template,
                id=before.id if before else str(uuid.uuid4()),
                usage_count=before.usage_count if before else 0,
                created_at=before.created_at if before else now,
                updated_at=now,
            )
            old = None if before is None else _template_document(before)
            new = _template_document(stored)
            if before is not None and old == new:  # a second apply of the same file
                return before, await tx.current_revision()
            await tx.templates.upsert_template(stored)
            revision = await self._record(
                tx,
                ctx,
                [
                    ctx.change(
                        kind=ChangeKind.TEMPLATE,
                        table_name=TEMPLATE_TABLE,
                        record_id=stored.id,
                        key=stored.name,
                        environment=None,
                        action=HistoryAction.CREATE if before is None else HistoryAction.UPDATE,
                        old=old,
                        new=new,
                        rollback_available=False,
                        rows_after={TEMPLATE_TABLE: row_document(stored)},
                    )
                ],
            )
        return stored, revision

    async def apply_template(
        self,
        name: str,
        environment: str | None,
        ctx: WriteContext,
        *,
        dry_run: bool = False,
        best_effort: bool = False,
    ) -> ApplyResult:
        """Sets every value of a template in one layer in one transaction. All or nothing
        unless `best_effort`: then the values that validate are written and the rest
        reported as refused. Raises InvalidArgument (one violation per refused key) when
        an all-or-nothing apply is refused."""
        ctx.check()
        check_template_name(name)
        if environment:
            check_environment_name(environment)
        if dry_run:
            async with self._store.read() as reader:
                items, plans = await self._plan_template(reader, name, environment, ctx)
                revision = await reader.current_revision()
            return ApplyResult(items, dry_run=True, applied=False, revision=revision)

        async with self._store.transaction() as tx:
            items, plans = await self._plan_template(tx, name, environment, ctx)
            refused = [i for i in items if i.outcome == TemplateOutcome.REFUSED]
            if refused and not best_effort:
                violations = [
                    FieldViolation(f"config_values.{i.key}", i.error or "refused") for i in refused
                ]
                raise InvalidArgument(
                    f"template {name!r} was not applied: {len(refused)} value(s) refused "
                    "(set best_effort to apply the rest)",
                    violations,
                )
            if not plans:
                return ApplyResult(
                    items, dry_run=False, applied=False, revision=await tx.current_revision()
                )
            changes = []
            for plan in plans:
                written = await self._write(tx, plan, ctx)
                changes.append(self._value_change(ctx, plan, HistoryAction.UPDATE, written))
            await tx.templates.increment_usage(name)
            revision = await self._record(tx, ctx, changes)
        return ApplyResult(items, dry_run=False, applied=True, revision=revision)

    # --- changes that happen by themselves ----------------------------------------------

    async def run_due_overrides(self, now: datetime | None = None) -> int | None:
        """Starts the scheduled overrides whose time has come and ends the temporary ones
        whose time is up (reverting to the value they replaced, if any), as one recorded
        change. The transaction re-reads what is due under the writers' lock, so when
        every replica runs this, each override changes once. Returns the revision, or
        None when nothing was due."""
        now = now or self._clock()
        async with self._store.read() as reader:
            if not await reader.overrides.due_overrides(now):
                return None  # the common case, without taking the writers' lock
        async with self._store.transaction() as tx:
            due = await tx.overrides.due_overrides(now)
            if not due:
                return None
            changes = []
            for row in due:
                definition = await tx.configs.find_config(row.key)
                if definition is None:
                    continue
                action, reason, plan = _due_plan(definition, row, now)
                ctx = WriteContext(actor=SCHEDULER, reason=reason)
                written = await self._write(tx, plan, ctx)
                changes.append(self._value_change(ctx, plan, action, written))
                SCHEDULED_CHANGES.labels(
                    "override_start" if action is HistoryAction.ENABLE else "override_expiry"
                ).inc()
            if not changes:
                return None
            return await self._record(tx, WriteContext(actor=SCHEDULER), changes)

    async def next_scheduled_change(self, now: datetime) -> datetime | None:
        """When an override next starts or expires, or a maintenance window next opens
        or closes; None when nothing is scheduled."""
        async with self._store.read() as reader:
            moments = [await reader.overrides.next_scheduled_change(now)]
            moments += [next_transition(w, now) for w in await reader.windows.list_windows()]
        return min((m for m in moments if m is not None), default=None)

    async def list_windows(self) -> tuple[list[MaintenanceWindow], int]:
        return await self._snapshot(lambda reader: reader.windows.list_windows())

    async def upsert_window(
        self, window: MaintenanceWindow, ctx: WriteContext
    ) -> tuple[MaintenanceWindow, bool, int]:
        """Creates or replaces a maintenance window; returns it, whether it was created,
        and the revision. A window that is open is closed first (its values revert), and
        the scheduler opens it again with its new values if it should be open. Raises
        InvalidArgument (naming each refused key) and FailedPrecondition for a read-only
        key."""
        ctx.check()
        check_window(window)
        async with self._store.transaction() as tx:
            await self._chain(tx, window.environment)
            await self._check_window_values(tx, window)
            await secret_guard.check_stored_values(tx, window.config_values, "window.config_values")
            before = await tx.windows.find_window(window.name)
            now = self._clock()
            stored = replace(
                window,
                id=before.id if before else str(uuid.uuid4()),
                state=WindowState.CLOSED,
                window_start=None,
                version=before.version + 1 if before else 1,
                created_at=before.created_at if before else now,
                created_by=before.created_by if before else ctx.actor.user_id,
                updated_at=now,
                updated_by=ctx.actor.user_id,
            )
            if before is not None and _window_document(before) == _window_document(stored):
                return before, False, await tx.current_revision()
            changes = []
            if before is not None and before.state is WindowState.OPEN:
                changes += await self._close_window(tx, before, ctx)
            await tx.windows.upsert_window(stored)
            changes.append(
                _window_change(
                    ctx,
                    stored,
                    HistoryAction.CREATE if before is None else HistoryAction.UPDATE,
                    None if before is None else _window_document(before),
                    _window_document(stored),
                )
            )
            revision = await self._record(tx, ctx, changes)
        return stored, before is None, revision

    async def delete_window(self, name: str, ctx: WriteContext) -> int:
        """Removes a window, reverting its values first if it is open. Raises NotFound."""
        ctx.check()
        check_window_name(name)
        async with self._store.transaction() as tx:
            window = await tx.windows.get_window(name)
            changes = []
            if window.state is WindowState.OPEN:
                changes += await self._close_window(tx, window, ctx)
            await tx.windows.delete_window(name)
            changes.append(
                _window_change(ctx, window, HistoryAction.DELETE, _window_document(window), None)
            )
            return await self._record(tx, ctx, changes)

    async def sync_window(self, name: str, now: datetime | None = None) -> int | None:
        """Opens or closes one window as the clock says it should be, as one recorded
        change: its values applied (or reverted) and its new state. Re-checked under the
        writers' lock, so each opening and closing happens once across replicas, and a
        process that restarts inside a window finds it open and leaves it. Returns the
        revision, or None when the window was as it should be."""
        now = now or self._clock()
        async with self._store.transaction() as tx:
            window = await tx.windows.find_window(name)
            if window is None:
                return None
            due = occurrence_at(window, now)
            before = window
            changes = []
            if window.state is WindowState.OPEN and (
                due is None or window.window_start != due.start
            ):
                ctx = WriteContext(actor=SCHEDULER, reason=f"maintenance window {name} closed")
                changes += await self._close_window(tx, window, ctx)
                window = replace(window, state=WindowState.CLOSED, window_start=None)
                SCHEDULED_CHANGES.labels("window_close").inc()
            if due is not None and window.state is WindowState.CLOSED:
                ctx = WriteContext(actor=SCHEDULER, reason=f"maintenance window {name} opened")
                changes += await self._open_window(tx, window, ctx)
                window = replace(window, state=WindowState.OPEN, window_start=due.start)
                SCHEDULED_CHANGES.labels("window_open").inc()
            if window == before:
                return None
            await tx.windows.upsert_window(window)
            opened = window.state is WindowState.OPEN
            changes.append(
                _window_change(
                    WriteContext(
                        actor=SCHEDULER,
                        reason=f"maintenance window {name} " + ("opened" if opened else "closed"),
                    ),
                    window,
                    HistoryAction.ENABLE if opened else HistoryAction.DISABLE,
                    _window_state(before),
                    _window_state(window),
                )
            )
            return await self._record(tx, WriteContext(actor=SCHEDULER), changes)

    async def _check_window_values(self, reader: Reader, window: MaintenanceWindow) -> None:
        definitions = await reader.configs.get_configs(list(window.config_values))
        violations = []
        for key, value in sorted(window.config_values.items()):
            field = f"window.config_values.{key}"
            definition = definitions.get(key)
            if definition is None or not definition.is_active:
                violations.append(FieldViolation(field, f"config key {key!r} not found"))
            elif not definition.is_editable:
                violations.append(FieldViolation(field, f"config key {key!r} is not editable"))
            else:
                try:
                    check_value(definition, value, field)
                except InvalidArgument as error:
                    violations.extend(error.violations)
        if violations:
            raise InvalidArgument(
                "; ".join(f"{v.field}: {v.description}" for v in violations), violations
            )

    async def _open_window(
        self, tx: Transaction, window: MaintenanceWindow, ctx: WriteContext
    ) -> list[Change]:
        """Applies a window's values as overrides at WINDOW_PRIORITY. A key that no
        longer takes its value (deleted, made read-only, its type changed) is skipped
        and logged: the rest of the window still applies."""
        chain = await self._chain(tx, window.environment)
        changes = []
        for key, value in sorted(window.config_values.items()):
            definition = await tx.configs.find_config(key)
            try:
                if definition is None or not definition.is_active or not definition.is_editable:
                    raise FailedPrecondition(f"config key {key!r} is missing or read-only")
                plan = await self._plan(
                    tx,
                    definition,
                    window.environment,
                    chain,
                    value,
                    WINDOW_PRIORITY,
                    None,
                    ctx,
                    pending={k: v for k, v in window.config_values.items() if k != key},
                )
            except (InvalidArgument, FailedPrecondition) as error:
                log.warning(
                    "maintenance window value skipped",
                    window=window.name,
                    key=key,
                    error=error.message,
                )
                continue
            if plan is not None:
                written = await self._write(tx, plan, ctx)
                changes.append(self._value_change(ctx, plan, HistoryAction.UPDATE, written))
        return changes

    async def _close_window(
        self, tx: Transaction, window: MaintenanceWindow, ctx: WriteContext
    ) -> list[Change]:
        """Removes the overrides a window applied: what lay beneath applies again."""
        changes = []
        for key in sorted(window.config_values):
            existing = await tx.overrides.find_override(key, window.environment, WINDOW_PRIORITY)
            definition = await tx.configs.find_config(key)
            if existing is None or definition is None:
                continue
            plan = _PlannedWrite(
                definition, window.environment, existing.value, None, None, existing, delete=True
            )
            written = await self._write(tx, plan, ctx)
            changes.append(self._value_change(ctx, plan, HistoryAction.DELETE, written))
        return changes

    # --- helpers -----------------------------------------------------------------------

    async def _chain(self, reader: Reader, environment: str | None) -> list[str]:
        """The environment and its ancestors; empty for the base layer."""
        if not environment:
            return []
        environments = await reader.environments.list_environments()
        try:
            return ancestry(environments, environment)
        except NotFound as error:
            raise InvalidArgument.field("environment", error.message) from None

    async def _editable(self, tx: Reader, key: str) -> ConfigDefinition:
        definition = await tx.configs.get_config(key)
        if not definition.is_active:
            raise FailedPrecondition(
                f"config key {key!r} is inactive; activate it with UpdateConfig first"
            )
        if not definition.is_editable:
            raise FailedPrecondition(
                f"config key {key!r} is not editable; make it editable with UpdateConfig first"
            )
        return definition

    @staticmethod
    def _check_version(definition: ConfigDefinition, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != definition.version:
            raise Conflict(
                f"config key {definition.key!r} is at version {definition.version}, "
                f"not {expected_version}: re-read it and retry",
                current_version=definition.version,
            )

    async def _plan(
        self,
        reader: Reader,
        definition: ConfigDefinition,
        environment: str | None,
        chain: Sequence[str],
        value: JSONValue,
        priority: int,
        expires_at: datetime | None,
        ctx: WriteContext,
        *,
        pending: Mapping[str, JSONValue],
        starts_at: datetime | None = None,
    ) -> _PlannedWrite | None:
        """Validates one value for one layer and decides the write; None when the layer
        already holds exactly that. `pending` holds values being set in the same layer by
        the same transaction (a template), which relations must see.

        An override that starts later is written inactive, for the scheduler to
        activate. A temporary override written over a standing one at the same priority
        keeps the standing value to revert to when it expires."""
        value = check_value(definition, value)
        secret_guard.check_not_secret(
            definition.key, value, encrypted=definition.is_encrypted, field="value"
        )
        await self._check_relations(reader, definition, value, environment, chain, pending)
        if environment is None:
            if _same(definition.value, value):
                return None
            return _PlannedWrite(definition, None, definition.value, value, None, None)
        existing = await reader.overrides.find_override(definition.key, environment, priority)
        now = self._clock()
        later = starts_at if starts_at is not None and starts_at > now else None
        if (
            existing is not None
            and existing.is_active == (later is None)
            and _same(existing.value, value)
            and existing.expires_at == expires_at
            and existing.starts_at == later
        ):
            return None
        revert: JSONValue = None
        if expires_at is not None and existing is not None:
            revert = existing.value if existing.expires_at is None else existing.revert_to_value
        override = Override(
            key=definition.key,
            environment=environment,
            value=value,
            priority=priority,
            is_active=later is None,
            starts_at=later,
            revert_to_value=revert,
            expires_at=expires_at,
            reason=ctx.reason,
            id=existing.id if existing else str(uuid.uuid4()),
            base_config_id=definition.id,
            created_at=existing.created_at if existing else now,
            created_by=existing.created_by if existing else ctx.actor.user_id,
            updated_at=now,
            updated_by=ctx.actor.user_id,
            approved_by=ctx.approved_by,
        )
        return _PlannedWrite(
            definition,
            environment,
            existing.value if existing else None,
            value,
            override,
            existing,
        )

    async def _check_relations(
        self,
        reader: Reader,
        definition: ConfigDefinition,
        value: JSONValue,
        environment: str | None,
        chain: Sequence[str],
        pending: Mapping[str, JSONValue],
    ) -> None:
        related_keys = [
            k
            for k in (*definition.validation.depends_on, *definition.validation.conflicts_with)
            if k not in pending
        ]
        if not is_truthy(value) or not (related_keys or pending):
            return
        definitions = await reader.configs.get_configs(related_keys) if related_keys else {}
        overrides = (
            await reader.overrides.list_overrides_for_keys(list(definitions), chain)
            if chain and definitions
            else []
        )
        now = self._clock()
        related: dict[str, JSONValue] = dict(pending)
        for key, related_definition in definitions.items():
            if related_definition.is_active:
                mine = [o for o in overrides if o.key == key]
                related[key] = resolve(related_definition, mine, chain, now).value
        missing = [k for k in related_keys if k not in related]
        check_relations(definition, value, related, missing, environment)

    async def _write(
        self, tx: Transaction, plan: _PlannedWrite, ctx: WriteContext
    ) -> ConfigDefinition:
        """Writes one planned change and bumps the key's version; returns the key's row as
        written (its history row records it)."""
        definition = plan.definition
        now = self._clock()
        version = definition.version + 1
        if plan.environment is None:
            updated = replace(
                definition,
                value=plan.new_value,
                version=version,
                updated_at=now,
                updated_by=ctx.actor.user_id,
            )
        else:
            if plan.delete:
                assert plan.existing is not None
                await tx.overrides.delete_override(plan.existing.id)
            else:
                assert plan.override is not None
                await tx.overrides.upsert_override(plan.override)
            updated = replace(
                definition, version=version, updated_at=now, updated_by=ctx.actor.user_id
            )
        await tx.configs.update_config(updated, expected_version=definition.version)
        return updated

    def _value_change(
        self,
        ctx: WriteContext,
        plan: _PlannedWrite,
        action: HistoryAction,
        written: ConfigDefinition,
    ) -> Change:
        """The history row of one planned write, `written` the key's row after it."""
        rows: dict[str, JSONValue] = {SYSTEM_TABLE: row_document(written)}
        if plan.environment is None:
            table, record_id, priority = SYSTEM_TABLE, plan.definition.id, None
        else:
            rows[OVERRIDE_TABLE] = None if plan.delete else row_document(plan.override)
            row = plan.override or plan.existing
            assert row is not None
            table, record_id, priority = OVERRIDE_TABLE, row.id, row.priority
            if action is HistoryAction.UPDATE and plan.existing is None:
                action = HistoryAction.CREATE
        return ctx.change(
            kind=ChangeKind.CONFIG,
            table_name=table,
            record_id=record_id,
            key=plan.definition.key,
            environment=plan.environment,
            action=action,
            old=plan.old_value,
            new=plan.new_value,
            version=written.version,
            priority=priority,
            rows_after=rows,
        )

    def _definition_change(
        self,
        ctx: WriteContext,
        definition: ConfigDefinition,
        action: HistoryAction,
        old: JSONValue,
        new: JSONValue,
    ) -> Change:
        return ctx.change(
            kind=ChangeKind.CONFIG,
            table_name=SYSTEM_TABLE,
            record_id=definition.id,
            key=definition.key,
            environment=None,
            action=action,
            old=old,
            new=new,
            version=definition.version,
            rollback_available=False,
            rows_after={SYSTEM_TABLE: None if new is None else row_document(definition)},
        )

    async def _check_overrides_fit(self, tx: Reader, definition: ConfigDefinition) -> None:
        """A definition change must not strand overrides that no longer validate."""
        violations = []
        for override in await tx.overrides.list_overrides(definition.key):
            try:
                check_value(definition, override.value)
            except InvalidArgument as error:
                for v in error.violations:
                    violations.append(
                        FieldViolation(
                            "config",
                            f"the override in {override.environment} (priority "
                            f"{override.priority}) would no longer be valid: {v.description}",
                        )
                    )
        if violations:
            raise InvalidArgument("; ".join(v.description for v in violations), violations)

    async def _plan_rollback(
        self,
        reader: Reader,
        key: str,
        environment: str | None,
        steps: int | None,
        to_version: int | None,
        ctx: WriteContext,
    ) -> tuple[ConfigDefinition, list[_PlannedWrite], list[HistoryEntry]]:
        definition = await reader.configs.get_config(key)
        if environment:
            await self._chain(reader, environment)
        layer = "the base value" if environment is None else f"the override in {environment!r}"
        if to_version is not None:
            if to_version > definition.version:
                raise InvalidArgument.field(
                    "to_version",
                    f"{key!r} is at version {definition.version}; {to_version} is in the future",
                )
            history = await reader.history.layer_history(
                key, environment, offset=0, limit=MAX_ROLLBACK_STEPS
            )
            undone = [e for e in history if (e.version or 0) > to_version]
            if not undone:
                raise FailedPrecondition(
                    f"{layer} of {key!r} has not changed since version {to_version}"
                )
        else:
            assert steps is not None
            undone = await reader.history.layer_history(key, environment, offset=0, limit=steps)
            if len(undone) < steps:
                raise FailedPrecondition(
                    f"cannot roll back {steps} step(s): {layer} of {key!r} has "
                    f"{len(undone)} recorded change(s)"
                )
        # The state before the oldest undone change, per row (priority) it touched.
        oldest: dict[int | None, HistoryEntry] = {}
        for entry in undone:  # newest first, so the last one seen per row is the oldest
            oldest[entry.priority if environment else None] = entry
        plans = []
        current_rows = (
            {o.priority: o for o in await reader.overrides.list_overrides(key, [environment])}
            if environment
            else {}
        )
        for priority, entry in oldest.items():
            target = entry.old_value
            if target is not None:
                try:
                    target = check_value(definition, target)
                except InvalidArgument as error:
                    raise FailedPrecondition(
                        f"the value {key!r} had before revision {entry.revision} no longer "
                        f"fits its definition: {error.message}"
                    ) from None
            if environment is None:
                if not _same(definition.value, target):
                    plans.append(
                        _PlannedWrite(definition, None, definition.value, target, None, None)
                    )
                continue
            assert priority is not None
            existing = current_rows.get(priority)
            if target is None:
                if existing is not None:
                    plans.append(
                        _PlannedWrite(
                            definition,
                            environment,
                            existing.value,
                            None,
                            None,
                            existing,
                            delete=True,
                        )
                    )
                continue
            if existing is not None and existing.is_active and _same(existing.value, target):
                continue
            now = self._clock()
            override = Override(
                key=key,
                environment=environment,
                value=target,
                priority=priority,
                is_active=True,
                expires_at=None,
                reason=ctx.reason,
                id=existing.id if existing else str(uuid.uuid4()),
                base_config_id=definition.id,
                created_at=existing.created_at if existing else now,
                created_by=existing.created_by if existing else ctx.actor.user_id,
                updated_at=now,
                updated_by=ctx.actor.user_id,
                approved_by=ctx.approved_by,
            )
            plans.append(
                _PlannedWrite(
                    definition,
                    environment,
                    existing.value if existing else None,
                    target,
                    override,
                    existing,
                )
            )
        return definition, plans, undone

    def _layer_values(
        self,
        definition: ConfigDefinition,
        environment: str | None,
        plans: Iterable[_PlannedWrite],
    ) -> tuple[JSONValue, JSONValue]:
        """The layer's value before and after a rollback, as a person reads the layer."""
        plans = list(plans)
        if environment is None:
            after = plans[0].new_value if plans else definition.value
            return definition.value, after
        if not plans:
            return None, None
        top = plans[0]
        return top.old_value, top.new_value

    async def _plan_template(
        self, reader: Reader, name: str, environment: str | None, ctx: WriteContext
    ) -> tuple[list[TemplateItem], list[_PlannedWrite]]:
        template = await reader.templates.get_template(name)
        if not template.is_active:
            raise FailedPrecondition(f"template {name!r} is inactive")
        if template.suitable_environments and (environment or "") not in (
            template.suitable_environments
        ):
            raise FailedPrecondition(
                f"template {name!r} is meant for {', '.join(template.suitable_environments)}, "
                f"not {environment or 'the base values'}"
            )
        chain = await self._chain(reader, environment)
        keys = sorted(template.config_values)
        definitions = await reader.configs.get_configs(keys)
        items: list[TemplateItem] = []
        plans: list[_PlannedWrite] = []
        pending = {k: v for k, v in template.config_values.items() if k in definitions}
        for key in keys:
            raw = template.config_values[key]
            definition = definitions.get(key)
            if definition is None:
                items.append(
                    TemplateItem(key, TemplateOutcome.REFUSED, None, raw, "unknown config key")
                )
                continue
            try:
                if not definition.is_active or not definition.is_editable:
                    state = "inactive" if not definition.is_active else "not editable"
                    raise FailedPrecondition(f"config key {key!r} is {state}")
                others = {k: v for k, v in pending.items() if k != key}
                plan = await self._plan(
                    reader,
                    definition,
                    environment,
                    chain,
                    raw,
                    DEFAULT_PRIORITY,
                    None,
                    ctx,
                    pending=others,
                )
            except (InvalidArgument, FailedPrecondition) as error:
                items.append(TemplateItem(key, TemplateOutcome.REFUSED, None, raw, error.message))
                continue
            if plan is None:
                current = definition.value if environment is None else raw
                items.append(TemplateItem(key, TemplateOutcome.UNCHANGED, current, current))
                continue
            items.append(TemplateItem(key, TemplateOutcome.UPDATED, plan.old_value, plan.new_value))
            plans.append(plan)
        return items, plans

    async def _record(self, tx: Transaction, ctx: WriteContext, changes: Sequence[Change]) -> int:
        """Allocates the transaction's revision and writes its history rows. What the
        rows touched is invalidated, and the rows announced, once the transaction has
        committed: the store runs `_committed` then even if the caller was cancelled."""
        revision = await tx.allocate_revision()
        entries = await record_history(
            tx, revision, changes, ctx.approval, validate_only=ctx.validate_only
        )
        tx.after_commit(lambda: self._committed(revision, entries))
        return revision

    def _committed(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        """This process's own commit: what it touched is invalidated before the RPC
        returns (so the next read here sees it), then the listeners hear of it (the
        follower, which fans it out in order; the relay, which tells the replicas)."""
        keys = self._forget(revision, entries)
        if revision == self._current + 1:
            self._current = revision  # nothing of another replica's is pending before it
        if self._shared is not None and keys:
            self._in_background(self._shared.invalidate(keys))
        for listener in self._listeners:
            listener(revision, entries)

    def apply(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        """A revision the follower read from the history (this replica's or another's):
        drop what it touched. Idempotent: a local commit is applied twice. Revisions come
        in order, each once (the follower sees to it)."""
        self._forget(revision, entries)
        self._current = max(self._current, revision)

    def _forget(self, revision: int, entries: Sequence[HistoryEntry]) -> set[str]:
        """Drops what the changes touched from L1, and reads again in the background the
        answers that were cached: a key that was read is likely read again, and with a
        write rate of 1% the next read's miss is what keeps a cache below 99%."""
        keys = set()
        for entry in entries:
            if entry.kind is ChangeKind.ENVIRONMENT:
                # Inheritance changed: any resolved value may now come from elsewhere.
                self._cache.clear(revision)
                self._all_changed = max(self._all_changed, revision)
            elif entry.kind is ChangeKind.CONFIG:
                for scope in self._cache.invalidate(entry.key, revision):
                    self._in_background(self._refresh(entry.key, scope))
                self._changed[entry.key] = max(self._changed.get(entry.key, 0), revision)
                keys.add(entry.key)
        self._observe(revision)
        return keys

    async def _refresh(self, key: str, scope: str) -> None:
        with contextlib.suppress(SwitchyardError):  # deleted, inactive, database down
            await self._flight(key, scope or None, scope)

    def _fresh_from(self, key: str) -> int:
        """The oldest revision a shared entry of `key` may have been read at."""
        return max(self._floor, self._all_changed, self._changed.get(key, 0))

    async def close(self) -> None:
        """Cancels the background work (cache refreshes, shared-cache invalidations)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def encode_resolved(resolved: ResolvedValue) -> str:
    """A resolved answer as text, for the shared cache."""
    return json.dumps(
        {
            "key": resolved.key,
            "value": resolved.value,
            "type": resolved.type.value,
            "source": resolved.source.value,
            "source_environment": resolved.source_environment,
            "version": resolved.version,
            "requires_restart": resolved.requires_restart,
            "expires_at": resolved.expires_at.isoformat() if resolved.expires_at else None,
            "sensitive": resolved.sensitive,
        },
        separators=(",", ":"),
    )


def decode_resolved(text: str) -> ResolvedValue:
    fields = json.loads(text)
    return ResolvedValue(
        key=fields["key"],
        value=fields["value"],
        type=ConfigType(fields["type"]),
        source=ValueSource(fields["source"]),
        source_environment=fields["source_environment"],
        version=int(fields["version"]),
        requires_restart=bool(fields["requires_restart"]),
        expires_at=(datetime.fromisoformat(fields["expires_at"]) if fields["expires_at"] else None),
        sensitive=bool(fields.get("sensitive", False)),
    )


def _due_plan(
    definition: ConfigDefinition, row: Override, now: datetime
) -> tuple[HistoryAction, str, _PlannedWrite]:
    """What the scheduler does to one due override: end it (back to the value it
    replaced, or gone), or start it."""
    touched = replace(row, updated_at=now, updated_by=SCHEDULER.user_id)
    if row.expires_at is not None and row.expires_at <= now:
        if row.revert_to_value is not None:
            back = replace(
                touched, value=row.revert_to_value, expires_at=None, revert_to_value=None
            )
            return (
                HistoryAction.UPDATE,
                "temporary override expired: back to the value it replaced",
                _PlannedWrite(definition, row.environment, row.value, back.value, back, row),
            )
        return (
            HistoryAction.DELETE,
            "temporary override expired",
            _PlannedWrite(definition, row.environment, row.value, None, None, row, delete=True),
        )
    started = replace(touched, is_active=True)
    return (
        HistoryAction.ENABLE,
        "scheduled override started",
        _PlannedWrite(definition, row.environment, None, row.value, started, row),
    )


def _window_document(window: MaintenanceWindow) -> dict[str, JSONValue]:
    """A window's definition as the history records it (not its open/closed state)."""
    return {
        "name": window.name,
        "description": window.description,
        "environment": window.environment,
        "config_values": window.config_values,
        "starts_at": window.starts_at.isoformat() if window.starts_at else None,
        "ends_at": window.ends_at.isoformat() if window.ends_at else None,
        "schedule_cron": window.schedule_cron,
        "duration_seconds": window.duration_seconds,
        "is_active": window.is_active,
    }


def _window_state(window: MaintenanceWindow) -> dict[str, JSONValue]:
    return {
        "state": window.state.value,
        "window_start": window.window_start.isoformat() if window.window_start else None,
    }


def _window_change(
    ctx: WriteContext,
    window: MaintenanceWindow,
    action: HistoryAction,
    old: JSONValue,
    new: JSONValue,
) -> Change:
    return ctx.change(
        kind=ChangeKind.MAINTENANCE_WINDOW,
        table_name=WINDOW_TABLE,
        record_id=window.id,
        key=window.name,
        environment=window.environment,
        action=action,
        old=old,
        new=new,
        rollback_available=False,
        rows_after={WINDOW_TABLE: None if action is HistoryAction.DELETE else row_document(window)},
    )


def _template_document(template: Template) -> dict[str, JSONValue]:
    return {
        "name": template.name,
        "template_type": template.template_type,
        "description": template.description,
        "config_values": template.config_values,
        "feature_flags": template.feature_flags,
        "rate_limits": template.rate_limits,
        "suitable_environments": list(template.suitable_environments),
        "suitable_scale": template.suitable_scale,
        "prerequisites": list(template.prerequisites),
        "version": template.version,
        "is_default": template.is_default,
        "is_active": template.is_active,
        "author": template.author,
        "team": template.team,
    }


__all__ = [
    "ApplyResult",
    "CommitListener",
    "ConfigService",
    "Read",
    "Reads",
    "RollbackResult",
    "SetValueResult",
    "TemplateItem",
    "TemplateOutcome",
    "decode_resolved",
    "definition_document",
    "encode_resolved",
    "merge_definition",
]
