"""From a document and what the server holds, the writes that make the server hold the
document, in pieces of bounded size; from the server's dry run of them, the plan a
person reads.

**Only what changes is written.** What the document says and the server already holds
(a definition, a base value, an override, an environment, a flag, a rate limit, a
template, compared as the API's messages) gets no write. Everything else is the API's
own writes (`ProposedWrite`), and the server decides in a dry run what each changes
(its history rows) or why it refuses it: the plan is exactly what an apply will do,
worked out by the same code.

**Values first, then the state.** A key's state (active, editable) is part of its
definition, and the server refuses values for a key that is inactive or read-only. So
a key whose values the plan writes is written in three steps: its definition, editable
and active while its values are written (when the server holds it locked, or the
document locks it); its values and overrides; then, if the document says so, its
definition's `is_active`/`is_editable` as the document has them. A key the document
makes read-only gets its new values first and is locked last, in the same piece, so no
apply leaves it half done; a key locked on the server and in the document is unlocked,
written and locked again under one revision, and the plan shows all three.

**Units and pieces.** Writes come in units: what must be applied together for its
checks to hold. A unit is a key with its overrides and every key its validation names
(depends_on, conflicts_with, in the document or on the server); flags that name each
other as prerequisites or conflicts; rate limits that inherit from each other; a
template. The environments come first, in a unit of their own that every other may
need (their overrides). `pieces` packs whole units into pieces of at most so many
writes and bytes, so that a document of any size goes to the server in batches it
accepts; a unit is never split.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2, struct_pb2
from google.protobuf.message import Message

from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb
from switchyard.transfer.document import (
    BOOKKEEPING,
    KEPT,
    VALUE_FIELDS,
    State,
    message_of,
)

PIECE_WRITES = 1000
"""Writes per batch: the server takes up to 5,000, but an answer of 1,000 ordinary
writes carries all of their diffs, and a smaller batch holds the writers' lock and the
server's memory for less time."""
PIECE_BYTES = 1024 * 1024
"""Request bytes per batch: well under the 4 MiB a server receives by default."""

_NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
_DEFINITION_FIELDS = tuple(
    f.name
    for f in pb.ConfigDefinition.DESCRIPTOR.fields
    if f.name != "key" and f.name not in BOOKKEEPING["configs"]
)
_LOCKS = ("is_active", "is_editable")
"""The state that stops values being written: what the plan lifts first and sets last."""
ENVIRONMENTS = 0
"""The unit of the environments: the first, which every other unit may need."""

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Write:
    """One write of a plan, and what a person calls it."""

    write: cpb.ProposedWrite
    kind: str
    """config, override, flag, rate_limit, template or environment."""
    name: str
    """The key (with @environment for an override) or name."""
    unit: int = ENVIRONMENTS
    """The writes of one unit are applied together, in one batch."""


