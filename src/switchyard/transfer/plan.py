"""From a document and what the server holds, the writes that make the server hold the
document; from the server's dry run of them, the plan a person reads.

The writes are the API's own (`ProposedWrite`), sent as one batch: the server decides
what each changes (its history rows) or why it refuses it, so the plan is exactly what
an apply will do, worked out by the same code. Nothing here compares values itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import field_mask_pb2, struct_pb2

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

_NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
_DEFINITION_FIELDS = tuple(
    f.name
    for f in pb.ConfigDefinition.DESCRIPTOR.fields
    if f.name != "key" and f.name not in BOOKKEEPING["configs"]
)


@dataclass(frozen=True)
class Write:
    """One write of a plan, and what a person calls it."""

    write: cpb.ProposedWrite
    kind: str
    """config, override, flag, rate_limit, template or environment."""
    name: str
    """The key (with @environment for an override) or name."""


@dataclass
class Writes:
    writes: list[Write] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the apply cannot do, for a person to do by hand (kept values)."""

    def add(self, kind: str, name: str, **write: Any) -> None:
        self.writes.append(Write(cpb.ProposedWrite(**write), kind, name))


def document_writes(document: Mapping[str, Any], state: State, *, prune: bool) -> Writes:
    """The writes that bring the server from `state` to `document`: every object the
    document names is written whole (the server records nothing for one that is the
    same), and with `prune` every object it does not name is deleted (environments and
    templates excepted: the API deletes neither). Raises DocumentError for an entry the
    API message does not accept."""
    out = Writes()
    existing = {c.key: c for c in state.configs}
    for index, item in enumerate(_by_depth(document["environments"])):
        environment = message_of(item, pb.Environment(), f"environments[{index}]")
        out.add(
            "environment",
            environment.name,
            upsert_environment=pb.UpsertEnvironmentRequest(environment=environment),
        )
    named_overrides: set[tuple[str, str, int]] = set()
    for index, item in enumerate(document["configs"]):
        where = f"configs[{index}]"
        kept = item.get(KEPT)
        definition = message_of(
            {k: v for k, v in item.items() if k not in ("overrides", KEPT)},
            pb.ConfigDefinition(),
            where,
        )
        key = definition.key
        if key in existing:
            # UpdateConfig leaves the base value to SetValue, which records it as a value.
            paths = [
                p for p in _DEFINITION_FIELDS if p != "value" and not (kept and p in VALUE_FIELDS)
            ]
            out.add(
                "config",
                key,
                update_config=pb.UpdateConfigRequest(
                    config=definition, update_mask=field_mask_pb2.FieldMask(paths=paths)
                ),
            )
            if not kept:
                base = definition.value if definition.HasField("value") else _NULL
                out.add("config", key, set_value=pb.SetValueRequest(key=key, value=base))
        else:
            out.add("config", key, create_config=pb.CreateConfigRequest(config=definition))
        for number, raw in enumerate(item.get("overrides", ())):
            override = message_of(raw, pb.Override(), f"{where}.overrides[{number}]")
            named_overrides.add((key, override.environment, override.priority))
            name = f"{key}@{override.environment}"
            if kept:
                if not any(
                    o.environment == override.environment and o.priority == override.priority
                    for o in state.overrides.get(key, ())
                ):
                    out.notes.append(
                        f"{name}: its value is {kept} and stays out of the file; set it with "
                        f"`switchyard set {key} VALUE --env {override.environment}`"
                    )
                continue
            request = pb.SetValueRequest(
                key=key,
                environment=override.environment,
                value=override.value,
                priority=override.priority,
            )
            for moment in ("expires_at", "starts_at"):
                if override.HasField(moment):
                    getattr(request, moment).CopyFrom(getattr(override, moment))
            out.add("override", name, set_value=request)
    for index, item in enumerate(_prerequisites_first(document["flags"])):
        flag = message_of(item, fpb.FeatureFlag(), f"flags[{index}]")
        out.add("flag", flag.key, upsert_flag=fpb.UpsertFlagRequest(flag=flag))
    for index, item in enumerate(document["rate_limits"]):
        limit = message_of(item, rpb.RateLimit(), f"rate_limits[{index}]")
        out.add(
            "rate_limit", limit.key, upsert_rate_limit=rpb.UpsertRateLimitRequest(rate_limit=limit)
        )
    for index, item in enumerate(document["templates"]):
        template = message_of(item, pb.Template(), f"templates[{index}]")
        out.add(
            "template", template.name, upsert_template=pb.UpsertTemplateRequest(template=template)
        )
    if prune:
        _prune(out, document, state, named_overrides)
    return out


