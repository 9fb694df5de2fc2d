"""FlagService use cases: evaluate flags, manage them, count and guard them.

Read path: every flag lives in memory as a `FlagSet`, so an evaluation is a function call
with no I/O. The set is replaced, never changed: by this process's own commits at once,
and by every other change as the change bus delivers it. A history row of a flag holds
the whole definition, so applying a change needs no database read, and a kill switch
reaches every replica as fast as the bus does.

Write path: validate, one transaction that writes the row and its history under a new
revision, commit, then apply it here and tell the commit listeners. A failed write
changes nothing.

Evaluation counts and `last_evaluated` are kept in memory and written in one transaction
every `flush_seconds` (never a write per evaluation).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from switchyard.domain.bucketing import DEFAULT_BUCKETING_VERSION
from switchyard.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from switchyard.domain.evaluation import CompiledFlag, FlagSet
from switchyard.domain.flags import (
    Evaluation,
    EvaluationContext,
    FeatureFlag,
    FlagQuery,
    Reason,
    check_flag,
    check_flag_graph,
    flag_document,
    flag_from_document,
)
from switchyard.domain.keys import check_key
from switchyard.domain.models import (
    Change,
    ChangeKind,
    HistoryAction,
    HistoryEntry,
    Page,
    PageRequest,
)
from switchyard.metrics import (
    FLAG_AUTO_DISABLED,
    FLAG_EVALUATIONS,
    OTHER,
    UNUSABLE_STORED,
    KeyedChildren,
)
from switchyard.service.context import SCHEDULER, Clock, WriteContext, utc_now
from switchyard.service.ports import Store
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

FLAGS_TABLE = "pf_feature_flags"
UNSET_BUCKETING = 0
"""A flag to save that names no bucketing version (the API's unset field)."""
MIN_OUTCOMES = 20
"""Outcomes needed before an error rate can turn a flag off: one error in two calls is
noise, not a failing feature."""
MAX_OUTCOME_COUNT = 1_000_000
MAX_CONTEXT_ATTRIBUTES = 100

AUTO_DISABLE = replace(SCHEDULER, address="auto-disable")
"""Who the history names when a flag turns itself off (`auto_disable_on_error`)."""

# Resolved once per flag and reason: a labelled child is a dictionary lookup and a lock
# away on every call. Flag keys are bounded (metrics.MAX_KEYS); unknown flags are OTHER,
# so that callers asking for made-up keys cannot fill the label set.
_EVALUATED = KeyedChildren(FLAG_EVALUATIONS)

FlagListener = Callable[[int, frozenset[str]], None]
"""Told of each revision that changed flags: the revision and the keys it changed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ReportFlagOutcome answers."""

    auto_disabled: bool
    error_rate: float
    revision: int


class FlagService:
    """The flag use cases, over a `Store` and an in-memory `FlagSet`."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = utc_now,
        stale_after: timedelta = timedelta(days=30),
        flush_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._stale_after = stale_after
        self._flush_seconds = flush_seconds
        self._set = FlagSet({}, 0)
        self._revision = 0
        self._applied = Applied()
        self._counts = Tallies()
        self._outcomes: dict[str, tuple[int, int]] = {}
        self._recorder = Recorder(self.apply)
        self._flag_listeners: list[FlagListener] = []

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Loads every flag, as of one snapshot, and starts the counter flush."""
        async with self._store.read() as reader:
            flags = await reader.flags.all_flags()
            revision = await reader.current_revision()
        self._set = FlagSet.of(flags, revision)
        for compiled in self._set.flags.values():
            _report_unusable(compiled)
        self._revision = revision
        self._applied.loaded(revision)
        self._counts.start(self._write_counts, self._flush_seconds, "flag counts")

    async def close(self) -> None:
        """Stops the flush, writing what was counted since the last one."""
        await self._counts.stop(self._write_counts)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._recorder.add_listener(listener)

    def add_flag_listener(self, listener: FlagListener) -> None:
        self._flag_listeners.append(listener)

    def remove_flag_listener(self, listener: FlagListener) -> None:
        with contextlib.suppress(ValueError):
            self._flag_listeners.remove(listener)

    @property
    def flag_listeners(self) -> int:
        """How many flag listeners are registered (streams that forget to remove theirs
        would show here)."""
        return len(self._flag_listeners)

    @property
    def revision(self) -> int:
        """The revision the in-memory flags are current to."""
        return self._revision

    @property
    def flag_set(self) -> FlagSet:
        return self._set

    def now(self) -> datetime:
        return self._clock()

    # --- evaluation ------------------------------------------------------------------

    def evaluate(self, key: str, context: EvaluationContext) -> tuple[Evaluation, int]:
        """Decides `key` for `context`; returns the answer and the revision it reflects."""
        check_context(context)
        now = self._clock()
        evaluation = self._set.evaluate(key, context, now)
        self._count(evaluation, now)
        return evaluation, self._revision

    def evaluate_all(self, context: EvaluationContext) -> tuple[list[Evaluation], int]:
        """Decides every active flag for `context`, in key order."""
        check_context(context)
        now = self._clock()
        flags = self._set
        results = []
        for key in sorted(flags.flags):
            if not flags.flags[key].flag.is_active:
                continue
            evaluation = flags.evaluate(key, context, now)
            self._count(evaluation, now)
            results.append(evaluation)
        return results, self._revision

    def _count(self, evaluation: Evaluation, now: datetime) -> None:
        if evaluation.reason is Reason.NOT_FOUND:
            _EVALUATED.get(OTHER, evaluation.reason.value).inc()
            return
        _EVALUATED.get(evaluation.key, evaluation.reason.value).inc()
        self._counts.add(evaluation.key, now)

    async def flush_counts(self) -> None:
        """Writes the evaluation counts gathered since the last flush, in one
        transaction. On failure they are kept for the next flush."""
        await self._counts.flush(self._write_counts)

    async def _write_counts(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        async with self._store.transaction() as tx:
            await tx.flags.record_evaluations(counts)

    # --- reads -----------------------------------------------------------------------

    async def get_flag(self, key: str) -> tuple[FeatureFlag, int]:
        """The stored definition with its counters. Raises NotFound."""
        check_key(key, "flag_key")
        async with self._store.read() as reader:
            flag = await reader.flags.get_flag(key)
            revision = await reader.current_revision()
        return flag, revision

    async def list_flags(
        self, query: FlagQuery, page: PageRequest, *, stale_only: bool = False
    ) -> tuple[Page[FeatureFlag], int]:
        """Flags in key order. With `stale_only`, only those `is_stale` says are stale:
        pages are then read on until one is full or the flags run out."""
        async with self._store.read() as reader:
            revision = await reader.current_revision()
            if not stale_only:
                return await reader.flags.list_flags(query, page), revision
            items: list[FeatureFlag] = []
            cursor = page.cursor
            while True:
                found = await reader.flags.list_flags(query, PageRequest(page.size, cursor))
                for flag in found.items:
                    if self.is_stale(flag):
                        items.append(flag)
                        if len(items) == page.size:
                            return Page(items, flag.key), revision
                if found.next_cursor is None:
                    return Page(items, None), revision
                cursor = found.next_cursor

    def is_stale(self, flag: FeatureFlag) -> bool:
        """Unchanged for `stale_after` and serving one value to everyone: a flag whose
        decision could be code again. Permanent flags are never stale."""
        if flag.is_permanent or flag.updated_at is None:
            return False
        if self._clock() - flag.updated_at < self._stale_after:
            return False
        compiled = self._set.get(flag.key)
        if compiled is None:
            return False
        return not (flag.is_enabled and flag.is_active) or compiled.static

    # --- writes ----------------------------------------------------------------------

    async def upsert_flag(
        self, flag: FeatureFlag, expected_version: int | None, ctx: WriteContext
    ) -> tuple[FeatureFlag, bool, int]:
        """Creates or replaces a flag; returns it, whether it was created, and the
        revision (the current one when nothing changed). Raises InvalidArgument (every
        problem at once), Conflict for a stale `expected_version`."""
        ctx.check()
        if flag.bucketing_version == UNSET_BUCKETING:
            check_flag(replace(flag, bucketing_version=DEFAULT_BUCKETING_VERSION))
        else:
            check_flag(flag)
        async with self._store.transaction() as tx:
            before = await tx.flags.find_flag(flag.key)
            if flag.bucketing_version == UNSET_BUCKETING:
                # An update that does not name a version keeps the flag's: changing it
                # would move users in and out of a running rollout.
                flag = replace(
                    flag,
                    bucketing_version=before.bucketing_version
                    if before
                    else DEFAULT_BUCKETING_VERSION,
                )
            if expected_version is not None:
                check_version(
                    "flag", flag.key, before.version if before else None, expected_version
                )
            others = {f.key: f for f in await tx.flags.all_flags() if f.key != flag.key}
            check_flag_graph(flag, others)
            now = self._clock()
            stored = replace(
                flag,
                id=before.id if before else str(uuid.uuid4()),
                version=before.version + 1 if before else 1,
                created_at=before.created_at if before else now,
                created_by=before.created_by if before else ctx.actor.user_id,
                updated_at=now,
                updated_by=ctx.actor.user_id,
                evaluation_count=before.evaluation_count if before else 0,
                last_evaluated=before.last_evaluated if before else None,
            )
            if before is not None and same_definition(
                flag_document(before), flag_document(stored), _BOOKKEEPING
            ):
                return before, False, await tx.current_revision()
            if before is None:
                await tx.flags.create_flag(stored)
                action = HistoryAction.CREATE
            else:
                await tx.flags.update_flag(stored, expected_version=before.version)
                action = HistoryAction.UPDATE
            revision = await self._recorder.record(tx, [_change(ctx, action, before, stored)], ctx)
        return stored, before is None, revision

    async def set_enabled(
        self, key: str, enabled: bool, ctx: WriteContext
    ) -> tuple[FeatureFlag, int]:
        """The kill switch. Setting the state a flag is already in records nothing."""
        ctx.check()
        check_key(key, "flag_key")
        async with self._store.transaction() as tx:
            before = await tx.flags.get_flag(key)
            if before.is_enabled == enabled:
                return before, await tx.current_revision()
            stored = replace(
                before,
                is_enabled=enabled,
                version=before.version + 1,
                updated_at=self._clock(),
                updated_by=ctx.actor.user_id,
            )
            await tx.flags.update_flag(stored, expected_version=before.version)
            action = HistoryAction.ENABLE if enabled else HistoryAction.DISABLE
            revision = await self._recorder.record(tx, [_change(ctx, action, before, stored)], ctx)
        return stored, revision

    async def delete_flag(self, key: str, expected_version: int | None, ctx: WriteContext) -> int:
        """Removes a flag. Refused (FailedPrecondition) for a permanent flag and for one
        that other flags name as a prerequisite or a conflict."""
        ctx.check()
        check_key(key, "flag_key")
        async with self._store.transaction() as tx:
            before = await tx.flags.get_flag(key)
            if expected_version is not None:
                check_version("flag", key, before.version, expected_version)
            if before.is_permanent:
                raise FailedPrecondition(
                    f"flag {key!r} is permanent (is_permanent): it cannot be deleted; "
                    "clear is_permanent first if it really should go"
                )
            dependents = sorted(
                other.key
                for other in await tx.flags.all_flags()
                if key in other.prerequisite_features or key in other.conflicts_with
            )
            if dependents:
                raise FailedPrecondition(
                    f"flag {key!r} is named as a prerequisite or conflict by "
                    f"{', '.join(dependents)}: change those flags first"
                )
            await tx.flags.delete_flag(key)
            return await self._recorder.record(
                tx, [_change(ctx, HistoryAction.DELETE, before, None)], ctx
            )

    async def rollback_flag(
        self, key: str, steps: int, ctx: WriteContext
    ) -> tuple[FeatureFlag, int]:
        """Undoes the last `steps` changes of a flag (since it was last created): the
        definition it had before them comes back, as one new change. A deleted flag can be
        brought back this way. Raises FailedPrecondition past its creation."""
        ctx.check()
        check_key(key, "flag_key")
        check_steps(steps)
        async with self._store.transaction() as tx:
            target = await rollback_target(tx, ChangeKind.FLAG, "flag", key, steps)
            before = await tx.flags.find_flag(key)
            restored = flag_from_document(target)
            check_flag(restored)
            others = {f.key: f for f in await tx.flags.all_flags() if f.key != key}
            check_flag_graph(restored, others)
            now = self._clock()
            stored = replace(
                restored,
                version=(before.version if before else restored.version) + 1,
                updated_at=now,
                updated_by=ctx.actor.user_id,
                evaluation_count=before.evaluation_count if before else 0,
                last_evaluated=before.last_evaluated if before else None,
            )
            if before is None:
                await tx.flags.create_flag(stored)
            else:
                await tx.flags.update_flag(stored, expected_version=before.version)
            change = _change(ctx, HistoryAction.ROLLBACK, before, stored)
            revision = await self._recorder.record(tx, [change])
        return stored, revision

    async def report_outcome(self, key: str, successes: int, errors: int) -> Outcome:
        """Adds what a client saw behind a flag. With `auto_disable_on_error`, a flag
        whose error rate (since it last changed, in this process, over at least
        `MIN_OUTCOMES` outcomes) exceeds `failure_threshold` turns itself off: one recorded
        change, seen by every replica and watcher."""
        check_key(key, "flag_key")
        for name, count in (("successes", successes), ("errors", errors)):
            if not 0 <= count <= MAX_OUTCOME_COUNT:
                raise InvalidArgument.field(name, f"must be between 0 and {MAX_OUTCOME_COUNT}")
        if successes + errors == 0:
            raise InvalidArgument.field("successes", "report at least one success or error")
        compiled = self._set.get(key)
        if compiled is None:
            raise NotFound(f"flag {key!r} not found")
        seen_successes, seen_errors = self._outcomes.get(key, (0, 0))
        seen_successes += successes
        seen_errors += errors
        self._outcomes[key] = (seen_successes, seen_errors)
        total = seen_successes + seen_errors
        rate = seen_errors / total
        flag = compiled.flag
        threshold = flag.failure_threshold
        if not (
            flag.auto_disable_on_error
            and flag.is_enabled
            and threshold is not None
            and total >= MIN_OUTCOMES
            and rate > threshold
        ):
            return Outcome(False, rate, self._revision)
        reason = (
            f"auto-disabled: error rate {rate:.2%} over {total} outcomes exceeds "
            f"failure_threshold {threshold:.2%}"
        )
        _, revision = await self.set_enabled(key, False, WriteContext(AUTO_DISABLE, reason))
        FLAG_AUTO_DISABLED.inc()
        log.warning("flag auto-disabled", flag=key, error_rate=rate, outcomes=total)
        return Outcome(True, rate, revision)

    # --- changes ---------------------------------------------------------------------

    def apply(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        """A committed revision, from this process or the bus: the flag changes in it
        replace their flags in memory. Idempotent; a change older than one applied to the
        same key is ignored."""
        flags = self._set
        changed = set()
        for entry in entries:
            if entry.kind is not ChangeKind.FLAG:
                continue
            if not self._applied.claim(entry.key, revision):
                continue
            self._outcomes.pop(entry.key, None)
            if isinstance(entry.new_value, dict):
                flags = flags.with_flag(flag_from_document(entry.new_value), revision)
                _report_unusable(flags.flags[entry.key])
            else:
                flags = flags.without(entry.key, revision)
            changed.add(entry.key)
        self._set = flags
        self._revision = max(self._revision, revision)
        if changed:
            keys = frozenset(changed)
            for listener in list(self._flag_listeners):
                listener(revision, keys)


def _report_unusable(compiled: CompiledFlag) -> None:
    """Logs and counts what of a stored flag cannot run as written (an older version
    saved it): the flag still evaluates, without it (`CompiledFlag.problems`)."""
    for problem in compiled.problems:
        what = "flag_schedule" if problem.startswith("flag.schedule_cron") else "flag_rule"
        UNUSABLE_STORED.labels(what).inc()
        log.warning(
            "stored flag part cannot run; it never matches until the flag is saved again",
            flag=compiled.flag.key,
            problem=problem,
        )


def check_context(context: EvaluationContext) -> None:
    """A context is small: it is read on every evaluation."""
    if len(context.attributes) > MAX_CONTEXT_ATTRIBUTES:
        raise InvalidArgument.field(
            "context.attributes", f"at most {MAX_CONTEXT_ATTRIBUTES} attributes"
        )
    if len(context.roles) > MAX_CONTEXT_ATTRIBUTES or len(context.groups) > MAX_CONTEXT_ATTRIBUTES:
        raise InvalidArgument.field(
            "context.roles", f"at most {MAX_CONTEXT_ATTRIBUTES} roles and as many groups"
        )


_BOOKKEEPING = ("id", "version", "created_at", "created_by", "updated_at", "updated_by")


def _recorded(flag: FeatureFlag | None) -> Recorded | None:
    if flag is None:
        return None
    return Recorded(flag_document(flag), flag.key, flag.id, flag.version)


def _change(
    ctx: WriteContext, action: HistoryAction, before: FeatureFlag | None, after: FeatureFlag | None
) -> Change:
    return definition_change(
        ctx,
        kind=ChangeKind.FLAG,
        table=FLAGS_TABLE,
        action=action,
        before=_recorded(before),
        after=_recorded(after),
        bookkeeping=_BOOKKEEPING,
    )


__all__ = [
    "AUTO_DISABLE",
    "FLAGS_TABLE",
    "MIN_OUTCOMES",
    "UNSET_BUCKETING",
    "FlagListener",
    "FlagService",
    "Outcome",
    "check_context",
]