@dataclass
class Writes:
    writes: list[Write] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the apply cannot do, for a person to do by hand (kept values)."""
    revision: int = 0
    """The revision of the state the writes were worked out from."""
    _units: int = ENVIRONMENTS

    def unit(self) -> int:
        """The number of a new unit, for the writes that follow."""
        self._units += 1
        return self._units

    def add(self, kind: str, name: str, unit: int, **write: Any) -> None:
        self.writes.append(Write(cpb.ProposedWrite(**write), kind, name, unit))


def document_writes(
    document: Mapping[str, Any], state: State, *, prune: bool, now: datetime | None = None
) -> Writes:
    """The writes that bring the server from `state` to `document`, unit by unit: every
    object the document names and the server does not hold as it says, and with `prune`
    the deletion of every object it does not name (environments and templates excepted:
    the API deletes neither). Raises DocumentError for an entry the API message does not
    accept."""
    out = Writes(revision=state.revision)
    _environments(out, document, state)
    _configs(out, document, state, prune=prune, now=now or datetime.now(UTC))
    _flags(out, document, state, prune=prune)
    _limits(out, document, state, prune=prune)
    templates = {t.name: t for t in state.templates}
    for index, item in enumerate(document["templates"]):
        template = message_of(item, pb.Template(), f"templates[{index}]")
        if not _same(template, templates.get(template.name), "templates"):
            out.add(
                "template",
                template.name,
                out.unit(),
                upsert_template=pb.UpsertTemplateRequest(template=template),
            )
    return out


def _environments(out: Writes, document: Mapping[str, Any], state: State) -> None:
    held = {e.name: e for e in state.environments}
    parents = {item["name"]: item.get("parent") or "" for item in document["environments"]}
    for index, item in sorted(
        enumerate(document["environments"]),
        key=lambda pair: (_depth(pair[1]["name"], parents), pair[1]["name"]),
    ):
        environment = message_of(item, pb.Environment(), f"environments[{index}]")
        if not _same(environment, held.get(environment.name), "environments"):
            out.add(
                "environment",
                environment.name,
                ENVIRONMENTS,
                upsert_environment=pb.UpsertEnvironmentRequest(environment=environment),
            )


def _depth(name: str, parents: Mapping[str, str]) -> int:
    """How many parents an environment has in the document: parents are written first."""
    seen = 0
    while (name := parents.get(name, "")) and seen <= len(parents):
        seen += 1
    return seen


# --- configs -----------------------------------------------------------------------------


def _configs(
    out: Writes, document: Mapping[str, Any], state: State, *, prune: bool, now: datetime
) -> None:
    held = {c.key: c for c in state.configs}
    named: dict[str, tuple[str, Mapping[str, Any], pb.ConfigDefinition]] = {}
    for index, item in enumerate(document["configs"]):
        where = f"configs[{index}]"
        definition = message_of(
            {k: v for k, v in item.items() if k not in ("overrides", KEPT)},
            pb.ConfigDefinition(),
            where,
        )
        named[definition.key] = (where, item, definition)
    keys = set(named) | (set(held) if prune else set())

    def related(key: str) -> list[str]:
        found: list[str] = []
        wanted = named.get(key)
        for definition in (wanted[2] if wanted else None, held.get(key)):
            if definition is not None:
                found += [*definition.validation.depends_on, *definition.validation.conflicts_with]
        return found

    for component in _components(keys, related):
        unit = out.unit()
        ordered = _dependencies_first(
            [k for k in component if k in named],
            lambda key: list(named[key][2].validation.depends_on),
        )
        steps = [
            _key_steps(out, *named[key], held.get(key), state.overrides.get(key, []), prune, now)
            for key in ordered
        ]
        for phase in range(3):  # definitions, values, locks
            for step in steps:
                for kind, name, write in step[phase]:
                    out.add(kind, name, unit, **write)
        if prune:
            for key in sorted(k for k in component if k not in named):
                out.add("config", key, unit, delete_config=pb.DeleteConfigRequest(key=key))


_Step = tuple[str, str, dict[str, Any]]


def _key_steps(
    out: Writes,
    where: str,
    item: Mapping[str, Any],
    definition: pb.ConfigDefinition,
    current: pb.ConfigDefinition | None,
    overrides: Sequence[pb.Override],
    prune: bool,
    now: datetime,
) -> tuple[list[_Step], list[_Step], list[_Step]]:
    """One key's writes, by phase: its definition, its values, its state."""
    key = definition.key
    kept = item.get(KEPT)
    values: list[_Step] = []
    if current is not None and not kept and _value(definition) != _value(current):
        base = definition.value if _value(definition) is not None else _NULL
        values.append(("config", key, {"set_value": pb.SetValueRequest(key=key, value=base)}))
    named: set[tuple[str, int]] = set()
    for number, raw in enumerate(item.get("overrides", ())):
        override = message_of(raw, pb.Override(), f"{where}.overrides[{number}]")
        named.add((override.environment, override.priority))
        name = f"{key}@{override.environment}"
        existing = next(
            (
                o
                for o in overrides
                if (o.environment, o.priority) == (override.environment, override.priority)
            ),
            None,
        )
        if kept:
            if existing is None:
                out.notes.append(
                    f"{name}: its value is {kept} and stays out of the file; set it with "
                    f"`switchyard set {key} VALUE --env {override.environment}`"
                )
            continue
        if existing is not None and _same_override(override, existing, now):
            continue
        if override.HasField("expires_at") and override.expires_at.ToDatetime(UTC) <= now:
            out.notes.append(
                f"{name}: expired at {override.expires_at.ToJsonString()}; left out (an "
                "override that has expired applies to nothing)"
            )
            continue
        request = pb.SetValueRequest(
            key=key, environment=override.environment, value=override.value
        )
        request.priority = override.priority
        for moment in ("expires_at", "starts_at"):
            if override.HasField(moment):
                getattr(request, moment).CopyFrom(getattr(override, moment))
        values.append(("override", name, {"set_value": request}))
    if prune and current is not None:
        for held in overrides:
            if (held.environment, held.priority) not in named:
                delete = pb.DeleteOverrideRequest(
                    key=key, environment=held.environment, priority=held.priority
                )
                values.append(
                    ("override", f"{key}@{held.environment}", {"delete_override": delete})
                )

    # Values first, then the state: while the values are written, the key is editable
    # and active; the document's state follows them.
    first = definition
    if values and _locked(definition):
        first = pb.ConfigDefinition()
        first.CopyFrom(definition)
        for name in _LOCKS:
            setattr(first, name, True)
    definitions: list[_Step] = []
    if current is None:
        definitions.append(("config", key, {"create_config": pb.CreateConfigRequest(config=first)}))
    else:
        paths = [p for p in _DEFINITION_FIELDS if p != "value" and not (kept and p in VALUE_FIELDS)]
        if _masked(first, paths) != _masked(current, paths):
            mask = field_mask_pb2.FieldMask(paths=paths)
            definitions.append(
                (
                    "config",
                    key,
                    {"update_config": pb.UpdateConfigRequest(config=first, update_mask=mask)},
                )
            )
    locks: list[_Step] = []
    if first is not definition:
        mask = field_mask_pb2.FieldMask(paths=list(_LOCKS))
        locks.append(
            (
                "config",
                key,
                {"update_config": pb.UpdateConfigRequest(config=definition, update_mask=mask)},
            )
        )
    return definitions, values, locks


