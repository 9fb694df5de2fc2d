"""The configuration document: everything Switchyard holds that a team keeps in Git.

One YAML document (`switchyard export`, `switchyard apply -f`) holds the environments,
the config definitions with their overrides, the flags, the rate limits and the
templates. Each entry is the API's own message in its JSON form (field names as in the
protos, enums by name, defaults left out), without the bookkeeping the server keeps
(versions, timestamps, who changed it, counters): so the format is the protos, and it
changes only when they do. Lists are sorted by name and keys are sorted, so that an
export of the same state is the same bytes and a Git diff shows only what changed.

Values that need care never appear: the entry of a sensitive or encrypted key says
`kept_values: sensitive` (or `encrypted`) instead of carrying its values, and an apply
leaves the values stored in Switchyard as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from switchyard.client import Client, all_pages
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb

FORMAT_VERSION = 2
"""2: the booleans whose default is true (`is_active`, `is_editable`, `is_deletable`) are
`optional` in the protos, so an export writes false and leaves true out where set so.
Format 1 was written before: there a missing one is false (`_from_format_1`)."""
_DEFAULT_TRUE = {
    "configs": ("is_active", "is_editable", "is_deletable"),
    "overrides": ("is_active",),
    "templates": ("is_active",),
}
_CONCURRENT_READS = 16

# What the server keeps about an object rather than what the object is.
BOOKKEEPING: Mapping[str, frozenset[str]] = {
    "environments": frozenset(),
    "configs": frozenset({"version", "created_at", "created_by", "updated_at", "updated_by"}),
    "overrides": frozenset(
        {
            "key",
            "created_at",
            "created_by",
            "updated_at",
            "updated_by",
            "reason",
            "revert_to_value",  # a maintenance window's bookkeeping
        }
    ),
    "flags": frozenset(
        {
            "version",
            "created_at",
            "created_by",
            "updated_at",
            "updated_by",
            "last_evaluated",
            "evaluation_count",
            "stale",
        }
    ),
    "rate_limits": frozenset(
        {"version", "created_at", "updated_at", "last_triggered", "trigger_count"}
    ),
    "templates": frozenset({"usage_count", "created_at", "updated_at"}),
}
SECTIONS = ("environments", "configs", "flags", "rate_limits", "templates")
VALUE_FIELDS = ("value", "default_value")
KEPT = "kept_values"
"""The field that stands for the values of a sensitive or encrypted key."""


@dataclass
class State:
    """What a server holds, as its API returns it."""

    environments: list[pb.Environment] = field(default_factory=list)
    configs: list[pb.ConfigDefinition] = field(default_factory=list)
    overrides: dict[str, list[pb.Override]] = field(default_factory=dict)
    flags: list[fpb.FeatureFlag] = field(default_factory=list)
    limits: list[rpb.RateLimit] = field(default_factory=list)
    templates: list[pb.Template] = field(default_factory=list)
    revision: int = 0


Progress = Callable[[int, int], None]
"""Called with (done, total) as the definitions are read."""


async def read_state(
    client: Client,
    *,
    key_prefix: str = "",
    with_overrides: bool = True,
    progress: Progress | None = None,
) -> State:
    """Everything the server holds (config keys under `key_prefix` only, when given),
    inactive objects included. Overrides are read key by key, a few at a time, unless
    not `with_overrides`."""
    state = State()
    environments = await client.config.ListEnvironments(pb.ListEnvironmentsRequest())
    state.environments = list(environments.environments)
    state.revision = environments.revision
    state.configs, _ = await all_pages(
        client.config.ListConfigs,
        pb.ListConfigsRequest(key_prefix=key_prefix, include_inactive=True),
        "configs",
    )
    limit = asyncio.Semaphore(_CONCURRENT_READS)
    done = 0

    async def overrides(key: str) -> None:
        nonlocal done
        async with limit:
            try:
                reply = await client.config.GetConfig(pb.GetConfigRequest(key=key))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                reply = pb.GetConfigResponse()  # deleted since it was listed
        state.overrides[key] = list(reply.overrides)
        done += 1
        if progress is not None:
            progress(done, len(state.configs))

    if with_overrides:
        await asyncio.gather(*(overrides(config.key) for config in state.configs))
    state.flags, _ = await all_pages(
        client.flags.ListFlags, fpb.ListFlagsRequest(include_inactive=True), "flags"
    )
    state.limits, _ = await all_pages(
        client.rate_limits.ListRateLimits,
        rpb.ListRateLimitsRequest(include_inactive=True),
        "rate_limits",
    )
    state.templates, _ = await all_pages(
        client.config.ListTemplates, pb.ListTemplatesRequest(include_inactive=True), "templates"
    )
    return state


def kept(config: pb.ConfigDefinition) -> str | None:
    """Why a key's values stay out of the document: 'encrypted', 'sensitive', or None."""
    if config.is_encrypted:
        return "encrypted"
    if config.is_sensitive:
        return "sensitive"
    return None


