"""A generated reference of every configuration key, feature flag and rate limit: what
`switchyard docs` writes as `keys.md` and `keys.html`.

`fetch_catalog` reads everything from a running server into a `Catalog`;
`render_markdown` and `render_html` turn a catalog into one document each. Both render
the same intermediate rows (`_document`), built once, so the two never disagree.

The output is deterministic, so that a committed copy diffs cleanly and `--check` is
stable: everything is sorted, and nothing that moves without a change to the definition
is printed (no timestamps of writes, versions, revisions, evaluation or trigger counts,
stale markers, and no current values: a key's base value changes with every routine
`SetValue`, its default with its definition).

Decisions, so that the document says the same thing every time:

- Owner of a key: its category (the heading it is grouped under) and subcategory.
  `created_by` / `updated_by` name whoever last typed a change (often an operator or
  an automation token), and `updated_by` moves with every value write, which would make
  the reference churn on routine changes; category and subcategory are what the schema
  has for the area that owns a key. Flags have owners of their own (`owner_team`,
  `owner_email`), printed as they are.
- Deprecation of a key: configuration keys have no deprecation field (neither in the
  protos nor in the specification's `pf_system_config`); a key is retired by setting
  `is_active` false, after which reads answer NOT_FOUND. Such a key is listed, marked
  "inactive". Flags have `is_deprecated` and `deprecation_date` (and `is_active`);
  limits have `is_active`.
- Values of sensitive or encrypted keys (default, allowed values) are never printed:
  they read "sensitive". Override values are never printed at all, only the
  environments that hold an active override.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor

from switchyard.client import from_value
from switchyard.gen.v1 import config_pb2, flag_pb2, rate_limit_pb2
from switchyard.transfer.document import State, read_state

if TYPE_CHECKING:
    from switchyard.client import Client

T = TypeVar("T")

LIST_PAGE_SIZE = 1000
"""Page size of the List calls: the server's maximum."""
GET_CONFIG_CONCURRENCY = 16
"""GetConfig calls in flight at once while reading overrides."""
TITLE = "Switchyard key reference"
SENSITIVE = "sensitive"


@dataclass(frozen=True)
class Catalog:
    """Everything the reference documents, as the server's messages. `overrides` maps a
    key to its overrides (a key without any may be missing). Order does not matter: the
    renderers sort."""

    environments: list[config_pb2.Environment]
    configs: list[config_pb2.ConfigDefinition]
    overrides: dict[str, list[config_pb2.Override]]
    flags: list[flag_pb2.FeatureFlag]
    limits: list[rate_limit_pb2.RateLimit]


# --- reading a server ---------------------------------------------------------------


async def fetch_catalog(client: Client) -> Catalog:
    """Reads every environment, key (inactive ones included) with its overrides, flag
    and limit from the server `client` is connected to, as `switchyard export` reads
    them (`transfer.document.read_state`). Raises `grpc.aio.AioRpcError` for a failed
    call (UNAVAILABLE, or PERMISSION_DENIED for a caller that may not read everything)."""
    return catalog_of(await read_state(client))


def catalog_of(state: State) -> Catalog:
    """The catalog of a server's state, read live or from an exported document."""
    return Catalog(
        environments=list(state.environments),
        configs=list(state.configs),
        overrides=dict(state.overrides),
        flags=list(state.flags),
        limits=list(state.limits),
    )