def _locked(definition: pb.ConfigDefinition) -> bool:
    return not all(_state(definition, name) for name in _LOCKS)


def _state(message: Message, name: str) -> bool:
    """A state boolean (is_active, is_editable, ...) as the server reads it: unset, in
    a field that tells unset from false, means true (the specification's default)."""
    described = message.DESCRIPTOR.fields_by_name[name]
    if described.has_presence and not message.HasField(name):
        return True
    return bool(getattr(message, name))


def _value(message: pb.ConfigDefinition) -> struct_pb2.Value | None:
    """The base value; None when there is none (unset, or null)."""
    if not message.HasField("value") or message.value.WhichOneof("kind") in (None, "null_value"):
        return None
    return message.value


def _same_override(wanted: pb.Override, held: pb.Override, now: datetime) -> bool:
    """Whether writing `wanted` over `held` (the same environment and priority) would
    change nothing, as the server decides it: the same value and expiry, and the same
    start (a start that has passed is no start: the override applies at once)."""
    later = (
        wanted.starts_at
        if wanted.HasField("starts_at") and wanted.starts_at.ToDatetime(UTC) > now
        else None
    )
    return (
        wanted.value == held.value
        and _moment(wanted, "expires_at") == _moment(held, "expires_at")
        and _moment(held, "starts_at") == later
        and _state(held, "is_active") == (later is None)
    )


