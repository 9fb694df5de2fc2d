"""Switchyard flags as a flagd flag-definition document, for OpenFeature in-process
providers: they sync the document (flagd.sync.v1) and evaluate it themselves with
flagd's JsonLogic, so each flag's entry must decide exactly as `evaluation.evaluate`
does, or not be there at all.

The context mapping (an OpenFeature context to a Switchyard one; `openfeature_context`):

    OpenFeature                          Switchyard
    targetingKey (string)                user_id (also the rollout's bucketing key)
    attribute "roles" (list of strings)  roles
    attribute "groups" (list of strings) groups
    attribute "environment" (string)     environment
    every other attribute, by name       attributes (nested objects kept)

A missing or null targetingKey, environment, roles or groups is the empty one. Anything
else of the wrong type is refused (InvalidArgument): a context the server would refuse
has no answer to agree with.

Each flag becomes one JsonLogic expression answering the variant name, the steps of the
evaluation order nested in that order: the kill switch and retirement become `state:
DISABLED`; whatever depends on time alone (start and end dates, the cron schedule, a
gradual rollout's percentage, which rings are open) is decided as of `now` and folded
into constants, so the server sends a new document when one of those changes; the
environment list is an `in`; prerequisites and conflicts inline the other flag's
expression (a conflict judged without its own conflicts, as `evaluate` does); users,
roles and groups are `in` and `some`; rules come from `rules.to_json_logic`, first match
first; a partial rollout is flagd's `fractional` in basis points.

What cannot be said exactly is left out of the document, never approximated, and named
in its metadata (`switchyard.server_only`); a provider then answers FLAG_NOT_FOUND and the
caller's default, and the flag stays evaluable over RPC. That is a flag with:

- a rule `to_json_logic` cannot translate (`matches`, whose patterns run on the server
  only, so that they speak RE2's dialect wherever they run; `before`, `after`; some paths;
  a stored rule this version cannot compile, which never matches on the server);
- a partial rollout bucketed with version 1 (`bucketing.CONCATENATED`): flagd's current
  `fractional` hashes the CBOR pair [flag key, targeting key] (version 2) instead;
- a partial rollout in a prerequisite or conflict: `fractional` always buckets by the key
  of the flag being resolved, and JsonLogic cannot name another;
- a prerequisite or conflict that is itself left out, or so many inlined ones that the
  expression would pass `MAX_TARGETING_NODES`.

In-process providers must implement flagd's "fractional v3" (CBOR) bucketing, as the
Python flagd provider 0.6 (flagd-core 2.x) does; with an older provider, partial
rollouts would bucket differently from Switchyard.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from switchyard.domain.bucketing import BASIS_POINTS, CBOR_PAIR, basis_points
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.evaluation import MAX_PREREQUISITE_DEPTH, CompiledFlag, FlagSet
from switchyard.domain.flags import OFF, ON, EvaluationContext, RolloutStrategy
from switchyard.domain.models import JSONValue
from switchyard.domain.rules import to_json_logic

TARGETING_KEY = "targetingKey"
ROLES = "roles"
GROUPS = "groups"
ENVIRONMENT = "environment"

SERVER_ONLY = "switchyard.server_only"
"""Document metadata: the keys left out, comma-separated (metadata values are scalars)."""
REVISION = "switchyard.revision"
"""Document metadata: the revision of the flags the document was made from."""
VERSION = "switchyard.version"
"""Flag metadata: the flag's version."""

MAX_TARGETING_NODES = 20_000
"""JsonLogic nodes in one flag's targeting. Inlining prerequisites repeats a shared one
in every flag that reaches it, which can grow without bound; past this a flag is left
out rather than sent as a document no provider should have to parse."""

_FULL = 100


@dataclass(frozen=True, slots=True)
class _Logic:
    """A JsonLogic expression and its size in nodes. A plain string is a constant
    variant."""

    expression: JSONValue
    size: int

    @property
    def constant(self) -> str | None:
        return self.expression if isinstance(self.expression, str) else None


_ON = _Logic(ON, 1)
_OFF = _Logic(OFF, 1)