# --- the rows both renderers draw ---------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """A piece of a cell: prose, `code` (keys, JSON values, patterns) or `em` (a note
    such as "sensitive"). `br` is a line break."""

    text: str
    kind: str = "text"


_Cell = tuple[_Span, ...]


@dataclass(frozen=True)
class _Entry:
    anchor: str
    key: str
    notes: tuple[str, ...]
    fields: tuple[tuple[str, _Cell], ...]


@dataclass(frozen=True)
class _Group:
    anchor: str
    title: str
    entries: tuple[_Entry, ...]


@dataclass(frozen=True)
class _Section:
    anchor: str
    title: str
    intro: str
    groups: tuple[_Group, ...]


@dataclass
class _Anchors:
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


def _text(text: str) -> _Span:
    return _Span(text)


def _code(text: str) -> _Span:
    return _Span(text, "code")


def _em(text: str) -> _Span:
    return _Span(text, "em")


_BR = _Span("", "br")


def _joined(spans: Iterable[_Cell], separator: _Span) -> _Cell:
    out: list[_Span] = []
    for index, cell in enumerate(spans):
        if index:
            out.append(separator)
        out.extend(cell)
    return tuple(out)


def _codes(names: Iterable[str]) -> _Cell:
    return _joined(((_code(n),) for n in names), _text(", "))


def _lines(cells: Iterable[_Cell]) -> _Cell:
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


def _yes(flag: bool) -> _Cell:
    return (_text("yes" if flag else "no"),)


def _struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {name: from_value(item) for name, item in struct.fields.items()}


def _document(catalog: Catalog) -> tuple[_Section, ...]:
    anchors = _Anchors()
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
    env_group = _Group(
        "",
        "",
        tuple(_environment(e, anchors) for e in sorted(catalog.environments, key=lambda e: e.name)),
    )
    return (
        _Section(*sections[0], (env_group,) if env_group.entries else ()),
        _Section(*sections[1], _config_groups(catalog, anchors)),
        _Section(*sections[2], _single(_flag(f, anchors) for f in _by_key(catalog.flags))),
        _Section(*sections[3], _single(_limit(r, anchors) for r in _by_key(catalog.limits))),
    )


def _by_key(items: Iterable[T]) -> list[T]:
    return sorted(items, key=lambda item: str(getattr(item, "key")))  # noqa: B009


def _single(entries: Iterable[_Entry]) -> tuple[_Group, ...]:
    group = _Group("", "", tuple(entries))
    return (group,) if group.entries else ()


def _environment(env: config_pb2.Environment, anchors: _Anchors) -> _Entry:
    fields: list[tuple[str, _Cell]] = []
    if env.description:
        fields.append(("Description", (_text(env.description),)))
    fields.append(("Inherits from", (_code(env.parent),) if env.parent else (_text("none"),)))
    fields.append(("Protected", _yes(env.HasField("protected") and env.protected)))
    return _Entry(anchors.make("env", env.name), env.name, (), tuple(fields))


def _config_groups(catalog: Catalog, anchors: _Anchors) -> tuple[_Group, ...]:
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
        groups.append(_Group(group_anchor, title, entries))
    return tuple(groups)


def _config(
    config: config_pb2.ConfigDefinition,
    overrides: Iterable[config_pb2.Override],
    anchors: _Anchors,
) -> _Entry:
    secret = config.is_sensitive or config.is_encrypted
    fields: list[tuple[str, _Cell]] = []
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
            ("read-only", not config.is_editable),
            ("not deletable", not config.is_deletable),
        )
        if on
    ]
    if handling:
        fields.append(("Handling", (_text(", ".join(handling)),)))
    status = "active" if config.is_active else "inactive (retired: reads answer NOT_FOUND)"
    fields.append(("Status", (_text(status),)))
    notes = () if config.is_active else ("inactive",)
    return _Entry(anchors.make("key", config.key), config.key, notes, tuple(fields))


def _constraints(config: config_pb2.ConfigDefinition, secret: bool) -> _Cell:
    rules = config.validation
    length = config.type not in (config_pb2.CONFIG_TYPE_NUMBER, config_pb2.CONFIG_TYPE_JSON)
    what = "length" if length else "value"
    if config.type == config_pb2.CONFIG_TYPE_JSON:
        what = "value (length of a string or array)"
    items: list[_Cell] = []
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


def _overridden_in(overrides: Iterable[config_pb2.Override]) -> _Cell:
    """The environments with an active override, each noting whether one of them is
    temporary or scheduled (which the data says, not the clock)."""
    kinds: dict[str, set[str]] = {}
    for item in overrides:
        if not item.is_active:
            continue
        notes = kinds.setdefault(item.environment, set())
        if item.HasField("expires_at"):
            notes.add("temporary")
        if item.HasField("starts_at"):
            notes.add("scheduled")
    cells: list[_Cell] = []
    for env in sorted(kinds):
        note = f" ({', '.join(sorted(kinds[env]))})" if kinds[env] else ""
        cells.append((_code(env), _text(note)) if note else (_code(env),))
    return _joined(cells, _text(", "))


def _flag(flag: flag_pb2.FeatureFlag, anchors: _Anchors) -> _Entry:
    fields: list[tuple[str, _Cell]] = []
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
    return _Entry(anchors.make("flag", flag.key), flag.key, notes, tuple(fields))


def _flag_notes(flag: flag_pb2.FeatureFlag) -> tuple[str, ...]:
    active = flag.is_active if flag.HasField("is_active") else True
    return tuple(
        name
        for name, on in (
            ("inactive", not active),
            ("deprecated", flag.is_deprecated),
            ("permanent", flag.is_permanent),
        )
        if on
    )


def _rollout(flag: flag_pb2.FeatureFlag) -> _Cell:
    strategy = flag.rollout_strategy
    percent = f"{flag.rollout_percentage}%"
    if strategy == flag_pb2.ROLLOUT_STRATEGY_USER_LIST:
        return (_text("user list"),)
    if strategy == flag_pb2.ROLLOUT_STRATEGY_GRADUAL:
        start = _moment(flag, "gradual_start") or "?"
        end = _moment(flag, "gradual_end") or "?"
        return (_text(f"gradual to {percent}, from "), _code(start), _text(" to "), _code(end))
    if strategy == flag_pb2.ROLLOUT_STRATEGY_RING:
        rings: list[_Cell] = []
        for ring in flag.rings:
            cell: list[_Span] = [_text(f"ring {ring.name}: "), *_codes(sorted(ring.groups))]
            opens = _moment(ring, "opens_at")
            if opens:
                cell += [_text(", opens "), _code(opens)]
            rings.append(tuple(cell))
        return _lines([(_text("rings"),), *rings])
    return (_text(f"{percent} of users"),)


def _targeting(flag: flag_pb2.FeatureFlag) -> _Cell:
    items: list[_Cell] = []
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


def _schedule(flag: flag_pb2.FeatureFlag) -> _Cell:
    items: list[_Cell] = []
    start = _moment(flag, "start_date")
    if start:
        items.append((_text("from "), _code(start)))
    end = _moment(flag, "end_date")
    if end:
        items.append((_text("until "), _code(end)))
    if flag.schedule_cron:
        items.append((_text("cron "), _code(flag.schedule_cron)))
    return _joined(items, _text(", "))


def _limit(limit: rate_limit_pb2.RateLimit, anchors: _Anchors) -> _Entry:
    fields: list[tuple[str, _Cell]] = []
    if limit.name:
        fields.append(("Name", (_text(limit.name),)))
    if limit.description:
        fields.append(("Description", (_text(limit.description),)))
    fields.append(("Limit", _quota(limit)))
    if limit.burst_size:
        fields.append(("Burst", (_text(str(limit.burst_size)),)))
    if limit.inherit_from:
        fields.append(("Inherits from", (_code(limit.inherit_from),)))
    scope: list[_Span] = [_text(_enum(rate_limit_pb2.ScopeType.DESCRIPTOR, limit.scope_type))]
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
    active = limit.is_active if limit.HasField("is_active") else True
    fields.append(("Status", (_text("active" if active else "inactive"),)))
    notes = () if active else ("inactive",)
    return _Entry(anchors.make("limit", limit.key), limit.key, notes, tuple(fields))


def _quota(limit: rate_limit_pb2.RateLimit) -> _Cell:
    """`100 requests per 60 s`; a 0 in either (inherited from `inherit_from`) reads so."""
    requests = f"{limit.max_requests} requests" if limit.max_requests else "inherited requests"
    window = f"{limit.time_window_seconds} s" if limit.time_window_seconds else "inherited window"
    return (_text(f"{requests} per {window}"),)


def _action(limit: rate_limit_pb2.RateLimit) -> _Cell:
    action = limit.action_on_limit
    out: list[_Span] = [_text(_enum(rate_limit_pb2.LimitAction.DESCRIPTOR, action))]
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


def _exemptions(limit: rate_limit_pb2.RateLimit) -> _Cell:
    """Roles by name; users, addresses and API keys only counted (an API key is a
    secret, and lists of users or addresses are not reference material)."""
    items: list[_Cell] = []
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


# --- Markdown -----------------------------------------------------------------------

_MD_ESCAPED = re.compile(r"([\\`*_\[\]|~])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _md_text(text: str) -> str:
    """Prose for a Markdown table cell or heading: Markdown punctuation backslashed
    (pipes included), `<`, `>` and `&` as entities so no HTML gets through, line breaks
    as `<br>` (a table cell is one line)."""
    text = _MD_ESCAPED.sub(r"\\\1", text)
    text = "".join(_MD_ENTITIES.get(ch, ch) for ch in text)
    return "<br>".join(_one_line_parts(text))


def _md_code(text: str) -> str:
    """A code span: fenced by more backticks than it holds in a row, pipes backslashed
    (GFM reads `\\|` as a pipe inside a code span in a table, and `|` as a cell end)."""
    text = " ".join(_one_line_parts(text)).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _one_line_parts(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _md_cell(cell: _Cell) -> str:
    out = []
    for span in cell:
        if span.kind == "code":
            out.append(_md_code(span.text))
        elif span.kind == "em":
            out.append(f"*{_md_text(span.text)}*")
        elif span.kind == "br":
            out.append("<br>")
        else:
            out.append(_md_text(span.text))
    return "".join(out)


def _md_heading(entry: _Entry) -> str:
    notes = f" ({_md_text(', '.join(entry.notes))})" if entry.notes else ""
    return f"{_md_code(entry.key)}{notes}"


def render_markdown(catalog: Catalog) -> str:
    """The reference as one GitHub-flavoured Markdown document, ending with a newline.
    Deterministic: the same catalog, in any order, gives the same text."""
    document = _document(catalog)
    lines = [
        f"# {TITLE}",
        "",
        "<!-- Generated by `switchyard docs`; do not edit by hand. -->",
        "",
        "## Contents",
        "",
    ]
    for section in document:
        lines.append(f"- [{_md_text(section.title)}](#{section.anchor})")
        for group in section.groups:
            indent = "  "
            if group.title:
                lines.append(f"  - [{_md_text(group.title)}](#{group.anchor})")
                indent = "    "
            for entry in group.entries:
                lines.append(f"{indent}- [{_md_heading(entry)}](#{entry.anchor})")
    for section in document:
        lines += ["", f'<a id="{section.anchor}"></a>', "", f"## {_md_text(section.title)}"]
        if section.intro:
            lines += ["", _md_text(section.intro)]
        if not section.groups:
            lines += ["", "None."]
        for group in section.groups:
            level = "###"
            if group.title:
                lines += ["", f'<a id="{group.anchor}"></a>', "", f"### {_md_text(group.title)}"]
                level = "####"
            for entry in group.entries:
                lines += [
                    "",
                    f'<a id="{entry.anchor}"></a>',
                    "",
                    f"{level} {_md_heading(entry)}",
                    "",
                    "| Field | Value |",
                    "| --- | --- |",
                ]
                lines += [
                    f"| {_md_text(label)} | {_md_cell(cell)} |" for label, cell in entry.fields
                ]
    return "\n".join(lines) + "\n"


# --- HTML ---------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
  padding: 0 1rem; color: #1f2328; }
code { font: 0.9em ui-monospace, monospace; background: #f3f4f6; padding: 0 0.2em;
  border-radius: 3px; overflow-wrap: anywhere; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2.5rem; }
h3, h4 { margin: 1.5rem 0 0.5rem; }
.note { color: #59636e; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left;
  vertical-align: top; white-space: pre-wrap; }
th { width: 11rem; background: #f6f8fa; font-weight: 600; }
nav ul { margin: 0.2em 0; }
""".strip()


