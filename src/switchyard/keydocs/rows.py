"""The rows both renderers draw, built once from a catalog (`document`), so that the
Markdown and the HTML page never disagree."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from switchyard.client import from_value
from switchyard.gen.v1 import config_pb2, flag_pb2, rate_limit_pb2
from switchyard.keydocs.catalog import Catalog

T = TypeVar("T")

TITLE = "Switchyard key reference"
SENSITIVE = "sensitive"


@dataclass(frozen=True)
class Span:
    """A piece of a cell: prose, `code` (keys, JSON values, patterns) or `em` (a note
    such as "sensitive"). `br` is a line break."""

    text: str
    kind: str = "text"


Cell = tuple[Span, ...]


@dataclass(frozen=True)
class Entry:
    anchor: str
    key: str
    notes: tuple[str, ...]
    fields: tuple[tuple[str, Cell], ...]


@dataclass(frozen=True)
class Group:
    anchor: str
    title: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    intro: str
    groups: tuple[Group, ...]


@dataclass
class Anchors:
    """Unique HTML ids, made from names of any characters."""

    used: set[str] = field(default_factory=set)

    def make(self, prefix: str, name: str) -> str:
        base = f"{prefix}-{re.sub(r'[^a-z0-9_.-]+', '-', name.lower()).strip('-') or 'x'}"
        anchor, n = base, 1
        while anchor in self.used:
            n += 1
            anchor = f"{base}-{n}"
        self.used.add(anchor)
        return anchor


def _text(text: str) -> Span:
    return Span(text)


def _code(text: str) -> Span:
    return Span(text, "code")


def _em(text: str) -> Span:
    return Span(text, "em")


_BR = Span("", "br")


def _joined(spans: Iterable[Cell], separator: Span) -> Cell:
    out: list[Span] = []
    for index, cell in enumerate(spans):
        if index:
            out.append(separator)
        out.extend(cell)
    return tuple(out)


def _codes(names: Iterable[str]) -> Cell:
    return _joined(((_code(n),) for n in names), _text(", "))


def _lines(cells: Iterable[Cell]) -> Cell:
    return _joined(cells, _BR)


def _enum(descriptor: EnumDescriptor, number: int) -> str:
    """`CONFIG_TYPE_NUMBER` as `number`; an unknown number (a newer server) as itself."""
    prefix = descriptor.values[0].name.removesuffix("UNSPECIFIED")
    value = descriptor.values_by_number.get(number)
    return str(number) if value is None else value.name.removeprefix(prefix).lower()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def _value(message: Any, name: str) -> str | None:
    """The JSON text of a google.protobuf.Value field; None when unset."""
    if not message.HasField(name):
        return None
    return _json(from_value(getattr(message, name)))


def _moment(message: Any, name: str) -> str | None:
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return str(stamp.ToJsonString())


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _yes(flag: bool) -> Cell:
    return (_text("yes" if flag else "no"),)


def _struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {name: from_value(item) for name, item in struct.fields.items()}


def build_rows(catalog: Catalog) -> tuple[Section, ...]:
    anchors = Anchors()
    sections = [
        ("environments", "Environments", "Where overrides live, and what each inherits from."),
        (
            "configuration-keys",
            "Configuration keys",
            "Grouped by category, the area that owns a key. Values of sensitive and "
            "encrypted keys are not shown; current values are not shown at all (read "
            "them with GetValue).",
        ),
        ("feature-flags", "Feature flags", ""),
        ("rate-limits", "Rate limits", ""),
    ]
    for anchor, _, _ in sections:
        anchors.used.add(anchor)
    env_group = Group(
        "",
        "",
        tuple(_environment(e, anchors) for e in sorted(catalog.environments, key=lambda e: e.name)),
    )
    return (
        Section(*sections[0], (env_group,) if env_group.entries else ()),
        Section(*sections[1], _config_groups(catalog, anchors)),
        Section(*sections[2], _single(_flag(f, anchors) for f in _by_key(catalog.flags))),
        Section(*sections[3], _single(_limit(r, anchors) for r in _by_key(catalog.limits))),
    )


def _by_key(items: Iterable[T]) -> list[T]:
    return sorted(items, key=lambda item: str(getattr(item, "key")))  # noqa: B009


def _single(entries: Iterable[Entry]) -> tuple[Group, ...]:
    group = Group("", "", tuple(entries))
    return (group,) if group.entries else ()


def _environment(env: config_pb2.Environment, anchors: Anchors) -> Entry:
    fields: list[tuple[str, Cell]] = []
    if env.description:
        fields.append(("Description", (_text(env.description),)))
    fields.append(("Inherits from", (_code(env.parent),) if env.parent else (_text("none"),)))
    fields.append(("Protected", _yes(env.HasField("protected") and env.protected)))
    return Entry(anchors.make("env", env.name), env.name, (), tuple(fields))


def _config_groups(catalog: Catalog, anchors: Anchors) -> tuple[Group, ...]:
    by_category: dict[str, list[config_pb2.ConfigDefinition]] = {}
    for config in catalog.configs:
        by_category.setdefault(config.category, []).append(config)
    groups = []
    for category in sorted(by_category, key=lambda c: (c == "", c)):
        title = category or "(no category)"
        group_anchor = anchors.make("category", title)
        entries = tuple(
            _config(c, catalog.overrides.get(c.key, ()), anchors)
            for c in _by_key(by_category[category])
        )
        groups.append(Group(group_anchor, title, entries))
    return tuple(groups)


def _config(
    config: config_pb2.ConfigDefinition,
    overrides: Iterable[config_pb2.Override],
    anchors: Anchors,
) -> Entry:
    secret = config.is_sensitive or config.is_encrypted
    fields: list[tuple[str, Cell]] = []
    if config.display_name:
        fields.append(("Name", (_text(config.display_name),)))
    if config.description:
        fields.append(("Description", (_text(config.description),)))
    if config.help_text:
        fields.append(("Help", (_text(config.help_text),)))
    fields.append(("Type", (_code(_enum(config_pb2.ConfigType.DESCRIPTOR, config.type)),)))
    default = _value(config, "default_value")
    if default is None:
        fields.append(("Default", (_text("none"),)))
    else:
        fields.append(("Default", (_em(SENSITIVE),) if secret else (_code(default),)))
    constraints = _constraints(config, secret)
    fields.append(("Constraints", constraints or (_text("none"),)))
    fields.append(("Overridden in", _overridden_in(overrides) or (_text("none"),)))
    if config.subcategory:
        fields.append(("Subcategory", (_text(config.subcategory),)))
    fields.append(("Requires restart", _yes(config.requires_restart)))
    ttl = config.cache_ttl_seconds if config.HasField("cache_ttl_seconds") else 300
    fields.append(("Cache TTL", (_text("not cached" if ttl == 0 else f"{ttl} s"),)))
    handling = [
        name
        for name, on in (
            ("sensitive", config.is_sensitive),
            ("encrypted", config.is_encrypted),
            ("read-only", not _true_unless_set(config, "is_editable")),
            ("not deletable", not _true_unless_set(config, "is_deletable")),
        )
        if on
    ]
    if handling:
        fields.append(("Handling", (_text(", ".join(handling)),)))
    active = _true_unless_set(config, "is_active")
    status = "active" if active else "inactive (retired: reads answer NOT_FOUND)"
    fields.append(("Status", (_text(status),)))
    notes = () if active else ("inactive",)
    return Entry(anchors.make("key", config.key), config.key, notes, tuple(fields))


def _true_unless_set(message: Message, field: str) -> bool:
    """An `optional bool` whose default is true: unset (as a hand-written document may
    leave it) reads as the server reads it."""
    return bool(getattr(message, field)) if message.HasField(field) else True


def _constraints(config: config_pb2.ConfigDefinition, secret: bool) -> Cell:
    rules = config.validation
    length = config.type not in (config_pb2.CONFIG_TYPE_NUMBER, config_pb2.CONFIG_TYPE_JSON)
    what = "length" if length else "value"
    if config.type == config_pb2.CONFIG_TYPE_JSON:
        what = "value (length of a string or array)"
    items: list[Cell] = []
    if config.is_required:
        items.append((_text("required"),))
    if rules.HasField("min_value"):
        items.append((_text(f"minimum {what} "), _code(_number(rules.min_value))))
    if rules.HasField("max_value"):
        items.append((_text(f"maximum {what} "), _code(_number(rules.max_value))))
    if rules.regex_pattern:
        items.append((_text("matches "), _code(rules.regex_pattern)))
    if rules.allowed_values:
        if secret:
            items.append((_text("one of a fixed list ("), _em(SENSITIVE), _text(")")))
        else:
            allowed = [_json(from_value(v)) for v in rules.allowed_values]
            items.append((_text("one of "), *_codes(allowed)))
    if rules.depends_on:
        items.append((_text("depends on "), *_codes(sorted(rules.depends_on))))
    if rules.conflicts_with:
        items.append((_text("conflicts with "), *_codes(sorted(rules.conflicts_with))))
    if rules.validation_rule:
        items.append((_text(rules.validation_rule),))
    return _lines(items)


def _overridden_in(overrides: Iterable[config_pb2.Override]) -> Cell:
    """The environments with an active override, each noting whether one of them is
    temporary or scheduled (which the data says, not the clock)."""
    kinds: dict[str, set[str]] = {}
    for item in overrides:
        if not _true_unless_set(item, "is_active"):
            continue
        notes = kinds.setdefault(item.environment, set())
        if item.HasField("expires_at"):
            notes.add("temporary")
        if item.HasField("starts_at"):
            notes.add("scheduled")
    cells: list[Cell] = []
    for env in sorted(kinds):
        note = f" ({', '.join(sorted(kinds[env]))})" if kinds[env] else ""
        cells.append((_code(env), _text(note)) if note else (_code(env),))
    return _joined(cells, _text(", "))


def _flag(flag: flag_pb2.FeatureFlag, anchors: Anchors) -> Entry:
    fields: list[tuple[str, Cell]] = []
    if flag.name:
        fields.append(("Name", (_text(flag.name),)))
    if flag.description:
        fields.append(("Description", (_text(flag.description),)))
    fields.append(("Enabled", _yes(flag.is_enabled)))
    fields.append(("Rollout", _rollout(flag)))
    if flag.variants.fields:
        variants = _struct(flag.variants)
        fields.append(("Variants", _codes(f"{n} = {_json(variants[n])}" for n in sorted(variants))))
    fields.append(("Targeting", _targeting(flag) or (_text("none"),)))
    envs = sorted(flag.enabled_environments)
    fields.append(("Environments", _codes(envs) if envs else (_text("every environment"),)))
    if flag.prerequisite_features:
        fields.append(("Prerequisites", _codes(sorted(flag.prerequisite_features))))
    if flag.conflicts_with:
        fields.append(("Conflicts with", _codes(sorted(flag.conflicts_with))))
    fields.append(("Schedule", _schedule(flag) or (_text("always"),)))
    owner = [
        cell for cell in ((_text(flag.owner_team),), (_code(flag.owner_email),)) if cell[0].text
    ]
    if owner:
        fields.append(("Owner", _joined(owner, _text(", "))))
    kind = [
        (label, text)
        for label, text in (
            ("category", flag.feature_category),
            ("type", flag.feature_type),
            ("impact", flag.impact_level),
        )
        if text
    ]
    if kind:
        fields.append(("Kind", _joined(((_text(f"{a}: {b}"),) for a, b in kind), _text(", "))))
    links = [(_code(text),) for text in (flag.documentation_url, flag.jira_ticket) if text]
    if links:
        fields.append(("Links", _joined(links, _text(", "))))
    if flag.auto_disable_on_error:
        threshold = _number(flag.failure_threshold)
        fields.append(("Auto-disable", (_text(f"on error rate above {threshold}"),)))
    notes = _flag_notes(flag)
    status = ", ".join(notes) or "active"
    if flag.is_deprecated and flag.HasField("deprecation_date"):
        status += f" (deprecated on {_moment(flag, 'deprecation_date')})"
    fields.append(("Status", (_text(status),)))
    return Entry(anchors.make("flag", flag.key), flag.key, notes, tuple(fields))


def _flag_notes(flag: flag_pb2.FeatureFlag) -> tuple[str, ...]:
    active = _true_unless_set(flag, "is_active")
    return tuple(
        name
        for name, on in (
            ("inactive", not active),
            ("deprecated", flag.is_deprecated),
            ("permanent", flag.is_permanent),
        )
        if on
    )


def _rollout(flag: flag_pb2.FeatureFlag) -> Cell:
    strategy = flag.rollout_strategy
    percent = f"{flag.rollout_percentage}%"
    if strategy == flag_pb2.ROLLOUT_STRATEGY_USER_LIST:
        return (_text("user list"),)
    if strategy == flag_pb2.ROLLOUT_STRATEGY_GRADUAL:
        start = _moment(flag, "gradual_start") or "?"
        end = _moment(flag, "gradual_end") or "?"
        return (_text(f"gradual to {percent}, from "), _code(start), _text(" to "), _code(end))
    if strategy == flag_pb2.ROLLOUT_STRATEGY_RING:
        rings: list[Cell] = []
        for ring in flag.rings:
            cell: list[Span] = [_text(f"ring {ring.name}: "), *_codes(sorted(ring.groups))]
            opens = _moment(ring, "opens_at")
            if opens:
                cell += [_text(", opens "), _code(opens)]
            rings.append(tuple(cell))
        return _lines([(_text("rings"),), *rings])
    return (_text(f"{percent} of users"),)


def _targeting(flag: flag_pb2.FeatureFlag) -> Cell:
    items: list[Cell] = []
    if flag.enabled_for_users:
        count = len(flag.enabled_for_users)
        items.append((_text(f"{count} user{'' if count == 1 else 's'}"),))
    if flag.enabled_for_roles:
        items.append((_text("roles "), *_codes(sorted(flag.enabled_for_roles))))
    if flag.enabled_for_groups:
        items.append((_text("groups "), *_codes(sorted(flag.enabled_for_groups))))
    for index, rule in enumerate(flag.targeting_rules.values, start=1):
        body = from_value(rule)
        if isinstance(body, dict):
            name = str(body.get("id", index))
            variant = str(body.get("variant", "on"))
        else:
            name, variant = str(index), "on"
        items.append((_text("rule "), _code(name), _text(" serves "), _code(variant)))
    return _lines(items)


def _schedule(flag: flag_pb2.FeatureFlag) -> Cell:
    items: list[Cell] = []
    start = _moment(flag, "start_date")
    if start:
        items.append((_text("from "), _code(start)))
    end = _moment(flag, "end_date")
    if end:
        items.append((_text("until "), _code(end)))
    if flag.schedule_cron:
        items.append((_text("cron "), _code(flag.schedule_cron)))
    return _joined(items, _text(", "))


def _limit(limit: rate_limit_pb2.RateLimit, anchors: Anchors) -> Entry:
    fields: list[tuple[str, Cell]] = []
    if limit.name:
        fields.append(("Name", (_text(limit.name),)))
    if limit.description:
        fields.append(("Description", (_text(limit.description),)))
    fields.append(("Limit", _quota(limit)))
    if limit.burst_size:
        fields.append(("Burst", (_text(str(limit.burst_size)),)))
    if limit.inherit_from:
        fields.append(("Inherits from", (_code(limit.inherit_from),)))
    scope: list[Span] = [_text(_enum(rate_limit_pb2.ScopeType.DESCRIPTOR, limit.scope_type))]
    if limit.scope_pattern:
        scope += [_text(" "), _code(limit.scope_pattern)]
    fields.append(("Scope", tuple(scope)))
    if limit.applies_to:
        fields.append(("Applies to", (_code(limit.applies_to),)))
    if limit.http_methods:
        fields.append(("HTTP methods", _codes(sorted(limit.http_methods))))
    fields.append(("Action", _action(limit)))
    env = limit.environment
    fields.append(("Environment", (_code(env),) if env else (_text("every environment"),)))
    sliding = limit.sliding_window if limit.HasField("sliding_window") else True
    distributed = limit.distributed if limit.HasField("distributed") else True
    counting = (
        "token bucket" if limit.burst_size else "sliding window" if sliding else "fixed window"
    )
    shared = "shared by every replica" if distributed else "per replica"
    failing = "fails closed (denies)" if limit.fail_closed else "fails open (allows)"
    fields.append(("Counting", (_text(f"{counting}, {shared}; {failing} without Redis"),)))
    priority = limit.priority if limit.HasField("priority") else 100
    fields.append(("Priority", (_text(str(priority)),)))
    exempt = _exemptions(limit)
    if exempt:
        fields.append(("Exempt", exempt))
    active = _true_unless_set(limit, "is_active")
    fields.append(("Status", (_text("active" if active else "inactive"),)))
    notes = () if active else ("inactive",)
    return Entry(anchors.make("limit", limit.key), limit.key, notes, tuple(fields))


def _quota(limit: rate_limit_pb2.RateLimit) -> Cell:
    """`100 requests per 60 s`; a 0 in either (inherited from `inherit_from`) reads so."""
    requests = f"{limit.max_requests} requests" if limit.max_requests else "inherited requests"
    window = f"{limit.time_window_seconds} s" if limit.time_window_seconds else "inherited window"
    return (_text(f"{requests} per {window}"),)


def _action(limit: rate_limit_pb2.RateLimit) -> Cell:
    action = limit.action_on_limit
    out: list[Span] = [_text(_enum(rate_limit_pb2.LimitAction.DESCRIPTOR, action))]
    if action == rate_limit_pb2.LIMIT_ACTION_BLOCK:
        block = limit.block_duration_seconds if limit.HasField("block_duration_seconds") else 60
        out.append(_text(f" for {block} s"))
    if limit.queue_size and action == rate_limit_pb2.LIMIT_ACTION_QUEUE:
        out.append(_text(f", queue of {limit.queue_size}"))
    if limit.custom_error_message:
        out += [_BR, _text("message: "), _text(limit.custom_error_message)]
    if limit.redirect_url:
        out += [_BR, _text("redirect to "), _code(limit.redirect_url)]
    return tuple(out)


def _exemptions(limit: rate_limit_pb2.RateLimit) -> Cell:
    """Roles by name; users, addresses and API keys only counted (an API key is a
    secret, and lists of users or addresses are not reference material)."""
    items: list[Cell] = []
    if limit.exempt_roles:
        items.append((_text("roles "), *_codes(sorted(limit.exempt_roles))))
    for singular, plural, values in (
        ("user", "users", limit.exempt_users),
        ("IP address", "IP addresses", limit.exempt_ips),
        ("API key", "API keys", limit.exempt_api_keys),
    ):
        if values:
            items.append((_text(f"{len(values)} {singular if len(values) == 1 else plural}"),))
    return _joined(items, _text(", "))


__all__ = ["SENSITIVE", "TITLE", "Cell", "Entry", "Group", "Section", "Span", "build_rows"]
