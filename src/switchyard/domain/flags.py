"""Feature flags: the definition, the context a flag is evaluated for, and the answer.

Pure data and the checks a definition must pass before it is saved. How a flag is decided
lives in `switchyard.domain.evaluation`; the rule language in `switchyard.domain.rules`;
the bucketing of percentage rollouts in `switchyard.domain.bucketing`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from switchyard.domain.bucketing import BUCKETING_VERSIONS, DEFAULT_BUCKETING_VERSION
from switchyard.domain.cron import cron_problem
from switchyard.domain.errors import Violations
from switchyard.domain.keys import check_environment_name, check_key
from switchyard.domain.models import JSONValue
from switchyard.domain.values import check_email, check_url

ON = "on"
OFF = "off"
DEFAULT_VARIANTS: Mapping[str, JSONValue] = {ON: True, OFF: False}
"""What a flag serves when it names no variants: `true` when on, `false` when off."""

DEFAULT_FLAG_CACHE_TTL_SECONDS = 60

FEATURE_CATEGORIES = ("experimental", "beta", "stable", "deprecated", "sunset")
FEATURE_TYPES = ("release", "experiment", "ops", "permission")
IMPACT_LEVELS = ("low", "medium", "high", "critical")

MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
MAX_TARGETS = 1000
MAX_VARIANTS = 100
MAX_RINGS = 20
MAX_VARIANT_NAME_LENGTH = 100
_COLUMN_WIDTHS = {
    "owner_team": 100,
    "owner_email": 255,
    "documentation_url": 500,
    "jira_ticket": 50,
    "schedule_cron": 100,
}


class RolloutStrategy(enum.StrEnum):
    """How `rollout_percentage` is applied (the spec's `rollout_strategy`)."""

    PERCENTAGE = "percentage"
    USER_LIST = "user_list"
    GRADUAL = "gradual"
    RING = "ring"


class Reason(enum.StrEnum):
    """What decided an evaluation. Exactly one step of the evaluation order decides."""

    DISABLED = "DISABLED"
    NOT_FOUND = "NOT_FOUND"
    SCHEDULED_OFF = "SCHEDULED_OFF"
    ENVIRONMENT_EXCLUDED = "ENVIRONMENT_EXCLUDED"
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
    CONFLICT = "CONFLICT"
    USER_TARGETED = "USER_TARGETED"
    ROLE_TARGETED = "ROLE_TARGETED"
    GROUP_TARGETED = "GROUP_TARGETED"
    RULE_MATCH = "RULE_MATCH"
    ROLLOUT_IN = "ROLLOUT_IN"
    ROLLOUT_OUT = "ROLLOUT_OUT"
    DEFAULT = "DEFAULT"


@dataclass(frozen=True, slots=True)
class Ring:
    """One ring of a ring rollout: its groups get the flag from `opens_at` on (at once
    when unset)."""

    name: str
    groups: tuple[str, ...]
    opens_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeatureFlag:
    """One row of `pf_feature_flags`. Lists are tuples; `targeting_rules` is the rule
    language's JSON (see `switchyard.domain.rules`), kept as written."""

    key: str
    name: str
    description: str | None = None
    is_enabled: bool = False
    rollout_percentage: int = 0
    rollout_strategy: RolloutStrategy | None = None
    enabled_for_users: tuple[str, ...] = ()
    enabled_for_roles: tuple[str, ...] = ()
    enabled_for_groups: tuple[str, ...] = ()
    enabled_environments: tuple[str, ...] = ()
    targeting_rules: tuple[JSONValue, ...] = ()
    start_date: datetime | None = None
    end_date: datetime | None = None
    schedule_cron: str | None = None
    prerequisite_features: tuple[str, ...] = ()
    conflicts_with: tuple[str, ...] = ()
    feature_category: str | None = None
    feature_type: str | None = None
    impact_level: str | None = None
    owner_team: str | None = None
    owner_email: str | None = None
    documentation_url: str | None = None
    jira_ticket: str | None = None
    metrics_enabled: bool = True
    success_metrics: dict[str, JSONValue] | None = None
    failure_threshold: float | None = None
    auto_disable_on_error: bool = False
    is_active: bool = True
    is_permanent: bool = False
    is_deprecated: bool = False
    deprecation_date: datetime | None = None
    cache_ttl_seconds: int = DEFAULT_FLAG_CACHE_TTL_SECONDS
    variants: dict[str, JSONValue] = field(default_factory=dict)
    rings: tuple[Ring, ...] = ()
    gradual_start: datetime | None = None
    gradual_end: datetime | None = None
    bucketing_version: int = DEFAULT_BUCKETING_VERSION
    """Which published bucketing (`switchyard.domain.bucketing`) partial rollouts use."""
    # Bookkeeping, set by the service and the store.
    id: str = ""
    version: int = 1
    evaluation_count: int = 0
    last_evaluated: datetime | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def served_variants(self) -> Mapping[str, JSONValue]:
        """The variants this flag serves: its own, or `on: true, off: false`."""
        return self.variants or DEFAULT_VARIANTS


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Who and where a flag is evaluated for. `user_id` is also the bucketing key of
    percentage rollouts (flagd's `targetingKey`)."""

    user_id: str = ""
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    environment: str = ""
    attributes: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The answer for one flag and one context."""

    key: str
    enabled: bool
    reason: Reason
    variant: str
    value: JSONValue
    rule_id: str = ""
    """The user, role, group, rule, ring or prerequisite that decided, when one did."""


@dataclass(frozen=True, slots=True)
class FlagQuery:
    """Filters of ListFlags; None or False means "any"."""

    category: str | None = None
    feature_type: str | None = None
    owner_team: str | None = None
    deprecated_only: bool = False
    include_inactive: bool = False


def check_flag(flag: FeatureFlag) -> None:
    """A definition about to be saved, on its own (prerequisites that exist and the
    absence of cycles need every flag: `check_flag_graph`). Raises InvalidArgument
    listing every violation, on `flag.*` fields."""
    # Imported here: the rule language depends on this module's types.
    from switchyard.domain.rules import compile_rules

    found = Violations()
    found.check(check_key, flag.key, "flag.key")
    if not flag.name or not flag.name.strip():
        found.add("flag.name", "is required")
    elif len(flag.name) > MAX_NAME_LENGTH:
        found.add("flag.name", f"must be at most {MAX_NAME_LENGTH} characters")
    if flag.description and len(flag.description) > MAX_DESCRIPTION_LENGTH:
        found.add("flag.description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if not 0 <= flag.rollout_percentage <= 100:
        found.add("flag.rollout_percentage", "must be between 0 and 100")
    for name, allowed, value in (
        ("feature_category", FEATURE_CATEGORIES, flag.feature_category),
        ("feature_type", FEATURE_TYPES, flag.feature_type),
        ("impact_level", IMPACT_LEVELS, flag.impact_level),
    ):
        if value is not None and value not in allowed:
            found.add(f"flag.{name}", f"{value!r} is not one of {', '.join(allowed)}")
    too_long = set()
    for name, width in _COLUMN_WIDTHS.items():
        text = getattr(flag, name)
        if text is not None and len(text) > width:
            found.add(f"flag.{name}", f"must be at most {width} characters")
            too_long.add(name)
    # A text refused for its length is not parsed too: parsing megabytes stalls the
    # server, and the refusal would quote them.
    if flag.owner_email and "owner_email" not in too_long:
        found.check(check_email, flag.owner_email, "flag.owner_email")
    if flag.documentation_url and "documentation_url" not in too_long:
        found.check(check_url, flag.documentation_url, "flag.documentation_url")
    _check_targets(flag, found)
    _check_dates(flag, found)
    _check_strategy(flag, found)
    _check_variants(flag, found)
    if flag.failure_threshold is not None and not 0 < flag.failure_threshold <= 1:
        found.add(
            "flag.failure_threshold",
            "is an error rate: more than 0 and at most 1 (0.05 means 5% of outcomes)",
        )
    if flag.auto_disable_on_error and flag.failure_threshold is None:
        found.add("flag.failure_threshold", "is required when auto_disable_on_error is set")
    if flag.bucketing_version not in BUCKETING_VERSIONS:
        found.add(
            "flag.bucketing_version",
            f"must be one of {', '.join(map(str, BUCKETING_VERSIONS))} (see docs/bucketing.md)",
        )
    if flag.cache_ttl_seconds < 0:
        found.add("flag.cache_ttl_seconds", "must not be negative")
    found.check(compile_rules, flag.targeting_rules, flag.served_variants)
    found.raise_any()


def _check_targets(flag: FeatureFlag, found: Violations) -> None:
    for name in (
        "enabled_for_users",
        "enabled_for_roles",
        "enabled_for_groups",
        "enabled_environments",
        "prerequisite_features",
        "conflicts_with",
    ):
        values: tuple[str, ...] = getattr(flag, name)
        if len(values) > MAX_TARGETS:
            found.add(f"flag.{name}", f"must list at most {MAX_TARGETS} entries")
        elif any(not value or len(value) > 255 for value in values):
            found.add(f"flag.{name}", "entries must be 1 to 255 characters")
        elif len(set(values)) != len(values):
            found.add(f"flag.{name}", "lists an entry twice")
    for environment in flag.enabled_environments:
        found.check(check_environment_name, environment, "flag.enabled_environments")
    for other in flag.prerequisite_features:
        found.check(check_key, other, "flag.prerequisite_features")
    for other in flag.conflicts_with:
        found.check(check_key, other, "flag.conflicts_with")
    if flag.key in flag.prerequisite_features:
        found.add("flag.prerequisite_features", "a flag cannot be its own prerequisite")
    if flag.key in flag.conflicts_with:
        found.add("flag.conflicts_with", "a flag cannot conflict with itself")
    both = set(flag.prerequisite_features) & set(flag.conflicts_with)
    if both:
        found.add(
            "flag.conflicts_with",
            f"{', '.join(sorted(both))} cannot be both a prerequisite and a conflict",
        )


def _check_dates(flag: FeatureFlag, found: Violations) -> None:
    if flag.start_date and flag.end_date and flag.start_date >= flag.end_date:
        found.add("flag.end_date", "must be after start_date")
    if flag.schedule_cron is not None:
        problem = cron_problem(flag.schedule_cron, "* 9-17 * * 1-5")
        if problem is not None:
            found.add("flag.schedule_cron", problem)


def _check_strategy(flag: FeatureFlag, found: Violations) -> None:
    strategy = flag.rollout_strategy
    if strategy is RolloutStrategy.GRADUAL:
        if flag.gradual_start is None or flag.gradual_end is None:
            found.add("flag.gradual_end", "a gradual rollout needs gradual_start and gradual_end")
        elif flag.gradual_start >= flag.gradual_end:
            found.add("flag.gradual_end", "must be after gradual_start")
    elif flag.gradual_start is not None or flag.gradual_end is not None:
        found.add("flag.gradual_start", "applies only to the gradual rollout strategy")
    if strategy is RolloutStrategy.RING:
        if not flag.rings:
            found.add("flag.rings", "a ring rollout needs at least one ring")
    elif flag.rings:
        found.add("flag.rings", "apply only to the ring rollout strategy")
    if strategy is RolloutStrategy.GRADUAL and flag.rollout_percentage == 0:
        found.add(
            "flag.rollout_percentage",
            "a gradual rollout rises to rollout_percentage: it must be more than 0",
        )
    if strategy is RolloutStrategy.USER_LIST and not flag.enabled_for_users:
        found.add("flag.enabled_for_users", "a user_list rollout needs at least one user")
    if len(flag.rings) > MAX_RINGS:
        found.add("flag.rings", f"at most {MAX_RINGS} rings")
    names: set[str] = set()
    previous: datetime | None = None
    for index, ring in enumerate(flag.rings):
        where = f"flag.rings[{index}]"
        if not ring.name or len(ring.name) > 100:
            found.add(f"{where}.name", "must be 1 to 100 characters")
        elif ring.name in names:
            found.add(f"{where}.name", f"ring {ring.name!r} is named twice")
        names.add(ring.name)
        if not ring.groups:
            found.add(f"{where}.groups", "a ring needs at least one group")
        if ring.opens_at is not None:
            if previous is not None and ring.opens_at < previous:
                found.add(f"{where}.opens_at", "rings open in order: not before the ring before")
            previous = ring.opens_at


def _check_variants(flag: FeatureFlag, found: Violations) -> None:
    if not flag.variants:
        return
    if len(flag.variants) > MAX_VARIANTS:
        found.add("flag.variants", f"at most {MAX_VARIANTS} variants")
    missing = [name for name in (ON, OFF) if name not in flag.variants]
    if missing:
        found.add(
            "flag.variants",
            f"must name the variants 'on' and 'off' (what the flag serves when on and off); "
            f"missing {', '.join(missing)}",
        )
    for name, value in flag.variants.items():
        if not name or len(name) > MAX_VARIANT_NAME_LENGTH:
            found.add(
                "flag.variants", f"variant names are 1 to {MAX_VARIANT_NAME_LENGTH} characters"
            )
        if value is None:
            found.add(f"flag.variants.{name}", "must have a value (null is not a value)")
    kinds = {_kind(value) for value in flag.variants.values() if value is not None}
    if len(kinds) > 1:
        found.add(
            "flag.variants",
            "every variant must have the same type (boolean, string, number or object), "
            f"so a typed client can read any of them; found {', '.join(sorted(kinds))}",
        )


def _kind(value: JSONValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def check_flag_graph(flag: FeatureFlag, others: Mapping[str, FeatureFlag]) -> None:
    """`flag` among the saved flags `others` (by key, `flag`'s former self included or
    not): every prerequisite and conflict names a flag that exists, and following
    prerequisites from `flag` never comes back to it. Raises InvalidArgument."""
    found = Violations()
    missing = [
        key
        for key in (*flag.prerequisite_features, *flag.conflicts_with)
        if key != flag.key and key not in others
    ]
    if missing:
        found.add(
            "flag.prerequisite_features",
            f"names flags that do not exist: {', '.join(sorted(set(missing)))}",
        )
    graph = {key: other.prerequisite_features for key, other in others.items()}
    graph[flag.key] = flag.prerequisite_features
    cycle = _cycle_through(flag.key, graph)
    if cycle:
        found.add(
            "flag.prerequisite_features",
            f"would make a cycle of prerequisites: {' -> '.join(cycle)}",
        )
    found.raise_any()


def _cycle_through(start: str, graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A path start -> ... -> start along `graph`, or [] when there is none."""
    path: list[str] = [start]
    seen: set[str] = set()

    def visit(node: str) -> bool:
        for nxt in graph.get(node, ()):
            if nxt == start:
                path.append(nxt)
                return True
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            if visit(nxt):
                return True
            path.pop()
        return False

    return path if visit(start) else []


_DEFINITION_FIELDS = (
    "key",
    "name",
    "description",
    "is_enabled",
    "rollout_percentage",
    "enabled_for_users",
    "enabled_for_roles",
    "enabled_for_groups",
    "enabled_environments",
    "targeting_rules",
    "schedule_cron",
    "prerequisite_features",
    "conflicts_with",
    "feature_category",
    "feature_type",
    "impact_level",
    "owner_team",
    "owner_email",
    "documentation_url",
    "jira_ticket",
    "metrics_enabled",
    "success_metrics",
    "failure_threshold",
    "auto_disable_on_error",
    "is_active",
    "is_permanent",
    "is_deprecated",
    "cache_ttl_seconds",
    "variants",
    "bucketing_version",
    "id",
    "version",
    "created_by",
    "updated_by",
)
_TIME_FIELDS = (
    "start_date",
    "end_date",
    "deprecation_date",
    "gradual_start",
    "gradual_end",
    "created_at",
    "updated_at",
)


def flag_document(flag: FeatureFlag) -> dict[str, JSONValue]:
    """The definition as JSON: what a history row holds, so that a replica applies a
    change from the row alone and a rollback restores it. Evaluation counters are left
    out: they are not part of a change."""
    document: dict[str, JSONValue] = {}
    for name in _DEFINITION_FIELDS:
        value = getattr(flag, name)
        document[name] = list(value) if isinstance(value, tuple) else value
    for name in _TIME_FIELDS:
        moment: datetime | None = getattr(flag, name)
        document[name] = None if moment is None else moment.isoformat()
    document["rollout_strategy"] = (
        None if flag.rollout_strategy is None else flag.rollout_strategy.value
    )
    document["rings"] = [
        {
            "name": ring.name,
            "groups": list(ring.groups),
            "opens_at": None if ring.opens_at is None else ring.opens_at.isoformat(),
        }
        for ring in flag.rings
    ]
    return document


def flag_from_document(document: Mapping[str, JSONValue]) -> FeatureFlag:
    """The inverse of `flag_document`."""
    values: dict[str, object] = {}
    for name in _DEFINITION_FIELDS:
        if name in document:
            value = document[name]
            values[name] = tuple(value) if isinstance(value, list) else value
    values["variants"] = dict(_mapping(document.get("variants")))
    metrics = document.get("success_metrics")
    values["success_metrics"] = dict(metrics) if isinstance(metrics, dict) else None
    for name in _TIME_FIELDS:
        values[name] = _time(document.get(name))
    strategy = document.get("rollout_strategy")
    values["rollout_strategy"] = None if strategy is None else RolloutStrategy(str(strategy))
    rings = document.get("rings")
    values["rings"] = tuple(
        Ring(
            name=str(ring.get("name", "")),
            groups=tuple(str(g) for g in _sequence(ring.get("groups"))),
            opens_at=_time(ring.get("opens_at")),
        )
        for ring in (rings if isinstance(rings, list) else [])
        if isinstance(ring, dict)
    )
    return FeatureFlag(**values)  # type: ignore[arg-type]


def _time(value: JSONValue) -> datetime | None:
    return None if not isinstance(value, str) else datetime.fromisoformat(value)


def _mapping(value: JSONValue) -> Mapping[str, JSONValue]:
    return value if isinstance(value, dict) else {}


def _sequence(value: JSONValue) -> list[JSONValue]:
    return value if isinstance(value, list) else []


__all__ = [
    "DEFAULT_FLAG_CACHE_TTL_SECONDS",
    "DEFAULT_VARIANTS",
    "FEATURE_CATEGORIES",
    "FEATURE_TYPES",
    "IMPACT_LEVELS",
    "OFF",
    "ON",
    "Evaluation",
    "EvaluationContext",
    "FeatureFlag",
    "FlagQuery",
    "Reason",
    "Ring",
    "RolloutStrategy",
    "check_flag",
    "check_flag_graph",
    "flag_document",
    "flag_from_document",
]