def _html_cell(cell: _Cell) -> str:
    out = []
    for span in cell:
        text = html.escape(span.text)
        if span.kind == "code":
            out.append(f"<code>{text}</code>")
        elif span.kind == "em":
            out.append(f"<em>{text}</em>")
        elif span.kind == "br":
            out.append("<br>")
        else:
            out.append(text)
    return "".join(out)


def _html_heading(entry: _Entry) -> str:
    notes = f" ({html.escape(', '.join(entry.notes))})" if entry.notes else ""
    return f"<code>{html.escape(entry.key)}</code>{notes}"


def render_html(catalog: Catalog) -> str:
    """The reference as one self-contained HTML page (inline CSS, no scripts, every text
    escaped), with a table of contents linking to an anchor per key, flag and limit.
    Deterministic: the same catalog, in any order, gives the same text."""
    document = _document(catalog)

    def a(anchor: str) -> str:
        return html.escape(anchor, quote=True)

    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(TITLE)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(TITLE)}</h1>",
        '<p class="note">Generated by <code>switchyard docs</code>; do not edit by hand.</p>',
        "<nav>",
        "<h2>Contents</h2>",
        "<ul>",
    ]
    for section in document:
        lines.append(f'<li><a href="#{a(section.anchor)}">{html.escape(section.title)}</a>')
        lines.append("<ul>")
        for group in section.groups:
            if group.title:
                lines.append(f'<li><a href="#{a(group.anchor)}">{html.escape(group.title)}</a>')
                lines.append("<ul>")
            for entry in group.entries:
                lines.append(f'<li><a href="#{a(entry.anchor)}">{_html_heading(entry)}</a></li>')
            if group.title:
                lines += ["</ul>", "</li>"]
        lines += ["</ul>", "</li>"]
    lines += ["</ul>", "</nav>"]
    for section in document:
        lines.append(f'<section id="{a(section.anchor)}">')
        lines.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.intro:
            lines.append(f'<p class="note">{html.escape(section.intro)}</p>')
        if not section.groups:
            lines.append("<p>None.</p>")
        for group in section.groups:
            level = "h3"
            if group.title:
                lines.append(f'<h3 id="{a(group.anchor)}">{html.escape(group.title)}</h3>')
                level = "h4"
            for entry in group.entries:
                lines.append(f'<{level} id="{a(entry.anchor)}">{_html_heading(entry)}</{level}>')
                lines.append("<table>")
                lines += [
                    f"<tr><th>{html.escape(label)}</th><td>{_html_cell(cell)}</td></tr>"
                    for label, cell in entry.fields
                ]
                lines.append("</table>")
        lines.append("</section>")
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"


__all__ = [
    "GET_CONFIG_CONCURRENCY",
    "LIST_PAGE_SIZE",
    "Catalog",
    "fetch_catalog",
    "render_html",
    "render_markdown",
]
