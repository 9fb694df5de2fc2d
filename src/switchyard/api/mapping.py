"""Proto messages to domain objects and back. Pure conversion: no I/O, no decisions.

Requests arrive here checked by `api.wire` (the interceptor applies it to every call):
their Timestamps are within range and their numbers finite, so converting them cannot
fail."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import (
    DEFAULT_CACHE_TTL_SECONDS,
    ChangeKind,
    ConfigDefinition,
    ConfigType,
    Environment,
    HistoryAction,
    HistoryEntry,
    JSONValue,
    MaintenanceWindow,
    Override,
    PageRequest,
    ResolvedValue,
    Template,
    Validation,
    ValueSource,
    WindowState,
)
from switchyard.domain.windows import next_transition
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.service.watch import WatchEvent, WatchProgress, WatchRequest

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

CONFIG_TYPES: dict[int, ConfigType] = {
    pb.CONFIG_TYPE_STRING: ConfigType.STRING,
    pb.CONFIG_TYPE_NUMBER: ConfigType.NUMBER,
    pb.CONFIG_TYPE_BOOLEAN: ConfigType.BOOLEAN,
    pb.CONFIG_TYPE_JSON: ConfigType.JSON,
    pb.CONFIG_TYPE_ARRAY: ConfigType.ARRAY,
    pb.CONFIG_TYPE_DATE: ConfigType.DATE,
    pb.CONFIG_TYPE_URL: ConfigType.URL,
    pb.CONFIG_TYPE_EMAIL: ConfigType.EMAIL,
    pb.CONFIG_TYPE_DURATION: ConfigType.DURATION,
    pb.CONFIG_TYPE_CRON: ConfigType.CRON,
}
_CONFIG_TYPE_NUMBERS = {v: k for k, v in CONFIG_TYPES.items()}

_SOURCES = {
    ValueSource.OVERRIDE: pb.VALUE_SOURCE_OVERRIDE,
    ValueSource.INHERITED_OVERRIDE: pb.VALUE_SOURCE_INHERITED_OVERRIDE,
    ValueSource.BASE: pb.VALUE_SOURCE_BASE,
    ValueSource.DEFAULT: pb.VALUE_SOURCE_DEFAULT,
    ValueSource.NONE: pb.VALUE_SOURCE_NONE,
}
_ACTIONS = {
    HistoryAction.CREATE: pb.HISTORY_ACTION_CREATE,
    HistoryAction.UPDATE: pb.HISTORY_ACTION_UPDATE,
    HistoryAction.DELETE: pb.HISTORY_ACTION_DELETE,
    HistoryAction.ENABLE: pb.HISTORY_ACTION_ENABLE,
    HistoryAction.DISABLE: pb.HISTORY_ACTION_DISABLE,
    HistoryAction.ROLLBACK: pb.HISTORY_ACTION_ROLLBACK,
    HistoryAction.PROPOSE: pb.HISTORY_ACTION_PROPOSE,
    HistoryAction.APPROVE: pb.HISTORY_ACTION_APPROVE,
    HistoryAction.REJECT: pb.HISTORY_ACTION_REJECT,
    HistoryAction.REVOKE: pb.HISTORY_ACTION_REVOKE,
}
CHANGE_KINDS: dict[ChangeKind, int] = {
    ChangeKind.CONFIG: pb.CHANGE_KIND_CONFIG,
    ChangeKind.FLAG: pb.CHANGE_KIND_FLAG,
    ChangeKind.RATE_LIMIT: pb.CHANGE_KIND_RATE_LIMIT,
    ChangeKind.ENVIRONMENT: pb.CHANGE_KIND_ENVIRONMENT,
    ChangeKind.TEMPLATE: pb.CHANGE_KIND_TEMPLATE,
    ChangeKind.MAINTENANCE_WINDOW: pb.CHANGE_KIND_MAINTENANCE_WINDOW,
    ChangeKind.TOKEN: pb.CHANGE_KIND_TOKEN,
    ChangeKind.USER: pb.CHANGE_KIND_USER,
    ChangeKind.CHANGE_REQUEST: pb.CHANGE_KIND_CHANGE_REQUEST,
}
_CHANGE_KINDS_BY_NUMBER = {number: kind for kind, number in CHANGE_KINDS.items()}


# --- google.protobuf.Value <-> JSON ----------------------------------------------------


def from_value(value: struct_pb2.Value) -> JSONValue:
    """The JSON value a `google.protobuf.Value` carries (an unset Value reads as null)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


def from_struct(struct: struct_pb2.Struct) -> dict[str, JSONValue]:
    return {name: from_value(item) for name, item in struct.fields.items()}