def _prune(
    out: Writes,
    document: Mapping[str, Any],
    state: State,
    named_overrides: set[tuple[str, str, int]],
) -> None:
    configs = {item["key"] for item in document["configs"]}
    for key, overrides in sorted(state.overrides.items()):
        if key not in configs:
            continue  # goes with its key
        for override in overrides:
            if (key, override.environment, override.priority) not in named_overrides:
                out.add(
                    "override",
                    f"{key}@{override.environment}",
                    delete_override=pb.DeleteOverrideRequest(
                        key=key, environment=override.environment, priority=override.priority
                    ),
                )
    for config in sorted(state.configs, key=lambda c: c.key):
        if config.key not in configs:
            out.add("config", config.key, delete_config=pb.DeleteConfigRequest(key=config.key))
    flags = {item["key"] for item in document["flags"]}
    gone = [f for f in state.flags if f.key not in flags]
    dependents_first = reversed(_prerequisites_first([{"key": f.key, **_links(f)} for f in gone]))
    for item in dependents_first:
        out.add("flag", item["key"], delete_flag=fpb.DeleteFlagRequest(flag_key=item["key"]))
    limits = {item["key"] for item in document["rate_limits"]}
    for limit in sorted(state.limits, key=lambda r: r.key):
        if limit.key not in limits:
            out.add(
                "rate_limit",
                limit.key,
                delete_rate_limit=rpb.DeleteRateLimitRequest(limit_key=limit.key),
            )


def _links(flag: fpb.FeatureFlag) -> dict[str, list[str]]:
    return {"prerequisite_features": list(flag.prerequisite_features)}


def _prerequisites_first(flags: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Flags ordered so that each comes after the flags it names as prerequisites (the
    server refuses a prerequisite that does not exist yet); by key otherwise."""
    pending = {item["key"]: item for item in sorted(flags, key=lambda f: f["key"])}
    ordered: list[Mapping[str, Any]] = []
    placed: set[str] = set()
    while pending:
        ready = [
            key
            for key, item in pending.items()
            if all(p in placed or p not in pending for p in item.get("prerequisite_features", ()))
        ] or [next(iter(pending))]  # a cycle: the server names it
        for key in ready:
            ordered.append(pending.pop(key))
            placed.add(key)
    return ordered


def _by_depth(environments: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Parents before children: an environment's parent must exist first."""
    parents = {item["name"]: item.get("parent") or None for item in environments}

    def depth(name: str) -> int:
        seen = 0
        while (name := parents.get(name) or "") and seen <= len(parents):
            seen += 1
        return seen

    return sorted(environments, key=lambda item: (depth(item["name"]), item["name"]))


@dataclass(frozen=True)
class Step:
    """One write's part of a plan: what the server says it changes, or why not."""

    kind: str
    name: str
    action: str
    """create, update, delete, unchanged or refused."""
    changes: Sequence[pb.HistoryEntry]
    refusal: bpb.WriteRefusal | None


_ACTIONS = {
    pb.HISTORY_ACTION_CREATE: "create",
    pb.HISTORY_ACTION_DELETE: "delete",
}


def plan_steps(writes: Sequence[Write], reply: bpb.ApplyWritesResponse) -> list[Step]:
    """The steps of a dry run (or an apply), in the order of the writes."""
    steps = []
    for write, outcome in zip(writes, reply.outcomes, strict=True):
        if outcome.HasField("refusal"):
            action = "refused"
        elif not outcome.changes:
            action = "unchanged"
        else:
            action = _ACTIONS.get(outcome.changes[0].action, "update")
        steps.append(
            Step(
                write.kind,
                write.name,
                action,
                list(outcome.changes),
                outcome.refusal if outcome.HasField("refusal") else None,
            )
        )
    return steps


def summary(steps: Iterable[Step]) -> dict[str, int]:
    counts = dict.fromkeys(("create", "update", "delete", "unchanged", "refused"), 0)
    for step in steps:
        counts[step.action] += 1
    return counts


__all__ = [
    "Step",
    "Write",
    "Writes",
    "document_writes",
    "plan_steps",
    "summary",
]