class _Untranslatable(Exception):
    """Why a flag cannot be said exactly in JsonLogic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def openfeature_context(fields: Mapping[str, JSONValue]) -> EvaluationContext:
    """The Switchyard context of an OpenFeature one: `fields` are its attributes with
    the targeting key as `targetingKey` (what a flagd RPC request's `context` holds).
    Raises InvalidArgument for a targeting key, environment, roles or groups of the
    wrong type."""
    attributes = {
        name: value
        for name, value in fields.items()
        if name not in (TARGETING_KEY, ROLES, GROUPS, ENVIRONMENT)
    }
    return EvaluationContext(
        user_id=_string(fields.get(TARGETING_KEY), TARGETING_KEY),
        roles=_strings(fields.get(ROLES), ROLES),
        groups=_strings(fields.get(GROUPS), GROUPS),
        environment=_string(fields.get(ENVIRONMENT), ENVIRONMENT),
        attributes=attributes,
    )


def _string(value: JSONValue, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument.field(f"context.{name}", f"must be a string; got {value!r}")
    return value


def _strings(value: JSONValue, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument.field(f"context.{name}", f"must be a list of strings; got {value!r}")
    return tuple(str(item) for item in value)


def flagd_document(flags: FlagSet, now: datetime) -> dict[str, JSONValue]:
    """The flagd flag-definition document of `flags` as of `now` (see the module
    docstring): `{"flags": {key: entry}, "metadata": {...}}`, keys in order. Every flag
    translated decides, for every context, the variant `evaluate` decides at `now`;
    the others are left out and named under `switchyard.server_only`."""
    translator = _Translator(flags, now)
    entries: dict[str, JSONValue] = {}
    left_out: list[str] = []
    for key in sorted(flags.flags):
        compiled = flags.flags[key]
        flag = compiled.flag
        entry: dict[str, JSONValue] = {
            "state": "ENABLED",
            "variants": {name: _plain(value) for name, value in flag.served_variants.items()},
            "defaultVariant": OFF,
            "metadata": {VERSION: flag.version},
        }
        if not (flag.is_enabled and flag.is_active):
            entry["state"] = "DISABLED"
        else:
            try:
                logic = translator.variant(key, 0, ignore_conflicts=False)
            except _Untranslatable:
                left_out.append(key)
                continue
            if logic.constant is not None:
                entry["defaultVariant"] = logic.constant
            else:
                # Sub-expressions are shared between flags while translating; each entry
                # gets its own, so that no reader's change to one shows in another.
                entry["targeting"] = copy.deepcopy(logic.expression)
        entries[key] = entry
    metadata: dict[str, JSONValue] = {REVISION: flags.revision}
    if left_out:
        metadata[SERVER_ONLY] = ",".join(left_out)
    return {"flags": entries, "metadata": metadata}


def server_only(flags: FlagSet, now: datetime) -> dict[str, str]:
    """The flags `flagd_document` leaves out, with why."""
    translator = _Translator(flags, now)
    reasons: dict[str, str] = {}
    for key in sorted(flags.flags):
        flag = flags.flags[key].flag
        if not (flag.is_enabled and flag.is_active):
            continue
        try:
            translator.variant(key, 0, ignore_conflicts=False)
        except _Untranslatable as error:
            reasons[key] = error.reason
    return reasons


def time_states(flags: FlagSet, now: datetime) -> dict[str, Hashable]:
    """For each flag whose answer can change with time alone (`time_dependent`), what
    time decides of it at `now`: in its schedule or not, the gradual rollout's basis
    points, the rings open. Two calls that differ for a key mean the key's answers may
    have changed in between (see `dependents` for the flags that follow it)."""
    states: dict[str, Hashable] = {}
    for key, compiled in flags.flags.items():
        if not compiled.time_dependent:
            continue
        flag = compiled.flag
        strategy = flag.rollout_strategy
        states[key] = (
            compiled.in_schedule(now),
            basis_points(compiled.rollout_percentage(now))
            if strategy is RolloutStrategy.GRADUAL
            else None,
            _open_rings(compiled, now) if strategy is RolloutStrategy.RING else None,
        )
    return states


def dependents(flags: FlagSet, keys: Iterable[str]) -> frozenset[str]:
    """`keys` and every flag whose answers follow theirs: that names one of them as a
    prerequisite or conflict, directly or through others."""
    named_by: dict[str, list[str]] = {}
    for key, compiled in flags.flags.items():
        for other in (*compiled.flag.prerequisite_features, *compiled.flag.conflicts_with):
            named_by.setdefault(other, []).append(key)
    found = set(keys)
    pending = list(found)
    while pending:
        for follower in named_by.get(pending.pop(), ()):
            if follower not in found:
                found.add(follower)
                pending.append(follower)
    return frozenset(found)


def _open_rings(compiled: CompiledFlag, now: datetime) -> int:
    count = 0
    for ring in compiled.flag.rings:
        if ring.opens_at is not None and ring.opens_at > now:
            break  # rings open in order, as `evaluate` reads them
        count += 1
    return count


def _plain(value: JSONValue) -> JSONValue:
    """A whole number as an integer: values set over gRPC arrive as doubles, and
    flagd's integer resolution refuses 3.0."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


class _Translator:
    """Translates the flags of one FlagSet at one moment. Each flag's expression is made
    once per (depth, conflicts judged or not) and reused wherever it is inlined."""

    def __init__(self, flags: FlagSet, now: datetime) -> None:
        self._flags = flags
        self._now = now
        self._made: dict[tuple[str, int, bool], _Logic | _Untranslatable] = {}

    def variant(self, key: str, depth: int, *, ignore_conflicts: bool) -> _Logic:
        """The expression answering the variant `evaluate(key, depth=depth,
        ignore_conflicts=...)` answers. Raises _Untranslatable."""
        memo = (key, depth, ignore_conflicts)
        made = self._made.get(memo)
        if made is None:
            try:
                made = self._variant(key, depth, ignore_conflicts)
                if made.size > MAX_TARGETING_NODES:
                    raise _Untranslatable(
                        f"its targeting would have more than {MAX_TARGETING_NODES} JsonLogic "
                        "nodes (prerequisites and conflicts are inlined)"
                    )
            except _Untranslatable as error:
                made = error
            self._made[memo] = made
        if isinstance(made, _Untranslatable):
            raise made
        return made

    def _variant(self, key: str, depth: int, ignore_conflicts: bool) -> _Logic:
        compiled = self._flags.get(key)
        if compiled is None:
            return _OFF  # NOT_FOUND is not enabled: a prerequisite fails, a conflict does not
        flag = compiled.flag
        if not (flag.is_enabled and flag.is_active) or not compiled.in_schedule(self._now):
            return _OFF
        # Every failed step serves "off", so the steps that decide "off" are gates whose
        # order does not matter; the first gate known to fail decides outright, even when
        # another step could not be translated.
        gates: list[_Logic] = []
        problems: list[str] = []
        if compiled.environments:
            gates.append(_member(ENVIRONMENT, sorted(compiled.environments)))
        for prerequisite in flag.prerequisite_features:
            if depth >= MAX_PREREQUISITE_DEPTH:
                return _OFF
            try:
                inner = self.variant(prerequisite, depth + 1, ignore_conflicts=False)
            except _Untranslatable as error:
                problems.append(f"prerequisite {prerequisite!r} is server-only ({error.reason})")
                continue
            if inner.constant == OFF:
                return _OFF
            if inner.constant is None:
                gates.append(_is_on(inner))
        if not ignore_conflicts:
            for other in flag.conflicts_with:
                try:
                    inner = self.variant(other, depth + 1, ignore_conflicts=True)
                except _Untranslatable as error:
                    problems.append(f"conflict {other!r} is server-only ({error.reason})")
                    continue
                if inner.constant is not None and inner.constant != OFF:
                    return _OFF
                if inner.constant is None:
                    gates.append(_call("!", _is_on(inner)))
        if problems:
            raise _Untranslatable("; ".join(problems))
        body = self._targeted(compiled, depth)
        if not gates or body.constant == OFF:
            return body
        condition = gates[0] if len(gates) == 1 else _call("and", *gates)
        return _call("if", condition, body, _OFF)

    def _targeted(self, compiled: CompiledFlag, depth: int) -> _Logic:
        """Steps 7 to 10: the first of users, roles, groups and rules to match serves its
        variant, else the rollout decides."""
        branches: list[tuple[_Logic, str]] = []
        if compiled.users:
            branches.append((_member(TARGETING_KEY, sorted(compiled.users)), ON))
        if compiled.roles:
            branches.append((_any_member(ROLES, sorted(compiled.roles)), ON))
        if compiled.groups:
            branches.append((_any_member(GROUPS, sorted(compiled.groups)), ON))
        for rule in compiled.rules:
            said = to_json_logic(rule)
            if said is None:
                raise _Untranslatable(
                    f"rule {rule.id!r} has no exact JsonLogic form "
                    "(matches, before, after, an attribute path flagd reads otherwise, "
                    "or a stored rule that cannot compile)"
                )
            said = _lists_default_to_empty(said)
            branches.append((_Logic(said, _count(said)), rule.variant))
        otherwise = self._rollout(compiled, depth)
        # A last branch serving what the rollout serves anyway decides nothing.
        while branches and branches[-1][1] == otherwise.constant:
            branches.pop()
        if not branches:
            return otherwise
        parts: list[_Logic] = []
        for condition, variant in branches:
            parts += [condition, _Logic(variant, 1)]
        return _call("if", *parts, otherwise)

    def _rollout(self, compiled: CompiledFlag, depth: int) -> _Logic:
        """Step 9 and 10, with the time-dependent parts decided as of now."""
        flag = compiled.flag
        strategy = flag.rollout_strategy
        if strategy is RolloutStrategy.USER_LIST:
            return _OFF  # listed users were served by step 7
        if strategy is RolloutStrategy.RING:
            groups: set[str] = set()
            for ring in flag.rings:
                if ring.opens_at is not None and ring.opens_at > self._now:
                    break
                groups.update(ring.groups)
            if not groups:
                return _OFF
            return _call("if", _any_member(GROUPS, sorted(groups)), _ON, _OFF)
        percentage = compiled.rollout_percentage(self._now)
        if strategy is not RolloutStrategy.GRADUAL:
            if percentage >= _FULL:
                return _ON
            if percentage <= 0:
                return _OFF
        points = basis_points(percentage)
        if points <= 0:
            return _OFF
        split: _Logic
        if points >= BASIS_POINTS:
            split = _ON  # every bucket is below 10,000: everyone with a key is in
        elif depth > 0:
            raise _Untranslatable(
                f"it needs {flag.key!r}'s partial rollout, and flagd's fractional buckets by "
                "the key of the flag being resolved"
            )
        elif flag.bucketing_version != CBOR_PAIR:
            raise _Untranslatable(
                f"its partial rollout buckets with version {flag.bucketing_version}; "
                f"flagd's fractional buckets as version {CBOR_PAIR} does"
            )
        else:
            weights: JSONValue = [[ON, points], [OFF, BASIS_POINTS - points]]
            split = _Logic({"fractional": weights}, 6)
        # Without a targeting key `evaluate` puts the user out; fractional would answer
        # null (flagd's default variant) and log an error for each evaluation.
        return _call("if", _Logic({"var": TARGETING_KEY}, 2), split, _OFF)


def _call(operator: str, *arguments: _Logic) -> _Logic:
    return _Logic(
        {operator: [argument.expression for argument in arguments]},
        1 + sum(argument.size for argument in arguments),
    )


def _is_on(variant: _Logic) -> _Logic:
    """Whether a variant expression answers anything but "off" (`Evaluation.enabled`).
    Variants are strings, which JsonLogic's `!=` compares as Python does."""
    return _call("!=", variant, _OFF)


def _member(name: str, values: list[str]) -> _Logic:
    """The context's `name` is one of `values`. `in` is membership on a literal list, so
    a missing (null) or non-string value is in none."""
    return _Logic({"in": [{"var": name}, list(values)]}, 3 + len(values))


def _any_member(name: str, values: list[str]) -> _Logic:
    """One element of the list `name` is one of `values`; `some` of anything but a list
    (a missing one included) is false."""
    return _Logic({"some": [{"var": name}, {"in": [{"var": ""}, list(values)]}]}, 6 + len(values))


def _lists_default_to_empty(logic: JSONValue) -> JSONValue:
    """The rule's JsonLogic, reading a missing `roles` or `groups` as [] as Switchyard
    does (the mapping makes them empty tuples), rather than as null: `ne` and `not_in`
    hold for an empty list and fail for a missing attribute."""
    if isinstance(logic, list):
        return [_lists_default_to_empty(item) for item in logic]
    if isinstance(logic, dict):
        if len(logic) == 1 and logic.get("var") in (ROLES, GROUPS):
            return {"var": [logic["var"], []]}
        return {name: _lists_default_to_empty(item) for name, item in logic.items()}
    return logic


def _count(logic: JSONValue) -> int:
    if isinstance(logic, list):
        return 1 + sum(_count(item) for item in logic)
    if isinstance(logic, dict):
        return 1 + sum(_count(item) for item in logic.values())
    return 1


__all__ = [
    "ENVIRONMENT",
    "GROUPS",
    "MAX_TARGETING_NODES",
    "REVISION",
    "ROLES",
    "SERVER_ONLY",
    "TARGETING_KEY",
    "VERSION",
    "dependents",
    "flagd_document",
    "openfeature_context",
    "server_only",
    "time_states",
]