def to_value(value: JSONValue) -> struct_pb2.Value:
    out = struct_pb2.Value()
    _fill(out, value)
    return out


def to_struct(mapping: Mapping[str, JSONValue]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    for name, item in mapping.items():
        _fill(out.fields[name], item)
    return out


def to_list_value(items: Sequence[JSONValue]) -> struct_pb2.ListValue:
    out = struct_pb2.ListValue()
    for item in items:
        _fill(out.values.add(), item)
    return out


def _fill(out: struct_pb2.Value, value: JSONValue) -> None:
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float):
        out.number_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.list_value.SetInParent()
        for item in value:
            _fill(out.list_value.values.add(), item)
    else:
        out.struct_value.SetInParent()
        for name, item in value.items():
            _fill(out.struct_value.fields[name], item)


# --- timestamps and pages --------------------------------------------------------------


def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment.astimezone(UTC))
    return out


def to_duration(seconds: float) -> duration_pb2.Duration:
    """A non-negative number of seconds, to the nanosecond."""
    out = duration_pb2.Duration()
    out.FromNanoseconds(max(0, round(seconds * 1e9)))
    return out


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    """A request's Timestamp (in range: `api.wire` checked it) as an aware UTC datetime."""
    return message.ToDatetime(tzinfo=UTC)


def page_request(page_size: int, page_token: str) -> PageRequest:
    """Validates paging fields: size 1..1000 (0 means the default), an opaque token
    that this service issued (URL-safe base64 of a non-empty cursor)."""
    if page_size < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    cursor = None
    if page_token:
        try:
            cursor = base64.b64decode(
                page_token.encode("ascii"), altchars=b"-_", validate=True
            ).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            cursor = ""
        if not cursor:
            raise InvalidArgument.field(
                "page_token", "is not a token this service issued; start again without it"
            )
    return PageRequest(size=size, cursor=cursor)


def page_token(cursor: str | None) -> str:
    if cursor is None:
        return ""
    return base64.urlsafe_b64encode(cursor.encode("utf-8")).decode("ascii")


# --- configuration ----------------------------------------------------------------------


def default_true(message: Message, field: str) -> bool:
    """An `optional bool` whose default is true (the specification's): unset is true,
    in a create and in an update that changes the field alike."""
    return bool(getattr(message, field)) if message.HasField(field) else True


def config_type(number: int, field: str) -> ConfigType:
    try:
        return CONFIG_TYPES[number]
    except KeyError:
        names = ", ".join(t.value for t in ConfigType)
        raise InvalidArgument.field(field, f"is required: one of {names}") from None


def to_config_type(kind: ConfigType) -> int:
    return _CONFIG_TYPE_NUMBERS[kind]


def validation_from_proto(message: pb.Validation) -> Validation:
    return Validation(
        min_value=message.min_value if message.HasField("min_value") else None,
        max_value=message.max_value if message.HasField("max_value") else None,
        regex_pattern=message.regex_pattern or None,
        allowed_values=tuple(from_value(v) for i, v in enumerate(message.allowed_values)),
        depends_on=tuple(message.depends_on),
        conflicts_with=tuple(message.conflicts_with),
        validation_rule=message.validation_rule or None,
    )


def definition_from_proto(message: pb.ConfigDefinition, *, require_type: bool) -> ConfigDefinition:
    """A definition from a request. The type is checked here only when `require_type`
    (UpdateConfig may leave it unset when its mask does not name it)."""
    kind = (
        config_type(message.type, "config.type")
        if require_type or message.type
        else ConfigType.STRING
    )
    return ConfigDefinition(
        key=message.key,
        type=kind,
        category=message.category,
        subcategory=message.subcategory or None,
        display_name=message.display_name or None,
        description=message.description or None,
        help_text=message.help_text or None,
        value=from_value(message.value) if message.HasField("value") else None,
        default_value=(
            from_value(message.default_value) if message.HasField("default_value") else None
        ),
        validation=validation_from_proto(message.validation),
        is_required=message.is_required,
        is_sensitive=message.is_sensitive,
        is_encrypted=message.is_encrypted,
        is_active=default_true(message, "is_active"),
        is_editable=default_true(message, "is_editable"),
        is_deletable=default_true(message, "is_deletable"),
        requires_restart=message.requires_restart,
        cache_ttl_seconds=(
            message.cache_ttl_seconds
            if message.HasField("cache_ttl_seconds")
            else DEFAULT_CACHE_TTL_SECONDS
        ),
    )


