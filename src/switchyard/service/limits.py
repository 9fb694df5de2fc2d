"""RateLimitService use cases: decide whether a request may through, manage the limits.

Decision path: every limit lives in memory (resolved through `inherit_from`), so finding
the limit that applies is a function call; then one atomic round trip to the counters
(Redis for `distributed` limits when Redis is configured, this process otherwise), and
the limit's action shapes the answer. Exemptions answer first and count nothing.

Write path: validate, one transaction that writes the row and its history under a new
revision, commit, then apply it here and tell the commit listeners. Changing a limit
keeps its counters (they are keyed by the limit and the subject, not by the version),
so raising a limit lets more through at once and lowering one does not forgive what
was counted.

`trigger_count` and `last_triggered` are kept in memory and written in one transaction
every `flush_seconds`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from switchyard.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from switchyard.domain.keys import check_key
from switchyard.domain.limits import (
    MAX_SLIDING_REQUESTS,
    Algorithm,
    CountRequest,
    CountResult,
    Decision,
    LimitAction,
    RateLimit,
    RateLimitQuery,
    Subject,
    applies,
    by_priority,
    check_limit,
    check_resolved,
    inheritance_cycle,
    is_exempt,
    limit_document,
    limit_from_document,
    resolve_inheritance,
    scope_value,
)
from switchyard.domain.models import (
    Change,
    ChangeKind,
    HistoryAction,
    HistoryEntry,
    Page,
    PageRequest,
)
from switchyard.metrics import (
    RATE_LIMIT_ALERTS,
    RATE_LIMIT_DECISIONS,
    RATE_LIMIT_DEGRADED,
    KeyedChildren,
)
from switchyard.service.context import Clock, WriteContext, utc_now
from switchyard.service.ports import Counters, Store
from switchyard.service.recorded import (
    Applied,
    CommitListener,
    Recorded,
    Recorder,
    Tallies,
    check_steps,
    check_version,
    definition_change,
    rollback_target,
    same_definition,
)

log = structlog.get_logger(__name__)

LIMITS_TABLE = "pf_rate_limits"
DEFAULT_LIMIT_KEY = "default"

# By limit key, action and outcome; children cached, the limit keys bounded.
_DECISIONS = KeyedChildren(RATE_LIMIT_DECISIONS)
MAX_HITS = 1_000_000
_FIELD_WIDTH = 255


@dataclass(frozen=True, slots=True)
class DefaultLimit:
    """What applies when no limit does (the spec's sketch hard-coded 1000 per hour):
    counted per caller (user, else API key, else address, else everyone together)."""

    max_requests: int
    window_seconds: int

    @classmethod
    def parse(
        cls, text: str, setting: str = "SWITCHYARD_RATE_LIMIT_DEFAULT", *, sliding: bool = False
    ) -> DefaultLimit | None:
        """`1000/3600` (requests per seconds), or `off` for none. `sliding`: the limit is
        counted in a sliding window, which remembers every request and so holds at most
        MAX_SLIDING_REQUESTS. Raises InvalidArgument (naming `setting`), at start-up
        rather than on every call the limit would count."""
        if text.strip().lower() in {"off", "none", ""}:
            return None
        requests, _, seconds = text.partition("/")
        try:
            parsed = cls(int(requests), int(seconds))
        except ValueError:
            parsed = cls(0, 0)
        if parsed.max_requests <= 0 or parsed.window_seconds <= 0:
            raise InvalidArgument.field(
                setting,
                f"{text!r} is not REQUESTS/SECONDS (such as 1000/3600) or off",
            )
        if sliding and parsed.max_requests > MAX_SLIDING_REQUESTS:
            raise InvalidArgument.field(
                setting,
                f"{text!r} allows more than a sliding window counts: at most "
                f"{MAX_SLIDING_REQUESTS} requests per window",
            )
        return parsed

    def as_limit(self) -> RateLimit:
        return RateLimit(
            key=DEFAULT_LIMIT_KEY,
            name="default",
            max_requests=self.max_requests,
            time_window_seconds=self.window_seconds,
            sliding_window=False,
        )


class RateLimitService:
    """The rate-limit use cases, over a `Store`, the counters and limits held in memory."""

    def __init__(
        self,
        store: Store,
        *,
        local: Counters,
        shared: Counters | None = None,
        default: DefaultLimit | None = None,
        clock: Clock = utc_now,
        flush_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._local = local
        self._shared = shared
        self._default = default.as_limit() if default is not None else None
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._limits: dict[str, RateLimit] = {}
        self._resolved: dict[str, RateLimit] = {}
        self._ordered: list[RateLimit] = []
        self._revision = 0
        self._applied = Applied()
        self._triggers = Tallies()
        self._recorder = Recorder(self.apply)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Loads every limit, as of one snapshot, and starts the trigger flush."""
        async with self._store.read() as reader:
            limits = await reader.limits.all_limits()
            revision = await reader.current_revision()
        self._limits = {limit.key: limit for limit in limits}
        self._rebuild()
        self._revision = revision
        self._applied.loaded(revision)
        self._triggers.start(self._write_triggers, self._flush_seconds, "rate-limit triggers")

    async def close(self) -> None:
        """Stops the flush, writing what was counted since the last one."""
        await self._triggers.stop(self._write_triggers)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._recorder.add_listener(listener)

    @property
    def revision(self) -> int:
        return self._revision

    def _rebuild(self) -> None:
        """Resolves inheritance for every limit (a parent's change reaches its children)
        and orders the active ones by priority, for the decision path."""
        self._resolved = {
            key: resolve_inheritance(limit, self._limits) for key, limit in self._limits.items()
        }
        self._ordered = by_priority([limit for limit in self._resolved.values() if limit.is_active])

    # --- decisions -------------------------------------------------------------------

    async def check(
        self, subject: Subject, *, hits: int = 1, limit_key: str | None = None
    ) -> tuple[Decision, int]:
        """Decides one request (or `hits` at once) of `subject`: with `limit_key`, against
        that limit alone; otherwise against the highest-priority limit that applies. An
        exemption of any limit that applies wins over every limit. Raises InvalidArgument
        for a malformed request, NotFound for an unknown `limit_key`."""
        _check_subject(subject, hits)
        revision = self._revision
        if limit_key:
            check_key(limit_key, "limit_key")
            named = self._resolved.get(limit_key)
            if named is None:
                raise NotFound(f"rate limit {limit_key!r} not found")
            candidates = [named] if applies(named, subject) else []
        else:
            candidates = [limit for limit in self._ordered if applies(limit, subject)]
        for limit in candidates:
            if is_exempt(limit, subject):
                _DECISIONS.get(limit.key, limit.action_on_limit.value, "exempt").inc()
                return Decision(allowed=True, exempt=True, limit_key=limit.key), revision
        if not candidates:
            return await self._default_decision(subject, hits), revision
        limit = candidates[0]
        scope = scope_value(limit, subject) or ""
        return await self._decide(limit, f"{limit.key}:{scope}", hits), revision

    async def admit(self, limit: RateLimit, caller: str) -> Decision:
        """Counts one call of `caller` against a limit Switchyard sets itself (not one
        stored in the database): the allowance of management calls per identity."""
        return await self._decide(limit, f"{limit.key}:{caller}", 1)

    async def _default_decision(self, subject: Subject, hits: int) -> Decision:
        if self._default is None:
            _DECISIONS.get("", "", "default").inc()
            return Decision(allowed=True, default_applied=True)
        caller = subject.user_id or subject.api_key or subject.ip
        decision = await self._decide(self._default, f"{DEFAULT_LIMIT_KEY}:{caller}", hits)
        return replace(decision, default_applied=True, limit_key="")

    async def _decide(self, limit: RateLimit, counter: str, hits: int) -> Decision:
        action = limit.action_on_limit
        request = CountRequest(
            key=counter,
            algorithm=limit.algorithm,
            limit=limit.max_requests,
            window_seconds=limit.time_window_seconds,
            burst=(limit.burst_size or 0) if limit.algorithm is Algorithm.TOKEN_BUCKET else 0,
            hits=hits,
            block_seconds=limit.block_duration_seconds if action is LimitAction.BLOCK else 0,
            queue_size=limit.queue_size if action is LimitAction.QUEUE else 0,
        )
        counters = self._shared if limit.distributed and self._shared is not None else self._local
        try:
            counted = await counters.hit(request)
        except Unavailable as error:
            RATE_LIMIT_DEGRADED.labels(mode="closed" if limit.fail_closed else "open").inc()
            log.warning(
                "rate-limit counters unreachable; the limit's fail mode answers",
                limit=limit.key,
                fail_closed=limit.fail_closed,
                error=str(error),
            )
            return self._answer(limit, allowed=not limit.fail_closed, degraded=True)
        self._watch_usage(limit, counted, hits)
        if counted.allowed:
            _DECISIONS.get(limit.key, action.value, "allowed").inc()
            return self._answer(limit, allowed=True, counted=counted)
        self._trigger(limit)
        _DECISIONS.get(limit.key, action.value, f"over_{action.value}").inc()
        if counted.blocked or action in (LimitAction.BLOCK, LimitAction.CAPTCHA):
            return self._answer(limit, allowed=False, counted=counted, over=True, acted=True)
        if action is LimitAction.THROTTLE:
            return self._answer(
                limit, allowed=True, counted=counted, over=True, acted=True, delay=True
            )
        if action is LimitAction.QUEUE:
            return self._answer(
                limit,
                allowed=counted.queued,
                counted=counted,
                over=True,
                acted=True,
                delay=counted.queued,
            )
        log.info("request over its rate limit, let through (action log)", limit=limit.key)
        return self._answer(limit, allowed=True, counted=counted, over=True, acted=True)

    @staticmethod
    def _answer(
        limit: RateLimit,
        *,
        allowed: bool,
        counted: CountResult | None = None,
        over: bool = False,
        acted: bool = False,
        delay: bool = False,
        degraded: bool = False,
    ) -> Decision:
        retry = counted.retry_after if counted is not None else 0.0
        return Decision(
            allowed=allowed,
            limit_key=limit.key if limit.id else "",  # the configured default is no row
            limit=limit.max_requests,
            remaining=counted.remaining if counted is not None else 0,
            reset_after=counted.reset_after if counted is not None else 0.0,
            retry_after=retry if (over and limit.retry_after_header) else None,
            delay=retry if delay else 0.0,
            action=limit.action_on_limit if acted else None,
            degraded=degraded,
            over_limit=over,
            window_seconds=limit.time_window_seconds,
            custom_error_message=(limit.custom_error_message or "") if over and not allowed else "",
            redirect_url=(limit.redirect_url or "") if over and not allowed else "",
        )

    def _watch_usage(self, limit: RateLimit, counted: CountResult, hits: int) -> None:
        """Logs and counts the moment a counter's usage crosses the limit's alert
        threshold (once per crossing, not on every request above it)."""
        if not limit.track_metrics or limit.max_requests <= 0:
            return
        threshold = limit.max_requests * limit.alert_threshold_percentage / 100
        used_after = limit.max_requests - counted.remaining
        used_before = used_after - (hits if counted.allowed else 0)
        if used_before < threshold <= used_after:
            RATE_LIMIT_ALERTS.labels(limit=limit.key).inc()
            log.warning(
                "rate limit usage crossed its alert threshold",
                limit=limit.key,
                used=used_after,
                of=limit.max_requests,
                threshold_percentage=limit.alert_threshold_percentage,
            )

    def _trigger(self, limit: RateLimit) -> None:
        if not limit.id:
            return  # the configured default is not a row
        self._triggers.add(limit.key, self._clock())

    async def flush_triggers(self) -> None:
        """Writes the trigger counts gathered since the last flush, in one transaction.
        On failure they are kept for the next flush."""
        await self._triggers.flush(self._write_triggers)

    async def _write_triggers(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        async with self._store.transaction() as tx:
            await tx.limits.record_triggers(counts)

    # --- reads -----------------------------------------------------------------------

    async def get_limit(self, key: str) -> tuple[RateLimit, int]:
        """The stored definition (not resolved) with its counters. Raises NotFound."""
        check_key(key, "limit_key")
        async with self._store.read() as reader:
            limit = await reader.limits.get_limit(key)
            revision = await reader.current_revision()
        return limit, revision

    async def list_limits(
        self, query: RateLimitQuery, page: PageRequest
    ) -> tuple[Page[RateLimit], int]:
        async with self._store.read() as reader:
            revision = await reader.current_revision()
            return await reader.limits.list_limits(query, page), revision

    # --- writes ----------------------------------------------------------------------

    async def upsert_limit(
        self, limit: RateLimit, expected_version: int | None, ctx: WriteContext
    ) -> tuple[RateLimit, bool, int]:
        """Creates or replaces a limit; returns it, whether it was created, and the
        revision (the current one when nothing changed). Raises InvalidArgument (every
        problem at once, an inheritance cycle spelled out), Conflict for a stale
        `expected_version`."""
        ctx.check()
        check_limit(limit)
        async with self._store.transaction() as tx:
            before = await tx.limits.find_limit(limit.key)
            if expected_version is not None:
                check_version(
                    "rate limit", limit.key, before.version if before else None, expected_version
                )
            others = {other.key: other for other in await tx.limits.all_limits()}
            others.pop(limit.key, None)
            _check_family(limit, others)
            now = self._clock()
            stored = replace(
                limit,
                id=before.id if before else str(uuid.uuid4()),
                version=before.version + 1 if before else 1,
                created_at=before.created_at if before else now,
                updated_at=now,
                trigger_count=before.trigger_count if before else 0,
                last_triggered=before.last_triggered if before else None,
            )
            if before is not None and same_definition(
                limit_document(before), limit_document(stored), _BOOKKEEPING
            ):
                return before, False, await tx.current_revision()
            if before is None:
                await tx.limits.create_limit(stored)
                action = HistoryAction.CREATE
            else:
                await tx.limits.update_limit(stored, expected_version=before.version)
                action = HistoryAction.UPDATE
            revision = await self._recorder.record(tx, [_change(ctx, action, before, stored)], ctx)
        return stored, before is None, revision

    async def delete_limit(self, key: str, expected_version: int | None, ctx: WriteContext) -> int:
        """Removes a limit. Refused (FailedPrecondition) while others inherit from it."""
        ctx.check()
        check_key(key, "limit_key")
        async with self._store.transaction() as tx:
            before = await tx.limits.get_limit(key)
            if expected_version is not None:
                check_version("rate limit", key, before.version, expected_version)
            children = sorted(
                other.key for other in await tx.limits.all_limits() if other.inherit_from == key
            )
            if children:
                raise FailedPrecondition(
                    f"rate limit {key!r} is inherited by {', '.join(children)}: "
                    "change those limits first"
                )
            await tx.limits.delete_limit(key)
            return await self._recorder.record(
                tx, [_change(ctx, HistoryAction.DELETE, before, None)], ctx
            )

    async def rollback_limit(
        self, key: str, steps: int, ctx: WriteContext
    ) -> tuple[RateLimit, int]:
        """Undoes the last `steps` changes of a limit (since it was last created), as one
        new change; can bring back a deleted limit. Raises FailedPrecondition past its
        creation."""
        ctx.check()
        check_key(key, "limit_key")
        check_steps(steps)
        async with self._store.transaction() as tx:
            target = await rollback_target(tx, ChangeKind.RATE_LIMIT, "rate limit", key, steps)
            before = await tx.limits.find_limit(key)
            restored = limit_from_document(target)
            check_limit(restored)
            others = {other.key: other for other in await tx.limits.all_limits()}
            others.pop(key, None)
            _check_family(restored, others)
            stored = replace(
                restored,
                version=(before.version if before else restored.version) + 1,
                updated_at=self._clock(),
                trigger_count=before.trigger_count if before else 0,
                last_triggered=before.last_triggered if before else None,
            )
            if before is None:
                await tx.limits.create_limit(stored)
            else:
                await tx.limits.update_limit(stored, expected_version=before.version)
            change = _change(ctx, HistoryAction.ROLLBACK, before, stored)
            revision = await self._recorder.record(tx, [change])
        return stored, revision

    # --- changes ---------------------------------------------------------------------

    def apply(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        """A committed revision, from this process or the bus: its limit changes replace
        their limits in memory. Idempotent; an older change never undoes a newer one."""
        changed = False
        for entry in entries:
            if entry.kind is not ChangeKind.RATE_LIMIT:
                continue
            if not self._applied.claim(entry.key, revision):
                continue
            if isinstance(entry.new_value, dict):
                self._limits[entry.key] = limit_from_document(entry.new_value)
            else:
                self._limits.pop(entry.key, None)
            changed = True
        if changed:
            self._rebuild()
        self._revision = max(self._revision, revision)


def _check_subject(subject: Subject, hits: int) -> None:
    if not 1 <= hits <= MAX_HITS:
        raise InvalidArgument.field("hits", f"must be between 1 and {MAX_HITS} (0 means 1)")
    for name in ("user_id", "ip", "api_key", "endpoint", "method", "service", "environment"):
        if len(getattr(subject, name)) > _FIELD_WIDTH * 8:
            raise InvalidArgument.field(name, "is too long")
    if len(subject.roles) > 100:
        raise InvalidArgument.field("roles", "at most 100 roles")


def _check_family(limit: RateLimit, others: Mapping[str, RateLimit]) -> None:
    """The parent exists, following parents never comes back, and the limit counts
    something once resolved."""
    if limit.inherit_from and limit.inherit_from not in others:
        raise InvalidArgument.field(
            "rate_limit.inherit_from", f"names a limit that does not exist: {limit.inherit_from}"
        )
    family = {**others, limit.key: limit}
    cycle = inheritance_cycle(limit, family)
    if cycle:
        raise InvalidArgument.field(
            "rate_limit.inherit_from", f"would make a cycle: {' -> '.join(cycle)}"
        )
    check_resolved(resolve_inheritance(limit, family))
    for child in others.values():
        if child.inherit_from == limit.key:
            check_resolved(resolve_inheritance(child, family), f"rate_limit (for {child.key})")


_BOOKKEEPING = ("id", "version", "created_at", "updated_at")


def _recorded(limit: RateLimit | None) -> Recorded | None:
    if limit is None:
        return None
    return Recorded(limit_document(limit), limit.key, limit.id, limit.version)


def _change(
    ctx: WriteContext, action: HistoryAction, before: RateLimit | None, after: RateLimit | None
) -> Change:
    return definition_change(
        ctx,
        kind=ChangeKind.RATE_LIMIT,
        table=LIMITS_TABLE,
        action=action,
        before=_recorded(before),
        after=_recorded(after),
        bookkeeping=_BOOKKEEPING,
    )


__all__ = [
    "DEFAULT_LIMIT_KEY",
    "LIMITS_TABLE",
    "DefaultLimit",
    "RateLimitService",
]
