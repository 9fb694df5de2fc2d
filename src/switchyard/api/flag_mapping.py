"""FlagService messages to domain values and back: one function per message, no logic."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from google.protobuf import struct_pb2, timestamp_pb2

from switchyard.api.mapping import (
    default_true,
    from_struct,
    from_timestamp,
    from_value,
    to_list_value,
    to_struct,
    to_timestamp,
    to_value,
)
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.flags import (
    DEFAULT_FLAG_CACHE_TTL_SECONDS,
    DEFAULT_VARIANTS,
    Evaluation,
    EvaluationContext,
    FeatureFlag,
    Reason,
    Ring,
    RolloutStrategy,
)
from switchyard.domain.models import JSONValue
from switchyard.gen.v1 import flag_pb2 as pb

REASONS = {
    Reason.DISABLED: pb.EVALUATION_REASON_DISABLED,
    Reason.NOT_FOUND: pb.EVALUATION_REASON_NOT_FOUND,
    Reason.SCHEDULED_OFF: pb.EVALUATION_REASON_SCHEDULED_OFF,
    Reason.ENVIRONMENT_EXCLUDED: pb.EVALUATION_REASON_ENVIRONMENT_EXCLUDED,
    Reason.USER_TARGETED: pb.EVALUATION_REASON_USER_TARGETED,
    Reason.ROLE_TARGETED: pb.EVALUATION_REASON_ROLE_TARGETED,
    Reason.GROUP_TARGETED: pb.EVALUATION_REASON_GROUP_TARGETED,
    Reason.RULE_MATCH: pb.EVALUATION_REASON_RULE_MATCH,
    Reason.ROLLOUT_IN: pb.EVALUATION_REASON_ROLLOUT_IN,
    Reason.ROLLOUT_OUT: pb.EVALUATION_REASON_ROLLOUT_OUT,
    Reason.PREREQUISITE_FAILED: pb.EVALUATION_REASON_PREREQUISITE_FAILED,
    Reason.CONFLICT: pb.EVALUATION_REASON_CONFLICT,
    Reason.DEFAULT: pb.EVALUATION_REASON_DEFAULT,
}
STRATEGIES = {
    RolloutStrategy.PERCENTAGE: pb.ROLLOUT_STRATEGY_PERCENTAGE,
    RolloutStrategy.USER_LIST: pb.ROLLOUT_STRATEGY_USER_LIST,
    RolloutStrategy.GRADUAL: pb.ROLLOUT_STRATEGY_GRADUAL,
    RolloutStrategy.RING: pb.ROLLOUT_STRATEGY_RING,
}
_STRATEGIES_BY_NUMBER: dict[int, RolloutStrategy] = {
    number: strategy for strategy, number in STRATEGIES.items()
}


class StructAttributes(Mapping[str, JSONValue]):
    """A request's context attributes, converted one at a time when a rule reads them:
    most evaluations read none or one, and converting a whole Struct up front was the
    largest cost of mapping a request."""

    __slots__ = ("_fields",)

    def __init__(self, struct: struct_pb2.Struct) -> None:
        self._fields = struct.fields

    def __getitem__(self, name: str) -> JSONValue:
        # Indexing a protobuf map inserts a missing key: look before reading.
        if name not in self._fields:
            raise KeyError(name)
        return from_value(self._fields[name])

    def get(self, name: str, default: JSONValue = None) -> JSONValue:  # type: ignore[override]
        return from_value(self._fields[name]) if name in self._fields else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def context_from_proto(message: pb.EvaluationContext) -> EvaluationContext:
    return EvaluationContext(
        user_id=message.user_id,
        roles=tuple(message.roles),
        groups=tuple(message.groups),
        environment=message.environment,
        attributes=StructAttributes(message.attributes),
    )


def evaluation_to_proto(evaluation: Evaluation, revision: int) -> pb.EvaluateFlagResponse:
    return pb.EvaluateFlagResponse(
        flag_key=evaluation.key,
        enabled=evaluation.enabled,
        reason=REASONS[evaluation.reason],
        variant=evaluation.variant,
        rule_id=evaluation.rule_id,
        revision=revision,
        value=to_value(evaluation.value),
    )


def _time(present: bool, moment: timestamp_pb2.Timestamp) -> datetime | None:
    return from_timestamp(moment) if present else None


def _strategy(number: int) -> RolloutStrategy | None:
    if number == pb.ROLLOUT_STRATEGY_UNSPECIFIED:
        return None
    strategy = _STRATEGIES_BY_NUMBER.get(number)
    if strategy is None:
        raise InvalidArgument.field(
            "flag.rollout_strategy", f"{number} is not a RolloutStrategy this server knows"
        )
    return strategy


def _rules(message: struct_pb2.ListValue) -> tuple[JSONValue, ...]:
    return tuple(from_value(item) for item in message.values)


def flag_from_proto(message: pb.FeatureFlag) -> FeatureFlag:
    """The writable fields; output-only ones (counters, versions, who and when) are
    ignored. Empty strings are unset."""
    variants = {name: from_value(value) for name, value in message.variants.fields.items()}
    if variants == DEFAULT_VARIANTS:
        variants = {}  # the default, spelled out by an earlier GetFlag
    return FeatureFlag(
        key=message.key,
        name=message.name,
        description=message.description or None,
        is_enabled=message.is_enabled,
        rollout_percentage=message.rollout_percentage,
        rollout_strategy=_strategy(message.rollout_strategy),
        enabled_for_users=tuple(message.enabled_for_users),
        enabled_for_roles=tuple(message.enabled_for_roles),
        enabled_for_groups=tuple(message.enabled_for_groups),
        enabled_environments=tuple(message.enabled_environments),
        targeting_rules=_rules(message.targeting_rules),
        start_date=_time(message.HasField("start_date"), message.start_date),
        end_date=_time(message.HasField("end_date"), message.end_date),
        schedule_cron=message.schedule_cron or None,
        prerequisite_features=tuple(message.prerequisite_features),
        conflicts_with=tuple(message.conflicts_with),
        feature_category=message.feature_category or None,
        feature_type=message.feature_type or None,
        impact_level=message.impact_level or None,
        owner_team=message.owner_team or None,
        owner_email=message.owner_email or None,
        documentation_url=message.documentation_url or None,
        jira_ticket=message.jira_ticket or None,
        metrics_enabled=default_true(message, "metrics_enabled"),
        success_metrics=from_struct(message.success_metrics)
        if message.HasField("success_metrics")
        else None,
        failure_threshold=message.failure_threshold or None,
        auto_disable_on_error=message.auto_disable_on_error,
        is_active=default_true(message, "is_active"),
        is_permanent=message.is_permanent,
        is_deprecated=message.is_deprecated,
        deprecation_date=_time(message.HasField("deprecation_date"), message.deprecation_date),
        cache_ttl_seconds=message.cache_ttl_seconds
        if message.HasField("cache_ttl_seconds")
        else DEFAULT_FLAG_CACHE_TTL_SECONDS,
        variants=variants,
        rings=tuple(
            Ring(
                name=ring.name,
                groups=tuple(ring.groups),
                opens_at=from_timestamp(ring.opens_at) if ring.HasField("opens_at") else None,
            )
            for ring in message.rings
        ),
        gradual_start=_time(message.HasField("gradual_start"), message.gradual_start),
        gradual_end=_time(message.HasField("gradual_end"), message.gradual_end),
        # 0 (unset) is resolved by the service: the flag's own version on an update.
        bucketing_version=message.bucketing_version,
    )


def flag_to_proto(flag: FeatureFlag, *, stale: bool = False) -> pb.FeatureFlag:
    return pb.FeatureFlag(
        key=flag.key,
        name=flag.name,
        description=flag.description or "",
        is_enabled=flag.is_enabled,
        rollout_percentage=flag.rollout_percentage,
        rollout_strategy=STRATEGIES.get(flag.rollout_strategy, pb.ROLLOUT_STRATEGY_UNSPECIFIED)
        if flag.rollout_strategy is not None
        else pb.ROLLOUT_STRATEGY_UNSPECIFIED,
        enabled_for_users=flag.enabled_for_users,
        enabled_for_roles=flag.enabled_for_roles,
        enabled_for_groups=flag.enabled_for_groups,
        enabled_environments=flag.enabled_environments,
        targeting_rules=to_list_value(list(flag.targeting_rules)),
        start_date=to_timestamp(flag.start_date),
        end_date=to_timestamp(flag.end_date),
        schedule_cron=flag.schedule_cron or "",
        prerequisite_features=flag.prerequisite_features,
        conflicts_with=flag.conflicts_with,
        feature_category=flag.feature_category or "",
        feature_type=flag.feature_type or "",
        impact_level=flag.impact_level or "",
        owner_team=flag.owner_team or "",
        owner_email=flag.owner_email or "",
        documentation_url=flag.documentation_url or "",
        jira_ticket=flag.jira_ticket or "",
        metrics_enabled=flag.metrics_enabled,
        success_metrics=None if flag.success_metrics is None else to_struct(flag.success_metrics),
        failure_threshold=flag.failure_threshold or 0.0,
        auto_disable_on_error=flag.auto_disable_on_error,
        is_active=flag.is_active,
        is_permanent=flag.is_permanent,
        is_deprecated=flag.is_deprecated,
        deprecation_date=to_timestamp(flag.deprecation_date),
        cache_ttl_seconds=flag.cache_ttl_seconds,
        last_evaluated=to_timestamp(flag.last_evaluated),
        evaluation_count=flag.evaluation_count,
        rings=[
            pb.Ring(name=ring.name, groups=ring.groups, opens_at=to_timestamp(ring.opens_at))
            for ring in flag.rings
        ],
        gradual_start=to_timestamp(flag.gradual_start),
        gradual_end=to_timestamp(flag.gradual_end),
        variants=to_struct(flag.served_variants),
        version=flag.version,
        created_at=to_timestamp(flag.created_at),
        created_by=flag.created_by or "",
        updated_at=to_timestamp(flag.updated_at),
        updated_by=flag.updated_by or "",
        stale=stale,
        bucketing_version=flag.bucketing_version,
    )


__all__ = [
    "REASONS",
    "STRATEGIES",
    "StructAttributes",
    "context_from_proto",
    "evaluation_to_proto",
    "flag_from_proto",
    "flag_to_proto",
    "from_value",
]