def definition_to_proto(definition: ConfigDefinition) -> pb.ConfigDefinition:
    v = definition.validation
    validation = pb.Validation(
        regex_pattern=v.regex_pattern or "",
        allowed_values=[to_value(a) for a in v.allowed_values],
        depends_on=list(v.depends_on),
        conflicts_with=list(v.conflicts_with),
        validation_rule=v.validation_rule or "",
    )
    if v.min_value is not None:
        validation.min_value = v.min_value
    if v.max_value is not None:
        validation.max_value = v.max_value
    return pb.ConfigDefinition(
        key=definition.key,
        type=to_config_type(definition.type),  # type: ignore[arg-type]
        category=definition.category,
        subcategory=definition.subcategory or "",
        display_name=definition.display_name or "",
        description=definition.description or "",
        help_text=definition.help_text or "",
        value=to_value(definition.value) if definition.value is not None else None,
        default_value=(
            to_value(definition.default_value) if definition.default_value is not None else None
        ),
        validation=validation,
        is_required=definition.is_required,
        is_sensitive=definition.is_sensitive,
        is_encrypted=definition.is_encrypted,
        is_active=definition.is_active,
        is_editable=definition.is_editable,
        is_deletable=definition.is_deletable,
        requires_restart=definition.requires_restart,
        cache_ttl_seconds=definition.cache_ttl_seconds,
        version=definition.version,
        created_at=to_timestamp(definition.created_at),
        created_by=definition.created_by or "",
        updated_at=to_timestamp(definition.updated_at),
        updated_by=definition.updated_by or "",
    )


def override_to_proto(override: Override) -> pb.Override:
    return pb.Override(
        key=override.key,
        environment=override.environment,
        value=to_value(override.value),
        priority=override.priority,
        is_active=override.is_active,
        expires_at=to_timestamp(override.expires_at),
        reason=override.reason or "",
        created_at=to_timestamp(override.created_at),
        created_by=override.created_by or "",
        updated_at=to_timestamp(override.updated_at),
        updated_by=override.updated_by or "",
        starts_at=to_timestamp(override.starts_at),
        revert_to_value=(
            to_value(override.revert_to_value) if override.revert_to_value is not None else None
        ),
    )


def resolved_to_proto(
    resolved: ResolvedValue, revision: int, stale: bool = False
) -> pb.GetValueResponse:
    return pb.GetValueResponse(
        key=resolved.key,
        value=to_value(resolved.value),
        type=_CONFIG_TYPE_NUMBERS[resolved.type],  # type: ignore[arg-type]
        source=_SOURCES[resolved.source],
        source_environment=resolved.source_environment or "",
        version=resolved.version,
        revision=revision,
        requires_restart=resolved.requires_restart,
        expires_at=to_timestamp(resolved.expires_at),
        stale=stale,
    )


def history_to_proto(entry: HistoryEntry) -> pb.HistoryEntry:
    return pb.HistoryEntry(
        id=entry.id,
        revision=entry.revision,
        kind=CHANGE_KINDS[entry.kind],  # type: ignore[arg-type]
        key=entry.key,
        environment=entry.environment or "",
        action=_ACTIONS[entry.action],
        old_value=to_value(entry.old_value),
        new_value=to_value(entry.new_value),
        diff=to_list_value(entry.value_diff),
        reason=entry.reason or "",
        ticket=entry.ticket or "",
        changed_by=entry.changed_by,
        changed_by_role=entry.changed_by_role or "",
        client_address=entry.client_address or "",
        changed_at=to_timestamp(entry.changed_at),
        version=entry.version or 0,
        changed_by_username=entry.changed_by_username or "",
        approved_by=entry.approved_by or "",
        approved_by_username=entry.approved_by_username or "",
        approval_ticket=entry.approval_ticket or "",
        value_change=entry.kind is ChangeKind.CONFIG and entry.rollback_available,
    )


def environment_from_proto(message: pb.Environment) -> Environment:
    return Environment(
        name=message.name,
        parent=message.parent or None,
        description=message.description or None,
        protected=message.protected if message.HasField("protected") else None,
    )


def environment_to_proto(environment: Environment) -> pb.Environment:
    return pb.Environment(
        name=environment.name,
        parent=environment.parent or "",
        description=environment.description or "",
        protected=bool(environment.protected),
    )


def template_from_proto(message: pb.Template) -> Template:
    return Template(
        name=message.name,
        template_type=message.template_type,
        description=message.description or None,
        config_values=from_struct(message.config_values),
        feature_flags=from_struct(message.feature_flags)
        if message.HasField("feature_flags")
        else None,
        rate_limits=from_struct(message.rate_limits) if message.HasField("rate_limits") else None,
        suitable_environments=tuple(message.suitable_environments),
        version=message.version or None,
        is_default=message.is_default,
        is_active=default_true(message, "is_active"),
        author=message.author or None,
        team=message.team or None,
    )