def entry(message: Message, section: str) -> dict[str, Any]:
    """An object as the document holds it: its JSON form without bookkeeping, 64-bit
    integers as numbers (JSON's form writes them as strings)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for name in BOOKKEEPING[section]:
        data.pop(name, None)
    _numbers(message, data)
    return data


_INT64 = frozenset(
    {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_UINT64}
)


def _numbers(message: Message, data: dict[str, Any]) -> None:
    described: Any
    for described in message.DESCRIPTOR.fields:
        name = described.name
        if name in data and described.type in _INT64:
            if described.is_repeated:
                data[name] = [int(v) for v in data[name]]
            else:
                data[name] = int(data[name])


def to_document(state: State) -> dict[str, Any]:
    """The document of `state`, in its stable order."""
    configs = []
    for config in sorted(state.configs, key=lambda c: c.key):
        item = entry(config, "configs")
        reason = kept(config)
        if reason is not None:
            for name in VALUE_FIELDS:
                item.pop(name, None)
            item[KEPT] = reason
        overrides = []
        for override in sorted(
            state.overrides.get(config.key, ()), key=lambda o: (o.environment, o.priority)
        ):
            shown = entry(override, "overrides")
            if reason is not None:
                shown.pop("value", None)
            overrides.append(shown)
        if overrides:
            item["overrides"] = overrides
        configs.append(item)
    return {
        "version": FORMAT_VERSION,
        "environments": [
            entry(e, "environments") for e in sorted(state.environments, key=lambda e: e.name)
        ],
        "configs": configs,
        "flags": [entry(f, "flags") for f in sorted(state.flags, key=lambda f: f.key)],
        "rate_limits": [entry(r, "rate_limits") for r in sorted(state.limits, key=lambda r: r.key)],
        "templates": [entry(t, "templates") for t in sorted(state.templates, key=lambda t: t.name)],
    }


HEADER = (
    "# Switchyard configuration (switchyard export). Apply it with `switchyard apply -f`.\n"
    "# Format: https://github.com/switchyard/switchyard#configuration-in-git\n"
)


def dump_document(document: Mapping[str, Any]) -> str:
    """The document as YAML: keys sorted, block style, a header saying what it is."""
    body = yaml.safe_dump(
        dict(document), sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )
    return HEADER + body


class DocumentError(ValueError):
    """A document that is not one: each problem on a line of its own, with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_document(text: str) -> dict[str, Any]:
    """Parses and checks a document against its JSON Schema, and that it names each
    object once. Raises DocumentError naming every problem with its path
    (`configs[3].type: ...`)."""
    from switchyard.transfer.schema import validate

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DocumentError([f"not YAML: {error}"]) from None
    if document is None:
        document = {}
    validate(document)
    for section in SECTIONS:
        document.setdefault(section, [])
    _unique(document)
    if document["version"] == 1:
        _from_format_1(document)
    return dict(document)


def _from_format_1(document: dict[str, Any]) -> None:
    """A format-1 document in format 2's terms: its missing default-true booleans were
    false (proto3's JSON left false out), and are now said so."""

    def explicit(item: dict[str, Any], kind: str) -> None:
        for name in _DEFAULT_TRUE[kind]:
            item.setdefault(name, False)

    for config in document["configs"]:
        explicit(config, "configs")
        for override in config.get("overrides", ()):
            explicit(override, "overrides")
    for template in document["templates"]:
        explicit(template, "templates")


_NAMES = {
    "environments": "name",
    "configs": "key",
    "flags": "key",
    "rate_limits": "key",
    "templates": "name",
}


def _unique(document: Mapping[str, Any]) -> None:
    """Raises DocumentError naming every entry that names an object a second time: which
    of the two the document means is not for an apply to guess."""
    problems = []
    for section, name in _NAMES.items():
        first: dict[str, int] = {}
        for index, item in enumerate(document[section]):
            value = item.get(name)
            if value in first:
                problems.append(
                    f"{section}[{index}].{name}: {value!r} again (first in "
                    f"{section}[{first[value]}]): name each once"
                )
            first.setdefault(value, index)
    if problems:
        raise DocumentError(problems)


M = TypeVar("M", bound=Message)


def message_of(data: Mapping[str, Any], message: M, where: str) -> M:
    """Fills `message` from a document entry. Raises DocumentError naming `where`."""
    try:
        return json_format.ParseDict(dict(data), message)
    except json_format.ParseError as error:
        raise DocumentError([f"{where}: {error}"]) from None


def state_from_document(document: Mapping[str, Any]) -> State:
    """What a checked document (`load_document`) says the server holds: for the key
    reference of a file (`switchyard docs --from-file`). Raises DocumentError for an
    entry its API message does not accept."""
    state = State()
    state.environments = [
        message_of(item, pb.Environment(), f"environments[{i}]")
        for i, item in enumerate(document["environments"])
    ]
    for i, item in enumerate(document["configs"]):
        where = f"configs[{i}]"
        config = message_of(
            {k: v for k, v in item.items() if k not in ("overrides", KEPT)},
            pb.ConfigDefinition(),
            where,
        )
        if item.get(KEPT) == "encrypted":
            config.is_encrypted = True
        elif item.get(KEPT):
            config.is_sensitive = True
        state.configs.append(config)
        state.overrides[config.key] = [
            message_of(o, pb.Override(key=config.key), f"{where}.overrides[{n}]")
            for n, o in enumerate(item.get("overrides", ()))
        ]
    state.flags = [
        message_of(item, fpb.FeatureFlag(), f"flags[{i}]")
        for i, item in enumerate(document["flags"])
    ]
    state.limits = [
        message_of(item, rpb.RateLimit(), f"rate_limits[{i}]")
        for i, item in enumerate(document["rate_limits"])
    ]
    state.templates = [
        message_of(item, pb.Template(), f"templates[{i}]")
        for i, item in enumerate(document["templates"])
    ]
    return state


__all__ = [
    "FORMAT_VERSION",
    "KEPT",
    "SECTIONS",
    "DocumentError",
    "State",
    "dump_document",
    "entry",
    "kept",
    "load_document",
    "message_of",
    "read_state",
    "state_from_document",
    "to_document",
]
