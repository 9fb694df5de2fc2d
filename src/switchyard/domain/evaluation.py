"""How a flag is decided for a context: the evaluation order, in one place.

The steps, in order; the first that decides gives the reason:

 1. NOT_FOUND: no such flag.
 2. DISABLED: the kill switch is off (`is_enabled`) or the flag is retired (`is_active`).
 3. SCHEDULED_OFF: before `start_date`, from `end_date` on, or outside the `schedule_cron`
    windows (the flag is on in every minute, UTC, that the expression matches:
    `* 9-17 * * 1-5` is working hours on weekdays).
 4. ENVIRONMENT_EXCLUDED: `enabled_environments` is set and the context's environment is
    not in it (a context without an environment is not in it either).
 5. PREREQUISITE_FAILED: a flag of `prerequisite_features` is not on for the same context.
 6. CONFLICT: a flag of `conflicts_with` is on for the same context (judged without its
    own conflicts, so two flags that name each other cannot both be on).
 7. USER_TARGETED, ROLE_TARGETED, GROUP_TARGETED: the context's user, one of its roles or
    one of its groups is listed: on.
 8. RULE_MATCH: the first targeting rule that matches serves its variant.
 9. The rollout (`rollout_strategy`, `percentage` when unset): ROLLOUT_IN or ROLLOUT_OUT
    for a partial percentage, a gradual rollout (0% at `gradual_start` rising to
    `rollout_percentage` at `gradual_end`), a ring rollout (on for the groups of the rings
    open by now) and a user list (only the listed users, step 7; everyone else out).
    A partial rollout needs a bucketing key, the user id: a context without one is out.
10. DEFAULT: nothing targeted the context and no rollout is partial: on at 100%, off at 0%.
    An enabled flag with no targeting is therefore off until its percentage says
    otherwise; "on for everyone" is `rollout_percentage: 100`.

No result is cached: a decision is computed from an in-memory snapshot of every flag, so
nothing answered for one context can be served to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from switchyard.domain.bucketing import in_rollout
from switchyard.domain.cron import cron_problem, fires_in_minute
from switchyard.domain.flags import (
    OFF,
    ON,
    Evaluation,
    EvaluationContext,
    FeatureFlag,
    Reason,
    RolloutStrategy,
)
from switchyard.domain.models import JSONValue
from switchyard.domain.rules import CompiledRule, compile_stored_rules

MAX_PREREQUISITE_DEPTH = 32
"""Cycles are refused when a flag is saved; this bounds a chain all the same."""

_FULL = 100


class CompiledFlag:
    """A flag made ready to evaluate: its lists as sets, its rules compiled, its cron
    schedule's answer kept for the minute it was asked in.

    A flag is compiled as stored, and what an older version let through never makes it
    fail: a rule that does not compile never matches (`rules.compile_stored_rules`), and
    a schedule that cannot be read or never fires is never on. `problems` describes
    each, for the caller to report; it is empty for a flag saved by this version."""

    __slots__ = (
        "_cron_minute",
        "_cron_on",
        "_cron_usable",
        "environments",
        "flag",
        "groups",
        "problems",
        "roles",
        "rules",
        "users",
    )

    def __init__(self, flag: FeatureFlag) -> None:
        self.flag = flag
        self.users = frozenset(flag.enabled_for_users)
        self.roles = frozenset(flag.enabled_for_roles)
        self.groups = frozenset(flag.enabled_for_groups)
        self.environments = frozenset(flag.enabled_environments)
        rules, problems = compile_stored_rules(flag.targeting_rules, flag.served_variants)
        self.rules: tuple[CompiledRule, ...] = rules
        self._cron_minute: datetime | None = None
        self._cron_on = False
        # Checked once here rather than every minute: an expression that never fires
        # costs a search of SEARCH_YEARS years each time it is asked.
        cron = flag.schedule_cron
        cron_wrong = None if cron is None else cron_problem(cron, "* 9-17 * * 1-5")
        self._cron_usable = cron_wrong is None
        if cron_wrong is not None:
            problems += (f"flag.schedule_cron: {cron_wrong}; the flag is never in schedule",)
        self.problems: tuple[str, ...] = problems

    @property
    def time_dependent(self) -> bool:
        """Whether the same context can get another answer later without a change to the
        flag: a schedule, dates, a gradual or ring rollout."""
        flag = self.flag
        return bool(
            flag.schedule_cron
            or flag.start_date
            or flag.end_date
            or flag.rollout_strategy in (RolloutStrategy.GRADUAL, RolloutStrategy.RING)
        )

    @property
    def static(self) -> bool:
        """Whether every context gets the same answer, now and until the flag changes."""
        flag = self.flag
        return not (
            self.time_dependent
            or self.users
            or self.roles
            or self.groups
            or self.environments
            or self.rules
            or flag.prerequisite_features
            or flag.conflicts_with
            or flag.rollout_strategy is RolloutStrategy.USER_LIST
            or 0 < flag.rollout_percentage < _FULL
        )

    def in_schedule(self, now: datetime) -> bool:
        flag = self.flag
        if flag.start_date is not None and now < flag.start_date:
            return False
        if flag.end_date is not None and now >= flag.end_date:
            return False
        if flag.schedule_cron is None:
            return True
        if not self._cron_usable:
            return False
        minute = now.replace(second=0, microsecond=0)
        if minute != self._cron_minute:
            self._cron_on = fires_in_minute(flag.schedule_cron, minute)
            self._cron_minute = minute
        return self._cron_on

    def rollout_percentage(self, now: datetime) -> float:
        """The percentage of users in, now (a gradual rollout's rises with time)."""
        flag = self.flag
        if flag.rollout_strategy is not RolloutStrategy.GRADUAL:
            return float(flag.rollout_percentage)
        start, end = flag.gradual_start, flag.gradual_end
        assert start is not None and end is not None  # check_flag requires both
        if now <= start:
            return 0.0
        if now >= end:
            return float(flag.rollout_percentage)
        return flag.rollout_percentage * (now - start) / (end - start)


@dataclass(frozen=True, slots=True)
class FlagSet:
    """Every flag at one revision: what evaluations read. Replaced, never changed."""

    flags: Mapping[str, CompiledFlag]
    revision: int

    def get(self, key: str) -> CompiledFlag | None:
        return self.flags.get(key)

    def with_flag(self, flag: FeatureFlag, revision: int) -> FlagSet:
        flags = dict(self.flags)
        flags[flag.key] = CompiledFlag(flag)
        return FlagSet(flags, max(self.revision, revision))

    def without(self, key: str, revision: int) -> FlagSet:
        flags = dict(self.flags)
        flags.pop(key, None)
        return FlagSet(flags, max(self.revision, revision))

    @classmethod
    def of(cls, flags: list[FeatureFlag], revision: int) -> FlagSet:
        return cls({flag.key: CompiledFlag(flag) for flag in flags}, revision)

    def evaluate(self, key: str, context: EvaluationContext, now: datetime) -> Evaluation:
        return evaluate(self, key, context, now)


def evaluate(
    flags: FlagSet,
    key: str,
    context: EvaluationContext,
    now: datetime,
    *,
    ignore_conflicts: bool = False,
    depth: int = 0,
) -> Evaluation:
    """Decides `key` for `context` at `now` (see the module docstring for the order)."""
    compiled = flags.flags.get(key)
    if compiled is None:
        return Evaluation(key, False, Reason.NOT_FOUND, "", None)
    flag = compiled.flag
    if not (flag.is_enabled and flag.is_active):
        return _off(compiled, Reason.DISABLED)
    if not compiled.in_schedule(now):
        return _off(compiled, Reason.SCHEDULED_OFF)
    if compiled.environments and context.environment not in compiled.environments:
        return _off(compiled, Reason.ENVIRONMENT_EXCLUDED)
    for prerequisite in flag.prerequisite_features:
        if (
            depth >= MAX_PREREQUISITE_DEPTH
            or not evaluate(flags, prerequisite, context, now, depth=depth + 1).enabled
        ):
            return _off(compiled, Reason.PREREQUISITE_FAILED, prerequisite)
    if not ignore_conflicts:
        for other in flag.conflicts_with:
            if evaluate(flags, other, context, now, ignore_conflicts=True, depth=depth + 1).enabled:
                return _off(compiled, Reason.CONFLICT, other)
    return _targeted(compiled, context, now)


def _targeted(compiled: CompiledFlag, context: EvaluationContext, now: datetime) -> Evaluation:
    flag = compiled.flag
    user = context.user_id
    if user and user in compiled.users:
        return _on(compiled, Reason.USER_TARGETED, user)
    if compiled.roles:
        for role in context.roles:
            if role in compiled.roles:
                return _on(compiled, Reason.ROLE_TARGETED, role)
    if compiled.groups:
        for group in context.groups:
            if group in compiled.groups:
                return _on(compiled, Reason.GROUP_TARGETED, group)
    for rule in compiled.rules:
        if rule.matches(context):
            return _serve(compiled, Reason.RULE_MATCH, rule.variant, rule.id)
    strategy = flag.rollout_strategy
    if strategy is RolloutStrategy.USER_LIST:
        return _off(compiled, Reason.ROLLOUT_OUT)
    if strategy is RolloutStrategy.RING:
        for ring in flag.rings:
            if ring.opens_at is not None and ring.opens_at > now:
                break  # rings open in order: none after this one is open either
            if any(group in ring.groups for group in context.groups):
                return _on(compiled, Reason.ROLLOUT_IN, ring.name)
        return _off(compiled, Reason.ROLLOUT_OUT)
    percentage = compiled.rollout_percentage(now)
    if strategy is not RolloutStrategy.GRADUAL:
        if percentage >= _FULL:
            return _on(compiled, Reason.DEFAULT)
        if percentage <= 0:
            return _off(compiled, Reason.DEFAULT)
    if user and in_rollout(flag.key, user, percentage, flag.bucketing_version):
        return _on(compiled, Reason.ROLLOUT_IN)
    return _off(compiled, Reason.ROLLOUT_OUT)


def _serve(compiled: CompiledFlag, reason: Reason, variant: str, rule_id: str = "") -> Evaluation:
    value: JSONValue = compiled.flag.served_variants.get(variant)
    return Evaluation(compiled.flag.key, variant != OFF, reason, variant, value, rule_id)


def _on(compiled: CompiledFlag, reason: Reason, rule_id: str = "") -> Evaluation:
    return _serve(compiled, reason, ON, rule_id)


def _off(compiled: CompiledFlag, reason: Reason, rule_id: str = "") -> Evaluation:
    return _serve(compiled, reason, OFF, rule_id)


__all__ = [
    "MAX_PREREQUISITE_DEPTH",
    "CompiledFlag",
    "FlagSet",
    "evaluate",
]