def template_to_proto(template: Template) -> pb.Template:
    return pb.Template(
        name=template.name,
        template_type=template.template_type,
        description=template.description or "",
        config_values=to_struct(template.config_values),
        feature_flags=to_struct(template.feature_flags) if template.feature_flags else None,
        rate_limits=to_struct(template.rate_limits) if template.rate_limits else None,
        suitable_environments=list(template.suitable_environments),
        version=template.version or "",
        is_default=template.is_default,
        is_active=template.is_active,
        usage_count=template.usage_count,
        author=template.author or "",
        team=template.team or "",
        created_at=to_timestamp(template.created_at),
        updated_at=to_timestamp(template.updated_at),
    )


# --- watching and maintenance windows ---------------------------------------------------


def watch_request(request: pb.WatchConfigRequest) -> WatchRequest:
    """Raises InvalidArgument for a kind that is not one."""
    kinds = set()
    for index, number in enumerate(request.kinds):
        if number not in _CHANGE_KINDS_BY_NUMBER:
            raise InvalidArgument.field(f"kinds[{index}]", f"{number} is not a change kind")
        kinds.add(_CHANGE_KINDS_BY_NUMBER[number])
    if request.every_environment and request.environment:
        raise InvalidArgument.field(
            "every_environment", "watches every environment: leave `environment` empty"
        )
    return WatchRequest(
        keys=frozenset(request.keys),
        prefixes=tuple(request.prefixes),
        categories=frozenset(request.categories),
        kinds=frozenset(kinds) or frozenset({ChangeKind.CONFIG}),
        environment=request.environment or None,
        from_revision=request.from_revision if request.HasField("from_revision") else None,
        every_environment=request.every_environment,
    )


def watch_response(item: WatchEvent | WatchProgress) -> pb.WatchConfigResponse:
    if isinstance(item, WatchProgress):
        return pb.WatchConfigResponse(progress=pb.Progress(revision=item.revision))
    return pb.WatchConfigResponse(
        event=pb.ChangeEvent(
            revision=item.revision,
            kind=CHANGE_KINDS[item.kind],  # type: ignore[arg-type]
            key=item.key,
            environment=item.environment or "",
            action=_ACTIONS[item.action],
            value=to_value(item.value),
            source=_SOURCES[item.source] if item.source else pb.VALUE_SOURCE_UNSPECIFIED,
            deleted=item.deleted,
            changed_at=to_timestamp(item.changed_at),
            category=item.category or "",
        )
    )


def window_from_proto(message: pb.MaintenanceWindow) -> MaintenanceWindow:
    return MaintenanceWindow(
        name=message.name,
        description=message.description or None,
        environment=message.environment,
        config_values=from_struct(message.config_values),
        starts_at=from_timestamp(message.starts_at) if message.HasField("starts_at") else None,
        ends_at=from_timestamp(message.ends_at) if message.HasField("ends_at") else None,
        schedule_cron=message.schedule_cron or None,
        duration_seconds=message.duration_seconds or None,
        is_active=default_true(message, "is_active"),
    )


def window_to_proto(window: MaintenanceWindow, now: datetime) -> pb.MaintenanceWindow:
    return pb.MaintenanceWindow(
        name=window.name,
        description=window.description or "",
        environment=window.environment,
        config_values=to_struct(window.config_values),
        starts_at=to_timestamp(window.starts_at),
        ends_at=to_timestamp(window.ends_at),
        schedule_cron=window.schedule_cron or "",
        duration_seconds=window.duration_seconds or 0,
        is_active=window.is_active,
        is_open=window.state is WindowState.OPEN,
        window_start=to_timestamp(window.window_start),
        next_transition=to_timestamp(next_transition(window, now)),
        version=window.version,
        created_at=to_timestamp(window.created_at),
        created_by=window.created_by or "",
        updated_at=to_timestamp(window.updated_at),
        updated_by=window.updated_by or "",
    )


__all__ = [
    "CHANGE_KINDS",
    "CONFIG_TYPES",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "config_type",
    "default_true",
    "definition_from_proto",
    "definition_to_proto",
    "environment_from_proto",
    "environment_to_proto",
    "from_struct",
    "from_timestamp",
    "from_value",
    "history_to_proto",
    "override_to_proto",
    "page_request",
    "page_token",
    "resolved_to_proto",
    "template_from_proto",
    "template_to_proto",
    "to_config_type",
    "to_duration",
    "to_list_value",
    "to_struct",
    "to_timestamp",
    "to_value",
    "validation_from_proto",
    "watch_request",
    "watch_response",
    "window_from_proto",
    "window_to_proto",
]