def _moment(message: Message, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _masked(message: M, paths: Sequence[str]) -> M:
    """Only the fields `paths` name, as an update with that mask would write them."""
    out = type(message)()
    field_mask_pb2.FieldMask(paths=list(paths)).MergeMessage(
        message, out, replace_message_field=True, replace_repeated_field=True
    )
    return out


def _same(wanted: M, held: M | None, section: str) -> bool:
    """Whether the server holds `wanted` as it is, its bookkeeping aside."""
    if held is None:
        return False
    plain = type(held)()
    plain.CopyFrom(held)
    for name in BOOKKEEPING[section]:
        if name in plain.DESCRIPTOR.fields_by_name:
            plain.ClearField(name)
    return plain == wanted


# --- flags and rate limits -----------------------------------------------------------------


def _flags(out: Writes, document: Mapping[str, Any], state: State, *, prune: bool) -> None:
    held = {f.key: f for f in state.flags}
    named = {
        flag.key: flag
        for flag in (
            message_of(item, fpb.FeatureFlag(), f"flags[{index}]")
            for index, item in enumerate(document["flags"])
        )
    }

    def links(flag: fpb.FeatureFlag | None) -> list[str]:
        return [] if flag is None else [*flag.prerequisite_features, *flag.conflicts_with]

    keys = set(named) | (set(held) if prune else set())
    for component in _components(keys, lambda k: links(named.get(k)) + links(held.get(k))):
        unit = out.unit()
        written = [k for k in component if k in named]
        for key in _dependencies_first(written, lambda k: list(named[k].prerequisite_features)):
            if not _same(named[key], held.get(key), "flags"):
                out.add("flag", key, unit, upsert_flag=fpb.UpsertFlagRequest(flag=named[key]))
        gone = [k for k in component if k not in named]
        for key in reversed(
            _dependencies_first(gone, lambda k: list(held[k].prerequisite_features))
        ):
            out.add("flag", key, unit, delete_flag=fpb.DeleteFlagRequest(flag_key=key))


def _limits(out: Writes, document: Mapping[str, Any], state: State, *, prune: bool) -> None:
    held = {r.key: r for r in state.limits}
    named = {
        limit.key: limit
        for limit in (
            message_of(item, rpb.RateLimit(), f"rate_limits[{index}]")
            for index, item in enumerate(document["rate_limits"])
        )
    }

    def parent(limit: rpb.RateLimit | None) -> list[str]:
        return [limit.inherit_from] if limit is not None and limit.inherit_from else []

    keys = set(named) | (set(held) if prune else set())
    for component in _components(keys, lambda k: parent(named.get(k)) + parent(held.get(k))):
        unit = out.unit()
        written = [k for k in component if k in named]
        for key in _dependencies_first(written, lambda k: parent(named[k])):
            if not _same(named[key], held.get(key), "rate_limits"):
                out.add(
                    "rate_limit",
                    key,
                    unit,
                    upsert_rate_limit=rpb.UpsertRateLimitRequest(rate_limit=named[key]),
                )
        gone = [k for k in component if k not in named]
        for key in reversed(_dependencies_first(gone, lambda k: parent(held[k]))):
            out.add(
                "rate_limit",
                key,
                unit,
                delete_rate_limit=rpb.DeleteRateLimitRequest(limit_key=key),
            )


# --- units and order -----------------------------------------------------------------------


def _components(keys: Iterable[str], links: Callable[[str], Iterable[str]]) -> list[list[str]]:
    """`keys` grouped into the sets that `links` connects (either way; links to names
    outside `keys` are ignored), each sorted, ordered by their first key."""
    keys = set(keys)
    root = {key: key for key in keys}

    def find(key: str) -> str:
        while root[key] != key:
            root[key] = root[root[key]]
            key = root[key]
        return key

    for key in sorted(keys):
        for other in links(key):
            if other in keys:
                root[find(other)] = find(key)
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(find(key), []).append(key)
    return sorted(groups.values(), key=lambda group: group[0])


def _dependencies_first(keys: Sequence[str], needs: Callable[[str], Iterable[str]]) -> list[str]:
    """`keys` ordered so that each comes after those of them it `needs` (the server
    refuses a prerequisite or a dependency that does not exist yet); by name otherwise.
    A cycle is broken at its first key: the server names it."""
    pending = sorted(keys)
    placed: list[str] = []
    done: set[str] = set()
    while pending:
        ready = [
            key
            for key in pending
            if all(other in done or other not in pending or other == key for other in needs(key))
        ] or pending[:1]
        for key in ready:
            placed.append(key)
            done.add(key)
        pending = [key for key in pending if key not in done]
    return placed


def pieces(
    writes: Sequence[Write], *, size: int = PIECE_WRITES, max_bytes: int = PIECE_BYTES
) -> list[list[Write]]:
    """The writes, in order, cut into pieces of whole units: each of at most `size`
    writes and `max_bytes` bytes, but for a unit larger than that, which has a piece of
    its own."""
    out: list[list[Write]] = []
    piece: list[Write] = []
    piece_bytes = 0
    for _, grouped in itertools.groupby(writes, key=lambda w: w.unit):
        unit = list(grouped)
        unit_bytes = sum(w.write.ByteSize() + 8 for w in unit)
        if piece and (len(piece) + len(unit) > size or piece_bytes + unit_bytes > max_bytes):
            out.append(piece)
            piece, piece_bytes = [], 0
        piece += unit
        piece_bytes += unit_bytes
    if piece:
        out.append(piece)
    return out


# --- the plan a person reads ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One write's part of a plan: what the server says it changes, or why not."""

    kind: str
    name: str
    action: str
    """create, update, delete, unchanged or refused."""
    changes: Sequence[pb.HistoryEntry]
    refusal: bpb.WriteRefusal | None
    unit: int = ENVIRONMENTS
    details_left_out: bool = False
    """The server's answer had no room for this write's diff."""


_ACTIONS = {
    bpb.WRITE_EFFECT_CREATE: "create",
    bpb.WRITE_EFFECT_UPDATE: "update",
    bpb.WRITE_EFFECT_DELETE: "delete",
    bpb.WRITE_EFFECT_UNCHANGED: "unchanged",
    bpb.WRITE_EFFECT_REFUSED: "refused",
}


def plan_steps(writes: Sequence[Write], outcomes: Sequence[bpb.WriteOutcome]) -> list[Step]:
    """The steps of a dry run (or an apply), in the order of the writes."""
    return [
        Step(
            write.kind,
            write.name,
            _ACTIONS.get(outcome.effect, "update"),
            list(outcome.changes),
            outcome.refusal if outcome.HasField("refusal") else None,
            write.unit,
            outcome.details_left_out,
        )
        for write, outcome in zip(writes, outcomes, strict=True)
    ]


def summary(steps: Iterable[Step]) -> dict[str, int]:
    counts = dict.fromkeys(("create", "update", "delete", "unchanged", "refused"), 0)
    for step in steps:
        counts[step.action] += 1
    return counts


__all__ = [
    "ENVIRONMENTS",
    "PIECE_BYTES",
    "PIECE_WRITES",
    "Step",
    "Write",
    "Writes",
    "document_writes",
    "pieces",
    "plan_steps",
    "summary",
]
